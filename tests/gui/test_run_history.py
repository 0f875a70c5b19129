"""Runs from the window are recorded in the run history (engine.history), from the training worker's thread."""
from __future__ import annotations

import pytest

from engine.history import RunHistory
from engine.spec import NetworkSpec
from tests.gui.test_training import make_document, tiny_spec


@pytest.fixture(autouse=True)
def own_history(tmp_path, monkeypatch):
    monkeypatch.setenv("LAYERSTUDIO_HOME", str(tmp_path / "home"))


def test_a_run_from_the_window_is_recorded_with_its_test_figures_and_saved_weights(area, tmp_path):
    doc = make_document()
    doc.name = "tiny net"
    ui = area(doc)
    result = ui.run()
    assert result.reason == "completed", result.message
    [run] = RunHistory().list()
    record = RunHistory().get(run.id)
    assert (run.name, run.reason, run.epochs_done, run.epochs, run.data) == \
        ("tiny net", "completed", 2, 2, "mnist-sample")
    assert [epoch["epoch"] for epoch in record.epochs] == [1, 2]
    assert run.test_acc == ui.controller.last_evaluation.accuracy
    assert NetworkSpec.from_dict(record.design) == tiny_spec()
    assert record.checkpoint_path is not None and record.checkpoint_path.endswith(".checkpoint.pt")
    ui.controller.save_weights(tmp_path / "w.pt")
    assert RunHistory().get(run.id).weights_path == str(tmp_path / "w.pt")


def test_runs_that_fail_in_the_window_are_recorded_with_their_message(area):
    ui = area(make_document(tiny_spec(input_shape=(3, 32, 32))))  # the data gives 1x28x28
    result = ui.run()
    assert result.reason == "error"
    [run] = RunHistory().list()
    assert (run.reason, run.message, run.epochs_done) == ("error", result.message, 0)


def test_a_design_with_errors_refused_at_start_is_recorded_too(area):
    from engine.spec import LayerSpec

    broken = NetworkSpec((1, 28, 28), (LayerSpec("Flatten", id="flat"),
                                       LayerSpec("Conv2d", {"out_channels": 4, "kernel_size": 3}, id="conv")))
    ui = area(make_document(broken))
    result = ui.run(start=ui.controller.start, timeout=10_000)  # the Start button is off for such a design
    assert result.reason == "error" and "design has errors" in result.message
    [run] = RunHistory().list()
    assert (run.reason, run.message, run.params) == ("error", result.message, None)
