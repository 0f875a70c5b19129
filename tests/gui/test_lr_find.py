"""Find learning rate on the Training tab: a real sweep on the bundled sample, on a copy of the model."""
from __future__ import annotations

import math

import pytest
import torch

from engine.build import build_model
from engine.io import save_weights
from engine.training.config import LRFindConfig
from gui.training import install_training
from gui.training.lr_find import STOPPED, SWEEPING
from tests.gui.helpers import load
from tests.gui.test_training import SMALL_DATA, tiny_spec

TIMEOUT_MS = 120_000


@pytest.fixture
def finder(window):
    ui = getattr(window, "training", None) or install_training(window)
    load(window, tiny_spec())
    doc = window.document
    doc.extras.update({"training": {"batch_size": 32, "device": "cpu", "seed": 0, "lr": 0.001},
                       "data": dict(SMALL_DATA)})
    doc.extrasChanged.emit("training")
    window.tabs.setCurrentWidget(ui.panel)
    section = ui.panel.lr_finder
    section.sweep = LRFindConfig(start_lr=1e-5, end_lr=10.0, steps=40)
    return section


def sweep(qtbot, section) -> None:
    section.find_button.click()
    qtbot.waitUntil(lambda: not section.running, timeout=TIMEOUT_MS)


def test_sweep_shows_the_curve_and_use_it_is_one_undo_step(window, finder, qtbot, tmp_path):
    ui, doc = window.training, window.document
    path = tmp_path / "start.pt"
    save_weights(build_model(doc.spec), path)
    ui.controller.load_weights(path)  # the next run, and the sweep, start from these
    before = {k: v.clone() for k, v in ui.controller.model.state_dict().items()}
    sweep(qtbot, finder)
    finding = finder.finding
    assert finding is not None and finding.suggestion is not None, finder.message.text()
    assert all(torch.equal(before[k], v) for k, v in ui.controller.model.state_dict().items())  # a copy swept
    assert ui.panel.views.currentWidget() is finder.plot  # the curve's tab comes forward
    xs, ys = finder.smooth_curve.getData()
    assert len(xs) == len(finding.lrs) and list(ys) == pytest.approx(list(finding.smoothed))
    assert finder.marker.isVisible() and finder.marker.value() == pytest.approx(math.log10(finding.suggestion))
    value = float(f"{finding.suggestion:.2g}")
    assert finder.marker.label.toPlainText() == f"suggested {finding.suggestion:.2g}"
    assert f"Suggested learning rate: {value:g}" in finder.message.text()
    assert finder.use_button.isVisible() and finder.use_button.isEnabled()

    finder.use_button.click()
    assert doc.extras["training"]["lr"] == value
    assert ui.panel.train_form.values()["lr"] == pytest.approx(value)
    assert doc.undo_stack.undoText() == f"Use learning rate {value:g}"
    assert not finder.earlier_note.isVisible()  # the learning rate is the sweep's own business
    window.actions["undo"].trigger()
    assert doc.extras["training"]["lr"] == 0.001
    assert ui.panel.train_form.values()["lr"] == pytest.approx(0.001)

    doc.edit_param("hidden", "out_features", 24)  # the curve is now of a design that is gone: said so
    assert finder.earlier_note.isVisible()
    doc.undo_stack.undo()
    assert not finder.earlier_note.isVisible()


def test_stop_ends_the_sweep_and_train_and_cost_view_wait_for_it(window, finder, qtbot):
    panel, costs = window.training.panel, window.training.cost_view
    finder.sweep = LRFindConfig(steps=1000)
    costs.set_shown(True)
    assert costs.measuring
    finder.find_button.click()
    assert finder.running and not panel.start_action.isEnabled()
    assert panel.start_action.toolTip() == SWEEPING
    assert not costs.measure() and "learning-rate sweep" in costs.line.text()
    qtbot.waitUntil(lambda: not costs.measuring, timeout=TIMEOUT_MS)  # the measurement under way was stopped
    qtbot.waitUntil(lambda: finder.progress.value() > 0, timeout=TIMEOUT_MS)
    finder.stop_button.click()
    qtbot.waitUntil(lambda: not finder.running, timeout=TIMEOUT_MS)
    assert finder.message.text() == STOPPED and finder.finding is None
    assert panel.start_action.isEnabled() and finder.find_button.isEnabled()


def test_problems_are_sentences(window, finder, qtbot, tmp_path):
    doc = window.document
    finder.sweep = LRFindConfig(start_lr=1e4, end_lr=1e6, steps=20)  # explodes at once
    doc.extras["training"]["optimizer"] = "sgd"
    sweep(qtbot, finder)
    text = finder.message.text()
    assert finder.finding.suggestion is None and not finder.use_button.isVisible()
    assert "Traceback" not in text and text.endswith(".") and "suggest a learning rate" in text

    doc.extras["data"] = {"source": "csv", "root": str(tmp_path / "missing.csv")}
    doc.extrasChanged.emit("data")
    sweep(qtbot, finder)
    text = finder.message.text()
    assert "missing.csv" in text and "Traceback" not in text and text[0].isupper()

    doc.add_kind(1, "Conv2d")  # after Flatten: an error
    assert not finder.find_button.isEnabled()
    assert finder.find_button.toolTip().startswith("The design has an error at layer 1 (Conv2d)")
