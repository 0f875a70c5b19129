"""File > Export (gui.export_actions): ONNX, TorchScript and the Python script from the window, with the trained or
loaded weights while they fit the open design and the untrained ones otherwise, the file dialog and the status line
saying which; a layer an exporter cannot write is named in a dialog and nothing is written."""
from __future__ import annotations

import warnings

import numpy as np
import onnxruntime
import pytest
import torch
from PySide6.QtWidgets import QApplication, QFileDialog

from engine.build import build_model
from engine.export import python_source
from engine.io import save_weights
from engine.parameters import initial_model
from engine.spec import LayerSpec, NetworkSpec
from gui.training import install_training
from tests.gui.helpers import load
from tests.gui.test_file_dialogs import FileDialogs


class TitledFileDialogs(FileDialogs):
    """FileDialogs that also record each dialog's title."""

    def __init__(self):
        self.titles: list[str] = []
        super().__init__()

    def _answer_open_dialogs(self) -> None:
        self.titles += [w.windowTitle() for w in QApplication.topLevelWidgets()
                        if isinstance(w, QFileDialog) and w.isVisible()]
        super()._answer_open_dialogs()


@pytest.fixture
def file_dialogs(qapp):
    dialogs = TitledFileDialogs()
    yield dialogs
    dialogs.stop()


def onnx_output(path, batch: torch.Tensor) -> np.ndarray:
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return session.run(None, {session.get_inputs()[0].name: batch.numpy()})[0]


def torchscript_output(path, batch: torch.Tensor) -> np.ndarray:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # torch.jit's deprecation notice
        module = torch.jit.load(str(path))
    with torch.no_grad():
        return module(batch).numpy()


def expected(model, batch: torch.Tensor) -> np.ndarray:
    with torch.no_grad():
        return model.eval()(batch).numpy()


def test_the_file_menu_has_export_with_three_formats(window):
    assert window.export_menu.menuAction() in window.file_menu.actions()
    assert [a.text() for a in window.export_menu.actions()] == ["&ONNX…", "&TorchScript…", "&Python Script…"]
    file_actions = window.file_menu.actions()
    assert file_actions.index(window.export_menu.menuAction()) > file_actions.index(window.actions["save_as"])


def test_export_without_training_writes_the_untrained_weights_and_says_so(window, tmp_path, file_dialogs):
    spec = window.document.spec  # LeNet, the first design
    file_dialogs.answer(tmp_path / "lenet-net")  # typed without a suffix: the format's is added
    assert window.exports.ask("onnx")
    assert file_dialogs.titles == ["Export ONNX with the untrained weights"]
    path = tmp_path / "lenet-net.onnx"
    batch = torch.randn(3, *spec.input_shape)
    np.testing.assert_allclose(onnx_output(path, batch), expected(initial_model(spec), batch), atol=1e-4)
    status = window.statusBar().currentMessage()
    assert status.startswith(f"Exported {path} with untrained weights (those a run with seed 0 starts from)")
    assert "ONNX opset 17" in status

    assert window.exports.export_to("python", tmp_path / "lenet.py")
    assert (tmp_path / "lenet.py").read_text() == python_source(spec)
    assert window.statusBar().currentMessage() == (f"Exported {tmp_path / 'lenet.py'}: a standalone PyTorch script; "
                                                   "run it with: python lenet.py.")


def test_export_takes_the_loaded_weights_while_they_fit_the_design(window, qtbot, tmp_path, file_dialogs):
    ui = install_training(window)
    spec = window.document.spec
    torch.manual_seed(5)
    trained = build_model(spec)
    save_weights(trained, tmp_path / "trained.pt")
    ui.controller.load_weights(tmp_path / "trained.pt")
    batch = torch.randn(2, *spec.input_shape)

    file_dialogs.answer(tmp_path / "net.pt")
    assert window.exports.ask("torchscript")
    assert file_dialogs.titles[-1].startswith("Export TorchScript with the weights loaded at ")
    np.testing.assert_allclose(torchscript_output(tmp_path / "net.pt", batch), expected(trained, batch), atol=1e-5)
    assert "with the weights loaded at " in window.statusBar().currentMessage()

    first = spec.layers[0].id
    window.document.edit_param(first, "out_channels", 4)  # the loaded weights no longer fit
    assert window.exports.export_to("onnx", tmp_path / "edited.onnx")
    edited = window.document.spec
    np.testing.assert_allclose(onnx_output(tmp_path / "edited.onnx", batch), expected(initial_model(edited), batch),
                               atol=1e-4)
    status = window.statusBar().currentMessage()
    assert "with untrained weights (those a run with seed 0 starts from): the loaded weights are those of the " \
           "design as loaded at" in status and "you have edited it since" in status
    window.document.undo_stack.undo()  # back to the design the weights fit
    assert window.exports.export_to("onnx", tmp_path / "undone.onnx")
    np.testing.assert_allclose(onnx_output(tmp_path / "undone.onnx", batch), expected(trained, batch), atol=1e-4)


def test_a_layer_onnx_cannot_write_is_named_in_a_dialog_and_nothing_is_written(window, tmp_path, message_boxes):
    load(window, NetworkSpec((3, 8, 7), (LayerSpec("Conv2d", {"out_channels": 4}, "conv"),
                                         LayerSpec("AdaptiveAvgPool2d", {"output_size": 4}, "pool"))))
    assert not window.exports.export_to("onnx", tmp_path / "net.onnx")
    assert len(message_boxes.texts) == 1
    title, reason = message_boxes.texts[0].split("\n", 1)
    assert title == "Cannot export net.onnx"
    assert reason.startswith("Cannot export to ONNX: layer 1 (AdaptiveAvgPool2d 4) has an input of 6x5")
    assert not (tmp_path / "net.onnx").exists()
    assert window.exports.export_to("torchscript", tmp_path / "net.pt")  # TorchScript has no such limit
