"""The run history (engine.history): real SQLite files in tmp paths, real short training runs recorded through the
trainer's events, and a damaged, a locked and a newer file that never stop a run."""
from __future__ import annotations

import logging
import sqlite3
from dataclasses import asdict, fields

import pytest

from engine.data import DataConfig, load_data
from engine.history import (
    SCHEMA_VERSION,
    SORT_COLUMNS,
    HistoryError,
    RunHistory,
    RunRecorder,
    RunState,
    RunSummary,
    default_history_path,
)
from engine.paths import data_dir
from engine.spec import LayerSpec, NetworkSpec
from engine.training import TrainConfig, Trainer

SMALL_DATA = {"source": "mnist-sample", "limit": 200, "val_fraction": 0.2}
QUICK = {"epochs": 2, "batch_size": 50, "device": "cpu", "seed": 0, "health": False}


def tiny_spec() -> NetworkSpec:
    return NetworkSpec((1, 28, 28), (LayerSpec("Flatten", id="flat"), LayerSpec("Linear", {"out_features": 10},
                                                                                   id="out")))


@pytest.fixture(scope="module")
def mnist():
    return load_data(DataConfig.from_dict(SMALL_DATA))


def record_run(history, data, spec=None, **training) -> tuple[RunRecorder, object]:
    """A real run of ``spec`` on ``data`` with its recorder along on_event, then the test figures, as the CLI does."""
    spec = spec or tiny_spec()
    config = TrainConfig.from_dict({**QUICK, **training})
    recorder = RunRecorder(history, "tiny", spec, config.to_dict(), dict(SMALL_DATA))
    with recorder.recording():
        trainer = Trainer(spec, data, config)
        finished = trainer.run(on_event=recorder)
        if finished.reason == "completed":
            result = trainer.evaluate("test")
            recorder.set_test(result.loss, result.accuracy)
    return recorder, finished


def history_warnings(caplog) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == "engine.history" and r.levelno == logging.WARNING]


def test_a_run_is_recorded_whole_with_its_epochs_test_figures_and_outputs(tmp_path, mnist, one_torch_thread):
    history = RunHistory(tmp_path / "runs.sqlite3")
    recorder, finished = record_run(history, mnist)
    recorder.set_outputs(weights_path=tmp_path / "w.pt")
    record = history.get(recorder.run_id)
    run = record.summary
    assert (run.reason, run.message, run.epochs_done, run.epochs) == ("completed", finished.message, 2, 2)
    assert [e["epoch"] for e in record.epochs] == [1, 2]
    assert run.best_val_acc == max(e["val_acc"] for e in record.epochs)
    assert run.test_acc is not None and run.test_loss is not None and run.duration_s > 0
    assert run.params == 7850 and run.device and run.data == "mnist-sample" and run.name == "tiny"
    assert NetworkSpec.from_dict(record.design) == tiny_spec() and record.design["name"] == "tiny"
    assert TrainConfig.from_dict(record.training) == TrainConfig.from_dict(QUICK)
    assert record.data_settings == SMALL_DATA and record.weights_path == str(tmp_path / "w.pt")
    assert history.count() == 1 and history.list() == [run]
    with sqlite3.connect(history.path) as db:  # WAL, and the version the file says it has
        assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert db.execute("SELECT version FROM schema_version").fetchall() == [(SCHEMA_VERSION,)]


def test_the_default_history_is_in_the_data_folder():
    assert default_history_path() == data_dir() / "runs.sqlite3"
    assert RunHistory().path == default_history_path()


def test_failed_runs_are_recorded_with_their_reason_and_message(tmp_path, mnist):
    history = RunHistory(tmp_path / "runs.sqlite3")
    regression = load_data(DataConfig.from_dict({"source": "synthetic-regression", "samples": 200}))
    line = NetworkSpec((2,), (LayerSpec("Linear", {"out_features": 1}, id="out"),))
    recorder, finished = record_run(history, regression, spec=line, lr=1e6, optimizer="sgd")  # NaN / runaway loss
    assert finished.reason == "diverged"
    assert (history.get(recorder.run_id).summary.reason, history.get(recorder.run_id).summary.message) == \
        ("diverged", finished.message)

    bad = NetworkSpec((1, 28, 28), (LayerSpec("Linear", {"out_features": 10}, id="out"),))  # 3-D input to Linear
    with pytest.raises(Exception) as refused:
        record_run(history, mnist, spec=bad)
    run = history.list()[0]
    assert (run.reason, run.message, run.epochs_done) == ("error", str(refused.value), 0)
    assert history.count("error") == 1


def test_a_corrupt_file_never_stops_a_run_warns_once_and_is_left_as_it_was(tmp_path, mnist, caplog):
    path = tmp_path / "runs.sqlite3"
    damaged = b"not a database at all " * 500
    path.write_bytes(damaged)
    _, finished = record_run(RunHistory(path), mnist)
    assert finished.reason == "completed"
    warnings = history_warnings(caplog)
    assert len(warnings) == 1 and "not recorded" in warnings[0] and str(path) in warnings[0]
    assert path.read_bytes() == damaged  # nothing of the user's file is lost
    with pytest.raises(HistoryError, match="cannot be used .*move the file away"):
        RunHistory(path).list()


def test_a_locked_file_never_stops_a_run_and_the_next_write_catches_up(tmp_path, mnist, caplog):
    path = tmp_path / "runs.sqlite3"
    history = RunHistory(path, busy_timeout_s=0.05)
    history.save(state("earlier"))
    other = sqlite3.connect(path, isolation_level=None)
    other.execute("BEGIN EXCLUSIVE")  # another process holds the write lock for the whole run
    try:
        recorder, finished = record_run(history, mnist)
        assert finished.reason == "completed" and recorder.run_id is None
    finally:
        other.execute("ROLLBACK")
        other.close()
    assert len(history_warnings(caplog)) == 1
    recorder.set_outputs(weights_path="w.pt")  # the lock is gone: this write records everything
    record = history.get(recorder.run_id)
    assert record.summary.reason == "completed" and len(record.epochs) == 2 and record.weights_path == "w.pt"


def test_a_newer_schema_is_refused_with_a_sentence_and_a_run_goes_on(tmp_path, mnist, caplog):
    path = tmp_path / "runs.sqlite3"
    RunHistory(path).save(state("earlier"))
    with sqlite3.connect(path) as db:
        db.execute("UPDATE schema_version SET version = ?", (SCHEMA_VERSION + 1,))
    with pytest.raises(HistoryError, match=f"newer LayerStudio \\(schema version {SCHEMA_VERSION + 1}"):
        RunHistory(path).count()
    _, finished = record_run(RunHistory(path), mnist)
    assert finished.reason == "completed" and len(history_warnings(caplog)) == 1


def test_an_older_file_is_migrated_keeping_its_runs(tmp_path):
    path = tmp_path / "runs.sqlite3"
    sqlite3.connect(path).close()  # version 0: an empty SQLite file
    history = RunHistory(path)
    history.save(state("old"))
    with sqlite3.connect(path) as db:  # a file whose indexes are missing (made before they were declared)
        db.execute("DROP INDEX runs_by_lr")
    assert [run.name for run in RunHistory(path).list(order_by="lr")] == ["old"]
    with sqlite3.connect(path) as db:
        assert db.execute("SELECT 1 FROM sqlite_master WHERE name = 'runs_by_lr'").fetchone()


def state(name: str, **summary) -> RunState:
    run = RunState(started=summary.pop("started", "2026-01-01T00:00:00+00:00"), name=name, data="mnist",
                   optimizer="adam", lr=0.001, batch_size=64, epochs=10, design=tiny_spec().to_dict(),
                   training={}, data_settings={})
    for key, value in summary.items():
        setattr(run, key, value)
    return run


def test_every_column_sorts_both_ways_through_its_index_and_pages(tmp_path):
    history = RunHistory(tmp_path / "runs.sqlite3")
    for i in range(12):
        history.save(state(f"net{i % 5}", started=f"2026-01-{1 + i % 7:02d}T00:00:00+00:00", lr=10.0 ** -(i % 4),
                           batch_size=2 ** (i % 6), best_val_acc=None if i % 3 == 0 else i / 20,
                           reason=["completed", "error", "diverged"][i % 3], duration_s=float(i * 7 % 11)))
    every = history.list(limit=1000)
    assert len(every) == history.count() == 12
    with sqlite3.connect(history.path) as db:
        for column in SORT_COLUMNS:
            for descending in (True, False):
                def key(run, column=column):
                    value = getattr(run, column)
                    return (value is not None, value.lower() if isinstance(value, str) else value, run.id)
                expected = sorted(every, key=key, reverse=descending)
                assert history.list(order_by=column, descending=descending, limit=1000) == expected, column
                pages = history.list(order_by=column, descending=descending, limit=5) + \
                    history.list(order_by=column, descending=descending, limit=5, offset=5) + \
                    history.list(order_by=column, descending=descending, limit=5, offset=10)
                assert pages == expected
            plan = " ".join(row[-1] for row in db.execute(
                f"EXPLAIN QUERY PLAN SELECT * FROM runs ORDER BY {column} DESC, id DESC LIMIT 100"))
            assert "TEMP B-TREE" not in plan, (column, plan)  # read in index order, never sorted whole
    with pytest.raises(HistoryError, match="cannot be sorted by 'design'"):
        history.list(order_by="design")


def test_the_text_filter_matches_name_data_optimizer_and_reason_literally(tmp_path):
    history = RunHistory(tmp_path / "runs.sqlite3")
    for name in ("ResNet-small", "lenet", "100%_net", "mlp"):
        history.save(state(name, reason="error" if name == "mlp" else "completed"))
    assert {r.name for r in history.list("resnet")} == {"ResNet-small"}
    assert {r.name for r in history.list("%")} == {"100%_net"}  # % and _ are the user's text, not wildcards
    assert {r.name for r in history.list("_")} == {"100%_net"}
    assert history.count("ERROR") == 1 and history.count("mnist") == 4 and history.count("adam") == 4
    assert history.count("nothing like it") == 0


def test_delete_removes_runs_with_their_details_and_epochs(tmp_path):
    history = RunHistory(tmp_path / "runs.sqlite3")
    kept, gone = state("kept"), state("gone")
    for run in (kept, gone):
        run.epoch_rows = [dict(epoch=1, train_loss=1.0, train_acc=0.5, val_loss=1.0, val_acc=0.5, lr=0.1, seconds=1)]
        history.save(run)
    assert history.delete([gone.run_id, 999]) == 1
    assert [r.name for r in history.list()] == ["kept"]
    with pytest.raises(KeyError):
        history.get(gone.run_id)
    with sqlite3.connect(history.path) as db:
        assert db.execute("SELECT count(*) FROM epochs").fetchone() == (1,)
        assert db.execute("SELECT count(*) FROM run_details").fetchone() == (1,)


def test_a_missing_history_reads_as_empty_without_making_a_file(tmp_path):
    history = RunHistory(tmp_path / "none" / "runs.sqlite3")
    assert history.count() == 0 and history.list() == [] and history.delete([1]) == 0
    with pytest.raises(KeyError):
        history.get(1)
    assert not history.path.exists()


def test_the_summary_is_the_contracts_fields():
    assert [f.name for f in fields(RunSummary)] == list(SORT_COLUMNS)
    assert set(asdict(state("x"))) >= set(SORT_COLUMNS) - {"id"}


def test_a_damaged_file_moved_away_gives_way_to_a_new_history_at_once(tmp_path):
    path = tmp_path / "runs.sqlite3"
    history = RunHistory(path)
    history.save(state("first"))
    path.rename(tmp_path / "kept.sqlite3")  # the user moves the file away while the app runs
    for suffix in ("-wal", "-shm"):
        (tmp_path / f"runs.sqlite3{suffix}").unlink(missing_ok=True)
    path.write_bytes(b"damaged " * 100)
    with pytest.raises(HistoryError, match="file is not a database"):
        history.count()
    path.unlink()
    history.save(state("second"))  # the same RunHistory starts the new file
    assert [run.name for run in history.list()] == ["second"]
