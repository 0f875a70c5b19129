"""Training health in the window: a real run that kills its ReLU fills the Health view, lists the advice and puts a
health badge on the layer rows of the stack while it goes."""
from __future__ import annotations

import numpy as np

from engine.spec import LayerSpec, NetworkSpec
from engine.training import health, readback
from gui.document import DesignFile
from gui.stack_model import COL_NOTES, FOREGROUND, TOOLTIP
from gui.training import install_training
from gui.training.health_view import HEALTH_OFF, MEASURES

RUN_TIMEOUT_MS = 120_000


def dying_relu() -> NetworkSpec:
    return NetworkSpec((1, 28, 28), (
        LayerSpec("Flatten", id="flat"), LayerSpec("Linear", {"out_features": 32}, id="fc"),
        LayerSpec("ReLU", id="relu"), LayerSpec("Linear", {"out_features": 10}, id="out")))


def test_health_view_fills_lists_advice_and_rows_get_badges_during_a_run(window, qtbot, monkeypatch):
    monkeypatch.setattr(readback, "READBACK_INTERVAL_S", 0.0)  # a measured batch at every step: a few seconds fill it
    monkeypatch.setattr(health, "MEASURE_INTERVAL_S", 0.0)
    monkeypatch.setattr(health, "MEASURE_GAP_STEPS", 1)
    ui = getattr(window, "training", None) or install_training(window)
    doc = window.document
    window.load_design(DesignFile(dying_relu()))
    doc.set_extra("data", {"source": "mnist-sample", "limit": 300, "val_fraction": 0.2})
    doc.set_extra("training", {"epochs": 1, "batch_size": 32, "device": "cpu", "optimizer": "sgd", "lr": 5.0,
                               "momentum": 0.0})
    doc.undo_stack.setClean()
    model, view = window.stack_view.stack_model, ui.panel.health_view
    ui.panel.views.setCurrentWidget(view)
    relu_row = model.index(3, COL_NOTES)  # row 0 is the input; the ReLU is layer 2
    badges_seen = []
    ui.controller.healthSampled.connect(lambda sample: badges_seen.append(model.data(relu_row)))
    with qtbot.waitSignal(ui.controller.finished, timeout=RUN_TIMEOUT_MS) as finished:
        ui.panel.start_action.trigger()
    assert finished.args[0].reason == "completed", finished.args[0].message
    qtbot.waitUntil(lambda: not ui.controller.busy)

    # while it ran, the ReLU's row showed its dead units; the badge went when the run ended
    assert badges_seen and all(text.startswith("● dead ") for text in badges_seen if text)
    assert model.data(relu_row) in ("", None)
    # the Health view holds every measured batch, draws the chosen measure and lists the advice
    assert view.history.count == ui.controller.trainer.global_step
    view.measure_box.setCurrentIndex(next(i for i, m in enumerate(MEASURES) if m.field == "dead"))
    image = view.image.image
    assert image is not None and image.shape == (view.history.count, 1)  # one row: the ReLU
    assert np.nanmax(image) >= 0.5
    assert "Layer 2 (ReLU): " in view.advice_label.text() and "dead since epoch 1" in view.advice_label.text()
    ui.controller.shutdown()


def test_badges_are_red_for_a_layer_the_advice_names(window, qtbot):
    """The badge hook alone: the stack model shows a badge after the row's note, coloured by the advice."""
    from engine.training import HealthSample, LayerHealth
    from gui.training.health_view import badges

    model = window.stack_view.stack_model
    layers = window.document.spec.layers
    sample = HealthSample(3, 10, 40, (LayerHealth(0, layers[0].kind, 0.5, 0.01, 0.1, 1.0, None, None),
                                      LayerHealth(1, layers[1].kind, None, None, 0.5, 0.2, None, 0.97)),
                          (f"layer 1 ({layers[1].kind}): 97% of units saturated: use ReLU",))
    shown = badges(sample)
    model.set_badges({layers[index].id: badge for index, badge in shown.items()})
    first, second = model.index(1, COL_NOTES), model.index(2, COL_NOTES)
    assert model.data(first) == "● grad 5.0e-01" and model.data(second) == "● saturated 97%"
    assert model.data(second, FOREGROUND).color().name() != model.data(first, FOREGROUND).color().name()
    assert "97% of units saturated" in model.data(second, TOOLTIP)
    model.set_badges({})
    assert not model.data(first)


def test_health_off_says_so_in_the_view(qtbot):
    from gui.training.health_view import HealthView

    view = HealthView()
    qtbot.addWidget(view)
    view.begin_run(False)
    assert view.note.text() == HEALTH_OFF and view.history.count == 0
