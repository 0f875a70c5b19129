"""Fitting a design to its data, and the "Try it on the bundled sample" plan.

``fit(spec, facts)`` gives either a design whose analysis has no errors and whose output is what the data's
task needs, or a refusal: a sentence saying why this design cannot take this data and what to do instead.
A fit never hands back a broken design. It changes only what the data decides: the input shape (kept a
reshape apart when the sizes agree, flattened for a design that takes flat vectors), the width of the
output layer, and, for images too small for the design's strides and pools, the image size the data is
enlarged to (the smallest the design takes).

``sample_trial(spec, data_settings)`` is the one-click trial of any design: the data settings switched to
the bundled MNIST sample (augmentation that makes no sense for digits off) and the design fitted to it.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

from engine.data.sources import DIGIT_NAMES, SOURCES
from engine.errors import SpecError
from engine.shapes import Analysis, analyze, format_shape
from engine.spec import NetworkSpec, check_input_shape

SAMPLE = "mnist-sample"
BUILTIN_CLASSES = len(DIGIT_NAMES)   # MNIST's digits; Fashion-MNIST and CIFAR-10 have ten classes too


@dataclass(frozen=True)
class DataFacts:
    """What fitting needs to know about a dataset: a loaded bundle's, or a built-in source's from its table."""

    name: str
    input_shape: tuple[int, ...]
    task: str                    # classification | regression | reconstruction
    outputs: int | None          # values the network must give per sample (None: cannot be said)
    resizable: bool = False      # images the data settings can enlarge (image_size)

    @classmethod
    def of(cls, bundle) -> DataFacts:
        """The facts of a loaded DataBundle."""
        config = getattr(bundle, "config", None)
        source = SOURCES.get(getattr(config, "source", ""))
        shape = tuple(bundle.input_shape)     # image sources' pictures follow image_size (built-ins only enlarge)
        return cls(bundle.name, shape, bundle.task, target_width(bundle),
                   resizable=len(shape) == 3 and source is not None and source.images)

    @property
    def images(self) -> bool:
        return len(self.input_shape) == 3

    def wants(self) -> str:
        """What the task asks of the output, e.g. ``10 classes``."""
        return {"classification": f"{self.outputs} classes", "regression": f"{self.outputs} target value(s)",
                "reconstruction": f"{self.outputs} values (the input again)"}.get(self.task, f"{self.outputs} values")


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


def builtin_facts(source: str, task: str = "auto", image_size: int = 0) -> DataFacts:
    """A built-in image dataset (MNIST sample, MNIST, Fashion-MNIST, CIFAR-10) described without loading or
    downloading it: its images enlarged to ``image_size`` when larger, its classes or, for reconstruction,
    its pixels as the outputs."""
    entry = SOURCES[source]
    side = max(entry.fixed_facts.side, image_size)
    shape = (entry.fixed_facts.channels, side, side)
    if task == "reconstruction":
        return DataFacts(entry.title, shape, "reconstruction", math.prod(shape), resizable=True)
    return DataFacts(entry.title, shape, "classification", BUILTIN_CLASSES, resizable=True)


@dataclass(frozen=True)
class Fit:
    """A fitted design (``spec``) with what changed, or a ``refusal`` sentence (``spec`` None)."""

    spec: NetworkSpec | None
    refusal: str = ""
    changes: tuple[str, ...] = ()   # short phrases: "input 3x32x32 → 1x28x28"
    image_size: int = 0             # the data's images must be enlarged to this side (0: as they are)

    @property
    def ok(self) -> bool:
        return self.spec is not None


def output_fits(shape: tuple[int, ...] | None, facts: DataFacts) -> bool:
    """Whether a design output of ``shape`` per sample suits the task (what the trainer accepts): exactly
    one value per class for classification, as many values as targets otherwise."""
    if shape is None or facts.outputs is None:
        return True
    if facts.task == "classification":
        return tuple(shape) == (facts.outputs,) or (facts.outputs == 2 and tuple(shape) == (1,))
    return math.prod(shape) == facts.outputs


def fit_problems(spec: NetworkSpec, facts: DataFacts, analysis: Analysis | None = None) -> list[str]:
    """Sentences saying how the design and the data disagree (empty when they fit)."""
    problems = []
    if math.prod(spec.input_shape) != math.prod(facts.input_shape):  # same size: the trainer reshapes
        gives = (f"{facts.input_shape[0]} features" if len(facts.input_shape) == 1 else
                 format_shape(facts.input_shape))
        problems.append(f"The design takes input {format_shape(spec.input_shape)}, but {facts.name} gives "
                        f"{gives} per sample.")
        analysis = analyze(spec.with_input_shape(_input_for(spec, facts.input_shape)))
    else:
        analysis = analysis or analyze(spec)
    out = analysis.output_shape
    if analysis.ok and not output_fits(out, facts):
        problems.append(f"The design outputs {format_shape(out)} values, but the data has {facts.wants()}.")
    return problems


def _input_for(spec: NetworkSpec, data_shape: tuple[int, ...]) -> tuple[int, ...]:
    """The input shape a design should take for data of ``data_shape``: its own when only a reshape apart;
    otherwise the data's, with leading dimensions merged down to the design's rank (a design taking flat
    vectors gets 784 for 1x28x28 images: the trainer reshapes)."""
    if math.prod(spec.input_shape) == math.prod(data_shape):
        return tuple(spec.input_shape)
    rank = len(spec.input_shape)
    if 0 < rank < len(data_shape):
        cut = len(data_shape) - rank + 1
        return (math.prod(data_shape[:cut]), *data_shape[cut:])
    return tuple(data_shape)


def _smallest_side(spec: NetworkSpec, channels: int, side: int) -> int:
    """The smallest square image side above ``side`` up to the design's own at which it analyses without
    errors; 0 when the design takes no larger images or is broken even at its own size (enlarging cannot help)."""
    own = spec.input_shape
    if len(own) != 3 or own[-1] <= side or own[-2] != own[-1] or not analyze(spec).ok:
        return 0
    for candidate in range(side + 1, own[-1] + 1):
        if analyze(spec.with_input_shape((channels, candidate, candidate))).ok:
            return candidate
    return 0


def fit(spec: NetworkSpec, facts: DataFacts) -> Fit:
    """The design fitted to the data (input shape, output width, image size), or a refusal with the reason."""
    shape = _input_for(spec, facts.input_shape)
    try:
        check_input_shape(shape)
    except SpecError as exc:
        return Fit(None, f"A design cannot take the {format_shape(shape)} samples of {facts.name}: {exc}.")
    fitted = spec.with_input_shape(shape)
    changes = [f"input {format_shape(spec.input_shape)} → {format_shape(shape)}"] if shape != spec.input_shape else []
    image_size = 0
    analysis = analyze(fitted)
    if not analysis.ok and facts.images and facts.resizable and len(shape) == 3 and shape[-2] == shape[-1]:
        image_size = _smallest_side(spec, shape[0], shape[-1])
        if image_size:
            enlarged = (shape[0], image_size, image_size)
            fitted, analysis = fitted.with_input_shape(enlarged), analyze(fitted.with_input_shape(enlarged))
            changes = ([f"input {format_shape(spec.input_shape)} → {format_shape(enlarged)}"]
                       if enlarged != spec.input_shape else [])
            changes.append(f"images enlarged to {image_size}x{image_size} (the smallest this design takes)")
    if not analysis.ok:
        return Fit(None, _input_refusal(spec, fitted, analysis, facts))

    if not output_fits(analysis.output_shape, facts):
        output = fitted.output_layer()
        if output is not None:
            resized = fitted.with_param(output.layer.id, output.param, facts.outputs)
            resized_analysis = analyze(resized)
            if resized_analysis.ok and output_fits(resized_analysis.output_shape, facts):
                outputs = f"{facts.outputs} output{'s' if facts.outputs != 1 else ''}"
                changes.append(f"the last {output.layer.kind} gives {outputs} instead of {output.width}")
                fitted, analysis = resized, resized_analysis
        if not output_fits(analysis.output_shape, facts):
            return Fit(None, f"This design outputs {format_shape(analysis.output_shape)} values per sample, but "
                             f"{facts.name} needs {facts.outputs} ({facts.wants()}): end it with a layer that gives "
                             f"{facts.outputs} values (e.g. Flatten, then Linear with out_features {facts.outputs}).")
    return Fit(fitted, changes=tuple(changes), image_size=image_size)


def _input_refusal(spec: NetworkSpec, fitted: NetworkSpec, analysis: Analysis, facts: DataFacts) -> str:
    """Why the data cannot go through the design, naming the first layer that fails and what to do."""
    row = analysis.errors[0]
    where = f"starts with {row.kind}" if row.path == "0" else f"has {row.kind} at layer {row.path}"
    own = analyze(spec)
    own_in = own.row(row.layer_id).in_shape if row.layer_id in {r.layer_id for r in own.all_rows} else None
    if len(facts.input_shape) == 1 and row.in_shape is not None and len(row.in_shape) == 1 and own_in \
            and len(own_in) > 1:
        needs = "images (CxHxW)" if len(own_in) == 3 else f"{len(own_in)}-D samples ({format_shape(own_in)})"
        return (f"This design {where}, which needs {needs}, but {facts.name} gives {facts.input_shape[0]} "
                f"features per sample: choose image data or start from an MLP template.")
    return (f"This design cannot take the {format_shape(fitted.input_shape)} samples of {facts.name}: at layer "
            f"{row.path} ({row.kind}) {row.error}.")


# --------------------------------------------------------------------------- try it on the bundled sample

@dataclass(frozen=True)
class Trial:
    """The data settings for the bundled sample and the design fitted to it (``fit.ok`` False: refused)."""

    data: dict
    fit: Fit
    sentence: str
    changed: bool = False     # False: refused, or already on the sample with the design fitting it


def sample_trial(spec: NetworkSpec, data_settings: dict | None) -> Trial:
    """Switch the data to the bundled MNIST sample and fit the design to it: input shape, outputs, image size
    when the design needs larger images, and no random horizontal flip (mirrored digits are no digits)."""
    old = dict(data_settings or {})
    task = "reconstruction" if old.get("task") == "reconstruction" else "auto"
    result = fit(spec, builtin_facts(SAMPLE, task))
    if not result.ok:
        return Trial(old, result, result.refusal)
    data = {**old, "source": SAMPLE, "task": task, "stream": False, "augment_hflip": False,
            "image_size": result.image_size or SOURCES[SAMPLE].fixed_facts.side}
    phrases = []
    if old.get("source", SAMPLE) != SAMPLE:
        train = SOURCES[SAMPLE].fixed_facts.train
        phrases.append(f"the data is the bundled MNIST sample ({train:,} handwritten digits for training, "
                       "works offline)")
    phrases += list(result.changes)
    if old.get("augment_hflip") and SOURCES[SAMPLE].digits:
        phrases.append("random horizontal flip is off (a mirrored 2 or 7 is no digit)")
    if not phrases:
        return Trial(data, result, "Already on the bundled MNIST sample, and the design fits it.")
    text = "; ".join(phrases)
    return Trial(data, result, f"Now trying it on the bundled sample: {text}. Undo (Ctrl+Z) goes back.", True)
