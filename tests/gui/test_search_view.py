"""The Search tab: real optuna searches of a tiny MLP on the bundled MNIST sample (a few hundred samples)."""
from __future__ import annotations

import pytest

from engine.search import apply_params
from gui.search import view as search_view
from gui.search.plots import MIN_TRIALS_FOR_IMPORTANCE, complete
from gui.training import controller as states
from gui.training import install_training
from gui.training.status import SEARCH_GOING
from tests.gui.helpers import load
from tests.gui.test_training import SMALL_DATA, tiny_spec

TIMEOUT_MS = 120_000
TRAINING = {"epochs": 1, "batch_size": 32, "device": "cpu", "seed": 0, "lr": 0.001}


@pytest.fixture
def tab(window):
    """The Search tab over the tiny MLP with one-epoch runs on 300 samples of the bundled sample."""
    ui = getattr(window, "training", None) or install_training(window)
    load(window, tiny_spec())
    doc = window.document
    doc.extras.update({"training": dict(TRAINING), "data": dict(SMALL_DATA)})
    doc.extrasChanged.emit("training")
    window.tabs.setCurrentWidget(ui.search)
    form = ui.search.form
    form.rows["batch_size"].high.setText("64")  # within the 240 training samples
    form.pruner_choice.setCurrentIndex(form.pruner_choice.findData("none"))
    form.trials_spin.setValue(3)
    return ui.search


def finish(qtbot, view) -> None:
    view.start_button.click()
    qtbot.waitUntil(lambda: not view.running, timeout=TIMEOUT_MS)
    qtbot.waitUntil(lambda: view.controller.state == states.IDLE and not view.controller.running_threads(),
                    timeout=TIMEOUT_MS)


def test_a_search_fills_the_table_and_the_plots(tab, qtbot):
    tab.form.width_row.check.setChecked(True)  # a design knob too: the hidden Linear's width
    assert tab.start_button.isEnabled(), tab.start_button.toolTip()
    finish(qtbot, tab)
    trials = tab.trials.trials
    assert [t.number for t in trials] == [0, 1, 2]
    assert all(t.state == "complete" and t.epoch == 1 for t in trials), [(t.state, t.reason) for t in trials]
    assert {"lr", "batch_size", "width"} <= set(trials[0].params)
    model = tab.trials
    assert model.rowCount() == 3
    assert model.data(model.index(2, 1)) == "complete"
    assert f"lr {trials[2].params['lr']:.4g}" in model.data(model.index(2, 3))
    assert "3 complete" in tab.status.text()
    xs, ys = tab.best_plot.dots.getData()
    assert list(xs) == [0, 1, 2] and list(ys) == pytest.approx([t.value for t in trials])
    assert min(tab.best_plot.best.getData()[1]) == pytest.approx(min(t.value for t in trials))
    assert len(tab.parallel_plot.lines) == 3  # one line per complete trial
    ticks = [label for _x, label in tab.parallel_plot.plot.getAxis("bottom")._tickLevels[0]]
    assert {"lr", "batch_size", "width", "validation loss"} <= set(ticks)
    importance = tab.importance_plot.values
    assert set(importance) <= set().union(*(t.params for t in trials)) and "lr" in importance
    assert sum(importance.values()) == pytest.approx(1.0)
    assert tab.importance_plot.bars is not None
    best = min(trials, key=lambda t: t.value)
    assert f"Best: trial {best.number}" in tab.best_label.text()


def test_importance_waits_for_two_complete_trials(tab, qtbot):
    tab.form.trials_spin.setValue(1)
    finish(qtbot, tab)
    assert len(complete(tab.trials.trials)) == 1
    note = tab.importance_plot.note.text()
    assert f"at least {MIN_TRIALS_FOR_IMPORTANCE} complete trials (1 so far)" in note
    assert tab.importance_plot.bars is None and tab.importance_plot.values == {}
    assert len(tab.parallel_plot.lines) == 1  # one trial is enough for its line


def test_apply_best_is_one_undo_step_for_design_and_settings(window, tab, qtbot):
    doc = window.document
    tab.form.width_row.check.setChecked(True)
    finish(qtbot, tab)
    spec_before, training_before = doc.spec, dict(doc.extras["training"])
    steps = doc.undo_stack.count()
    best = tab.best_trial()
    expected_spec, expected_training = apply_params(tab.job.spec, tab.job.training, best.params)
    assert expected_spec != spec_before  # the width knob changed the hidden layer
    tab.apply_button.click()
    assert doc.undo_stack.count() == steps + 1
    assert doc.undo_stack.undoText() == f"Apply best trial {best.number}"
    assert doc.spec == expected_spec
    assert doc.extras["training"] == expected_training
    assert doc.extras["training"]["lr"] == best.params["lr"]
    assert window.training.panel.train_form.values()["lr"] == pytest.approx(best.params["lr"])  # the form follows
    window.actions["undo"].trigger()  # Ctrl+Z: both come back
    assert doc.spec == spec_before
    assert doc.extras["training"] == training_before
    window.actions["redo"].trigger()
    assert doc.spec == expected_spec and doc.extras["training"] == expected_training


def test_stop_ends_the_search_within_a_batch(window, tab, qtbot):
    doc = window.document
    doc.extras.update({"training": {**TRAINING, "epochs": 1000, "batch_size": 1},
                       "data": {**SMALL_DATA, "limit": 1000}})
    doc.extrasChanged.emit("training")
    tab.form.rows["batch_size"].check.setChecked(False)  # batches of 1: hundreds of batches an epoch
    tab.form.trials_spin.setValue(50)
    tab.start_button.click()
    assert tab.running and tab.stop_button.isEnabled() and not tab.start_button.isEnabled()
    qtbot.waitUntil(lambda: any(t.state == "running" for t in tab.trials.trials), timeout=TIMEOUT_MS)
    tab.stop_button.click()
    qtbot.waitUntil(lambda: not tab.running, timeout=TIMEOUT_MS)
    trials = tab.trials.trials
    assert len(trials) == 1
    assert trials[0].state == "failed" and trials[0].reason == "Stopped before it finished."
    assert trials[0].epoch == 0  # it did not even finish its first epoch: stopped at a batch
    assert search_view.STOPPED in tab.status.text()
    qtbot.waitUntil(lambda: tab.controller.state == states.IDLE, timeout=TIMEOUT_MS)  # once its thread ended
    assert not tab.controller.running_threads()
    assert tab.start_button.isEnabled()


def test_nothing_starts_beside_a_training_run_or_a_search(window, tab, qtbot):
    controller, panel = tab.controller, window.training.panel
    doc = window.document
    doc.extras["training"] = {**TRAINING, "epochs": 100_000}
    doc.extrasChanged.emit("training")
    with qtbot.waitSignal(controller.batchEnded, timeout=TIMEOUT_MS):
        panel.start_action.trigger()
    assert not tab.start_button.isEnabled() and tab.start_button.toolTip() == search_view.RUN_GOING
    assert not tab.start() and not tab.running
    with qtbot.waitSignal(controller.finished, timeout=TIMEOUT_MS):
        panel.stop_action.trigger()
    qtbot.waitUntil(lambda: controller.state == states.IDLE, timeout=TIMEOUT_MS)

    doc.extras["training"] = {**TRAINING, "epochs": 1000, "batch_size": 1}
    doc.extrasChanged.emit("training")
    tab.form.rows["batch_size"].check.setChecked(False)
    tab.form.trials_spin.setValue(50)
    assert tab.start()
    assert controller.state == states.SEARCHING
    assert not panel.start_action.isEnabled() and panel.start_action.toolTip() == SEARCH_GOING
    assert not controller.start() and not controller.load_data() and not controller.evaluate()
    assert panel.lr_finder.blocker() and not panel.lr_finder.start()
    assert not doc.read_only  # the search runs on a snapshot: the design stays editable
    tab.stop()
    qtbot.waitUntil(lambda: controller.state == states.IDLE, timeout=TIMEOUT_MS)  # once the search's thread ended
    assert not tab.running and not controller.running_threads() and panel.start_action.isEnabled()


def test_closing_the_window_stops_the_search_and_waits(window, tab, qtbot):
    doc = window.document
    doc.extras["training"] = {**TRAINING, "epochs": 1000, "batch_size": 1}
    doc.extrasChanged.emit("training")
    tab.form.rows["batch_size"].check.setChecked(False)
    tab.form.trials_spin.setValue(50)
    tab.start_button.click()
    qtbot.waitUntil(lambda: any(t.state == "running" for t in tab.trials.trials), timeout=TIMEOUT_MS)
    doc.undo_stack.setClean()
    assert window.close()
    assert not tab.controller.running_threads()  # closed, and the search's thread is gone


@pytest.mark.parametrize(("name", "low", "high", "says"), [
    ("lr", "0.1", "0.001", "low (0.1) must not be above high (0.001)"),
    ("lr", "fast", "0.1", "Low must be a number, like 0.001 or 1e-3."),
    ("lr", "0", "0.1", "low must be a number between 1e-08 and"),
    ("weight_decay", "0", "0.1", "is on a log scale, so its low end must be above 0 (0 is tried as well)"),
    ("batch_size", "8.5", "64", "low must be a whole number"),
])
def test_a_bad_range_is_explained_on_its_row_and_start_waits(tab, name, low, high, says):
    row = tab.form.rows[name]
    row.low.setText(low)
    row.high.setText(high)
    assert not row.problem.isHidden() and says in row.problem.text()
    assert not tab.start_button.isEnabled()
    assert tab.start_button.toolTip() == "Fix the search settings marked in red first."
    assert not tab.why_off.isHidden() and tab.why_off.text() == tab.start_button.toolTip()
    row.check.setChecked(False)  # a row not searched is not checked
    assert row.problem.isHidden() and tab.start_button.isEnabled() and tab.why_off.isHidden()


def test_the_knobs_follow_the_design(window, tab):
    form = tab.form
    assert not form.dropout_row.check.isEnabled() and not form.repeat_row.check.isEnabled()
    assert "no dropout layer" in form.knob_note.text()
    doc = window.document
    doc.add_kind(len(doc.spec.layers) - 1, "Dropout")
    assert form.dropout_row.check.isEnabled() and "no dropout layer" not in form.knob_note.text()
    form.dropout_row.check.setChecked(True)
    form.dropout_row.high.setText("1.5")
    assert "dropout" in form.dropout_row.problem.text() and not tab.start_button.isEnabled()
    form.dropout_row.high.setText("0.4")
    assert form.space().dropout == (0.0, 0.4)
    form.rows["lr"].check.setChecked(False)
    form.rows["weight_decay"].check.setChecked(False)
    form.rows["batch_size"].check.setChecked(False)
    form.dropout_row.check.setChecked(False)
    assert form.problems() == ["Tick at least one setting or design knob to search."]
