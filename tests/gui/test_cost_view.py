"""The Cost view: engine.profile's figures as stack columns, measured off the UI thread, never stale as current."""
from __future__ import annotations

import time

import pytest
from PySide6.QtCore import QModelIndex, QObject, Qt, QTimer

from engine.memory import format_bytes
from engine.profile import profile_design
from engine.profile_command import milliseconds
from gui.cost_view import CHEAP_S, COST_COLUMNS, summary_line
from gui.stack_model import COLUMNS, MUTED
from gui.training import install_training
from gui.training.controller import SHUTDOWN_WAIT_S
from tests.gui.helpers import load
from tests.gui.test_training import SMALL_DATA, tiny_spec

TIMEOUT_MS = 60_000
SETTINGS = {"batch_size": 32, "device": "cpu", "epochs": 1, "seed": 0}


@pytest.fixture
def costs(window, qtbot):
    """The window on a tiny MLP with the Cost view installed (not yet shown); every update is checked: figures
    shown as current are always those of the design and settings as they are."""
    ui = getattr(window, "training", None) or install_training(window)
    load(window, tiny_spec())
    window.document.extras.update({"training": dict(SETTINGS), "data": dict(SMALL_DATA)})
    view = ui.cost_view

    def never_stale_as_current() -> None:
        if view.columns.profile is not None and not view.columns.stale:
            assert view._profile_key == view.current_key()

    view.updated.connect(never_stale_as_current)
    return view


def cost_cell(window, layer: int, offset: int, role=Qt.ItemDataRole.DisplayRole):
    model = window.stack_view.stack_model
    return model.data(model.index(layer + 1, len(COLUMNS) + offset, QModelIndex()), role)


def wait_current(qtbot, view) -> None:
    qtbot.waitUntil(lambda: view.current and not view.measuring, timeout=TIMEOUT_MS)


def test_toggle_adds_columns_with_the_engines_figures(window, costs, qtbot):
    model = window.stack_view.stack_model
    assert model.columnCount() == len(COLUMNS)
    window.actions["cost_view"].trigger()
    assert model.columnCount() == len(COLUMNS) + len(COST_COLUMNS)
    assert [model.headerData(len(COLUMNS) + i, Qt.Orientation.Horizontal) for i in range(len(COST_COLUMNS))] == \
        [title for title, _ in COST_COLUMNS]
    header = window.stack_view.header()
    assert header.visualIndex(len(COLUMNS) - 1) == header.count() - 1  # Notes stays the last column
    wait_current(qtbot, costs)
    profile = costs.profile
    engine = profile_design(window.document.spec, 32, "cpu", "adam")  # sizes are exact, times are measured
    for i, (shown, measured) in enumerate(zip(profile.rows, engine.rows, strict=True)):
        assert (shown.saved_bytes, shown.output_bytes) == (measured.saved_bytes, measured.output_bytes)
        assert cost_cell(window, i, 0) == milliseconds(shown.forward_ms)
        assert cost_cell(window, i, 3) == format_bytes(measured.output_bytes)
        assert cost_cell(window, i, 2) == (format_bytes(measured.saved_bytes) if measured.saved_bytes else "")
    assert profile.totals.peak_bytes == engine.totals.peak_bytes
    assert costs.line.isVisible() and costs.line.text() == summary_line(profile)
    assert costs.line.text().startswith("Batch 32 on CPU: ")
    tinted = [i for i in range(len(profile.rows)) if cost_cell(window, i, 3, Qt.ItemDataRole.BackgroundRole)]
    biggest = max(range(len(profile.rows)), key=lambda i: profile.rows[i].saved_bytes + profile.rows[i].output_bytes)
    assert biggest in tinted and len(tinted) < len(profile.rows)

    window.actions["cost_view"].trigger()
    assert model.columnCount() == len(COLUMNS) and not costs.line.isVisible()


def test_measuring_leaves_the_ui_thread_free(window, costs, qtbot):
    order = []
    costs.updated.connect(lambda: costs.current and order.append("figures"))
    QTimer.singleShot(0, lambda: order.append("timer"))
    window.actions["cost_view"].trigger()
    assert costs.measuring and costs.profile is None  # the toggle returned before the measurement ended
    assert "Cost: measuring" in costs.line.text()
    wait_current(qtbot, costs)
    assert order.index("timer") < order.index("figures")


def test_edits_grey_the_figures_then_measure_again(window, costs, qtbot):
    window.actions["cost_view"].trigger()
    wait_current(qtbot, costs)
    doc = window.document
    doc.edit_param("hidden", "out_features", 24)
    assert not costs.current and costs.columns.stale
    assert cost_cell(window, 1, 3, Qt.ItemDataRole.ForegroundRole).color() == MUTED
    assert "before your edit" in costs.line.text() or "measuring again" in costs.line.text()
    if costs.last_seconds >= CHEAP_S:  # a slow machine: the edit waits for Measure again
        qtbot.wait(400)
        assert not costs.measuring and "Measure again" in costs.line.text()
        costs.measure()
    wait_current(qtbot, costs)
    assert cost_cell(window, 1, 3) == format_bytes(24 * 32 * 4)
    assert cost_cell(window, 1, 3, Qt.ItemDataRole.ForegroundRole) is None

    doc.add_kind(1, "Conv2d")  # a Conv2d after Flatten: an error
    assert [cost_cell(window, i, 0) for i in range(len(doc.spec.layers))] == [None] * len(doc.spec.layers)
    assert costs.line.text().startswith("Cost: the design has an error at layer 1 (Conv2d)")
    qtbot.wait(400)
    assert not costs.measuring


def test_never_measures_beside_a_run(window, costs, qtbot):
    ui = window.training
    window.actions["cost_view"].trigger()
    wait_current(qtbot, costs)
    window.document.edit_param("hidden", "out_features", 20)
    with qtbot.waitSignal(ui.controller.finished, timeout=120_000):
        assert ui.controller.start()
        assert not costs.measuring
        assert "waits until the run ends" in costs.line.text()
        assert not costs.measure()  # on demand too
    if costs.last_seconds >= CHEAP_S:
        costs.measure()
    wait_current(qtbot, costs)


def test_closing_the_window_stops_a_measurement(window, costs, qtbot, caplog):
    controller = window.training.controller
    qtbot.waitUntil(lambda: not controller.running_threads(), timeout=TIMEOUT_MS)  # torch's warm-up, not stoppable
    window.actions["cost_view"].trigger()
    assert costs.measuring
    started = time.monotonic()
    controller.shutdown()  # what closing the window does
    assert time.monotonic() - started < SHUTDOWN_WAIT_S
    assert controller.running_threads() == []
    qtbot.waitUntil(lambda: not costs.measuring)  # its end arrives as a queued signal
    assert costs.profile is None
    assert "did not stop" not in caplog.text


def test_a_measurement_asked_for_while_closing_never_starts(window, costs, qtbot):
    """An edit during a measurement queues another; the window closing first must not let it start afterwards
    (its thread would outlive the controller that owns it: Qt aborts the process)."""
    controller = window.training.controller
    qtbot.waitUntil(lambda: not controller.running_threads(), timeout=TIMEOUT_MS)  # torch's warm-up, not stoppable
    window.actions["cost_view"].trigger()
    assert costs.measuring
    window.document.edit_param("hidden", "out_features", 24)
    costs.measure()  # the next measurement waits for the running one
    controller.shutdown()
    qtbot.waitUntil(lambda: not costs.measuring)  # the queued end arrives, and would start the next one
    assert controller.running_threads() == [] and not controller.launch_helper(QObject(), lambda: None)


def test_a_failed_measurement_says_why_in_a_sentence(window, costs, qtbot):
    doc = window.document
    doc.add_kind(2, "BatchNorm1d")  # after the hidden Linear: needs batches of 2 or more
    doc.extras["training"]["batch_size"] = 1
    doc.extrasChanged.emit("training")
    window.actions["cost_view"].trigger()
    qtbot.waitUntil(lambda: bool(costs.problem) and not costs.measuring, timeout=TIMEOUT_MS)
    text = costs.line.text()
    assert "Batch size" in text and "Traceback" not in text and "Measure again" in text
    assert cost_cell(window, 0, 0) is None  # no figures
