"""File > Export > Launch Script for torchrun…: train_ddp.py, its data and the Slurm script written for the open design,
the data loaded first when the Training tab has not loaded them, the torchrun commands shown; a screenshot of the menu
and of the message, rendered offscreen."""
from __future__ import annotations

import os
from pathlib import Path

import torch
from PySide6.QtWidgets import QMessageBox

from engine.build import build_model
from engine.launch_script import DATA_NAME, SCRIPT_NAME, SLURM_NAME
from gui.training import install_training

TIMEOUT_MS = 120_000
DATA = {"source": "mnist-sample", "limit": 200}
SHOTS = os.environ.get("LAYERSTUDIO_SCREENSHOTS")  # a folder: the test also saves its screenshots there


def launch_export(window):
    return (getattr(window, "training", None) or install_training(window)).launch


def test_export_launch_script_from_the_file_menu(window, qtbot, tmp_path):
    export = launch_export(window)
    window.document.set_extra("data", dict(DATA))
    window.document.set_extra("training", {"epochs": 2, "batch_size": 32, "device": "cpu"})
    assert export.action in window.export_menu.actions()  # File > Export, beside ONNX and TorchScript
    assert export.action.isEnabled()
    if SHOTS:
        window.file_menu.popup(window.mapToGlobal(window.rect().topLeft()))
        qtbot.waitExposed(window.file_menu)
        window.file_menu.grab().save(str(Path(SHOTS) / "file-menu-launch-script.png"))
        window.file_menu.hide()

    assert window.training.controller.data is None  # not loaded yet: the export loads them first
    assert export.export_to(str(tmp_path / "cluster"))
    qtbot.waitUntil(lambda: export.written is not None, timeout=TIMEOUT_MS)
    folder = tmp_path / "cluster"
    assert {path.name for path in folder.iterdir()} == {SCRIPT_NAME, DATA_NAME, SLURM_NAME}
    source = (folder / SCRIPT_NAME).read_text()
    assert "DistributedDataParallel" in source and "--epochs\", type=int, default=2" in source
    tensors = torch.load(folder / DATA_NAME, weights_only=True)
    assert tensors["train_x"].shape[1:] == (1, 28, 28) and len(tensors["train_x"]) == 180
    box = export.last_dialog
    assert box.icon() == QMessageBox.Information
    assert "torchrun --nproc-per-node gpu train_ddp.py" in box.informativeText()
    assert "sbatch train_ddp.sbatch" in box.informativeText()
    if SHOTS:
        qtbot.waitExposed(box)
        box.grab().save(str(Path(SHOTS) / "launch-script-written.png"))
    box.close()
    model = build_model(window.document.spec)  # the script's model is the design's: same state_dict keys
    namespace: dict = {}
    exec(compile(source.split("\nDATA = ")[0], SCRIPT_NAME, "exec"), namespace)  # the model part, not main()
    assert namespace["model"].state_dict().keys() == model.state_dict().keys()


def test_export_says_why_it_cannot_write(window, qtbot, tmp_path):
    export = launch_export(window)
    window.document.set_extra("data", dict(DATA))
    blocker = tmp_path / "taken"
    blocker.write_text("a file, not a folder")
    export.export_to(str(blocker))
    qtbot.waitUntil(lambda: export.last_dialog is not None, timeout=TIMEOUT_MS)
    assert export.last_dialog.icon() == QMessageBox.Warning
    assert export.written is None
    export.last_dialog.close()
