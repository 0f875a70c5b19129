"""The Activations window, opened as a person opens it: from the Results tab (Test sample, a confusion cell, a
double-clicked picture) and the Predict tab, after loading weights from a file and after Evaluate; the numbers it
shows are those of the model itself, computed on a worker thread that the window's close waits for."""
from __future__ import annotations

import numpy as np
import pyqtgraph as pg
import pytest
import torch
from PySide6.QtCore import QPoint, QPointF, Qt
from PySide6.QtGui import QWheelEvent
from PySide6.QtWidgets import QApplication

from engine.build import build_model
from engine.data import DataConfig, load_data
from engine.io import save_weights
from engine.spec import LayerSpec, NetworkSpec
from gui.document import DesignFile
from gui.training import controller as states
from gui.training import install_training

TIMEOUT_MS = 60_000
DATA = {"source": "mnist-sample", "limit": 200, "val_fraction": 0.2}


def small_cnn() -> NetworkSpec:
    return NetworkSpec((1, 28, 28), (
        LayerSpec("Conv2d", {"out_channels": 4, "kernel_size": 5}, id="conv"), LayerSpec("ReLU", id="relu"),
        LayerSpec("MaxPool2d", {"kernel_size": 4}, id="pool"), LayerSpec("Flatten", id="flat"),
        LayerSpec("Linear", {"out_features": 10}, id="out")))


@pytest.fixture
def studio(qtbot, tmp_path):
    """A main window on the small CNN with the training tabs, and weights for it loaded from a .pt file."""
    from gui.main_window import MainWindow

    window = MainWindow()
    qtbot.addWidget(window)
    ui = getattr(window, "training", None) or install_training(window)
    window.document.load(DesignFile(small_cnn(), extras={"data": dict(DATA), "training": {"device": "cpu"}}))
    torch.manual_seed(0)
    path = tmp_path / "cnn.pt"
    save_weights(build_model(small_cnn()), path)
    ui.controller.load_weights(path)
    yield ui
    ui.activations.close()
    ui.controller.shutdown()
    assert ui.controller.running_threads() == []


def shown(qtbot, ui, action):
    """Run ``action`` and wait until the Activations window shows what it asked for."""
    with qtbot.waitSignal(ui.activations.shown, timeout=TIMEOUT_MS) as blocker:
        action()
    qtbot.waitUntil(lambda: not ui.controller.running_threads())
    return blocker.args[0]


def expected_probabilities(model, x: torch.Tensor) -> np.ndarray:
    model.eval()
    with torch.no_grad():
        return torch.softmax(model(x), dim=1)[0].numpy()


def items(view, kind) -> list:
    return [item for plot in view.findChildren(pg.PlotWidget) for item in plot.getPlotItem().items
            if isinstance(item, kind)]


def test_test_sample_from_results_after_loading_weights_and_the_wheel_scrolls(qtbot, studio):
    ui = studio
    assert ui.controller.data is None  # the data loads first, then the sample is shown
    ui.results.sample_spin.setValue(3)
    ui.activations.resize(900, 400)
    activations = shown(qtbot, ui, ui.results.activations_button.click)
    view = ui.activations
    assert view.isVisible() and view.windowTitle() == "Activations — test sample 3"
    data = ui.controller.data
    assert activations.source == "test sample 3" and activations.target == int(data.test_y[3])
    probabilities = expected_probabilities(ui.controller.model, data.test_x[3:4])
    np.testing.assert_allclose(view.bar_heights(), 100 * probabilities, rtol=1e-4)
    assert f"true <b>{int(data.test_y[3])}</b>" in view.headline.text()
    assert f"predicted <b>{int(probabilities.argmax())}</b>" in view.headline.text()
    # conv, ReLU and pooling maps and the filters as one image each; Linear and Flatten values, the
    # probabilities and the conv's and Linear's weight histograms as bars
    images = items(view, pg.ImageItem)
    assert len(images) == 4
    assert len(items(view, pg.BarGraphItem)) == 5

    # the wheel over a picture scrolls the window (the plots neither zoom nor pan)
    qtbot.waitExposed(view)
    bar = view.scroll.verticalScrollBar()
    qtbot.waitUntil(lambda: bar.maximum() > 0)  # the rows are laid out
    bar.setValue(bar.maximum())
    plot = view.findChildren(pg.PlotWidget)[-1]
    before = bar.value()
    assert before > 0
    wheel = QWheelEvent(QPointF(20, 20), QPointF(plot.mapToGlobal(QPoint(20, 20))), QPoint(0, 0), QPoint(0, 120),
                        Qt.NoButton, Qt.NoModifier, Qt.NoScrollPhase, False)
    QApplication.sendEvent(plot.viewport(), wheel)
    assert bar.value() < before


def test_a_confusion_cell_and_a_double_clicked_picture_pick_the_sample(qtbot, studio):
    ui = studio
    with qtbot.waitSignal(ui.controller.evaluated, timeout=TIMEOUT_MS):
        ui.results.evaluate_or_stop()
    qtbot.waitUntil(lambda: ui.controller.state == states.IDLE)
    confusion = ui.results.evaluation.confusion
    cell = next((t, p) for t in range(10) for p in range(10) if t != p and confusion[t][p])
    indices = ui.results.select_cell(*cell)
    assert ui.results.sample_spin.value() == indices[0]
    activations = shown(qtbot, ui, ui.results.activations_button.click)
    assert activations.source == f"test sample {indices[0]}"
    assert activations.target == cell[0] and activations.predicted == cell[1]  # the cell's own sample

    grid = ui.results.samples
    ui.results.show_all_samples()
    item = grid.item(5)
    rect = grid.visualItemRect(item)
    qtbot.mouseClick(grid.viewport(), Qt.LeftButton, pos=rect.center())
    assert ui.results.sample_spin.value() == item.data(Qt.UserRole)
    activations = shown(qtbot, ui, lambda: qtbot.mouseDClick(grid.viewport(), Qt.LeftButton, pos=rect.center()))
    assert activations.source == f"test sample {item.data(Qt.UserRole)}"


def test_the_predicted_input_from_the_predict_tab(qtbot, studio, tmp_path):
    from tests.digits import write_digit

    ui = studio
    ui.controller.use_data(load_data(DataConfig.from_dict(DATA)), DataConfig.from_dict(DATA))
    path = tmp_path / "seven.png"
    write_digit(path, 0)
    result = ui.predict.predict_image(path)
    assert result is not None and ui.predict.activations_button.isEnabled()
    activations = shown(qtbot, ui, ui.predict.activations_button.click)
    assert activations.source == "seven.png" and activations.target is None
    np.testing.assert_allclose(ui.activations.bar_heights(), [100 * p for p in result.scores], rtol=1e-4)


def test_refusals_are_sentences_in_the_window(qtbot, studio):
    ui = studio
    ui.results.sample_spin.setValue(5000)
    with qtbot.waitSignal(ui.activations.failed, timeout=TIMEOUT_MS) as blocker:
        ui.results.activations_button.click()
    assert blocker.args[0] == "There is no test sample 5000: the test split has 1,000 samples, numbered 0 to 999."
    assert ui.activations.problem.isVisible() and ui.activations.problem.text() == blocker.args[0]
    qtbot.waitUntil(lambda: not ui.controller.running_threads())

    ui.controller.model = None
    with qtbot.waitSignal(ui.activations.failed) as blocker:
        ui.activations.show_test_sample(0)
    assert blocker.args[0].startswith("There are no weights yet: train the design (Training tab) or load weights")
