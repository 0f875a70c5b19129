"""Every status line of the Training tab is derived from the current state: nothing said about another design,
another data choice or an earlier run stays behind when the design, the data choice or the run state changes."""
from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QLabel

from engine.spec import LayerSpec, NetworkSpec
from gui.document import DesignFile
from gui.training import controller as states
from tests.gui.test_training import RUN_TIMEOUT_MS, make_document, tiny_spec
from tests.gui.test_training_window import training_ui


def lines(ui) -> str:
    """Every text the Training tab shows about data, progress and status, as one string."""
    panel = ui.panel
    return "\n".join(label.text() for label in (panel.data_section.summary, panel.progress_label, panel.run_info,
                                                panel.status_label, panel.data_section.fit_note, panel.stale_note)
                     if not label.isHidden())


def load_data(ui, qtbot, signal=None):
    with qtbot.waitSignal(signal or ui.controller.dataLoaded, timeout=RUN_TIMEOUT_MS):
        qtbot.mouseClick(ui.panel.data_section.load_button, Qt.LeftButton)
    qtbot.waitUntil(lambda: ui.controller.state == states.IDLE)


def bad_csv(tmp_path):
    path = tmp_path / "bad.csv"
    path.write_text("x,label\n1.0,0\nnot a number,1\n2.0,0\n", encoding="utf-8")
    return path


def test_opening_a_template_replaces_the_other_designs_data_summary(area, qtbot):
    ui = area()
    load_data(ui, qtbot)
    assert "MNIST sample" in ui.panel.data_section.summary.text()
    ui.doc.load(DesignFile.template("linear-regression"))  # its own data: synthetic regression
    assert ui.doc.extras["data"]["source"] != "mnist-sample"
    assert "MNIST" not in lines(ui)
    assert ui.panel.data_section.summary.text().startswith("Not loaded yet")


def test_changing_the_data_source_replaces_the_summary_and_undo_brings_it_back(area, qtbot):
    ui = area()
    load_data(ui, qtbot)
    source = ui.panel.data_form.widget("source")
    source.setCurrentIndex(source.findData("synthetic-regression"))
    assert "MNIST" not in ui.panel.data_section.summary.text() and "Classes" not in ui.panel.data_section.summary.text()
    ui.doc.undo_stack.undo()  # the loaded data is the chosen one again
    assert "MNIST sample" in ui.panel.data_section.summary.text()


def test_an_old_design_error_is_gone_during_a_good_run(area, qtbot):
    spec = NetworkSpec((1, 28, 28), (LayerSpec("Conv2d", {"out_channels": 2, "kernel_size": 3}, id="conv"),
                                     LayerSpec("Flatten", id="flat"),
                                     LayerSpec("Linear", {"out_features": 10}, id="out")))
    ui = area(make_document(spec, training={"epochs": 100_000}))
    ui.doc.edit_input_shape((784,))  # Conv2d cannot take a flat input
    assert not ui.panel.start_action.isEnabled()
    result = ui.run(start=ui.controller.start)  # started anyway (not through Train): refused
    assert result.reason == "error"
    refusal = ui.panel.status_label.text()
    assert "Conv2d" in refusal and ui.panel.progress_label.text().startswith("Not started")
    ui.panel.close_failure_dialog()
    ui.doc.undo_stack.undo()  # the design that trains
    assert refusal not in lines(ui) and "Not started" not in lines(ui)  # gone with the change, before any run
    ui.doc.undo_stack.redo()
    assert ui.panel.status_label.text() == refusal  # the same design, the same reason
    ui.doc.undo_stack.undo()
    with qtbot.waitSignal(ui.controller.batchEnded, timeout=RUN_TIMEOUT_MS):
        ui.panel.start_action.trigger()
    assert refusal not in lines(ui)
    assert ui.run(start=ui.panel.stop_action.trigger).reason == "stopped"


def test_a_failed_load_leaves_no_reading_line_and_says_why_while_that_data_is_chosen(area, qtbot, tmp_path):
    ui = area(make_document(data={"source": "csv", "root": str(bad_csv(tmp_path)), "limit": 0}))
    steps = []
    ui.controller.dataLoading.connect(lambda fraction, text: steps.append(text))
    load_data(ui, qtbot, ui.controller.dataFailed)
    assert any(step.startswith("Reading bad.csv") for step in steps)
    assert "Reading" not in lines(ui)
    failure = ui.panel.data_section.summary.text()
    assert "bad.csv" in failure and "b00020" in failure  # said in red in the data area
    source = ui.panel.data_form.widget("source")
    source.setCurrentIndex(source.findData("mnist-sample"))
    assert "bad.csv" not in lines(ui)
    ui.doc.undo_stack.undo()
    assert ui.panel.data_section.summary.text() == failure


def test_stopping_leaves_no_stopping_line(area, qtbot):
    ui = area(make_document(training={"epochs": 100_000}))
    with qtbot.waitSignal(ui.controller.batchEnded, timeout=RUN_TIMEOUT_MS):
        ui.panel.start_action.trigger()
    with qtbot.waitSignal(ui.controller.finished, timeout=RUN_TIMEOUT_MS):
        ui.panel.stop_action.trigger()
        assert "Stopping at the next batch" in lines(ui)
    assert "Stopping" not in lines(ui)
    assert ui.panel.progress_label.text().startswith("Stopped by you after")
    assert ui.controller.last_evaluation is not None  # Stop ends the run, and the test set is evaluated
    assert "accuracy" in ui.results.summary.text()


def test_stopping_a_data_load_leaves_no_stopping_line(area, qtbot, tmp_path):
    big = tmp_path / "big.csv"
    big.write_text("a,b,label\n" + "".join(f"{i % 7},{i % 5},{i % 2}\n" for i in range(30_000)), encoding="utf-8")
    ui = area(make_document(data={"source": "csv", "root": str(big), "limit": 0}))
    with qtbot.waitSignal(ui.controller.dataStopped, timeout=RUN_TIMEOUT_MS):
        qtbot.mouseClick(ui.panel.data_section.load_button, Qt.LeftButton)
        assert "Reading" in lines(ui) or ui.controller.state == states.LOADING
        ui.panel.stop_action.trigger()  # before the loading can end: a Stop once asked for always wins
    qtbot.waitUntil(lambda: ui.controller.state == states.IDLE)
    assert "Stopping" not in lines(ui) and "Reading" not in lines(ui)
    assert ui.panel.data_section.summary.text().startswith("Loading the data stopped")


def test_a_finished_runs_lines_go_when_the_design_or_settings_change(area):
    ui = area()
    assert ui.run().reason == "completed"
    finished = ui.panel.progress_label.text()
    assert finished.startswith("Finished") and "parameters" in ui.panel.run_info.text()
    ui.doc.set_extra("training", dict(ui.doc.extras["training"], device="cpu", lr=0.5))
    assert finished not in lines(ui) and "parameters" not in ui.panel.run_info.text()
    assert ui.panel.progress_label.text() == "Ready."
    ui.doc.undo_stack.undo()
    assert ui.panel.progress_label.text() == finished


def test_the_device_line_follows_the_device_setting(area):
    ui = area()
    device = ui.panel.train_form.widget("device")
    for index in range(device.count()):
        device.setCurrentIndex(index)
        assert ui.panel.run_info.text() == f"Device: {device.itemText(index)}"


def test_a_refused_start_after_an_invalid_setting_is_explained_where_train_is(area):
    ui = area()
    ui.doc.load(DesignFile(tiny_spec(), "bad", "", {"training": {"lr": "abc"}, "data": {"source": "mnist-sample"}}))
    assert not ui.panel.start_action.isEnabled()
    assert "settings have an error" in ui.panel.start_action.toolTip()
    assert "settings have an error" in ui.panel.status_label.text()
    ui.panel.train_form.widget("lr").setValue(0.01)
    assert ui.panel.start_action.isEnabled() and ui.panel.status_label.text() == ""


def test_the_status_bar_follows_the_run_state_and_keeps_no_stopping_line(window, qtbot):
    ui = training_ui(window, epochs=100_000)
    note = window.statusBar().findChild(QLabel, "runStateNote")
    assert note.isHidden()
    with qtbot.waitSignal(ui.controller.batchEnded, timeout=RUN_TIMEOUT_MS):
        ui.panel.start_action.trigger()
    assert note.text() == "Training · design read-only"
    ui.panel.pause_action.trigger()
    assert note.text() == "Paused (F6 resumes) · design read-only"
    with qtbot.waitSignal(ui.controller.finished, timeout=RUN_TIMEOUT_MS):
        ui.panel.stop_action.trigger()
        assert note.text() == "Stopping · design read-only"
    assert note.isHidden()
    assert "Stopping" not in window.statusBar().currentMessage()
    assert "Stopping" not in lines(ui) and "Paused" not in lines(ui)
