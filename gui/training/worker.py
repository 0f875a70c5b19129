"""Work that must not block the UI thread: loading data, training, warming up torch.

Each worker is a plain QObject moved to a QThread (never a QThread subclass).
The training worker runs ``engine.training.Trainer.run`` on a frozen snapshot
of the design and settings; the engine's events come back as Qt signals that
carry the engine's own plain dataclasses. Batch events are merged and
throttled (at most 2 per second, the last batch of every epoch always
passes, no loss value is dropped); epoch and finish events always pass.
"""
from __future__ import annotations

import logging
import os
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace

from PySide6.QtCore import QObject, QThread, Signal, Slot

from engine import data as engine_data
from engine import training
from engine.errors import Cancelled, LayerStudioError
from engine.history import RunRecorder
from engine.log import report_unexpected
from engine.spec import NetworkSpec
from engine.task import Task
from engine.training.checkpoint import CheckpointWriter
from engine.training.tensorboard_log import TensorBoardLog, open_log

BATCH_INTERVAL_S = 0.5  # at most 2 batch signals a second: the progress line shows a batch no more often, and
# the live plots refresh about that often in a run (gui/training/plots.py); each signal costs the UI thread work
WORKER_NICE = 5  # Linux: the training thread yields the CPU to the UI thread when both want it
EVALUATION_SAMPLES = 500  # test predictions kept for the sample grid and the regression scatter
LOADING_STOPPED = "Loading the data stopped: Load data or Start loads it again."
log = logging.getLogger(__name__)


@dataclass(frozen=True)
class TrainingJob:
    """Everything one run needs, frozen when Start is pressed.

    ``data`` is an already loaded bundle for ``data_config`` (loaded again when None);
    ``checkpoint`` continues a saved run; ``initial_state`` starts from loaded weights;
    ``checkpoint_path`` receives the run's checkpoint every epoch (engine.training.checkpoint.CheckpointWriter);
    ``design_name`` names the run's TensorBoard folder (when ``config.tensorboard`` is set).
    ``recorder`` records the run in the run history (engine.history), on the worker thread.
    """

    spec: NetworkSpec
    config: training.TrainConfig
    data_config: engine_data.DataConfig
    data: engine_data.DataBundle | None = None
    checkpoint: dict | None = None
    initial_state: dict | None = None
    evaluate: bool = True
    checkpoint_path: str | os.PathLike | None = None
    design_name: str = ""
    recorder: RunRecorder | None = None


class BatchThrottle:
    """Merges BatchEnd events so that at most one passes per ``interval`` seconds.

    Losses of held-back events are carried into the next one that passes, so a
    plot still receives every batch loss. ``flush`` releases the held event
    (called before an epoch end and at the end of the run).
    """

    def __init__(self, emit, interval: float = BATCH_INTERVAL_S, clock=time.monotonic):
        self._emit = emit
        self._interval = interval
        self._clock = clock
        self._held = None
        self._last = float("-inf")

    def add(self, event) -> None:
        if self._held is not None:
            event = replace(event, losses=self._held.losses + tuple(event.losses))
        self._held = event
        if event.step >= event.steps_per_epoch or self._clock() - self._last >= self._interval:
            self.flush()

    def flush(self) -> None:
        if self._held is not None:
            event, self._held = self._held, None
            self._last = self._clock()
            self._emit(event)


def _ignore() -> None:
    pass


@contextmanager
def reporting(what: str, failed: Callable[[str], None], finished: Callable[[], None],
              stopped: Callable[[], None] = _ignore) -> Iterator[None]:
    """The body of a worker's ``run``: a user's error (LayerStudioError) goes to ``failed`` as its sentence, any other
    failure is logged with its traceback and told as a sentence about ``what`` went wrong, a stop the user asked for
    (Cancelled) goes to ``stopped``, and ``finished`` is called last, always: the UI learns that the work ended and
    the thread never dies of an exception."""
    try:
        yield
    except Cancelled:
        stopped()
    except LayerStudioError as exc:
        failed(str(exc))
    except Exception as exc:  # any failure must reach the user, not kill the thread
        failed(report_unexpected(exc, what, log))
    finally:
        finished()


def yield_cpu_to_the_ui() -> None:
    """Lower the calling worker thread's priority, so the UI thread wins the CPU when both want it.

    Training saturates every core (torch's intra-op threads); without this a busy 2-core machine
    delays the UI thread's timers and repaints by tens of milliseconds. On Linux, nice is per thread
    and inherited by the threads it creates (torch's OpenMP pool for this thread); elsewhere Qt maps
    LowPriority to the platform's thread priority. An idle machine trains exactly as fast.
    """
    QThread.currentThread().setPriority(QThread.LowPriority)
    if sys.platform.startswith("linux"):
        try:
            current = os.getpriority(os.PRIO_PROCESS, threading.get_native_id())
            os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), max(current, WORKER_NICE))
        except OSError as exc:  # not allowed here: the run is only a little less polite to the UI
            log.debug("Cannot lower the training thread's priority: %s", exc)


def load_bundle(config: engine_data.DataConfig, task: Task) -> engine_data.DataBundle:
    """Load a dataset, reporting progress through ``task`` (which ends the work with Cancelled when cancelled)."""
    task(0.0, "Loading data…")
    bundle = engine_data.load_data(config, task)
    task(1.0, bundle.summary())
    return bundle


class JobWorker(QObject):
    """A job that loads its data first when the job holds none, then works until done or ``stop()`` (any
    thread) ends it: the base of the Evaluate, learning-rate sweep and search workers."""

    progress = Signal(float, str)          # data loading
    dataLoaded = Signal(object, object)    # DataBundle, the DataConfig it came from
    failed = Signal(str)                   # why there is no result, as a sentence (also when stopped)
    finished = Signal()

    def __init__(self, job):
        super().__init__()
        self.job = job
        self._stop = threading.Event()
        self._task = Task(self.progress.emit, should_stop=self._stop.is_set)  # data loading stops with it

    def stop(self) -> None:
        """Called from the UI thread: end the loading or the work at the next batch."""
        self._stop.set()
        self._task.cancel()

    def job_data(self) -> engine_data.DataBundle:
        """The job's data bundle, loaded now (and announced with dataLoaded) when the job has none."""
        if self.job.data is not None:
            return self.job.data
        data = load_bundle(self.job.data_config, self._task)
        self.dataLoaded.emit(data, self.job.data_config)
        return data


class DataWorker(QObject):
    """Loads a dataset off the UI thread; ``stop()`` (any thread) ends the loading or download early."""

    progress = Signal(float, str)
    loaded = Signal(object, object)  # DataBundle, the DataConfig it came from
    failed = Signal(str)
    stopped = Signal(str)            # stopped on request: not a failure
    finished = Signal()

    def __init__(self, config: engine_data.DataConfig):
        super().__init__()
        self.config = config
        self._task = Task(self.progress.emit)

    def stop(self) -> None:
        self._task.cancel()

    @Slot()
    def run(self) -> None:
        with reporting("loading the data", self.failed.emit, self.finished.emit,
                       stopped=lambda: self.stopped.emit(LOADING_STOPPED)):
            bundle = load_bundle(self.config, self._task)
            self._task.check()  # a Stop pressed as the last rows arrived still stops: the user asked for it
            self.loaded.emit(bundle, self.config)


class TrainingWorker(QObject):
    """Runs one training job: load data if needed, build the trainer, train, evaluate."""

    progress = Signal(float, str)      # data loading
    dataLoaded = Signal(object, object)  # DataBundle, the DataConfig it came from
    runStarted = Signal(object)        # training.RunStarted
    batchEnded = Signal(object)        # training.BatchEnd (throttled, losses merged)
    healthSampled = Signal(object)     # training.HealthSample (at most ~2 a second: not throttled)
    epochEnded = Signal(object)        # training.EpochEnd
    runFinished = Signal(object)       # training.RunFinished
    evaluated = Signal(object)         # training.Evaluation of the test split
    evaluationFailed = Signal(str)     # the sentence saying why there is no evaluation
    checkpointFailed = Signal(str)     # a checkpoint could not be written (the run goes on)
    tensorboardFailed = Signal(str)    # TensorBoard event files could not be written (the run goes on)
    finished = Signal()                # always the last signal: the thread may quit

    def __init__(self, job: TrainingJob):
        super().__init__()
        self.job = job
        self.trainer: training.Trainer | None = None  # set in the worker thread, read after `finished`
        self.data = job.data
        self._stop = threading.Event()
        self._task = Task(self.progress.emit, self._stop.is_set)  # data loading: polled, and pushed by stop()
        self._lock = threading.Lock()
        self._paused = False
        self._evaluate = job.evaluate
        self._throttle = BatchThrottle(self.batchEnded.emit)
        self._writer: CheckpointWriter | None = None
        self._board: TensorBoardLog | None = None  # the run's TensorBoard log (TrainConfig.tensorboard)

    # -- called from the UI thread
    def pause(self) -> None:
        with self._lock:
            self._paused = True
            if self.trainer is not None:
                self.trainer.pause()

    def resume(self) -> None:
        with self._lock:
            self._paused = False
            if self.trainer is not None:
                self.trainer.resume()

    def stop(self, evaluate: bool = True) -> None:
        """Ask the run to end at the next batch (also when paused); skip evaluation if not ``evaluate``."""
        with self._lock:
            self._evaluate = self._evaluate and evaluate
            self._stop.set()
            if self.trainer is not None:
                self.trainer.stop()
                self.trainer.resume()
        self._task.cancel()   # ends a download blocked in a read at once

    @property
    def stop_requested(self) -> bool:
        return self._stop.is_set()

    # -- runs in the worker thread
    @Slot()
    def run(self) -> None:
        try:
            finished = self._train()
        except Cancelled:
            finished = training.RunFinished("stopped", "Stopped while loading the data.", 0)
        except LayerStudioError as exc:
            finished = training.RunFinished("error", str(exc), self._epochs_done())
        except Exception as exc:  # the UI must always learn that the run ended
            finished = training.RunFinished("error", report_unexpected(exc, "preparing the run", log),
                                            self._epochs_done())
        self._record_end(finished)
        self._writer = None  # it holds the trainer, which the controller releases before the next run
        self._throttle.flush()
        self.runFinished.emit(finished)
        try:
            if self._evaluate and finished.reason in ("completed", "early_stopped", "stopped"):
                self._evaluate_test()
        finally:
            if self._board is not None:  # closed by the run's end already; this covers a run that never began
                self._board.close()
                self._board = None
            self.finished.emit()

    def _record_end(self, finished: training.RunFinished) -> None:
        """Tell the run history how the run ended (a run that failed before training too) and where its
        checkpoint is."""
        recorder = self.job.recorder
        if recorder is None:
            return
        recorder.finish(finished)
        writer = self._writer
        if writer is not None and writer.error is None and os.path.exists(self.job.checkpoint_path):
            recorder.set_outputs(checkpoint_path=os.path.abspath(self.job.checkpoint_path))

    def _epochs_done(self) -> int:
        return self.trainer.epoch if self.trainer is not None else 0

    def _train(self) -> training.RunFinished:
        job = self.job
        yield_cpu_to_the_ui()
        if self.data is None:
            self.data = load_bundle(job.data_config, self._task)
            self.dataLoaded.emit(self.data, job.data_config)
        if self._stop.is_set():
            return training.RunFinished("stopped", "Stopped before training started.", 0)
        trainer = training.Trainer(job.spec, self.data, job.config)
        if job.checkpoint is not None:
            trainer.load_checkpoint(job.checkpoint)
        elif job.initial_state is not None:
            from engine.io import apply_state_dict

            apply_state_dict(trainer.model, job.initial_state, job.spec)
        if job.checkpoint_path is not None:  # written on this thread, between two steps
            self._writer = CheckpointWriter(trainer, job.checkpoint_path, extra={"data": job.data_config.to_dict()},
                                            on_error=self.checkpointFailed.emit)
        self._board = open_log(job.config.tensorboard, job.design_name or "design", trainer, job.config.to_dict(),
                               job.data_config.to_dict(), warn=self.tensorboardFailed.emit)
        with self._lock:
            self.trainer = trainer
            if self._paused:
                trainer.pause()
            if self._stop.is_set():
                trainer.stop()
        return trainer.run(on_event=self._on_event, should_stop=self._stop.is_set)

    def _on_event(self, event) -> None:
        if self._writer is not None:
            self._writer(event)
        if self._board is not None:
            self._board(event)
        if self.job.recorder is not None:
            self.job.recorder(event)
        if isinstance(event, training.BatchEnd):
            self._throttle.add(event)
            if self._paused:  # the engine's read-back before it waits: shown now, not when the run resumes
                self._throttle.flush()
            return
        if isinstance(event, training.HealthSample):
            self.healthSampled.emit(event)
            return
        self._throttle.flush()
        if isinstance(event, training.EpochEnd):
            self.epochEnded.emit(event)
        elif isinstance(event, training.RunStarted):
            self.runStarted.emit(event)

    def _evaluate_test(self) -> None:
        """Evaluate on the test split (the validation split when the data has no test split)."""
        if self.trainer is None or self.data is None:
            return
        split = next((name for name in ("test", "val") if len(getattr(self.data, f"{name}_x"))), None)
        if split is None:
            return
        try:
            evaluation = self.trainer.evaluate(split, samples=EVALUATION_SAMPLES)
            if self._board is not None:
                self._board.add_evaluation(split, evaluation.loss, evaluation.accuracy)
            if self.job.recorder is not None:
                self.job.recorder.set_test(evaluation.loss, evaluation.accuracy)
            self.evaluated.emit(evaluation)
        except Exception as exc:  # a failed evaluation must not hide the finished run
            self.evaluationFailed.emit(report_unexpected(exc, f"evaluating the {split} split", log))


class WarmupWorker(QObject):
    """Pays torch's one-off start-up costs (first optimizer: torch._dynamo import) before the first run."""

    finished = Signal()

    @Slot()
    def run(self) -> None:
        try:
            warm_up = getattr(training, "warm_up", None)
            if warm_up is not None:
                warm_up()
            else:
                import torch

                torch.optim.Adam([torch.nn.Parameter(torch.zeros(1))])
        except Exception:  # warming up is an optimisation only
            log.warning("Warming up PyTorch failed; the first run starts a little slower", exc_info=True)
        finally:
            self.finished.emit()
