"""The run history: every training run, from the window or the CLI, in one SQLite file in the user data folder.

One row per run in ``runs`` holds the summary the Runs tab and ``layerstudio runs list`` sort and filter (each
sortable column has an index, so a page of thousands of runs is read in milliseconds); the large parts (the whole
design, the training and data settings) sit in ``run_details`` so a listing never reads them, and the per-epoch
metrics in ``epochs``. The file is in WAL mode (the window reads while a run writes) and every write is one
transaction. ``schema_version`` says which layout the file has: an older file is migrated step by step, a newer
one refused with a sentence.

Recording never stops a run: RunRecorder keeps the run in memory and writes it as it goes; a damaged, locked or
read-only database logs one warning and the run goes on (the next write tries again, and writes everything the
failed one missed).
"""
from __future__ import annotations

import builtins
import json
import logging
import sqlite3
import threading
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, fields
from datetime import datetime
from pathlib import Path

from engine.errors import Cancelled, LayerStudioError
from engine.paths import data_dir
from engine.training.events import EpochEnd, FinishReason, RunFinished, RunStarted

log = logging.getLogger(__name__)

BUSY_TIMEOUT_S = 2.0  # how long a write waits for another process's write before it gives up (the run goes on)
EPOCH_KEYS = ("epoch", "train_loss", "train_acc", "val_loss", "val_acc", "lr", "seconds")
TEXT_COLUMNS = ("name", "data", "optimizer", "reason")  # what ``text`` filters on

# Each step moves the file from version i to i + 1; SCHEMA_VERSION is how many there are. Never edit a step that
# has shipped: add one.
MIGRATIONS: tuple[str, ...] = (
    """
    CREATE TABLE runs (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        started TEXT NOT NULL,
        name TEXT NOT NULL COLLATE NOCASE,
        data TEXT NOT NULL COLLATE NOCASE,
        optimizer TEXT NOT NULL COLLATE NOCASE,
        lr REAL,
        batch_size INTEGER,
        epochs INTEGER,
        epochs_done INTEGER NOT NULL DEFAULT 0,
        best_val_acc REAL,
        test_acc REAL,
        test_loss REAL,
        duration_s REAL,
        reason TEXT NOT NULL DEFAULT '' COLLATE NOCASE,
        message TEXT NOT NULL DEFAULT '',
        device TEXT NOT NULL DEFAULT '' COLLATE NOCASE,
        params INTEGER,
        weights_path TEXT,
        checkpoint_path TEXT
    );
    CREATE TABLE run_details (
        run_id INTEGER PRIMARY KEY REFERENCES runs(id) ON DELETE CASCADE,
        design TEXT NOT NULL,
        training TEXT NOT NULL,
        data_settings TEXT NOT NULL
    );
    CREATE TABLE epochs (
        run_id INTEGER NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
        epoch INTEGER NOT NULL,
        train_loss REAL, train_acc REAL, val_loss REAL, val_acc REAL, lr REAL, seconds REAL,
        PRIMARY KEY (run_id, epoch)
    ) WITHOUT ROWID;
    """,
)
SCHEMA_VERSION = len(MIGRATIONS)


class HistoryError(LayerStudioError):
    """The run history file cannot be read or written (damaged, locked, read-only, or from a newer LayerStudio)."""


@dataclass(frozen=True)
class RunSummary:
    """One run as the Runs tab's table and ``layerstudio runs list`` show it."""

    id: int
    started: str  # ISO local time, with its UTC offset
    name: str  # the design's name, or its file's stem
    data: str  # the data source
    optimizer: str
    lr: float
    batch_size: int
    epochs: int  # planned
    epochs_done: int
    best_val_acc: float | None
    test_acc: float | None
    test_loss: float | None
    duration_s: float | None
    reason: str  # a FinishReason value; "" while the run goes on (or when its process ended without saying)
    message: str
    device: str
    params: int | None


SUMMARY_COLUMNS = tuple(f.name for f in fields(RunSummary))
SORT_COLUMNS = SUMMARY_COLUMNS
_INDEXES = "".join(f"CREATE INDEX IF NOT EXISTS runs_by_{c} ON runs({c}, id);\n" for c in SORT_COLUMNS if c != "id")


@dataclass(frozen=True)
class RunRecord:
    """Everything kept of one run."""

    summary: RunSummary
    design: dict  # NetworkSpec.to_dict() plus "name"
    training: dict
    data_settings: dict
    epochs: list[dict] = field(default_factory=list)  # EPOCH_KEYS each
    weights_path: str | None = None
    checkpoint_path: str | None = None


def default_history_path() -> Path:
    """The user's run history file."""
    return data_dir() / "runs.sqlite3"


def now_text() -> str:
    """The local time now, as the history stores it: ``2026-12-01T23:48:14+01:00``."""
    return datetime.now().astimezone().isoformat(timespec="seconds")


def like_pattern(text: str) -> str:
    """``text`` as a LIKE pattern matching it anywhere, its own % and _ taken literally."""
    escaped = text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


class RunHistory:
    """The run history file at ``path`` (default: the user's). Reading methods raise HistoryError with a sentence;
    the file and its folder are made on the first write. Safe to use from several threads (a connection per thread)."""

    def __init__(self, path: Path | str | None = None, busy_timeout_s: float = BUSY_TIMEOUT_S):
        self.path = Path(path) if path is not None else default_history_path()
        self.busy_timeout_s = busy_timeout_s
        self._ready = False
        self._ready_lock = threading.Lock()
        self._local = threading.local()

    # -- connections
    @contextmanager
    def _connect(self, write: bool) -> Iterator[sqlite3.Connection]:
        """This thread's connection with the schema checked (made or migrated when needed); a write is one
        transaction, committed on success and rolled back on failure; any SQLite failure becomes a HistoryError
        naming the file (and the connection is dropped, so the next call starts afresh)."""
        try:
            connection = self._connection(write)
            try:
                self._prepare(connection)
                if write:
                    connection.execute("BEGIN IMMEDIATE")
                yield connection
                if connection.in_transaction:
                    connection.execute("COMMIT")
            except BaseException:
                if connection.in_transaction:
                    connection.execute("ROLLBACK")
                raise
        except (sqlite3.Error, OSError) as exc:
            self.close()
            raise self._error(exc) from None
        except HistoryError:
            self.close()
            raise

    def _connection(self, write: bool) -> sqlite3.Connection:
        """The calling thread's open connection, kept between calls: closing the last connection to a WAL file
        checkpoints it, about 20 ms, which every write would pay otherwise. When the file at the path is another
        one by now (moved away, replaced), that one is opened."""
        connection = getattr(self._local, "connection", None)
        if connection is not None and self._identity() == self._local.identity:
            return connection
        self.close()
        if write:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        connection = sqlite3.connect(self.path, timeout=self.busy_timeout_s, isolation_level=None)
        self._local.connection, self._local.identity = connection, self._identity()
        connection.execute("PRAGMA foreign_keys = ON")
        connection.execute("PRAGMA synchronous = NORMAL")  # WAL: a commit is durable at the next checkpoint
        return connection

    def _identity(self) -> tuple[int, int] | None:
        try:
            status = self.path.stat()
        except OSError:
            return None
        return status.st_dev, status.st_ino

    def close(self) -> None:
        """Close the calling thread's connection (the others close with their threads or with this object); the
        next call checks the file's schema again (it may be another file by then)."""
        connection = getattr(self._local, "connection", None)
        self._local.connection = None
        self._ready = False
        if connection is not None:
            connection.close()

    def _error(self, exc: BaseException) -> HistoryError:
        return HistoryError(f"The run history {self.path} cannot be used ({exc}): move the file away to start "
                            "a new history, or close the program that holds it.")

    def _prepare(self, connection: sqlite3.Connection) -> None:
        """Check the file's schema version once per RunHistory; make or migrate the tables when needed."""
        if self._ready:
            return
        with self._ready_lock:
            version = _version(connection)
            if version > SCHEMA_VERSION:
                raise HistoryError(f"The run history {self.path} was written by a newer LayerStudio (schema version "
                                   f"{version}; this one reads up to {SCHEMA_VERSION}): update LayerStudio, or move "
                                   "the file away to start a new history.")
            if version < SCHEMA_VERSION or not _has_indexes(connection):
                self._migrate(connection, version)
            self._ready = True

    def _migrate(self, connection: sqlite3.Connection, version: int) -> None:
        """Bring the file from ``version`` to SCHEMA_VERSION in one transaction (WAL mode first, outside it)."""
        connection.execute("PRAGMA journal_mode = WAL")
        connection.execute("BEGIN IMMEDIATE")
        try:
            version = _version(connection)  # another process may have migrated it meanwhile
            connection.execute("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)")
            for step in MIGRATIONS[version:]:
                for statement in _statements(step):
                    connection.execute(statement)
            for statement in _statements(_INDEXES):
                connection.execute(statement)
            connection.execute("DELETE FROM schema_version")
            connection.execute("INSERT INTO schema_version VALUES (?)", (SCHEMA_VERSION,))
            connection.execute("COMMIT")
        except BaseException:
            connection.execute("ROLLBACK")
            raise
        if version < SCHEMA_VERSION:
            log.info("Run history %s: schema version %d -> %d", self.path, version, SCHEMA_VERSION)

    # -- reading
    def count(self, text: str = "") -> int:
        """How many runs there are (whose name, data, optimizer or reason contains ``text``)."""
        if not self.path.exists():
            return 0
        where, args = _where(text)
        with self._connect(write=False) as db:
            return db.execute(f"SELECT count(*) FROM runs{where}", args).fetchone()[0]

    def list(self, text: str = "", order_by: str = "started", descending: bool = True, limit: int = 100,
             offset: int = 0) -> builtins.list[RunSummary]:
        """One page of runs, sorted by a RunSummary field (ties by id, the same way), filtered as ``count``."""
        if order_by not in SORT_COLUMNS:
            raise HistoryError(f"Runs cannot be sorted by {order_by!r}: sort by one of {', '.join(SORT_COLUMNS)}.")
        if not self.path.exists():
            return []
        where, args = _where(text)
        way = "DESC" if descending else "ASC"
        order = f"{order_by} {way}, id {way}" if order_by != "id" else f"id {way}"
        with self._connect(write=False) as db:
            rows = db.execute(f"SELECT {', '.join(SUMMARY_COLUMNS)} FROM runs{where} ORDER BY {order} "
                              "LIMIT ? OFFSET ?", (*args, max(int(limit), 0), max(int(offset), 0))).fetchall()
        return [RunSummary(*row) for row in rows]

    def get(self, run_id: int) -> RunRecord:
        """The whole record of one run; KeyError when there is none with that id."""
        if not self.path.exists():
            raise KeyError(run_id)
        with self._connect(write=False) as db:
            row = db.execute(f"SELECT {', '.join(SUMMARY_COLUMNS)}, weights_path, checkpoint_path FROM runs "
                             "WHERE id = ?", (run_id,)).fetchone()
            if row is None:
                raise KeyError(run_id)
            details = db.execute("SELECT design, training, data_settings FROM run_details WHERE run_id = ?",
                                 (run_id,)).fetchone() or ("{}", "{}", "{}")
            epochs = db.execute(f"SELECT {', '.join(EPOCH_KEYS)} FROM epochs WHERE run_id = ? ORDER BY epoch",
                                (run_id,)).fetchall()
        n = len(SUMMARY_COLUMNS)
        design, training, data_settings = (json.loads(text) for text in details)
        return RunRecord(RunSummary(*row[:n]), design, training, data_settings,
                         [dict(zip(EPOCH_KEYS, epoch, strict=True)) for epoch in epochs], *row[n:])

    # -- writing
    def delete(self, run_ids: Iterable[int]) -> int:
        """Delete these runs (their details and epochs too); returns how many there were."""
        ids = [int(run_id) for run_id in run_ids]
        if not ids or not self.path.exists():
            return 0
        with self._connect(write=True) as db:
            marks = ", ".join("?" * len(ids))
            return db.execute(f"DELETE FROM runs WHERE id IN ({marks})", ids).rowcount

    def save(self, run: RunState) -> int:
        """Write a run (insert it the first time, then update its summary and add its new epochs) in one
        transaction; returns its id. HistoryError when the file cannot be written."""
        summary = {name: getattr(run, name) for name in SUMMARY_COLUMNS if name != "id"}
        summary.update(weights_path=run.weights_path, checkpoint_path=run.checkpoint_path)
        with self._connect(write=True) as db:
            if run.run_id is None:
                names = ", ".join(summary)
                cursor = db.execute(f"INSERT INTO runs ({names}) VALUES ({', '.join('?' * len(summary))})",
                                    tuple(summary.values()))
                run_id = cursor.lastrowid
                assert run_id is not None  # an INSERT on a rowid table always has one
                db.execute("INSERT INTO run_details VALUES (?, ?, ?, ?)",
                           (run_id, json.dumps(run.design), json.dumps(run.training), json.dumps(run.data_settings)))
                saved = 0
            else:
                run_id, saved = run.run_id, run.epochs_saved
                sets = ", ".join(f"{name} = ?" for name in summary)
                db.execute(f"UPDATE runs SET {sets} WHERE id = ?", (*summary.values(), run_id))
            db.executemany(f"INSERT OR REPLACE INTO epochs VALUES (?, {', '.join('?' * len(EPOCH_KEYS))})",
                           [(run_id, *(epoch[key] for key in EPOCH_KEYS)) for epoch in run.epoch_rows[saved:]])
        run.run_id, run.epochs_saved = run_id, len(run.epoch_rows)
        return run_id


def _version(connection: sqlite3.Connection) -> int:
    """The file's schema version: 0 for a new (empty) file."""
    exists = connection.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'schema_version'")
    if exists.fetchone() is None:
        return 0
    row = connection.execute("SELECT max(version) FROM schema_version").fetchone()
    return int(row[0] or 0)


def _has_indexes(connection: sqlite3.Connection) -> bool:
    found = connection.execute("SELECT count(*) FROM sqlite_master WHERE type = 'index' AND name LIKE 'runs_by_%'")
    return found.fetchone()[0] == len(SORT_COLUMNS) - 1


def _statements(script: str) -> list[str]:
    return [statement.strip() for statement in script.split(";") if statement.strip()]


def _where(text: str) -> tuple[str, tuple]:
    text = text.strip()
    if not text:
        return "", ()
    pattern = like_pattern(text)
    return " WHERE " + " OR ".join(f"{c} LIKE ? ESCAPE '\\'" for c in TEXT_COLUMNS), (pattern,) * len(TEXT_COLUMNS)


@dataclass
class RunState:
    """A run as recorded so far (RunRecorder's memory of it): what ``RunHistory.save`` writes."""

    started: str
    name: str
    data: str
    optimizer: str
    lr: float
    batch_size: int
    epochs: int
    design: dict
    training: dict
    data_settings: dict
    epochs_done: int = 0
    best_val_acc: float | None = None
    test_acc: float | None = None
    test_loss: float | None = None
    duration_s: float | None = None
    reason: str = ""
    message: str = ""
    device: str = ""
    params: int | None = None
    weights_path: str | None = None
    checkpoint_path: str | None = None
    run_id: int | None = None
    epochs_saved: int = 0
    epoch_rows: builtins.list[dict] = field(default_factory=builtins.list)  # EPOCH_KEYS each ('epochs': planned)


class RunRecorder:
    """Records one run in the history: pass it along the run's ``on_event`` (it takes the trainer's events), call
    ``set_test`` after the final evaluation and ``set_outputs`` where the weights and checkpoint went. It never
    raises: a history that cannot be written logs one warning and the run goes on, and every later write tries
    again with all the run holds so far. A run that fails before it starts (bad design, data error) is recorded
    by its RunFinished alone (``finish``; ``recording()`` sends one for an exception)."""

    def __init__(self, history: RunHistory | None, design_name: str, spec, training: dict, data_settings: dict):
        self.history = history if history is not None else RunHistory()
        self._clock = time.monotonic()
        self._warned = False
        self._lock = threading.Lock()  # the window may set outputs from its thread while the run writes
        settings = _planned(training)
        design = {**spec.to_dict(), "name": design_name}
        self.run = RunState(started=now_text(), name=design_name, data=str(data_settings.get("source", "")),
                            optimizer=settings.optimizer, lr=settings.lr, batch_size=settings.batch_size,
                            epochs=settings.epochs, design=design, training=dict(training),
                            data_settings=dict(data_settings), params=_params(spec))

    @property
    def run_id(self) -> int | None:
        """The run's id in the history once it has been written (after RunStarted), else None."""
        return self.run.run_id

    def __call__(self, event) -> None:
        run = self.run
        if isinstance(event, RunStarted):
            run.device, run.params = event.device_name or event.device, event.parameters
        elif isinstance(event, EpochEnd):
            run.epoch_rows.append({key: getattr(event, key) for key in EPOCH_KEYS})
            run.epochs_done = event.epoch
            if event.val_acc is not None and (run.best_val_acc is None or event.val_acc > run.best_val_acc):
                run.best_val_acc = event.val_acc
        elif isinstance(event, RunFinished):
            run.reason, run.message = event.reason.value, event.message
            run.epochs_done = max(run.epochs_done, event.epochs_done)
            run.duration_s = time.monotonic() - self._clock
        else:
            return  # batches and health samples are not kept
        self._save()

    def set_test(self, loss: float, accuracy: float | None) -> None:
        """The final evaluation's figures (on the test split, or validation when there is none)."""
        self.run.test_loss, self.run.test_acc = loss, accuracy
        self._save()

    def set_outputs(self, weights_path=None, checkpoint_path=None) -> None:
        """Where the run's weights and checkpoint were saved (None leaves what is recorded)."""
        if weights_path is not None:
            self.run.weights_path = str(weights_path)
        if checkpoint_path is not None:
            self.run.checkpoint_path = str(checkpoint_path)
        self._save()

    @contextmanager
    def recording(self) -> Iterator[RunRecorder]:
        """Around the work of a run: an exception that ends it before the trainer says so is recorded as the run's
        end (a user's error as "error" with its sentence, Ctrl-C or a cancel as "stopped") and goes on up."""
        try:
            yield self
        except Cancelled as exc:
            reason = str(exc) or "Stopped before training started."
            self.finish(RunFinished(FinishReason.STOPPED, reason, self.run.epochs_done))
            raise
        except KeyboardInterrupt:
            self.finish(RunFinished(FinishReason.STOPPED, "Interrupted before training ended.", self.run.epochs_done))
            raise
        except Exception as exc:
            message = str(exc) if isinstance(exc, LayerStudioError) else f"Unexpected error: {exc!r}"
            self.finish(RunFinished(FinishReason.ERROR, message, self.run.epochs_done))
            raise

    def finish(self, event: RunFinished) -> None:
        """Record how the run ended unless the trainer already said so (a run that failed before it started)."""
        if not self.run.reason:
            self(event)

    def _save(self) -> None:
        with self._lock:
            try:
                self.history.save(self.run)
            except Exception as exc:  # never stop a run: say it once, try again at the next write
                if not self._warned:
                    self._warned = True
                    log.warning("This run is not recorded in the run history: %s", exc)


def _planned(training: dict):
    """The run's TrainConfig, for its planned optimizer, lr, batch size and epochs; the defaults where the settings
    are not valid (a run refused for its settings is still recorded)."""
    from engine.training.config import TrainConfig

    try:
        return TrainConfig.from_dict(training)
    except LayerStudioError:
        return TrainConfig()


def _params(spec) -> int | None:
    """The design's parameter count before the run starts (None for a design with errors: no count is right)."""
    try:
        from engine.shapes import analyze

        analysis = analyze(spec)
        return analysis.params if analysis.ok else None
    except Exception:  # a design the trainer will refuse: its run is still recorded, without a count
        log.debug("No parameter count for the run history", exc_info=True)
        return None
