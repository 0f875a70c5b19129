"""Per-layer initialisation and parameter statistics in the window: the inspector's Initialisation box edits the
design through the undo stack, its Parameter tensors box shows what torch holds (state_dict names and values) for
the model a run starts from and, after a run, for the trained weights; the Code tab's script applies the inits."""
from __future__ import annotations

import torch
from PySide6.QtCore import Qt

from engine.layer_init import METHODS, TensorInit, methods_for
from engine.parameters import initial_model
from engine.spec import LayerSpec, NetworkSpec
from engine.training import TrainConfig
from gui.app import attach_training
from gui.document import DesignFile
from tests.gui.test_training import QUICK_RUN, RUN_TIMEOUT_MS, SMALL_DATA


def conv_design() -> NetworkSpec:
    return NetworkSpec((1, 28, 28), (
        LayerSpec("Conv2d", {"out_channels": 4, "kernel_size": 5, "stride": 4}, "conv"), LayerSpec("ReLU", {}, "relu"),
        LayerSpec("Flatten", {}, "flat"), LayerSpec("Linear", {"out_features": 10}, "out")))


def open_with_training(window, spec: NetworkSpec):
    training = {**QUICK_RUN, "epochs": 1, "seed": 3}
    window.load_design(DesignFile(spec, "init-test", extras={"training": training, "data": dict(SMALL_DATA)}))
    ui = attach_training(window)
    return ui, TrainConfig.from_dict(training)


def settle(qtbot, window) -> None:
    """Wait for the inspector's parameter statistics, which follow an edit or a selection after a short pause."""
    qtbot.waitUntil(lambda: not window.inspector.parameters_pending)


def shown(window) -> dict[str, object]:
    """The inspector's parameter statistics by state_dict name."""
    return {item.name: item for item in window.inspector.parameter_view.stats}


def assert_shows(window, model: torch.nn.Module, index: int) -> None:
    """The inspector shows layer ``index``'s tensors as torch has them in ``model``."""
    state = {k: v for k, v in model.state_dict().items() if k.split(".")[0] == str(index)}
    stats = shown(window)
    assert list(stats) == list(state)
    for name, tensor in state.items():
        item = stats[name]
        assert item.shape == tuple(tensor.shape) and item.count == tensor.numel()
        assert abs(item.mean - tensor.mean().item()) < 1e-6
        assert (item.min, item.max) == (tensor.min().item(), tensor.max().item())
    first = window.inspector.parameter_view.numbers[0].text()
    assert f"mean {stats[next(iter(state))].mean:.3g}" in first


def test_the_inspector_shows_the_weights_a_run_starts_from_then_the_trained_ones(window, qtbot):
    spec = conv_design()
    ui, config = open_with_training(window, spec)
    window.stack_view.select_ids(["conv"])
    view = window.inspector.parameter_view
    settle(qtbot, window)
    assert view.isVisible() and view.caption.text().startswith("Untrained: the weights a run with seed 3")
    assert_shows(window, initial_model(spec, config), 0)

    window.inspector.init_editors["bias"].combo.setCurrentIndex(
        window.inspector.init_editors["bias"].combo.findData("constant"))
    window.inspector.init_editors["bias"].numbers["value"].setValue(0.5)
    assert window.document.spec.layer("conv").init.bias == TensorInit("constant", value=0.5)
    assert window.inspector.parameters_pending  # the starting model is rebuilt after the edit is drawn, not within it
    settle(qtbot, window)
    assert shown(window)["0.bias"].min == shown(window)["0.bias"].max == 0.5
    assert_shows(window, initial_model(window.document.spec, config), 0)

    with qtbot.waitSignal(ui.controller.finished, timeout=RUN_TIMEOUT_MS) as finished:
        ui.panel.start_action.trigger()
    assert finished.args[0].reason == "completed", finished.args[0].message
    window.tabs.setCurrentIndex(0)
    window.stack_view.select_ids(["out"])
    settle(qtbot, window)
    assert view.caption.text().startswith("The weights trained at")
    assert_shows(window, ui.controller.model, 3)
    trained_bias = ui.controller.model[0].bias
    assert not torch.all(trained_bias == 0.5)  # training moved the bias away from where it started
    window.stack_view.select_ids(["relu"])
    settle(qtbot, window)
    assert view.isHidden() and window.inspector.init_box.isHidden()  # no weights: no statistics, no init choice
    window.document.undo_stack.setClean()


def test_init_edits_are_undoable_and_offer_only_what_each_tensor_takes(window, qtbot):
    window.load_design(DesignFile(conv_design(), "init-test"))
    window.stack_view.select_ids(["conv"])
    inspector, doc = window.inspector, window.document
    weight, bias = inspector.init_editors["weight"], inspector.init_editors["bias"]
    assert [weight.combo.itemData(i) for i in range(weight.combo.count())] == list(METHODS)
    assert [bias.combo.itemData(i) for i in range(bias.combo.count())] == [m.name for m in methods_for(1)]
    assert weight.numbers["std"].isHidden() and weight.numbers["value"].isHidden()

    weight.combo.setCurrentIndex(weight.combo.findData("normal"))
    assert not weight.numbers["std"].isHidden() and weight.numbers["value"].isHidden()
    for std in (0.02, 0.03, 0.04):  # a burst of steps is one undo step
        weight.numbers["std"].setValue(std)
    assert doc.spec.layer("conv").init.weight == TensorInit("normal", std=0.04)
    doc.undo_stack.undo()
    assert doc.spec.layer("conv").init.weight == TensorInit("normal")
    assert weight.combo.currentData() == "normal" and weight.numbers["std"].value() == TensorInit().std
    doc.undo_stack.undo()
    assert doc.spec.layer("conv").init.weight == TensorInit() and weight.combo.currentData() == "default"
    doc.undo_stack.redo()
    doc.undo_stack.redo()
    assert doc.spec.layer("conv").init.weight == TensorInit("normal", std=0.04)

    doc.edit_param("conv", "bias", False)  # no bias: no bias row
    assert bias.isHidden() and not weight.isHidden()
    doc.edit_frozen("conv", True)  # other edits keep the layer's init
    assert doc.spec.layer("conv").init.weight == TensorInit("normal", std=0.04)
    doc.read_only = True
    assert not inspector.init_box.isEnabled()
    doc.read_only = False
    doc.undo_stack.setClean()


def test_the_code_tab_shows_the_inits(window, qtbot):
    window.load_design(DesignFile(conv_design(), "init-test"))
    code = window.code_view
    window.tabs.setCurrentWidget(code)
    code.script_button.click()
    qtbot.waitUntil(lambda: "model = nn.Sequential(" in code.text.toPlainText())
    assert "nn.init." not in code.text.toPlainText()
    window.document.edit_init("out", "weight", TensorInit("xavier_normal"))
    qtbot.waitUntil(lambda: "nn.init.xavier_normal_(model[3].weight)  # out weight" in code.text.toPlainText())
    window.document.undo_stack.setClean()


def test_a_large_design_is_built_for_statistics_only_on_request(window, qtbot, monkeypatch):
    from gui.training import parameter_source

    monkeypatch.setattr(parameter_source, "BUILD_ON_EDIT_LIMIT", 1000)  # the conv design has 5,000 parameters
    open_with_training(window, conv_design())
    window.stack_view.select_ids(["conv"])
    view = window.inspector.parameter_view
    settle(qtbot, window)
    assert "press Show statistics" in view.caption.text() and not view.compute_button.isHidden()
    assert view.stats == []
    qtbot.mouseClick(view.compute_button, Qt.MouseButton.LeftButton)
    settle(qtbot, window)
    assert [item.name for item in view.stats] == ["0.weight", "0.bias"] and view.compute_button.isHidden()
    window.document.edit_param("flat", "start_dim", 4)  # a broken design has no weights to show
    settle(qtbot, window)
    assert view.caption.text() == "Fix the design's errors to see its weights." and view.stats == []
    window.document.edit_param("conv", "kernel_size", 40)  # nor has a broken layer
    settle(qtbot, window)
    assert view.isHidden()
    window.document.undo_stack.setClean()


def test_a_layer_inside_a_group_shows_its_own_tensors_by_their_state_dict_names(window, qtbot):
    from engine.groups import residual_block

    block = residual_block(4, 2, id="res")
    spec = NetworkSpec((1, 8, 8), (block, LayerSpec("Flatten", {}, "flat"),
                                   LayerSpec("Linear", {"out_features": 3}, "out")))
    ui, config = open_with_training(window, spec)
    inner_conv = block.layers[3]  # the body's second convolution: res.body.3
    window.stack_view.select_ids([inner_conv.id])
    settle(qtbot, window)
    assert window.inspector.parameter_view.isVisible()
    model = initial_model(spec, config)
    stats = shown(window)
    assert list(stats) == ["0.body.3.weight", "0.body.3.bias"]
    weight = model.state_dict()["0.body.3.weight"]
    assert stats["0.body.3.weight"].shape == tuple(weight.shape)
    assert abs(stats["0.body.3.weight"].mean - weight.mean().item()) < 1e-6
