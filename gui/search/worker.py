"""The search's worker: engine.search.run_search on a frozen snapshot, off the UI thread.

Trials come back as engine.search.TrialResult (plain frozen dataclasses) through a Qt signal, one per report
(start, each epoch, end). ``stop()`` (any thread) sets the event ``run_search`` reads every batch, so Stop
search ends the trial in progress after its batch and no further trial starts.
"""
from __future__ import annotations

from dataclasses import dataclass

from PySide6.QtCore import Signal, Slot

from engine import data as engine_data
from engine.spec import NetworkSpec
from gui.training.worker import JobWorker, reporting, yield_cpu_to_the_ui

STOPPED = "The search stopped: Start search begins a new one."


@dataclass(frozen=True)
class SearchJob:
    """What one search needs, frozen when Start search is pressed (``data`` when already loaded)."""

    spec: NetworkSpec
    design_name: str
    training: dict
    data_config: engine_data.DataConfig
    space: object                 # engine.search.SearchSpace
    trials: int | None
    timeout_s: float | None
    objective: str
    pruner: str
    data: engine_data.DataBundle | None = None


@dataclass(frozen=True)
class SearchEnd:
    """How the search ended: the number of trials run and whether it was stopped."""

    trials: int
    stopped: bool


class SearchWorker(JobWorker):
    """Loads the data if needed and runs the trials; ``failed`` says why the search could not run."""

    trialReported = Signal(object)         # engine.search.TrialResult
    ended = Signal(object)                 # SearchEnd

    @Slot()
    def run(self) -> None:
        from engine.search import run_search

        job = self.job
        yield_cpu_to_the_ui()
        with reporting("searching", self.failed.emit, self.finished.emit,
                       stopped=lambda: self.ended.emit(SearchEnd(0, True))):
            data = self.job_data()
            study = run_search(job.spec, job.design_name, dict(job.training), job.data_config.to_dict(), job.space,
                               trials=job.trials, timeout_s=job.timeout_s, objective=job.objective,
                               pruner=job.pruner, on_trial=self.trialReported.emit, should_stop=self._stop.is_set,
                               data=data)
            self.ended.emit(SearchEnd(len(study.trials), self._stop.is_set()))
