"""Which model the inspector's parameter statistics describe: the trained (or loaded) weights while they fit the
open design, else the model a run of the design would start from (its seed, the global init, then each layer's
own), built once per design and settings. A design above ``BUILD_ON_EDIT_LIMIT`` parameters is built only when the
person asks (Show statistics), so editing a large design stays quick."""
from __future__ import annotations

import logging

from engine.errors import LayerStudioError
from engine.parameters import initial_model, parameter_stats
from engine.training import TrainConfig
from gui.training.provenance import clock

log = logging.getLogger(__name__)

BUILD_ON_EDIT_LIMIT = 2_000_000  # parameters: NiN (1,992,166) builds in about 60 ms, LeNet (61,706) in 2 ms


class ParameterSource:
    """The inspector's parameter statistics for a layer (by id, at any depth), read from ``controller``'s model or
    from the open design's initial model (gui.training.controller.TrainingController)."""

    def __init__(self, controller):
        self.controller = controller
        self._key: tuple | None = None  # the design and settings the cached initial model was built for
        self._model = None
        self._requested: tuple | None = None  # a large design the person asked to build

    def stats(self, layer_id: str) -> tuple[list | None, str]:
        """(ParamStats of the layer's tensors, a sentence saying whose weights they are); the stats are None when a
        large design waits for Show statistics (``request``) or cannot be built (the sentence says why)."""
        model, caption = self._current_model()
        if model is None:
            return None, caption
        return parameter_stats(model, layer_id, self.controller.document.spec), caption

    def request(self) -> None:
        """Build the open design's initial model even when it is large (the person pressed Show statistics)."""
        self._requested = self.controller.document.spec.to_json()

    def _current_model(self):
        controller = self.controller
        spec = controller.document.spec
        origin = controller.model_origin
        if controller.model is not None and origin is not None and origin.fits(spec):
            return controller.model, f"The weights {origin.made} at {clock(origin.at)}."
        key, config, note = self._design_key()
        init = f" and Weight init {config.init}" if config.init != "default" else ""
        caption = f"Untrained: the weights a run with seed {config.seed}{init} starts from.{note}"
        if key != self._key:
            analysis = controller.document.analysis
            if not analysis.ok:
                return None, "Fix the design's errors to see its weights."
            if analysis.params > BUILD_ON_EDIT_LIMIT and key[0] != self._requested:
                return None, (f"The design has {analysis.params:,} parameters: press Show statistics to build it "
                              "and see the weights a run starts from.")
            try:
                self._model, self._key = initial_model(spec, config), key
            except (LayerStudioError, RuntimeError, MemoryError) as exc:
                log.warning("The initial model could not be built for the inspector: %s", exc)
                return None, f"The weights cannot be shown: {exc}"
        return self._model, caption

    def _design_key(self) -> tuple[tuple, TrainConfig, str]:
        """(what the initial model depends on, the run's settings, a note when those have an error)."""
        try:
            config, note = self.controller.train_config(), ""
        except LayerStudioError:
            config, note = TrainConfig(), " The training settings have an error: shown with their defaults."
        spec_text = self.controller.document.spec.to_json()
        return (spec_text, config.seed, config.init, config.init_std, config.init_value), config, note
