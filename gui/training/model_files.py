"""The controller's model as files: save and load weights, save a checkpoint, resume one (a mixin of
gui.training.controller.TrainingController, which owns the model, the run's trainer and recorder, and the signals)."""
from __future__ import annotations

import os

from engine import io as engine_io
from engine.build import build_model
from engine.errors import TrainingError, WeightsError
from gui.training.provenance import LOADED, Provenance, design_key


class ModelFiles:
    """Weights and checkpoint files of the model the controller holds."""

    def save_weights(self, path: str | os.PathLike) -> None:
        if self.model is None:
            raise WeightsError("There are no trained weights yet: train the design or load weights first.")
        engine_io.save_weights(self.model, path)
        if self.recorder is not None:  # the weights of the last run: the history says where they went
            self.recorder.set_outputs(weights_path=os.path.abspath(path))
            self.recorded.emit()
        self.message.emit(f"Weights saved to {path}")

    def load_weights(self, path: str | os.PathLike) -> engine_io.FitReport:
        """Load weights for the current design, all or nothing; WeightsError (with the report) when they do not fit."""
        if self.busy:
            raise WeightsError("A run is going: stop it before loading weights.")
        spec = self.document.spec
        state = engine_io.read_state_dict(path)
        same_design = self.model is not None and self.model_spec is not None and \
            design_key(self.model_spec) == design_key(spec)
        target = self.model if same_design else build_model(spec)
        report = engine_io.apply_state_dict(target, state, spec)
        self.model, self.initial_state = target, state
        self.model_origin = Provenance.of(self.document, spec, LOADED)
        self.recorder = None  # loaded weights are no run's
        self.message.emit(f"Weights loaded from {path}: the next run starts from them.")
        self.modelChanged.emit()
        return report

    def save_checkpoint(self, path: str | os.PathLike) -> None:
        if self.trainer is None:
            raise WeightsError("There is no run to save yet: train first.")
        engine_io.save_checkpoint(path, self.trainer.checkpoint())
        if self.recorder is not None:
            self.recorder.set_outputs(checkpoint_path=os.path.abspath(path))
            self.recorded.emit()
        self.message.emit(f"Checkpoint saved to {path}")

    def resume_checkpoint(self, path: str | os.PathLike) -> bool:
        """Continue the run saved in a checkpoint file."""
        if self.busy:
            raise TrainingError("A run is going: stop it before resuming another.")
        return self.start(checkpoint=engine_io.read_checkpoint(path))
