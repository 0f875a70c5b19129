"""The Runs tab over a real SQLite run history in this test's own LAYERSTUDIO_HOME, filled through the engine's
RunRecorder (tests/run_records.py) or by a real run of the window."""
from __future__ import annotations

import pytest
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QMessageBox

from engine.history import RunHistory
from engine.shapes import analyze, format_count
from engine.spec import NetworkSpec
from gui.document import DesignFile
from gui.runs_model import COLUMNS
from gui.runs_view import RunsView
from gui.training import install_training
from gui.training.provenance import LOADED
from tests.gui.test_training import tiny_spec
from tests.gui.test_training_window import training_ui
from tests.run_records import mlp, record_run

RUN_TIMEOUT_MS = 120_000


def column(title: str) -> int:
    return next(i for i, c in enumerate(COLUMNS) if c.title == title)


@pytest.fixture
def history(tmp_path, monkeypatch) -> RunHistory:
    """The user's run history, in a home folder of this test alone (empty at first)."""
    monkeypatch.setenv("LAYERSTUDIO_HOME", str(tmp_path / "home"))
    return RunHistory()


@pytest.fixture
def runs_ui(history, window):
    """The window's training UI with its Runs tab over ``history`` (the default history of this test's home)."""
    ui = install_training(window)
    assert ui.controller.history.path == history.path
    return ui


def show_runs(window, ui, qtbot) -> RunsView:
    window.tabs.setCurrentWidget(ui.runs)
    qtbot.waitUntil(lambda: ui.runs.isVisible() and not ui.runs._stale)
    return ui.runs


def shown(view: RunsView, title: str) -> list[str]:
    model, col = view.model, column(title)
    return [model.data(model.index(row, col)) for row in range(model.rowCount())]


def test_an_empty_history_says_that_runs_appear_after_train(runs_ui, window, qtbot):
    view = show_runs(window, runs_ui, qtbot)
    assert view.pages.currentWidget() is view.empty_label
    assert "Train" in view.empty_label.text()
    assert not view.delete_action.isEnabled() and not view.open_action.isEnabled()


def test_a_history_that_cannot_be_read_says_so_and_the_tab_keeps_working(runs_ui, history, window, qtbot):
    history.path.parent.mkdir(parents=True)
    history.path.write_bytes(b"this is not an SQLite database, just bytes " * 100)
    view = show_runs(window, runs_ui, qtbot)
    assert view.pages.currentWidget() is view.empty_label
    assert str(history.path) in view.empty_label.text()
    history.path.unlink()
    view.refresh_action.trigger()
    assert "Train" in view.empty_label.text()


def test_header_clicks_sort_through_the_history(runs_ui, history, window, qtbot):
    rates = [0.003, 0.1, 0.0005, 0.02, 0.01]
    for i, lr in enumerate(rates):
        record_run(history, f"run{i}", training={"lr": lr}, test_acc=None if i == 2 else 0.5 + lr)
    view = show_runs(window, runs_ui, qtbot)
    assert shown(view, "Design") == [f"run{i}" for i in reversed(range(5))]  # newest first
    header = view.table.horizontalHeader()
    lr_col = column("LR")
    qtbot.mouseClick(header.viewport(), Qt.LeftButton,
                     pos=header.rect().center().__class__(header.sectionViewportPosition(lr_col) + 5, 5))
    order = header.sortIndicatorOrder()
    expected = sorted(rates, reverse=order == Qt.SortOrder.DescendingOrder)
    assert [run.lr for run in view.model.runs] == expected
    view.table.sortByColumn(lr_col, Qt.SortOrder.DescendingOrder if order == Qt.SortOrder.AscendingOrder
                            else Qt.SortOrder.AscendingOrder)
    assert [run.lr for run in view.model.runs] == list(reversed(expected))
    view.table.sortByColumn(column("Test acc"), Qt.SortOrder.DescendingOrder)
    accuracies = [run.test_acc for run in view.model.runs]
    known = sorted((a for a in accuracies if a is not None), reverse=True)
    assert [a for a in accuracies if a is not None] == known and accuracies.count(None) == 1
    assert shown(view, "Test acc")[:len(known)] == [f"{100 * a:.2f}%" for a in known]


def test_the_filter_keeps_runs_whose_design_data_optimizer_or_reason_match(runs_ui, history, window, qtbot):
    record_run(history, "lenet")
    record_run(history, "mlp", training={"optimizer": "sgd"})
    record_run(history, "LeNet wide", reason="stopped", done=1)
    record_run(history, "mlp", data={"source": "fashion-mnist"})
    view = show_runs(window, runs_ui, qtbot)
    view.filter.setText("lenet")
    assert sorted(shown(view, "Design")) == ["LeNet wide", "lenet"]
    assert view.count_label.text() == "2 runs match"
    view.filter.setText("sgd")
    assert shown(view, "Optimizer") == ["sgd"] and view.count_label.text() == "1 run matches"
    view.filter.setText("fashion")
    assert shown(view, "Data") == ["fashion-mnist"]
    view.filter.setText("stopped")
    assert shown(view, "Design") == ["LeNet wide"]
    view.filter.setText("nothing like it")
    assert view.model.rowCount() == 0 and view.pages.currentWidget() is view.splitter  # the filter stays in reach
    view.filter.clear()
    assert view.model.rowCount() == 4 and view.count_label.text() == "4 runs"


def test_the_table_reads_the_history_a_page_at_a_time(history, qtbot):
    for i in range(23):
        record_run(history, f"run{i:02d}", training={"batch_size": 8 + i})
    view = RunsView(history)
    qtbot.addWidget(view)
    view.model.page_size = 5
    view.model.sort(column("Batch"), Qt.SortOrder.AscendingOrder)
    view.refresh()
    assert view.model.rowCount() == 5 and view.model.total == 23 and view.model.canFetchMore()
    view.resize(900, 600)
    view.show()
    qtbot.waitExposed(view)
    scroll = view.table.verticalScrollBar()
    for _ in range(10):  # the view asks for the next page when it is scrolled to the end
        scroll.setValue(scroll.maximum())
        qtbot.wait(1)
        if not view.model.canFetchMore():
            break
    assert [run.batch_size for run in view.model.runs] == list(range(8, 31))
    view.table.sortByColumn(column("Design"), Qt.SortOrder.DescendingOrder)  # a sort starts from the first page
    assert [run.name for run in view.model.runs[:5]] == [f"run{i:02d}" for i in range(22, 17, -1)]


def test_two_selected_runs_overlay_their_curves_and_diff_designs_and_settings(runs_ui, history, window, qtbot):
    first_spec, second_spec = mlp(16, "ReLU"), mlp(32, "Tanh")
    first = record_run(history, "narrow", spec=first_spec, training={"lr": 0.001}, rate=0.3)
    second = record_run(history, "wide", spec=second_spec, training={"lr": 0.01, "optimizer": "sgd"}, epochs=4,
                        rate=0.8)
    view = show_runs(window, runs_ui, qtbot)
    view.select_runs([first, second])
    assert set(view.curves.items) == {first, second}
    for run_id in (first, second):
        epochs = history.get(run_id).epochs
        val_loss = next(item for item in view.curves.items[run_id] if item.name())  # the named one: validation loss
        assert list(val_loss.yData) == pytest.approx([row["val_loss"] for row in epochs])
        assert list(val_loss.xData) == [row["epoch"] for row in epochs]
        assert len(view.curves.items[run_id]) == 4  # loss and accuracy, validation and training
    legend = [label.text for _, label in view.curves.plots["loss"].legend.items]
    assert legend == [f"#{second} wide", f"#{first} narrow"]  # table order: newest first
    text = view.details.toPlainText()
    assert "training.lr" in text and "0.001" in text and "0.01" in text
    assert "training.optimizer" in text and "sgd" in text and "adam" in text
    assert "out_features 32 → 16" in text  # the first selected row (the newer run) is the reference
    assert "ReLU" in text and "Tanh" in text
    delta = analyze(first_spec).params - analyze(second_spec).params
    assert f"parameters −{format_count(-delta)}" in text
    view.select_runs([first])  # one run: its curves and its summary
    assert set(view.curves.items) == {first}
    assert "Run #" in view.details.toPlainText() and "90.00%" in view.details.toPlainText()


def test_open_design_asks_about_unsaved_changes_then_opens_the_runs_design(runs_ui, history, window, qtbot,
                                                                          message_boxes):
    spec = mlp(24)
    run_id = record_run(history, "from the run", spec=spec, training={"lr": 0.05, "batch_size": 16})
    window.document.edit_param(window.document.spec.layers[0].id, "out_channels", 7)  # unsaved changes
    edited = window.document.spec
    view = show_runs(window, runs_ui, qtbot)
    view.select_runs([run_id])
    message_boxes.answer = QMessageBox.StandardButton.Cancel
    view.open_action.trigger()
    assert window.document.spec == edited and "Save the changes" in message_boxes.texts[-1]
    message_boxes.answer = QMessageBox.StandardButton.Discard
    qtbot.keyClick(view.table, Qt.Key_Return)  # Enter opens the current run's design
    assert window.document.spec == spec and window.document.name == "from the run"
    assert window.document.extras["training"]["lr"] == 0.05 and window.document.extras["data"]["limit"] == 300
    assert window.document.path is None and not window.document.modified
    assert window.tabs.currentIndex() == 0


def test_delete_asks_then_removes_the_runs_and_never_the_designs_layers(runs_ui, history, window, qtbot,
                                                                       message_boxes):
    ids = [record_run(history, f"run{i}") for i in range(4)]
    view = show_runs(window, runs_ui, qtbot)
    layers = window.document.spec.layers
    window.stack_view.select_ids([layers[0].id])  # the window's Delete (layers) has something to delete
    view.select_runs(ids[1:3])
    view.table.setFocus()
    message_boxes.answer = QMessageBox.StandardButton.Cancel
    qtbot.keyClick(view.table, Qt.Key_Delete)
    assert history.count() == 4 and "these 2 runs" in message_boxes.texts[-1]
    message_boxes.answer = QMessageBox.StandardButton.Yes
    qtbot.keyClick(view.table, Qt.Key_Delete)
    assert sorted(run.id for run in history.list()) == [ids[0], ids[3]]
    assert sorted(run.id for run in view.model.runs) == [ids[0], ids[3]]
    assert window.document.spec.layers == layers
    view.select_runs([ids[0]])
    view.delete_action.trigger()
    assert [run.id for run in view.model.runs] == [ids[3]]


def test_a_window_run_appears_in_the_open_tab_and_its_saved_weights_load_back(runs_ui, history, window, qtbot,
                                                                             message_boxes, tmp_path):
    window.load_design(DesignFile(tiny_spec(), "tiny"))
    ui = training_ui(window, epochs=2)
    view = show_runs(window, ui, qtbot)
    assert view.model.rowCount() == 0
    with qtbot.waitSignal(ui.controller.finished, timeout=RUN_TIMEOUT_MS):
        ui.panel.start_action.trigger()
    window.tabs.setCurrentWidget(view)
    qtbot.waitUntil(lambda: view.model.rowCount() == 1 and view.model.runs[0].test_acc is not None)
    run = view.model.runs[0]
    assert (run.name, run.reason, run.epochs_done) == ("tiny", "completed", 2)
    assert len(history.get(run.id).epochs) == 2
    view.select_runs([run.id])
    assert not view.load_action.isEnabled()  # no weights saved yet
    weights = tmp_path / "tiny.pt"
    assert ui.weights.save_weights_to(weights)
    view.select_runs([run.id])  # the tab refreshed on its own: its selection stays
    assert history.get(run.id).weights_path == str(weights) and view.load_action.isEnabled()

    window.new_from("lenet")  # another design: loading asks whether to open the run's first
    message_boxes.answer = QMessageBox.StandardButton.Yes
    assert view.load_weights()
    assert "trained on its own design" in message_boxes.texts[-1]
    assert window.document.spec == NetworkSpec.from_dict(history.get(run.id).design)
    assert ui.controller.model_origin.made == LOADED
    weights.unlink()
    view.refresh()
    assert not view.load_action.isEnabled()
