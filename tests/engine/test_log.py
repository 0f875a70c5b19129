"""The log file and the one-line report of an unexpected error: real handlers, real files, real processes.

- importing the engine configures nothing and creates no folder; only entry points configure;
- the log file and its folder appear with the first record; INFO and up go there, with tracebacks;
- an unexpected error becomes one sentence naming the file, the traceback lands in it;
- the CLI: --verbose, exit code 2 for an unexpected error, 1 (and no log) for a user error;
- the Trainer's "error" end and a broken listener leave their tracebacks in the log.
"""
from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import textwrap
from dataclasses import replace
from pathlib import Path

import pytest

from engine import log as engine_log
from engine.log import close_logging, configure_logging, log_file, report_unexpected

ROOT = Path(__file__).resolve().parents[2]


def run_python(script: str, home: Path, *args: str) -> subprocess.CompletedProcess:
    """A fresh interpreter from the repository root with its own LAYERSTUDIO_HOME."""
    env = {**os.environ, "LAYERSTUDIO_HOME": str(home)}
    return subprocess.run([sys.executable, "-c", textwrap.dedent(script), *args], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=120)


def parse_int(text: str) -> int:
    return int(text)


def test_importing_the_engine_configures_no_logging_and_creates_no_folder(tmp_path):
    result = run_python("""
        import logging
        import engine, engine.cli, engine.log, engine.training, engine.io, engine.data, engine.train_command
        print(len(logging.getLogger().handlers), logging.getLogger("engine").level)
    """, tmp_path / "home")
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["0", "0"]
    assert not (tmp_path / "home").exists()


def test_the_log_file_appears_with_the_first_record_and_keeps_info_and_up(tmp_path, monkeypatch):
    monkeypatch.setenv("LAYERSTUDIO_HOME", str(tmp_path / "home"))
    try:
        path = configure_logging(console=False)
        assert path == log_file() == tmp_path / "home" / "logs" / "layerstudio.log"
        assert not (tmp_path / "home").exists()  # nothing created before there is something to write
        logger = logging.getLogger("engine.some_module")
        logger.debug("debug detail")
        logger.info("a run started")
        logger.warning("something odd")
    finally:
        close_logging()
    text = path.read_text(encoding="utf-8")
    assert "INFO engine.some_module" in text and "a run started" in text and "something odd" in text
    assert "debug detail" not in text


def test_an_unexpected_error_is_one_sentence_naming_the_file_that_holds_its_traceback(log_to_file):
    try:
        parse_int("seven")
    except ValueError as exc:
        sentence = report_unexpected(exc, "reading the settings")
    assert sentence == ("Unexpected error while reading the settings: ValueError: invalid literal for int() with "
                        f"base 10: 'seven' (details in {log_to_file})")
    text = log_to_file.read_text(encoding="utf-8")
    assert "Unexpected error while reading the settings" in text
    assert "Traceback (most recent call last)" in text and "in parse_int" in text


def test_without_a_configured_log_the_sentence_names_no_file_and_the_record_still_goes_to_logging(caplog):
    try:
        {}["missing"]
    except KeyError as exc:
        sentence = report_unexpected(exc, "looking something up")
    assert sentence == "Unexpected error while looking something up: KeyError: 'missing'"
    record = caplog.records[-1]
    assert record.levelno == logging.ERROR and record.exc_info[0] is KeyError


def test_stderr_gets_warnings_as_one_line_and_tracebacks_only_when_verbose(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("LAYERSTUDIO_HOME", str(tmp_path / "home"))
    logger = logging.getLogger("engine.console_check")

    def provoke() -> str:
        try:
            parse_int("x")
        except ValueError as exc:
            return report_unexpected(exc, "testing")

    try:
        configure_logging()
        logger.info("quiet info")
        logger.warning("disk almost full")
        provoke()  # the person sees the returned sentence: not printed a second time
        err = capsys.readouterr().err
        assert err == "disk almost full\n"
        configure_logging(verbose=True)  # replaces the first set-up: one record is printed once
        logger.debug("a detail")
        provoke()
        err = capsys.readouterr().err
    finally:
        close_logging()
    assert err.count("DEBUG: a detail") == 1
    assert "Traceback (most recent call last)" in err and "in parse_int" in err
    assert logging.getLogger("engine").level == logging.NOTSET  # close_logging undid the levels


def test_the_log_rotates_and_keeps_three_older_files(tmp_path, monkeypatch):
    monkeypatch.setenv("LAYERSTUDIO_HOME", str(tmp_path / "home"))
    monkeypatch.setattr(engine_log, "LOG_BYTES", 2_000)
    logger = logging.getLogger("engine.rotation_check")
    try:
        path = configure_logging(console=False)
        for index in range(40):
            logger.info("record %d %s", index, "x" * 200)
    finally:
        close_logging()
    names = sorted(p.name for p in path.parent.iterdir())
    assert names == ["layerstudio.log", "layerstudio.log.1", "layerstudio.log.2", "layerstudio.log.3"]
    assert all(p.stat().st_size <= 2_000 for p in path.parent.iterdir())
    assert "record 39 " in path.read_text(encoding="utf-8")


# --------------------------------------------------------------------------- the CLI, as a real process

# A fault injected into one engine function, so `layerstudio summary` meets an error no code foresaw;
# everything else (configuring the log, the file, the printed line, the exit code) is the real CLI.
FAULTY_SUMMARY = """
    import sys
    import engine.shapes
    def analyze(spec):
        return {}["rows"]  # a bug: a KeyError deep inside a command
    engine.shapes.analyze = analyze
    from engine.cli import main
    sys.exit(main(sys.argv[1:]))
"""


def test_cli_unexpected_error_prints_one_line_naming_the_log_and_exits_2(tmp_path):
    home = tmp_path / "home"
    result = run_python(FAULTY_SUMMARY, home, "summary", "lenet")
    log_path = home / "logs" / "layerstudio.log"
    assert result.returncode == 2
    assert result.stderr == (f"Unexpected error while running layerstudio summary: KeyError: 'rows' "
                             f"(details in {log_path})\n")
    text = log_path.read_text(encoding="utf-8")
    assert "ERROR engine.cli" in text and "Traceback (most recent call last)" in text
    assert 'in analyze' in text and "KeyError: 'rows'" in text


@pytest.mark.parametrize("where", ["before", "after"])
def test_cli_verbose_prints_the_traceback_too(tmp_path, where):
    args = ["--verbose", "summary", "lenet"] if where == "before" else ["summary", "lenet", "--verbose"]
    result = run_python(FAULTY_SUMMARY, tmp_path / "home", *args)
    assert result.returncode == 2
    assert "Traceback (most recent call last)" in result.stderr and "in analyze" in result.stderr
    assert result.stderr.rstrip().splitlines()[-1].startswith("Unexpected error while running layerstudio summary")


def test_cli_user_error_stays_one_line_exits_1_and_writes_no_log(tmp_path):
    home = tmp_path / "home"
    result = run_python("import sys\nfrom engine.cli import main\nsys.exit(main(sys.argv[1:]))",
                        home, "summary", str(tmp_path / "missing.json"))
    assert result.returncode == 1
    assert result.stderr.count("\n") == 1 and result.stderr.startswith("Error: ")
    assert not (home / "logs").exists()


def test_cli_main_in_process_leaves_no_handler_behind(tmp_path, capsys):
    from engine.cli import main

    before = list(logging.getLogger().handlers)
    assert main(["templates"]) == 0
    assert logging.getLogger().handlers == before


# --------------------------------------------------------------------------- the Trainer


@pytest.fixture(scope="module")
def mnist():
    from engine.data import DataConfig, load_data

    return load_data(DataConfig(limit=200, val_fraction=0.2))


def tiny_spec():
    from engine.spec import LayerSpec, NetworkSpec

    return NetworkSpec((1, 28, 28), (LayerSpec("Flatten"), LayerSpec("Linear", {"out_features": 10})))


def test_an_error_inside_a_run_logs_its_traceback_and_the_message_names_the_log(mnist, log_to_file):
    from engine.training import TrainConfig, Trainer

    labels = mnist.train_y.clone()
    labels[3] = 99  # a class the 10 outputs cannot score: torch raises in the middle of the run
    trainer = Trainer(tiny_spec(), replace(mnist, train_y=labels), TrainConfig(epochs=1, device="cpu"))
    finished = trainer.run()
    assert finished.reason == "error"
    assert finished.message.startswith("Unexpected error while training: IndexError: ")
    assert "out of bounds" in finished.message and finished.message.endswith(f"(details in {log_to_file})")
    text = log_to_file.read_text(encoding="utf-8")
    assert "ERROR engine.training" in text and "Traceback (most recent call last)" in text
    assert "in _train_step" in text


def test_a_listener_that_fails_on_the_finish_is_logged_not_swallowed(mnist, log_to_file):
    from engine.training import RunFinished, TrainConfig, Trainer

    def listener(event):
        if isinstance(event, RunFinished):
            json.loads("{broken")

    finished = Trainer(tiny_spec(), mnist, TrainConfig(epochs=1, device="cpu")).run(listener)
    assert finished.reason == "completed"
    text = log_to_file.read_text(encoding="utf-8")
    assert "INFO engine.training" in text and "Run on cpu ended (completed; epochs done: 1)" in text
    assert "The listener of the finished run failed" in text and "JSONDecodeError" in text and "in listener" in text
