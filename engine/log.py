"""Logging set-up for the entry points, and the one-line report of an unexpected error.

Library code only calls ``logging.getLogger(__name__)``; nothing here runs at import. The entry
points (``engine.cli.main``, ``gui.app.run_app``) call ``configure_logging``: records of INFO and up
go to ``layerstudio.log`` in the user's log folder (rotated, a few MB x 3), with full tracebacks;
with ``console``, warnings also go to stderr as one line each (everything from DEBUG up, with
tracebacks, when ``verbose``). ``report_unexpected`` turns an exception nobody foresaw into the
traceback in that file and one sentence for the person, which names the file.
"""
from __future__ import annotations

import logging
import logging.handlers
import sys
from pathlib import Path

from engine import paths

LOG_NAME = "layerstudio.log"
LOG_BYTES = 2_000_000  # per file; the file and 3 older ones are kept
LOG_BACKUPS = 3
PROJECT_LOGGERS = ("engine", "gui")  # the levels configure_logging sets; everything else keeps its own
FILE_FORMAT = "%(asctime)s %(levelname)s %(name)s [%(threadName)s] %(message)s"
_REPORTED = "layerstudio_reported"  # a record attribute: the person already sees this error as a sentence
# ``log.warning(..., extra=SHOWN)``: the record goes to the file only, since the person already reads it.
SHOWN = {_REPORTED: True}

log = logging.getLogger(__name__)


def log_file() -> Path:
    """The log file the entry points write: ``layerstudio.log`` in the user's log folder."""
    return paths.log_dir() / LOG_NAME


class _LogFile(logging.handlers.RotatingFileHandler):
    """The rotating log file; its folder and the file itself are created with the first record, not before."""

    def __init__(self, path: Path):
        super().__init__(path, maxBytes=LOG_BYTES, backupCount=LOG_BACKUPS, encoding="utf-8", delay=True)
        self.setFormatter(logging.Formatter(FILE_FORMAT))

    def _open(self):
        Path(self.baseFilename).parent.mkdir(parents=True, exist_ok=True)
        return super()._open()


class _Stderr(logging.StreamHandler):
    """Writes to whatever ``sys.stderr`` is when a record arrives (so a replaced stderr is followed)."""

    def __init__(self, verbose: bool):
        super().__init__()
        self.verbose = verbose
        self.setLevel(logging.DEBUG if verbose else logging.WARNING)
        self.setFormatter(logging.Formatter("%(levelname)s: %(message)s" if verbose else "%(message)s"))

    @property
    def stream(self):
        return sys.stderr

    @stream.setter
    def stream(self, _value) -> None:
        pass

    def filter(self, record: logging.LogRecord) -> bool:
        # An error the person already reads as report_unexpected's sentence is not printed twice.
        return (self.verbose or not getattr(record, _REPORTED, False)) and super().filter(record)

    def format(self, record: logging.LogRecord) -> str:
        if self.verbose:
            return super().format(record)
        saved = record.exc_info, record.exc_text, record.stack_info
        record.exc_info = record.exc_text = record.stack_info = None  # one line; the file has the traceback
        try:
            return super().format(record)
        finally:
            record.exc_info, record.exc_text, record.stack_info = saved


def configure_logging(verbose: bool = False, console: bool = True) -> Path:
    """Send the log to the log file and, with ``console``, warnings (everything with ``verbose``) to stderr.

    For entry points only. Calling it again replaces what an earlier call set up; ``close_logging``
    removes it. Returns the log file's path.
    """
    close_logging()
    root = logging.getLogger()
    handlers: list[logging.Handler] = [_LogFile(log_file())]
    handlers[0].setLevel(logging.INFO)
    if console and sys.stderr is not None:  # no stderr at all under pythonw on Windows
        handlers.append(_Stderr(verbose))
    for handler in handlers:
        root.addHandler(handler)
    for name in PROJECT_LOGGERS:
        logging.getLogger(name).setLevel(logging.DEBUG if verbose else logging.INFO)
    return log_file()


def close_logging() -> None:
    """Remove and close the handlers ``configure_logging`` installed (other handlers stay)."""
    root = logging.getLogger()
    for handler in list(root.handlers):
        if isinstance(handler, (_LogFile, _Stderr)):
            root.removeHandler(handler)
            handler.close()
    for name in PROJECT_LOGGERS:
        logging.getLogger(name).setLevel(logging.NOTSET)


def active_log_file() -> Path | None:
    """The file the log goes to now, or None when no entry point configured it (e.g. the engine used as a library)."""
    for handler in logging.getLogger().handlers:
        if isinstance(handler, _LogFile):
            return Path(handler.baseFilename)
    return None


def report_unexpected(exc: BaseException, what: str, logger: logging.Logger | None = None) -> str:
    """Log ``exc`` with its full traceback and return the sentence a person reads instead of it:

    ``Unexpected error while <what>: <Type>: <first line> (details in <log file>)``; without a
    configured log file the traceback goes wherever logging sends it and the sentence ends at the message.
    """
    (logger or log).error("Unexpected error while %s", what, exc_info=(type(exc), exc, exc.__traceback__),
                          extra=SHOWN, stacklevel=2)
    text = str(exc).strip()
    message = f"{type(exc).__name__}: {text.splitlines()[0]}" if text else type(exc).__name__
    where = active_log_file()
    return f"Unexpected error while {what}: {message}" + (f" (details in {where})" if where else "")
