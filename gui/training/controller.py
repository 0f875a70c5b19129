"""The training state machine between the window and the worker threads.

States: idle → loading (data) → running ⇄ paused → stopping (winding down, evaluating) → idle;
idle → evaluating or searching → idle. While a run is going the document is read-only. The
controller owns every thread it starts and ``shutdown()`` stops and waits for all of them (the
window calls it from closeEvent; it is also hooked to QApplication.aboutToQuit).
"""
from __future__ import annotations

import json
import logging
import time
import weakref
from collections.abc import Callable
from pathlib import Path

import shiboken6
from PySide6.QtCore import QCoreApplication, QObject, QThread, Signal, Slot

from engine.data import DataBundle, DataConfig
from engine.device_memory import free_device_memory, released_model
from engine.errors import LayerStudioError, TrainingError, WeightsError
from engine.history import RunHistory, RunRecorder
from engine.spec import NetworkSpec
from engine.training import RunFinished, TrainConfig
from engine.training.tensorboard_log import check_folder
from gui.training import recovery
from gui.training.model_files import ModelFiles
from gui.training.provenance import TRAINED, Provenance, design_key
from gui.training.settings import parsed_settings
from gui.training.worker import DataWorker, TrainingJob, TrainingWorker, WarmupWorker

IDLE, LOADING, RUNNING, PAUSED, STOPPING = "idle", "loading", "running", "paused", "stopping"
EVALUATING = "evaluating"  # Evaluate without training (gui.training.evaluate)
SEARCHING = "searching"    # a search (gui.search) holds the device; the design stays editable
TRAINING_KEY, DATA_KEY = "training", "data"
SHUTDOWN_WAIT_S = 2.0    # closing the window: every thread is asked to stop and normally ends within this
SHUTDOWN_LIMIT_S = 60.0  # work that cannot be interrupted (one long batch, a connection being opened) gets this
log = logging.getLogger(__name__)


class TrainingController(ModelFiles, QObject):
    """Start/pause/resume/stop training runs of a DesignDocument and keep the last model."""

    stateChanged = Signal(str)
    message = Signal(str)              # a one-line status for the status area
    dataLoading = Signal(float, str)
    dataLoaded = Signal(object)        # DataBundle
    dataFailed = Signal(str)
    dataStopped = Signal(str)          # loading was stopped on request (a sentence for the data area)
    runStarted = Signal(object)        # RunStarted
    batchEnded = Signal(object)        # BatchEnd
    healthSampled = Signal(object)     # HealthSample (engine.training.health)
    epochEnded = Signal(object)        # EpochEnd
    runEnded = Signal(object)          # RunFinished, as soon as training stops (evaluation may follow)
    evaluated = Signal(object)         # Evaluation of the test split
    evaluationFailed = Signal(str)     # Evaluate ended without results: the reason (or that it was stopped)
    finished = Signal(object)          # RunFinished, once the thread is done and the controller is idle
    modelChanged = Signal()            # trained or loaded weights changed
    recorded = Signal()                # the run history learnt where a run's weights or checkpoint were saved

    def __init__(self, document, parent: QObject | None = None, warm_up: bool = True,
                 history: RunHistory | None = None):
        super().__init__(parent)
        self.document = document
        self.history = history if history is not None else RunHistory()  # every run is recorded in it
        self.state = IDLE
        self.data: DataBundle | None = None
        self._data_key: str | None = None
        self.trainer = None
        self.model = None                  # the model weights actions act on (trained or loaded)
        self.model_origin: Provenance | None = None    # the design the model's weights fit, and when
        self.results_origin: Provenance | None = None  # the model the last evaluation came from
        self.initial_state: dict | None = None  # loaded weights the next run starts from
        self.last_result: RunFinished | None = None
        self.last_evaluation = None
        self.run_config: TrainConfig | None = None
        self.recorder: RunRecorder | None = None  # the run history's record of the run ``model`` comes from
        self.resuming = False
        self.resume_history: dict | None = None  # the checkpoint's per-epoch history, to redraw its plots
        self._worker: TrainingWorker | None = None
        self._loader: DataWorker | None = None   # the Load data worker while it runs
        self._evaluator = None             # the EvaluationWorker while Evaluate runs
        self._threads: dict[QThread, QObject] = {}
        self._helper_stops: dict[QThread, Callable[[], None]] = {}  # launch_helper's workers: how to stop each
        self._state_holder: QThread | None = None  # the helper thread holding the state (a search), if any
        self._closed = False  # after shutdown nothing starts: the window (and the threads' parent) is going away
        app = QCoreApplication.instance()
        if app is not None:
            app.aboutToQuit.connect(self.shutdown)
        if warm_up:
            self._launch(WarmupWorker())

    @property
    def model_spec(self) -> NetworkSpec | None:
        """The design the model's weights fit (not the open design once it has been edited)."""
        return self.model_origin.spec if self.model_origin is not None else None

    # ------------------------------------------------------------------ settings
    def train_config(self) -> TrainConfig:
        """The run settings saved in the document (TrainingError when they are invalid)."""
        return parsed_settings(TrainConfig, self.document.extras.get(TRAINING_KEY) or {})

    def data_config(self) -> DataConfig:
        """The data settings saved in the document (DataError when they are invalid)."""
        return parsed_settings(DataConfig, self.document.extras.get(DATA_KEY) or {})

    # ------------------------------------------------------------------ state
    @property
    def busy(self) -> bool:
        return self.state != IDLE

    def _set_state(self, state: str) -> None:
        if state != self.state:
            self.state = state
            self._set_read_only(state in (RUNNING, PAUSED, STOPPING) or
                                (state == LOADING and self._worker is not None))
            self.stateChanged.emit(state)

    def _set_read_only(self, value: bool) -> None:
        doc = self.document
        if bool(getattr(doc, "read_only", False)) == value:
            return
        setter = getattr(doc, "set_read_only", None)
        if setter is not None:
            setter(value)
        else:
            doc.read_only = value

    # ------------------------------------------------------------------ threads
    def _launch(self, worker: QObject) -> QThread | None:
        """Move ``worker`` to a new QThread, run it, and clean both up when it finishes; None after ``shutdown``
        (work queued before the window closed, e.g. a measurement restarting when the last one ends, must not
        outlive the controller that owns its thread)."""
        if self._closed:
            log.debug("Not starting %s: the window is closing", type(worker).__name__)
            return None
        thread = QThread(self)
        thread.setObjectName(type(worker).__name__)  # names the thread in Qt's messages and debuggers
        worker.moveToThread(thread)
        thread.started.connect(worker.run)
        worker.finished.connect(thread.quit)
        # No worker.deleteLater: its destructor would run in the worker thread, where PySide6 takes the
        # GIL while holding Qt's connection lock, and deadlocks against the UI thread connecting a
        # signal with the GIL held (seen: a hang in ~QObject vs connectImpl). The worker is freed here,
        # on the UI thread, when _thread_finished drops the last reference after the thread ended.
        thread.finished.connect(self._thread_finished)
        self._threads[thread] = worker
        thread.start()
        return thread

    def launch_helper(self, worker: QObject, stop: Callable[[], None], state: str | None = None) -> bool:
        """Run work beside the runs (the Cost view's profile, the learning-rate sweep) on a thread of this
        controller: ``shutdown`` calls ``stop`` and waits for it as for a run. False after ``shutdown``. With
        ``state`` (SEARCHING) it starts only when idle and holds that state until its thread ends."""
        if state is not None and self.busy:
            return False
        thread = self._launch(worker)
        if thread is not None:
            self._helper_stops[thread] = stop
            if state is not None:
                self._state_holder = thread
                self._set_state(state)
        return thread is not None

    @Slot()
    def _thread_finished(self) -> None:
        thread = self.sender()
        self._threads.pop(thread, None)
        self._helper_stops.pop(thread, None)
        if thread is self._state_holder:
            self._state_holder = None
            self._set_state(IDLE)
        if shiboken6.isValid(thread):
            thread.deleteLater()

    def wait_for_threads(self, timeout_s: float = SHUTDOWN_LIMIT_S) -> bool:
        """Block until every thread of this controller has ended (True) or ``timeout_s`` passed.

        The event loop is not running here, so the queued ``finished -> quit`` would never arrive: quit
        each thread directly (thread-safe; its loop ends once the worker's run returns). Polls with
        time.sleep, which releases the GIL: PySide's QThread.wait() holds it, and the worker needs it.
        """
        deadline = time.monotonic() + timeout_s
        for thread in self.running_threads():
            thread.quit()
        while self.running_threads():
            if time.monotonic() > deadline:
                return False
            time.sleep(0.002)
        for thread in list(self._threads):
            if shiboken6.isValid(thread):
                thread.wait()  # already finished: returns at once
        return True

    def running_threads(self) -> list[QThread]:
        return [t for t in self._threads if shiboken6.isValid(t) and t.isRunning()]

    # ------------------------------------------------------------------ data
    @staticmethod
    def data_key(config: DataConfig) -> str:
        """Data settings as one text, equal for settings that read the same data (what the loaded data is kept by)."""
        return json.dumps(config.to_dict(), sort_keys=True)

    def cached_data(self, config: DataConfig) -> DataBundle | None:
        return self.data if self._data_key == self.data_key(config) else None

    def load_data(self) -> bool:
        """Load the dataset chosen in the settings off the UI thread."""
        if self.busy:
            return False
        try:
            config = self.data_config()
        except LayerStudioError as exc:
            self.dataFailed.emit(str(exc))
            return False
        worker = DataWorker(config)
        worker.progress.connect(self.dataLoading)
        worker.loaded.connect(self.use_data)
        worker.failed.connect(self.dataFailed)
        worker.failed.connect(self.message)
        worker.stopped.connect(self.dataStopped)
        worker.stopped.connect(self.message)
        worker.finished.connect(self._loading_done)
        self._worker = None
        self._loader = worker
        self._set_state(LOADING)
        self._launch(worker)
        return True

    def use_data(self, bundle: DataBundle, config: DataConfig) -> None:
        """Keep a loaded bundle: runs with the same data settings reuse it instead of loading again."""
        self.data = bundle
        self._data_key = self.data_key(config)
        self.dataLoaded.emit(bundle)
        self.message.emit(f"Data loaded: {bundle.summary()}")

    @Slot()
    def _loading_done(self) -> None:
        self._loader = None
        if self.state == LOADING and self._worker is None:
            self._set_state(IDLE)

    # ------------------------------------------------------------------ runs
    def start(self, checkpoint: dict | None = None) -> bool:
        """Start a run of the current design (or continue ``checkpoint``); False when it cannot start."""
        if self.busy:
            return False
        try:
            job = self._make_job(checkpoint)
        except LayerStudioError as exc:
            self._refuse(str(exc), record=True)
            return False
        worker = TrainingWorker(job)
        worker.progress.connect(self.dataLoading)
        worker.dataLoaded.connect(self.use_data)
        worker.runStarted.connect(self._run_started)
        worker.batchEnded.connect(self.batchEnded)
        worker.healthSampled.connect(self.healthSampled)
        worker.epochEnded.connect(self.epochEnded)
        worker.runFinished.connect(self._run_ended)
        worker.evaluated.connect(self._evaluated)
        worker.evaluationFailed.connect(self.message)
        worker.checkpointFailed.connect(self._checkpoint_failed)
        worker.tensorboardFailed.connect(self.message)
        worker.finished.connect(self._run_done)
        self.release_run()
        self._worker = worker
        self.run_config = job.config
        self.resuming = checkpoint is not None
        self.resume_history = dict(checkpoint.get("history") or {}) if checkpoint is not None else None
        self.last_result = None
        self._set_state(LOADING if job.data is None else RUNNING)
        if job.checkpoint_path is not None:
            recovery.write_marker(self.document, job.checkpoint_path)  # removed when the run ends
        self._launch(worker)
        return True

    def _make_job(self, checkpoint: dict | None) -> TrainingJob:
        spec = self.document.spec
        if checkpoint is not None:
            spec, config = self._checkpoint_run(checkpoint)
        else:
            config = self.train_config()
        if config.tensorboard:
            check_folder(config.tensorboard)  # refused before the run starts, with the folder named
        analysis = getattr(self.document, "analysis", None)
        if analysis is not None and not analysis.ok:
            row = analysis.errors[0]
            raise TrainingError(f"The design has errors (layer {row.index}, {row.kind}: {row.error}); fix them first.")
        data_config = self.data_config()
        if checkpoint is not None and isinstance(checkpoint.get("data"), dict):
            data_config = DataConfig.from_dict(dict(checkpoint["data"]))  # a resumed run goes on with its data
        initial_state = None
        if checkpoint is None and self.initial_state is not None:
            if self.model_spec is not None and design_key(self.model_spec) == design_key(spec):
                initial_state = self.initial_state
            self.initial_state = None
        recorder = self._recorder(spec, config.to_dict(), data_config.to_dict())
        return TrainingJob(spec=spec, config=config, data_config=data_config,
                           data=self.cached_data(data_config), checkpoint=checkpoint, initial_state=initial_state,
                           checkpoint_path=recovery.automatic_checkpoint(self.document),
                           design_name=Path(self.document.display_name()).stem, recorder=recorder)

    def _recorder(self, spec: NetworkSpec, training: dict, data: dict) -> RunRecorder:
        """Records a run of this document in the run history (engine.history), named as the document is."""
        doc = self.document
        name = doc.name or (doc.path.stem if doc.path is not None else "Untitled")
        return RunRecorder(self.history, name, spec, training, data)

    def _checkpoint_run(self, checkpoint: dict) -> tuple[NetworkSpec, TrainConfig]:
        """The design and settings a checkpoint continues with; refuses one from another design."""
        try:
            spec = NetworkSpec.from_dict(checkpoint["spec"])
            saved = TrainConfig.from_dict(dict(checkpoint["config"]))
            done = int(checkpoint.get("epoch", 0))
        except (KeyError, TypeError, ValueError) as exc:
            raise WeightsError(f"This file is not a LayerStudio checkpoint (no {exc} in it).") from None
        if design_key(spec) != design_key(self.document.spec):
            raise WeightsError("This checkpoint was saved from a different design; open that design "
                               "(or undo your edits) before resuming.")
        try:
            epochs = max(saved.epochs, self.train_config().epochs)
        except LayerStudioError:
            epochs = saved.epochs
        if done >= epochs:
            raise TrainingError(f"The checkpoint has already trained {done} epochs: raise Epochs above {done} "
                                "to continue it.")
        return spec, TrainConfig.from_dict({**saved.to_dict(), "epochs": epochs})

    def _refuse(self, text: str, record: bool = False) -> None:
        """Say why a run cannot start; with ``record``, the refused run goes into the run history too."""
        result = RunFinished("error", text, 0)
        if record:
            extras = self.document.extras
            training, data = (extras.get(key) if isinstance(extras.get(key), dict) else {}
                              for key in (TRAINING_KEY, DATA_KEY))
            self._recorder(self.document.spec, training, data).finish(result)
        self.last_result = result
        self.message.emit(text)
        self.finished.emit(result)

    def _run_started(self, event) -> None:
        if self.state == LOADING:
            self._set_state(RUNNING)
        self.runStarted.emit(event)

    def _run_ended(self, result: RunFinished) -> None:
        recovery.clear_marker()  # any end of the run is a clean one
        self.last_result = result
        self._set_state(STOPPING)
        worker = self._worker
        if worker is not None and worker.trainer is not None:
            self.trainer = worker.trainer
            self.model = worker.trainer.model
            self.model_origin = Provenance.of(self.document, worker.job.spec, TRAINED)
            self.recorder = worker.job.recorder
            self.modelChanged.emit()
        self.runEnded.emit(result)

    def _checkpoint_failed(self, text: str) -> None:
        self.message.emit(f"The checkpoint was not saved (training goes on): {text}")

    def _evaluated(self, evaluation) -> None:
        self.last_evaluation = evaluation
        self.results_origin = self.model_origin
        self.evaluated.emit(evaluation)

    @Slot()
    def _run_done(self) -> None:
        if self._worker is not None:
            self._worker.trainer = None  # the controller holds the run now; the worker outlives its thread a moment
        self._worker = None
        result = self.last_result or RunFinished("error", "The run ended without a result.", 0)
        self._set_state(IDLE)
        self.finished.emit(result)

    @property
    def can_stop(self) -> bool:
        if self._loader is not None and self.state == LOADING:
            return True
        return self._worker is not None and self.state in (LOADING, RUNNING, PAUSED)

    @property
    def can_pause(self) -> bool:
        return self._worker is not None and self.state in (LOADING, RUNNING)

    def pause(self) -> None:
        if self.can_pause:
            self._worker.pause()
            self._set_state(PAUSED)  # the Training tab and the status bar say so, from the state

    def resume(self) -> None:
        if self._worker is not None and self.state == PAUSED:
            self._worker.resume()
            self._set_state(RUNNING)

    def toggle_pause(self) -> None:
        self.resume() if self.state == PAUSED else self.pause()

    def stop(self, evaluate: bool = True) -> None:
        """End the run at the next batch (its test evaluation is skipped when ``evaluate`` is False), or end
        the data loading (a download too) at once."""
        if self._loader is not None and self.state == LOADING:
            self._loader.stop()
        if self._worker is not None and self.state in (LOADING, RUNNING, PAUSED, STOPPING):
            self._worker.stop(evaluate)
            self._set_state(STOPPING)  # what stopping means now is derived from the state (gui.training.status)

    @Slot()
    def shutdown(self) -> None:
        """Stop any run, evaluation or loading and wait for every thread this controller started (window closing /
        app quitting): within SHUTDOWN_WAIT_S normally; longer only for work that cannot be interrupted.
        Nothing starts afterwards."""
        self._closed = True
        self.stop_evaluation()
        if self._worker is not None:
            self._worker.stop(evaluate=False)
            recovery.clear_marker()  # closing is a clean end of the run
        if self._loader is not None:
            self._loader.stop()
        for stop in list(self._helper_stops.values()):
            stop()
        if not self.wait_for_threads(SHUTDOWN_WAIT_S):
            log.warning("A worker thread did not stop within %.0f s; waiting up to %.0f s more",
                        SHUTDOWN_WAIT_S, SHUTDOWN_LIMIT_S)
            if not self.wait_for_threads(SHUTDOWN_LIMIT_S):
                log.error("A worker thread is still running after %.0f s", SHUTDOWN_WAIT_S + SHUTDOWN_LIMIT_S)
        # Deliver the queued finished signals so the state machine ends idle and the document editable.
        QCoreApplication.sendPostedEvents(self)
        if self._worker is not None:
            self._worker = None
            self._set_state(IDLE)

    def release_run(self) -> None:
        """Free the last run before the next one builds its model, so device memory never holds two runs.

        The trainer goes with its optimizer state, gradients, device copies of the data and kept
        weights. Its trained weights stay, on the CPU (``released_model``): Save Weights still has them
        when the next run fails before it trains, and once it trains its own model replaces them.
        """
        trainer, self.trainer = self.trainer, None
        if trainer is None:
            return
        if self.model is trainer.model:
            self.model = released_model(trainer.model)
        device, released = trainer.device, weakref.ref(trainer)
        del trainer
        free_device_memory(device, collect=released() is not None)  # collect only what a cycle keeps alive

    # ------------------------------------------------------------------ evaluation without training
    @property
    def can_evaluate(self) -> bool:
        """Weights to evaluate (trained or loaded) and nothing else going on."""
        return self.state == IDLE and self.model is not None

    def evaluate(self) -> bool:
        """Evaluate the current weights on the test split off the UI thread (the data is loaded first when
        needed); results arrive through ``evaluated``, a reason through ``evaluationFailed``."""
        from gui.training.evaluate import EvaluationJob, EvaluationWorker

        if not self.can_evaluate:
            return False
        try:
            data_config = self.data_config()
            try:
                config = self.train_config()
            except LayerStudioError:
                config = TrainConfig()  # only the loss matters here: its default then
        except LayerStudioError as exc:
            self.evaluationFailed.emit(str(exc))
            return False
        job = EvaluationJob(self.model_spec or self.document.spec, self.model, data_config,
                            self.cached_data(data_config), config)
        worker = EvaluationWorker(job)
        worker.progress.connect(self.dataLoading)
        worker.dataLoaded.connect(self.use_data)
        worker.evaluated.connect(self._evaluated)
        worker.failed.connect(self.evaluationFailed)
        worker.finished.connect(self._evaluation_done)
        self._evaluator = worker
        self._set_state(EVALUATING)
        self._launch(worker)
        return True

    def stop_evaluation(self) -> None:
        if self._evaluator is not None:
            self._evaluator.stop()

    @Slot()
    def _evaluation_done(self) -> None:
        self._evaluator = None
        if self.state == EVALUATING:
            self._set_state(IDLE)
