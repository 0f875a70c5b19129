"""Progress and cancellation for long engine work, in one object (the pattern of Orange's TaskState).

Every data loader reports through a ``Task``: calling it reports ``(fraction, message)`` and, like
``check()``, raises ``Cancelled`` once the task is cancelled, so whoever shows the progress can also
stop the work. Cancelling is either polled (``should_stop()`` turns true, e.g. a ``threading.Event``)
or pushed (another thread calls ``cancel()``); a push also runs the abort actions registered with
``on_cancel`` (e.g. shutting a download's socket), so work blocked in a read ends at once.
``stage(start, stop)`` hands a part of the work its own 0..1 range, sharing the cancellation.
"""
from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from engine.errors import Cancelled

Progress = Callable[[float, str], None]
log = logging.getLogger(__name__)


def _never() -> bool:
    return False


def _silent(fraction: float, message: str) -> None:
    pass


class _Cancellation:
    """What every stage of one task shares: the stop test, the cancelled flag and the abort actions."""

    def __init__(self, should_stop: Callable[[], bool]):
        self.should_stop = should_stop
        self.event = threading.Event()
        self.lock = threading.Lock()
        self.aborts: list[Callable[[], None]] = []


class Task:
    """A progress callback ``(fraction, message)`` that also answers "stop now?" by raising ``Cancelled``."""

    def __init__(self, progress: Progress | None = None, should_stop: Callable[[], bool] | None = None,
                 start: float = 0.0, stop: float = 1.0, _shared: _Cancellation | None = None):
        self._progress = progress or _silent
        self._shared = _shared or _Cancellation(should_stop or _never)
        self._start, self._stop = start, stop

    @classmethod
    def of(cls, progress: Progress | Task | None = None, should_stop: Callable[[], bool] | None = None) -> Task:
        """``progress`` itself when it is already a Task (and no other stop test is given), else a new Task."""
        if isinstance(progress, Task) and should_stop is None:
            return progress
        return cls(progress, should_stop)

    @property
    def cancelled(self) -> bool:
        return self._shared.event.is_set() or bool(self._shared.should_stop())

    def check(self) -> None:
        """Raise Cancelled when the work should stop; call it often inside long loops (it is cheap)."""
        if self.cancelled:
            raise Cancelled("Stopped on request.")

    def cancel(self) -> None:
        """Ask the work to stop (from any thread) and run its abort actions now."""
        shared = self._shared
        with shared.lock:
            shared.event.set()
            for abort in list(shared.aborts):
                try:
                    abort()
                except Exception:  # an abort that fails leaves the polled stop to end the work
                    log.exception("An abort action of a cancelled task failed")

    @contextmanager
    def on_cancel(self, abort: Callable[[], None]) -> Iterator[None]:
        """While the block runs, ``cancel()`` also calls ``abort()`` (from the cancelling thread).

        The action is removed before the block's resources are released, so it never acts on a closed one.
        """
        shared = self._shared
        with shared.lock:
            shared.aborts.append(abort)
        try:
            yield
        finally:
            with shared.lock:
                shared.aborts.remove(abort)

    def __call__(self, fraction: float, message: str) -> None:
        self.check()
        self._progress(self._start + (self._stop - self._start) * min(max(fraction, 0.0), 1.0), message)

    def stage(self, start: float, stop: float) -> Task:
        """A Task for one stage of this one: the stage's 0..1 maps onto start..stop of this range."""
        span = self._stop - self._start
        return Task(self._progress, start=self._start + span * start, stop=self._start + span * stop,
                    _shared=self._shared)
