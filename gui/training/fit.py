"""The Training tab's one-click fixes, each one undo step: "Fit design to data" and "Try it on the bundled sample".

What to change comes from ``engine.fitting`` (which never hands back a broken design: it refuses with a
sentence instead); this module applies it to the document: the input shape, the output layer's width and,
when the images must be enlarged or the data switched, the data settings, all in one undo macro.
"""
from __future__ import annotations

from engine import fitting
from engine.spec import NetworkSpec
from gui.wording import shapes_in_prose


def fit_problems(spec: NetworkSpec, bundle, analysis=None) -> list[str]:
    """Sentences saying how the design and the loaded data disagree (empty when they fit)."""
    return fitting.fit_problems(spec, fitting.DataFacts.of(bundle), analysis)


def fit_for(document, bundle) -> fitting.Fit:
    """What "Fit design to data" would do with the loaded ``bundle``: a fitted design, or a refusal sentence."""
    result = fitting.fit(document.spec, fitting.DataFacts.of(bundle))
    return result if result.ok else fitting.Fit(None, shapes_in_prose(result.refusal))


def fit_design_to_data(document, bundle) -> bool:
    """Fit the design to the loaded data as one undo step; False when refused, read-only or nothing to change."""
    result = fit_for(document, bundle)
    if not result.ok:
        return False
    data = None
    if result.image_size:
        data = {**(document.extras.get("data") or {}), "image_size": result.image_size}
    return apply_fit(document, result.spec, data, "Fit design to data")


def try_on_sample(document) -> fitting.Trial:
    """Switch the data to the bundled MNIST sample and fit the design to it, as one undo step.

    Returns the trial: its ``sentence`` says what changed (or why the design cannot run on the sample, when
    ``fit.ok`` is False, or that nothing needed to change)."""
    trial = fitting.sample_trial(document.spec, document.extras.get("data"))
    if not trial.fit.ok:
        return fitting.Trial(trial.data, trial.fit, shapes_in_prose(trial.sentence))
    if trial.changed and not apply_fit(document, trial.fit.spec, trial.data, "Try it on the bundled sample"):
        return fitting.Trial(trial.data, trial.fit, "The design is read-only while a run goes: stop it first.")
    return trial


def apply_fit(document, target: NetworkSpec, data: dict | None, text: str) -> bool:
    """Make the document's design ``target`` (same layers, new input shape and parameters) and its data
    settings ``data`` (None: unchanged) in one undo step named ``text``; False when read-only or unchanged."""
    if getattr(document, "read_only", False):
        return False
    data_changes = data is not None and data != (document.extras.get("data") or {})
    if target == document.spec and not data_changes:
        return False
    stack = document.undo_stack
    stack.beginMacro(text)
    try:
        if data_changes:
            document.set_extra("data", data)
        document.edit_input_shape(target.input_shape)
        for old, new in zip(document.spec.layers, target.layers, strict=True):
            for name, value in new.params.items():
                if old.params.get(name) != value:
                    document.edit_param(new.id, name, value)
    finally:
        stack.endMacro()
    return True
