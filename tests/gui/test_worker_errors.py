"""Worker threads never swallow a traceback: an unexpected error in loading, preparing a run or evaluating
reaches the person as one sentence naming the log file, and the log file holds the traceback.

Each test injects one fault into an engine function the worker calls (a bug no code foresaw); the worker
thread, the log file and the messages are the real ones.
"""
from __future__ import annotations

from engine import data as engine_data
from engine import training
from engine.text import sentence
from tests.gui.test_training import RUN_TIMEOUT_MS


def test_a_data_loading_bug_is_one_sentence_naming_the_log(area, qtbot, monkeypatch, log_to_file):
    def broken_loader(config, progress=None):
        raise RuntimeError("decoder state lost\nsecond line of the message")

    monkeypatch.setattr(engine_data, "load_data", broken_loader)
    ui = area()
    with qtbot.waitSignal(ui.controller.dataFailed, timeout=RUN_TIMEOUT_MS) as blocker:
        assert ui.controller.load_data()
    qtbot.waitUntil(lambda: not ui.controller.busy)
    assert blocker.args[0] == ("Unexpected error while loading the data: RuntimeError: decoder state lost "
                               f"(details in {log_to_file})")
    text = log_to_file.read_text(encoding="utf-8")
    assert "ERROR gui.training.worker" in text and "in broken_loader" in text and "second line" in text


def test_a_bug_while_preparing_a_run_ends_it_with_a_sentence_naming_the_log(area, monkeypatch, log_to_file):
    def broken_build(self, spec):
        raise RuntimeError("CUDA driver initialization failed")

    monkeypatch.setattr(training.Trainer, "_build_model", broken_build)
    ui = area()
    result = ui.run()
    assert result.reason == "error"
    assert result.message == ("Unexpected error while preparing the run: RuntimeError: CUDA driver initialization "
                              f"failed (details in {log_to_file})")
    assert ui.panel.failure_dialog.text() == sentence(result.message)
    text = log_to_file.read_text(encoding="utf-8")
    assert "Traceback (most recent call last)" in text and "in broken_build" in text


def test_a_failed_evaluation_keeps_the_finished_run_and_says_where_the_details_are(area, monkeypatch,
                                                                                    log_to_file):
    def broken_evaluate(self, split="test", samples=16):
        raise ValueError("confusion matrix has the wrong size")

    monkeypatch.setattr(training.Trainer, "evaluate", broken_evaluate)
    ui = area()
    messages: list[str] = []
    ui.controller.message.connect(messages.append)
    result = ui.run()
    assert result.reason == "completed"
    assert ui.controller.model is not None and ui.controller.last_evaluation is None
    expected = ("Unexpected error while evaluating the test split: ValueError: confusion matrix has the wrong size "
                f"(details in {log_to_file})")
    assert expected in messages
    assert "in broken_evaluate" in log_to_file.read_text(encoding="utf-8")
