"""Train is one action (the tab's button, the footer's, F5) with one name; off, it says why; its off and running
states, and a form that is off, look so; F5 shows the Training tab; Batch size warns below the design's smallest
batch; the help covers training, results, weights and checkpoints and lists every key the window has."""
from __future__ import annotations

from collections import Counter

from PySide6.QtCore import Qt
from PySide6.QtGui import QColor, QKeySequence
from PySide6.QtWidgets import QWidget

from engine.spec import LayerSpec, NetworkSpec
from gui.dialogs import HELP_SECTIONS, help_html
from gui.document import DesignFile
from gui.stack_model import COL_NOTES, LayerStackModel
from gui.training import controller as states
from tests.gui.test_training import RUN_TIMEOUT_MS, make_document
from tests.gui.test_training_window import training_ui


def main_color(widget) -> str:
    """The colour most of the widget is painted in (its background)."""
    image = widget.grab().toImage()
    counts = Counter(image.pixel(x, y) for x in range(0, image.width(), 2) for y in range(0, image.height(), 2))
    return QColor.fromRgb(counts.most_common(1)[0][0]).name()


def darkest(widget) -> int:
    """The lightness of the darkest pixel: text and marks that are off are drawn lighter."""
    image = widget.grab().toImage()
    return min(QColor.fromRgb(image.pixel(x, y)).lightness()
               for x in range(image.width()) for y in range(image.height()))


def test_train_is_one_action_with_one_name_and_its_states_show(window, qtbot):
    ui = training_ui(window, epochs=100_000)
    footer, tab_button = window.train_button, ui.panel.start_button
    assert footer.defaultAction() is tab_button.defaultAction() is ui.panel.start_action
    assert footer.text() == tab_button.text() == "Train" and footer.isEnabled()
    idle = main_color(footer)
    stop_off, stop_off_text = main_color(ui.panel.stop_button), darkest(ui.panel.stop_button)
    with qtbot.waitSignal(ui.controller.batchEnded, timeout=RUN_TIMEOUT_MS):
        qtbot.mouseClick(footer, Qt.LeftButton)
    assert window.tabs.currentWidget() is ui.panel
    assert footer.text() == tab_button.text() == "Training…"
    assert not footer.isEnabled() and footer.toolTip().startswith("A run is going")
    assert footer.property("runState") == tab_button.property("runState") == states.RUNNING
    running = main_color(footer)
    assert darkest(ui.panel.stop_button) < stop_off_text and main_color(ui.panel.stop_button) != stop_off
    with qtbot.waitSignal(ui.controller.finished, timeout=RUN_TIMEOUT_MS):
        ui.panel.stop_action.trigger()
    assert footer.text() == "Train" and footer.isEnabled() and main_color(footer) == idle
    window.load_design(DesignFile(NetworkSpec((1, 28, 28)), "empty"))
    off = main_color(footer)
    assert len({idle, running, off}) == 3  # ready, running and off all look different


def test_a_disabled_train_says_why(window, qtbot):
    summary = window.summary
    summary.set_waiting_for("PyTorch is still loading.")  # what the app does until training is attached
    assert not window.train_button.isEnabled() and window.train_button.toolTip() == "PyTorch is still loading."
    summary.set_waiting_for("")
    assert window.train_button.isEnabled()
    ui = training_ui(window)
    window.load_design(DesignFile(NetworkSpec((1, 28, 28)), "empty"))
    assert not window.train_button.isEnabled() and window.train_button.toolTip() == "Add layers first."
    window.load_design(DesignFile(NetworkSpec((28, 28), (LayerSpec("Conv2d"),)), "flat"))
    tip = window.train_button.toolTip()
    assert tip.startswith("The design has an error at layer 0 (Conv2d):") and "28x28" in tip
    assert ui.panel.start_action.toolTip() == tip and not ui.panel.start_button.isEnabled()
    qtbot.keyClick(window, Qt.Key_F5)  # off: nothing starts
    assert ui.controller.state == states.IDLE


def test_f5_from_any_tab_shows_the_training_tab(window, qtbot):
    ui = training_ui(window, epochs=100_000)
    for index in (0, 1):  # Design, Code
        window.tabs.setCurrentIndex(index)
        with qtbot.waitSignal(ui.controller.batchEnded, timeout=RUN_TIMEOUT_MS):
            qtbot.keyClick(window, Qt.Key_F5)
        assert window.tabs.currentWidget() is ui.panel
        with qtbot.waitSignal(ui.controller.finished, timeout=RUN_TIMEOUT_MS):
            qtbot.keyClick(window, Qt.Key_F5, Qt.ShiftModifier)


def test_settings_look_off_while_a_run_goes(area, qtbot):
    ui = area(make_document(training={"epochs": 100_000}))
    ui.panel.resize(1000, 1400)
    ui.panel.show()
    form = ui.panel.data_form
    normalise = form.widget("normalize")
    label = form.layout_.labelForField(normalise)
    assert normalise.isChecked()
    before = darkest(normalise), darkest(label)
    with qtbot.waitSignal(ui.controller.batchEnded, timeout=RUN_TIMEOUT_MS):
        ui.panel.start_action.trigger()
    assert not normalise.isEnabled()
    during = darkest(normalise), darkest(label)
    assert during[0] > before[0] + 40 and during[1] > before[1] + 40  # the tick and the label are grey
    assert ui.run(start=ui.panel.stop_action.trigger).reason == "stopped"
    assert (darkest(normalise), darkest(label)) == before


def batchnorm_design() -> NetworkSpec:
    return NetworkSpec((1, 28, 28), (
        LayerSpec("Flatten", id="flat"), LayerSpec("Linear", {"out_features": 16}, id="hidden"),
        LayerSpec("BatchNorm1d", id="norm"), LayerSpec("ReLU", id="relu"),
        LayerSpec("Linear", {"out_features": 10}, id="out")))


def test_batch_size_below_the_designs_smallest_batch_is_warned_under_the_field_and_on_the_row(area, qtbot):
    ui = area(make_document(batchnorm_design()))
    stack = LayerStackModel(ui.doc)

    def row_note(layer_id: str) -> str:
        return stack.data(stack.index_of(layer_id, COL_NOTES))

    form = ui.panel.train_form
    batch = form.widget("batch_size")
    note = form._notes.get("batch_size")
    assert note is None or not note.isVisibleTo(ui.panel)
    batch.setValue(1)
    note = form._notes["batch_size"]
    assert note.isVisibleTo(ui.panel) and batch.property("warning") is True
    assert note.text().startswith("Batch size 1 is too small for layer 2 (BatchNorm1d), which needs training batches "
                                  "of 2 or more (it normalises over the batch): set ")
    assert note.text().endswith(" to 2 or more.")
    assert batch.toolTip() == note.text()
    assert row_note("norm").startswith("batch size 1 is too small: this layer needs training batches of 2")
    assert row_note("hidden") == "" and row_note("relu") == ""
    result = ui.run(start=ui.controller.start)  # the trainer refuses it with the same sentence
    assert result.reason == "error" and note.text() in result.message
    ui.panel.close_failure_dialog()
    batch.setValue(2)
    assert not note.isVisibleTo(ui.panel) and batch.property("warning") is False
    assert row_note("norm") == ""
    batch.setValue(1)
    ui.doc.delete_layers(["norm"])  # the design no longer needs 2
    assert not note.isVisibleTo(ui.panel)
    ui.doc.undo_stack.undo()
    assert note.isVisibleTo(ui.panel)
    ui.doc.load(DesignFile(batchnorm_design(), "other", "", {"training": {"batch_size": 64}}))
    assert not note.isVisibleTo(ui.panel)


def test_help_covers_training_results_weights_checkpoints_and_every_key(window):
    ui = training_ui(window)
    text = help_html(window)
    titles = [title for title, _ in HELP_SECTIONS]
    assert {"Training", "Results", "Predict", "Weights", "Checkpoints"} <= set(titles)
    for action in ui.weights.actions:  # File menu entries of the training GUI, by name
        assert action.text().rstrip("…") in text
    actions = [a for menu in window.menuBar().actions() if menu.menu() for a in menu.menu().actions()]
    actions += QWidget.actions(window)  # Train, Pause, Stop: window-wide keys in no menu
    keyed = [a for a in actions if not a.shortcut().isEmpty()]
    assert {"F5", "F6", "Shift+F5", "F1", "Ctrl+Q"} <= {a.shortcut().toString() for a in keyed}
    for action in keyed:
        for key in action.shortcuts():
            assert key.toString(QKeySequence.SequenceFormat.NativeText) in text, action.text()
