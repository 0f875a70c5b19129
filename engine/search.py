"""Search settings and architecture with optuna: each trial trains the real Trainer on one shared data bundle.

``run_search`` creates (or, with a storage and a study name, joins) an optuna study and runs trials until the trial
count or the time limit is reached or ``should_stop`` says so. Each trial draws its values from a ``SearchSpace``
(engine.search_space), builds its design and settings with ``apply_params``, and

- is pruned at once, its reason kept, when its design fails analysis or its settings cannot train on the data;
- reports the objective (validation loss or accuracy) after every epoch; when the pruner (median or Hyperband) says
  so, the Trainer stops before its next batch and the trial is pruned;
- fails, with the run's own message as the reason, when the run diverges or breaks.

Several processes given one storage URL (``sqlite:///study.db``, a PostgreSQL URL several machines reach) and one
study name share the study through optuna's own storage: no scheduler of ours. Each trial's reason and last epoch
are trial user attributes, so every process (and the window) sees them.
"""
from __future__ import annotations

import logging
import math
import threading
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass

from engine.errors import LayerStudioError, TrainingError
from engine.search_space import SearchSpace, apply_params, default_space, resolved, suggest
from engine.spec import NetworkSpec

__all__ = ["OBJECTIVES", "PRUNERS", "SearchSpace", "TrialResult", "apply_params", "default_space", "open_study",
           "run_search", "trial_result", "value_text"]

OBJECTIVES = {"val_loss": "minimize", "val_acc": "maximize"}  # objective -> the study's direction
OBJECTIVE_WORDS = {"val_loss": "validation loss", "val_acc": "validation accuracy"}
PRUNERS = ("median", "hyperband", "none")
MEDIAN_STARTUP_TRIALS = 5  # the median pruner prunes nothing before this many trials have finished
STORAGE_ATTEMPTS = 5  # tries to open a storage that other processes are setting up at the same moment
HEARTBEAT_S = 30  # a trial of a storage-backed study beats this often; one silent for twice that (a killed
#                   process) is marked failed by the next process that starts a trial on the study
STATES = {"COMPLETE": "complete", "PRUNED": "pruned", "FAIL": "failed", "RUNNING": "running", "WAITING": "running"}
log = logging.getLogger(__name__)


@dataclass(frozen=True)
class TrialResult:
    """One trial as the CLI and the window show it. ``state``: complete, pruned, failed or running; ``value``: the
    objective (the last epoch's, or the latest while running); ``params``: the values it drew (``apply_params``
    takes them); ``reason``: why it was pruned or failed; ``epoch``: epochs it trained."""

    number: int
    state: str
    value: float | None
    params: dict
    duration_s: float | None
    reason: str
    epoch: int

    @property
    def values(self) -> dict:
        """The params as the values they set (``weight_decay`` 0 rather than ``weight_decay.zero`` True)."""
        return resolved(self.params)


class _TrialFailedError(Exception):
    """A trial's run ended without a result (diverged, out of memory, stopped): the trial is marked failed."""


def trial_result(trial) -> TrialResult:
    """A TrialResult from an optuna FrozenTrial."""
    duration = trial.duration.total_seconds() if trial.duration is not None else None
    return TrialResult(trial.number, STATES.get(trial.state.name, trial.state.name.lower()), trial.value,
                       dict(trial.params), duration, str(trial.user_attrs.get("reason", "")),
                       int(trial.user_attrs.get("epoch", 0)))


def make_pruner(name: str, epochs: int):
    import optuna

    if name == "median":
        return optuna.pruners.MedianPruner(n_startup_trials=MEDIAN_STARTUP_TRIALS)
    if name == "hyperband":
        return optuna.pruners.HyperbandPruner(min_resource=1, max_resource=max(epochs, 1), reduction_factor=3)
    return optuna.pruners.NopPruner()


def open_study(storage: str | None, study_name: str | None, objective: str, pruner: str = "median", epochs: int = 1,
               seed: int | None = None):
    """Create the study, or load it when ``storage`` already holds one named ``study_name``; TrainingError when the
    storage cannot be opened or the study optimises another objective."""
    import optuna

    optuna.logging.disable_default_handler()  # optuna's messages go to LayerStudio's log, not the terminal
    optuna.logging.enable_propagation()
    if objective not in OBJECTIVES:
        raise TrainingError(f"The objective must be one of {', '.join(OBJECTIVES)}, got {objective!r}.")
    if pruner not in PRUNERS:
        raise TrainingError(f"The pruner must be one of {', '.join(PRUNERS)}, got {pruner!r}.")
    for attempt in range(STORAGE_ATTEMPTS):
        try:
            backend = _storage(storage) if storage else None
            study = optuna.create_study(storage=backend, study_name=study_name, load_if_exists=True,
                                        direction=OBJECTIVES[objective], pruner=make_pruner(pruner, epochs),
                                        sampler=optuna.samplers.TPESampler(seed=seed))
            break
        except (LayerStudioError, KeyboardInterrupt):
            raise
        except Exception as exc:  # a bad URL, a missing driver, a locked or damaged database: one sentence
            log.info("Opening study %r in %r failed (attempt %d)", study_name, storage, attempt + 1, exc_info=True)
            # Processes started together race to create a new database's tables: the loser tries again.
            if attempt + 1 == STORAGE_ATTEMPTS or not type(exc).__module__.startswith("sqlalchemy"):
                raise TrainingError(f"The study storage {storage!r} cannot be opened: {_first_line(exc)}") from None
            time.sleep(0.5 * (attempt + 1))
    saved = study.user_attrs.get("objective")
    if saved is None:
        study.set_user_attr("objective", objective)
    elif saved != objective:
        raise TrainingError(f"The study {study.study_name!r} in {storage} optimises {saved}, not {objective}: "
                            f"search it with --objective {saved}, or name another study with --study.")
    return study


def _storage(url: str):
    import optuna

    options = {"connect_args": {"timeout": 60}} if url.startswith("sqlite") else {}  # wait for the other processes
    with warnings.catch_warnings():  # heartbeats are marked experimental; they are what ends a killed worker's trial
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        return optuna.storages.RDBStorage(url, engine_kwargs=options, heartbeat_interval=HEARTBEAT_S)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return (text[0] if text else type(exc).__name__).rstrip(".") + "."


def run_search(spec: NetworkSpec, design_name: str, training: dict, data_settings: dict, space: SearchSpace, *,
               trials: int | None, timeout_s: float | None, storage: str | None = None, study_name: str | None = None,
               objective: str = "val_loss", pruner: str = "median",
               on_trial: Callable[[TrialResult], None] | None = None, should_stop: Callable[[], bool] | None = None,
               data=None, seed: int | None = None):
    """Run ``trials`` trials (None: no limit) or until ``timeout_s`` seconds have passed (no new trial starts after
    it), whichever comes first, or until ``should_stop()`` (polled before every batch: the running trial stops and
    is marked failed). Returns the optuna Study. ``on_trial`` gets a TrialResult when a trial starts, after each
    of its epochs and when it ends. ``data``: a loaded data bundle to reuse (else ``data_settings`` are loaded once).
    ``seed``: the sampler's seed (None: a different draw each time, as several processes on one study need)."""
    from engine.data import DataConfig, load_data
    from engine.training import TrainConfig

    base = TrainConfig.from_dict(training)  # the settings every trial starts from, checked once
    space.check(spec)
    if trials is not None and trials < 1:
        raise TrainingError(f"The number of trials must be at least 1, got {trials}.")
    if timeout_s is not None and not (timeout_s > 0 and math.isfinite(timeout_s)):
        raise TrainingError(f"The time limit must be a number of seconds above 0, got {timeout_s:g}.")
    study = open_study(storage, study_name, objective, pruner, base.epochs, seed)
    if data is None:
        data = load_data(DataConfig.from_dict(data_settings))
    if not len(data.val_x):
        raise TrainingError("A search compares trials on validation samples, and the data has none: set "
                            "--val-fraction above 0 (e.g. 0.1).")
    stop = should_stop or (lambda: False)
    tell = on_trial or (lambda result: None)
    trial_objective = _TrialObjective(spec, design_name, training, data_settings, space, data, objective, stop, tell)

    def after_trial(study, frozen) -> None:
        tell(trial_result(frozen))
        if stop():
            study.stop()

    study.optimize(trial_objective, n_trials=trials, timeout=timeout_s, callbacks=[after_trial],
                   catch=(_TrialFailedError,), gc_after_trial=True)
    return study


class _TrialObjective:
    """One trial: its design and settings, analysis, the Trainer run with per-epoch reports; the objective value."""

    def __init__(self, spec, design_name, training, data_settings, space, data, objective, stop, tell):
        self.spec, self.design_name, self.training, self.data_settings = spec, design_name, training, data_settings
        self.space, self.data, self.objective, self.stop, self.tell = space, data, objective, stop, tell

    def __call__(self, trial) -> float:
        from engine.shapes import analyze
        from engine.training import EpochEnd, TrainConfig, Trainer

        started = time.monotonic()
        params = suggest(trial, self.space, self.training)
        self.tell(TrialResult(trial.number, "running", None, params, 0.0, "", 0))
        spec, training = apply_params(self.spec, self.training, params)
        analysis = analyze(spec)
        trial.set_user_attr("parameters", analysis.params)  # the trial's model size, for tables and checks
        if not analysis.ok:
            row = analysis.errors[0]
            self._prune(trial, f"The trial's design has an error at layer {row.path} ({row.kind}): {row.error}")
        try:
            trainer = Trainer(spec, self.data, TrainConfig.from_dict(training))
        except LayerStudioError as exc:  # settings this data cannot train with (a batch larger than the data, ...)
            self._prune(trial, f"The trial cannot train: {exc}")
        latest: list[float] = []
        prune = threading.Event()

        def on_event(event) -> None:
            recorder(event)
            if not isinstance(event, EpochEnd):
                return
            value = event.val_loss if self.objective == "val_loss" else event.val_acc
            if value is None or not math.isfinite(value):
                return
            latest.append(value)
            trial.set_user_attr("epoch", event.epoch)
            trial.report(value, event.epoch)
            self.tell(TrialResult(trial.number, "running", value, params, time.monotonic() - started, "", event.epoch))
            if event.epoch < event.epochs and trial.should_prune():
                prune.set()  # the Trainer stops before its next batch (should_stop below)

        # HISTORY (wired at merge): the one place each trial's run is recorded. With engine.history on main this is
        # ``recorder = RunRecorder(None, f"{self.design_name} trial {trial.number}", spec, trainer.config.to_dict(),
        # self.data_settings)``, and after the run ``trial.set_user_attr("run_id", recorder.run_id)``.
        recorder = _no_recorder
        finished = trainer.run(on_event, should_stop=lambda: prune.is_set() or self.stop())
        del trainer  # its model and device copies go before the next trial's
        if prune.is_set():
            self._prune(trial, f"Pruned after epoch {finished.epochs_done}: its "
                               f"{value_text(latest[-1], self.objective)} was behind the other trials' there.")
        if finished.reason not in ("completed", "early_stopped"):
            reason = "Stopped before it finished." if finished.reason == "stopped" else finished.message
            trial.set_user_attr("reason", reason[:1].upper() + reason[1:])
            raise _TrialFailedError(reason)
        if not latest:
            trial.set_user_attr("reason", f"No epoch gave a {OBJECTIVE_WORDS[self.objective]}.")
            raise _TrialFailedError("no objective value")
        return latest[-1]

    @staticmethod
    def _prune(trial, reason: str):
        import optuna

        trial.set_user_attr("reason", reason)
        raise optuna.TrialPruned(reason)


def _no_recorder(event) -> None:
    return None


def value_text(value: float | None, objective: str) -> str:
    """``validation accuracy 91.0%``, ``validation loss 0.3124``."""
    if value is None:
        return f"no {OBJECTIVE_WORDS[objective]}"
    shown = f"{100 * value:.1f}%" if objective == "val_acc" else f"{value:.4g}"
    return f"{OBJECTIVE_WORDS[objective]} {shown}"
