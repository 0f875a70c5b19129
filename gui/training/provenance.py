"""Which design some weights (and the results computed from them) belong to, and when they were made.

Weights fit the design they were trained on (or loaded into), not the design as
it is after later edits. The controller stamps its model with a ``Provenance``
when a run ends or weights load; the Training tab, the Results tab and Save
Weights compare it with the open design and say so when the design has changed
since (undoing back to the trained design makes them current again).
"""
from __future__ import annotations

import copy
import json
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from engine.spec import NetworkSpec

TRAINED, LOADED = "trained", "loaded"
COMPANION_SUFFIX = ".design.json"  # weights.pt -> weights.design.json: the design the weights fit


_KEYS: dict[int, tuple[NetworkSpec, tuple]] = {}  # id(spec) -> (spec, its key): the spec held keeps its id unique
_KEYS_KEPT = 16


def design_key(spec: NetworkSpec) -> tuple:
    """What makes two designs train the same network: the input shape and every layer's kind, parameters and
    frozen flag, the layers inside groups included (ids, group names and inits ignored).

    Specs are immutable and the window asks for the key of the same few (the open design, the trained one)
    dozens of times per run, so the last few keys are kept (a spec is not hashable: its parameters are a dict)."""
    kept = _KEYS.get(id(spec))
    if kept is not None and kept[0] is spec:
        return kept[1]
    key = spec.input_shape, _layers_key(spec.layers)
    if len(_KEYS) >= _KEYS_KEPT:
        del _KEYS[next(iter(_KEYS))]  # the oldest
    _KEYS[id(spec)] = spec, key
    return key


def _layers_key(layers) -> tuple:
    return tuple((layer.kind, json.dumps(layer.params, sort_keys=True, default=str), layer.frozen,
                  _layers_key(layer.layers), _layers_key(layer.shortcut)) for layer in layers)


def clock(moment: datetime, now: datetime | None = None) -> str:
    """``14:02`` today, ``14:02 on 3 May`` another day."""
    now = now or datetime.now()
    time = moment.strftime("%H:%M")
    return time if moment.date() == now.date() else f"{time} on {moment.day} {moment.strftime('%B')}"


@dataclass(frozen=True)
class Provenance:
    """The design (with its name and settings) that a model was trained on or loaded into, and when."""

    design: object                    # gui.document.DesignFile, a copy taken at that moment
    made: str                         # TRAINED or LOADED
    loads: int = 0                    # the document's ``loads`` then: a different count means another design
    at: datetime = field(default_factory=datetime.now)

    @classmethod
    def of(cls, document, spec: NetworkSpec, made: str) -> Provenance:
        """Stamp ``spec`` with the document's name and settings as they are now."""
        from gui.document import DesignFile

        design = DesignFile(spec, document.name, document.description, copy.deepcopy(document.extras))
        return cls(design, made, getattr(document, "loads", 0))

    @property
    def spec(self) -> NetworkSpec:
        return self.design.spec

    def fits(self, spec: NetworkSpec) -> bool:
        """True while ``spec`` (the open design) trains the same network as the stamped one."""
        return design_key(self.spec) == design_key(spec)

    def describe(self) -> str:
        """``the design as trained at 14:02``."""
        return f"the design as {self.made} at {clock(self.at)}"

    def replaced(self, document) -> bool:
        """True when New / Open / a template has put another design in ``document`` since (not just edits)."""
        return getattr(document, "loads", 0) != self.loads

    def since(self, document) -> str:
        """``you have edited it since`` or ``you have opened another design since``."""
        return "you have opened another design since" if self.replaced(document) else "you have edited it since"


def weights_note(model: Provenance | None, document) -> str:
    """A sentence when the model's weights belong to another design than the open one ('' when they fit)."""
    if model is None or model.fits(document.spec):
        return ""
    return (f"The {model.made} weights are those of {model.describe()}; {model.since(document)}. "
            f"Train again for weights of the design as it is now.")


def results_note(results: Provenance | None, model: Provenance | None, document) -> str:
    """A sentence when the shown results are not those of the open design's current weights ('' when they are)."""
    if results is None:
        return ""
    if not results.fits(document.spec):
        return f"These results are for {results.describe()}; {results.since(document)}."
    if model is not None and model is not results:
        return (f"These results are for the weights {results.made} at {clock(results.at)}; other weights were "
                f"{model.made} at {clock(model.at)} since.")
    return ""


def companion_design_path(weights_path: str | Path) -> Path:
    """Where the design that some weights fit is saved next to them: ``lenet.pt`` -> ``lenet.design.json``."""
    path = Path(weights_path)
    return path.with_name(path.stem + COMPANION_SUFFIX)
