"""What a search may change, and a trial's design and settings from what it drew (engine.search runs the trials).

A ``SearchSpace`` holds training settings and architecture knobs:

- settings: name -> ``(low, high, log)`` or a list of choices. Which settings there are, their type, the range a
  value must stay in, whether the scale is logarithmic and the range drawn by default all come from the one
  declaration of each setting (engine.schema, engine.training.config.TrainConfig); nothing here repeats a range.
  A log-scale setting whose declaration accepts 0 (weight decay) also tries 0: a log scale cannot reach it.
- ``width``: a multiplier range for every Linear/Conv output size (``engine.spec.WIDTH_PARAMS``) except the
  layer that sets the network's output (``NetworkSpec.output_layer``);
- ``dropout``: a range for the ``p`` of every dropout layer (one value for all of them);
- ``repeat``: group id -> a range for that group's repeat count;
- ``activation``: an activation kind -> the kinds every layer of that kind may become (one choice for all).

Trial parameters are named after what they set: the setting's name (``lr``), ``<setting>.zero`` (True: the
setting is 0), ``width``, ``dropout``, ``repeat.<group id>`` and ``activation.<kind>``. ``apply_params`` turns
them into a design and training settings; it is the one place a trial's values reach a design.
No torch and no optuna import here: the window reads and edits spaces without them.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from typing import Any

from engine.errors import TrainingError
from engine.layers import DROP_P, KINDS
from engine.schema import Setting, settings_of, shown_value
from engine.schema import number as schema_number
from engine.spec import WIDTH_PARAMS, NetworkSpec
from engine.training.config import TrainConfig

SETTINGS_CLASS = TrainConfig  # the settings a search draws (the data settings stay fixed: one data bundle)
KNOBS = ("width", "dropout", "repeat", "activation")
ZERO = "zero"  # ``<setting>.zero``: the trial parameter that turns a log-scale setting off (its value 0)
WIDTH_LIMITS = (0.0625, 16.0)  # a width multiplier from 1/16 to 16 times the design's own sizes
REPEAT_PARAM = "repeat"

Range = tuple[float, float, bool]  # (low, high, log)


def declared_settings() -> dict[str, Setting]:
    """The settings a search can draw, by name, in declaration order: numbers with a range, choices, switches."""
    return {s.name: s for s in settings_of(SETTINGS_CLASS) if searchable(s)}


def searchable(s: Setting) -> bool:
    if s.type in (int, float):
        return s.low is not None and s.high is not None
    return s.type is bool or bool(s.choices)


def tries_zero(s: Setting) -> bool:
    """Whether a log-scale search of ``s`` also tries 0 (its declaration accepts 0, which a log scale cannot reach)."""
    return s.log and s.low == 0


def dropout_kinds() -> tuple[str, ...]:
    return tuple(name for name, kind in KINDS.items() if kind.category == "Dropout")


def activation_kinds() -> tuple[str, ...]:
    return tuple(name for name, kind in KINDS.items() if kind.category == "Activation")


@dataclass
class SearchSpace:
    """What a search may change (see the module's docstring); ``to_dict``/``from_dict`` read and write space.json."""

    settings: dict[str, Range | list] = field(default_factory=dict)
    width: tuple[float, float] | None = None
    dropout: tuple[float, float] | None = None
    repeat: dict[str, tuple[int, int]] = field(default_factory=dict)
    activation: dict[str, list[str]] = field(default_factory=dict)

    @property
    def empty(self) -> bool:
        return not (self.settings or self.width or self.dropout or self.repeat or self.activation)

    def to_dict(self) -> dict:
        """space.json's object: a range as ``{"low", "high", "log"}``, choices as a list."""
        settings = {name: list(value) if isinstance(value, list) else
                    {"low": value[0], "high": value[1], "log": value[2]} for name, value in self.settings.items()}
        out: dict[str, Any] = {"settings": settings}
        for knob in ("width", "dropout"):
            span = getattr(self, knob)
            if span is not None:
                out[knob] = {"low": span[0], "high": span[1]}
        if self.repeat:
            out["repeat"] = {group: {"low": low, "high": high} for group, (low, high) in self.repeat.items()}
        if self.activation:
            out["activation"] = {kind: list(choices) for kind, choices in self.activation.items()}
        return out

    @classmethod
    def from_dict(cls, data: Any, where: str = "The search space") -> SearchSpace:
        """A space from space.json's object, every part checked against its declaration; TrainingError with one
        sentence (starting with ``where``) naming the first part that is wrong."""
        if not isinstance(data, dict):
            raise TrainingError(f"{where} must be a JSON object, got {type(data).__name__}.")
        unknown = set(data) - {"settings", *KNOBS}
        if unknown:
            raise TrainingError(f"{where} has an unknown part {sorted(unknown)[0]!r}: use settings, "
                                f"{', '.join(KNOBS)}.")
        settings = _object(data.get("settings", {}), f"{where}'s \"settings\"")
        space = cls(settings={name: _setting_span(name, value, where) for name, value in settings.items()})
        if data.get("width") is not None:
            space.width = _span(data["width"], f"{where}'s \"width\"", WIDTH_LIMITS, float)
        if data.get("dropout") is not None:
            limits = (DROP_P.min, math.nextafter(DROP_P.max, 0))  # p 1 drops everything: analysis refuses it
            space.dropout = _span(data["dropout"], f"{where}'s \"dropout\"", limits, float)
        repeat = KINDS["Group"].param(REPEAT_PARAM)
        space.repeat = {group: _span(span, f"{where}'s \"repeat\" of group {group!r}", (repeat.min, repeat.max), int)
                        for group, span in _object(data.get("repeat", {}), f"{where}'s \"repeat\"").items()}
        for kind, choices in _object(data.get("activation", {}), f"{where}'s \"activation\"").items():
            space.activation[kind] = _activation_choices(kind, choices, where)
        return space

    def check(self, spec: NetworkSpec) -> None:
        """TrainingError when a knob names what the design does not have (a group id, an activation kind) or would
        change nothing (no dropout layer, no width but the output's)."""
        if self.width is not None and not width_layers(spec):
            raise TrainingError("The search space varies the width, but the design has no Linear or convolution "
                                "layer besides the output layer: remove \"width\".")
        if self.dropout is not None and not [layer for layer in spec.all_layers() if layer.kind in dropout_kinds()]:
            raise TrainingError("The search space varies dropout, but the design has no dropout layer: "
                                "remove \"dropout\".")
        for group in self.repeat:
            try:
                found = spec.layer(group)
            except KeyError:
                found = None
            if found is None or not found.is_group:
                raise TrainingError(f"The search space repeats group {group!r}, but the design has no group with that "
                                    f"id: use the id of one of its groups.")
        kinds = {layer.kind for layer in spec.all_layers()}
        for kind in self.activation:
            if kind not in kinds:
                raise TrainingError(f"The search space replaces {kind} layers, but the design has none: "
                                    f"use one of the activations it has.")


def default_space(spec: NetworkSpec, training: dict) -> SearchSpace:
    """The settings whose declarations give a default search range (learning rate, batch size, weight decay), each on
    its declared scale; architecture knobs off (the user turns them on). ``spec`` and ``training`` are the design
    and settings the search starts from (the ranges do not depend on them today)."""
    return SearchSpace(settings={name: (s.search[0], s.search[1], s.log)
                                 for name, s in declared_settings().items() if s.search is not None})


# --------------------------------------------------------------------------- a trial's values

def suggest(trial, space: SearchSpace, training: dict) -> dict:
    """Draw one trial's values from ``space`` through an optuna ``trial`` (its ``suggest_*`` methods); returns
    ``trial.params``. A setting that does not apply to the values drawn before it (momentum without SGD) is not
    drawn: settings are drawn in declaration order."""
    declared = declared_settings()
    values = {**SETTINGS_CLASS().to_dict(), **training}
    for name in (name for name in declared if name in space.settings):
        s, span = declared[name], space.settings[name]
        if not s.applies(values):
            continue
        if isinstance(span, list):
            values[name] = trial.suggest_categorical(name, span)
            continue
        low, high, log = span
        if log and tries_zero(s) and trial.suggest_categorical(f"{name}.{ZERO}", [False, True]):
            values[name] = 0
        elif s.type is int:
            values[name] = trial.suggest_int(name, int(low), int(high), log=log)
        else:
            values[name] = trial.suggest_float(name, low, high, log=log)
    if space.width is not None:
        trial.suggest_float("width", *space.width, log=True)  # a multiplier: half and double are as far from 1
    if space.dropout is not None:
        trial.suggest_float("dropout", *space.dropout)
    for group, (low, high) in space.repeat.items():
        trial.suggest_int(f"repeat.{group}", low, high)
    for kind, choices in space.activation.items():
        trial.suggest_categorical(f"activation.{kind}", choices)
    return dict(trial.params)


def apply_params(spec: NetworkSpec, training: dict, params: dict) -> tuple[NetworkSpec, dict]:
    """The design and training settings of a trial with ``params`` (optuna's ``trial.params``, or a TrialResult's):
    the same params always give the same design and settings. Unknown names raise TrainingError."""
    training = dict(training)
    declared = declared_settings()
    by_kind: dict[str, list[str]] = {}  # activation layers by their kind in the design given (before any change)
    for layer in spec.all_layers():
        by_kind.setdefault(layer.kind, []).append(layer.id)
    for name, value in params.items():
        head, _, tail = name.partition(".")
        if head in declared and tail == ZERO:
            if value:
                training[head] = 0.0
        elif name in declared:
            if not params.get(f"{name}.{ZERO}"):
                training[name] = value
        elif name == "width":
            spec = widened(spec, float(value))
        elif name == "dropout":
            for layer in spec.all_layers():
                if layer.kind in dropout_kinds():
                    spec = spec.with_param(layer.id, DROP_P.name, float(value))
        elif head == "repeat" and tail:
            spec = spec.with_param(tail, REPEAT_PARAM, int(value))
        elif head == "activation" and tail:
            for layer_id in by_kind.get(tail, ()):
                old = spec.layer(layer_id)
                if old.kind != value:  # a layer of the new kind with its defaults, same id and frozen flag
                    spec = spec.with_layer(replace(old, kind=value, params={}))
        else:
            raise TrainingError(f"Unknown search parameter {name!r}: expected a training setting, width, dropout, "
                                "repeat.<group id> or activation.<kind>.")
    return spec, training


def width_layers(spec: NetworkSpec) -> list[tuple[str, str]]:
    """(layer id, parameter) of every output size a width multiplier scales: all but the network's output layer."""
    output = spec.output_layer()
    keep = output.layer.id if output is not None else None
    return [(layer.id, name) for layer in spec.all_layers() if layer.id != keep
            for name in WIDTH_PARAMS if name in layer.params]


def widened(spec: NetworkSpec, multiplier: float) -> NetworkSpec:
    """``spec`` with every width (width_layers) times ``multiplier``, rounded, kept inside the parameter's range."""
    for layer_id, name in width_layers(spec):
        layer = spec.layer(layer_id)
        declared = layer.layer_kind.param(name)
        size = round(layer.params[name] * multiplier)
        spec = spec.with_param(layer_id, name, int(min(max(size, declared.min or 1), declared.max or size)))
    return spec


def resolved(params: dict) -> dict:
    """``params`` as the values they set: ``weight_decay.zero`` True becomes ``weight_decay`` 0 (for tables)."""
    out = {}
    for name, value in params.items():
        head, _, tail = name.partition(".")
        if tail == ZERO:
            if value:
                out[head] = 0.0
        elif not (name in declared_settings() and params.get(f"{name}.{ZERO}")):
            out[name] = value
    return out


# --------------------------------------------------------------------------- reading space.json

def _object(value: Any, where: str) -> dict:
    if not isinstance(value, dict):
        raise TrainingError(f"{where} must be a JSON object, got {type(value).__name__}.")
    return value


def _setting_span(name: str, value: Any, where: str) -> Range | list:
    """One setting's range or choices, checked against its declaration."""
    declared = declared_settings()
    if name not in declared:
        raise TrainingError(f"{where} names {name!r}, which is not a training setting a search can vary: use "
                            f"{', '.join(declared)}.")
    s = declared[name]
    what = f"{where}'s setting {name!r} ({s.label})"
    if isinstance(value, list):
        if not value:
            raise TrainingError(f"{what} must list at least one value.")
        for item in value:
            try:
                s.check(item)
            except ValueError as exc:
                raise TrainingError(f"{what}: each choice must be {exc}, got {shown_value(item)}.") from None
        return list(value)
    if s.type not in (int, float):
        raise TrainingError(f"{what} must be a list of choices ({s.accepts()}), got {shown_value(value)}.")
    limits = (s.low, s.high)
    span = _span(value, what, limits, s.type, default_log=s.log, range_text=s.range_text())
    low, high, log = span
    if log and low <= 0:
        zero = " (0 is tried as well)" if tries_zero(s) else ""
        raise TrainingError(f"{what} is on a log scale, so its low end must be above 0{zero}, got {shown_value(low)}.")
    return span


def _span(value: Any, what: str, limits: tuple, kind: type, default_log: bool | None = None, range_text: str = ""):
    """``{"low": a, "high": b}`` (and ``"log"`` when ``default_log`` is given) checked: numbers of ``kind``, inside
    ``limits``, low not above high; the tuple (low, high[, log])."""
    keys = {"low", "high"} | ({"log"} if default_log is not None else set())
    if not isinstance(value, dict) or not {"low", "high"} <= set(value) or set(value) - keys:
        form = '{"low": A, "high": B' + (', "log": true|false}' if default_log is not None else "}")
        raise TrainingError(f"{what} must be an object {form}, got {shown_value(value)}.")
    ends = []
    for end in ("low", "high"):
        number = value[end]
        whole = kind is int
        if isinstance(number, bool) or not isinstance(number, (int, float)) or (whole and not isinstance(number, int)) \
                or not math.isfinite(number) or not limits[0] <= number <= limits[1]:
            span = range_text or f"between {schema_number(limits[0])} and {schema_number(limits[1])}"
            raise TrainingError(f"{what}: {end} must be a {'whole ' if whole else ''}number {span}, "
                                f"got {shown_value(number)}.")
        ends.append(int(number) if whole else float(number))
    if ends[0] > ends[1]:
        raise TrainingError(f"{what}: low ({ends[0]:g}) must not be above high ({ends[1]:g}).")
    if default_log is None:
        return ends[0], ends[1]
    log = value.get("log", default_log)
    if not isinstance(log, bool):
        raise TrainingError(f"{what}: log must be true or false, got {shown_value(log)}.")
    return ends[0], ends[1], log


def _activation_choices(kind: str, choices: Any, where: str) -> list[str]:
    known = activation_kinds()
    if kind not in known:
        raise TrainingError(f"{where}'s \"activation\" names {kind!r}, which is not an activation layer: use one of "
                            f"{', '.join(known)}.")
    if not isinstance(choices, list) or not choices:
        raise TrainingError(f"{where}'s \"activation\" of {kind} must be a list of activation kinds, got "
                            f"{shown_value(choices)}.")
    for choice in choices:
        if choice not in known:
            raise TrainingError(f"{where}'s \"activation\" of {kind} lists {shown_value(choice)}, which is not an "
                                f"activation layer: use {', '.join(known)}.")
    return list(choices)
