"""Does the design fit the data? Plain sentences about what differs, and the one-click fix.

The fix goes through the document's undo stack as one step: set the input
shape to the data's, and the last Linear's out_features to what the task needs.
"""
from __future__ import annotations

import math

from engine.shapes import analyze, format_shape
from engine.spec import NetworkSpec


def target_width(bundle) -> int | None:
    """How many outputs the data wants from the network (None when it cannot be said)."""
    if bundle.task == "classification":
        return bundle.num_classes
    if bundle.task == "regression":
        y = bundle.train_y
        return int(y.shape[1]) if y.dim() == 2 else 1
    if bundle.task == "reconstruction":
        return math.prod(bundle.input_shape)
    return None


def last_linear(spec: NetworkSpec):
    for layer in reversed(spec.layers):
        if layer.kind == "Linear":
            return layer
    return None


def fit_problems(spec: NetworkSpec, bundle, analysis=None) -> list[str]:
    """Sentences saying how the design and the data disagree (empty when they fit)."""
    problems = []
    data_shape = tuple(bundle.input_shape)
    if math.prod(spec.input_shape) != math.prod(data_shape):  # same size: the trainer reshapes (784 <- 1x28x28)
        problems.append(f"The design takes input {format_shape(spec.input_shape)}, but {bundle.name} gives "
                        f"{format_shape(data_shape)} per sample.")
        analysis = analyze(spec.with_input_shape(data_shape))
    else:
        analysis = analysis or analyze(spec)
    want = target_width(bundle)
    out = analysis.output_shape
    if want is not None and out is not None and math.prod(out) != want:
        what = {"classification": f"{want} classes", "regression": f"{want} target value(s)",
                "reconstruction": f"{want} values (the input again)"}[bundle.task]
        problems.append(f"The design outputs {format_shape(out)} values, but the data has {what}.")
    return problems


def fitted_spec(spec: NetworkSpec, bundle) -> NetworkSpec:
    """The design with the data's input shape (unless only a reshape apart) and the last Linear sized for the task."""
    fixed = spec if math.prod(spec.input_shape) == math.prod(bundle.input_shape) else \
        spec.with_input_shape(tuple(bundle.input_shape))
    want = target_width(bundle)
    linear = last_linear(fixed)
    if want is not None and linear is not None and linear.params["out_features"] != want:
        fixed = fixed.with_param(linear.id, "out_features", want)
    return fixed


def fit_design_to_data(document, bundle) -> bool:
    """Apply ``fitted_spec`` to the document as one undo step; False when nothing changed or it is read-only."""
    if getattr(document, "read_only", False):
        return False
    target = fitted_spec(document.spec, bundle)
    if target == document.spec:
        return False
    stack = document.undo_stack
    stack.beginMacro("Fit design to data")
    try:
        document.edit_input_shape(target.input_shape)
        for old, new in zip(document.spec.layers, target.layers):
            for name, value in new.params.items():
                if old.params.get(name) != value:
                    document.edit_param(new.id, name, value)
    finally:
        stack.endMacro()
    return True
