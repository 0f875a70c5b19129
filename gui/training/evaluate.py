"""Evaluate without training: the current weights (trained or loaded) on the data's test split, off the UI thread.

The worker loads the data first when it is not loaded yet (through the same ``load_bundle`` as a
run, so the controller keeps the bundle for the next run), then runs ``engine.evaluation.evaluate_model``,
checking its stop flag between batches.
"""
from __future__ import annotations

from dataclasses import dataclass

from PySide6.QtCore import Signal, Slot

from engine import data as engine_data
from engine.evaluation import evaluate_model, evaluation_split
from engine.spec import NetworkSpec
from gui.training.worker import EVALUATION_SAMPLES, JobWorker, reporting

STOPPED = "Evaluation stopped; the Results tab keeps what it showed."


@dataclass(frozen=True)
class EvaluationJob:
    """The weights to evaluate (``model`` built from ``spec``) and the data: ``data`` when already loaded
    for ``data_config``, else loaded first. ``config`` (a TrainConfig) names the loss."""

    spec: NetworkSpec
    model: object
    data_config: engine_data.DataConfig
    data: engine_data.DataBundle | None
    config: object


class EvaluationWorker(JobWorker):
    """Loads the data if needed and evaluates the model on its test split (validation without one)."""

    evaluated = Signal(object)             # engine.evaluation.Evaluation

    @Slot()
    def run(self) -> None:
        with reporting("evaluating the model", self.failed.emit, self.finished.emit,
                       stopped=lambda: self.failed.emit(STOPPED)):
            self._evaluate()

    def _evaluate(self) -> None:
        job, data = self.job, self.job_data()
        split = evaluation_split(data)
        if split is None:
            self.failed.emit("The data has no test or validation samples to evaluate: lower the limit or "
                             "raise the validation fraction.")
            return
        if self._stop.is_set():
            self.failed.emit(STOPPED)
            return
        self.progress.emit(0.0, f"Evaluating on the {'test' if split == 'test' else 'validation'} split…")
        evaluation = evaluate_model(job.spec, job.model, data, split, job.config, samples=EVALUATION_SAMPLES,
                                    should_stop=self._stop.is_set)
        if evaluation is None:
            self.failed.emit(STOPPED)
        else:
            self.evaluated.emit(evaluation)

