"""Weights and results belong to the design as trained: once the design is edited, the Training tab, the
Results tab and Save Weights say so; undoing back to the trained design makes them current again."""
from __future__ import annotations

from dataclasses import replace
from datetime import datetime, timedelta
from pathlib import Path

import torch
from PySide6.QtCore import QTimer
from PySide6.QtWidgets import QApplication, QFileDialog, QMessageBox

from engine.build import build_model
from engine.io import read_state_dict, save_weights
from engine.spec import LayerSpec, NetworkSpec
from engine.templates import load_design
from gui.document import DesignFile
from gui.training import controller as states
from gui.training.actions import WeightsActions
from gui.training.provenance import clock, companion_design_path, design_key
from gui.training.status import EVALUATING_NOW
from tests.gui.test_training import tiny_spec


class Dialogs:
    """Answers the dialogs Save Weights opens: each QMessageBox with ``box_answer`` (its texts recorded),
    each QFileDialog with the next of ``paths`` (or cancels it when there is none)."""

    def __init__(self, box_answer=QMessageBox.StandardButton.Yes, paths=()):
        self.box_answer = box_answer
        self.paths = [str(p) for p in paths]
        self.boxes: list[str] = []
        self.file_dialogs: list[str] = []
        self._timer = QTimer()
        self._timer.setInterval(10)
        self._timer.timeout.connect(self._answer)
        self._timer.start()

    def _answer(self) -> None:
        for widget in QApplication.topLevelWidgets():
            if not widget.isVisible():
                continue
            if isinstance(widget, QMessageBox):
                self.boxes.append(f"{widget.text()}\n{widget.informativeText()}")
                widget.button(self.box_answer).click()
            elif isinstance(widget, QFileDialog):
                self.file_dialogs.append(widget.windowTitle())
                if not self.paths:
                    widget.reject()
                    continue
                path = Path(self.paths.pop(0))
                widget.setDirectory(str(path.parent))
                widget.selectFile(path.name)
                widget.accept()

    def stop(self) -> None:
        self._timer.stop()


def trained(area_factory):
    ui = area_factory()
    assert ui.run().reason == "completed"
    ui.qtbot.waitUntil(lambda: ui.results.evaluation is not None)
    return ui, WeightsActions(ui.controller, ui.panel)


def marks(ui, actions) -> dict[str, str]:
    """What each place says about the weights or results not fitting the design ('' where it says nothing)."""
    return {
        "results": ui.results.stale_banner.text() if not ui.results.stale_banner.isHidden() else "",
        "training": ui.panel.stale_note.text() if not ui.panel.stale_note.isHidden() else "",
        "save_weights": actions.save_weights.toolTip() if actions.stale_note() else "",
    }


def test_editing_the_design_marks_weights_and_results_and_undo_clears_the_marks(area):
    ui, actions = trained(area)
    assert marks(ui, actions) == {"results": "", "training": "", "save_weights": ""}
    at = clock(ui.controller.model_origin.at)
    ui.doc.edit_param("hidden", "out_features", 32)
    shown = marks(ui, actions)
    assert shown["results"] == f"These results are for the design as trained at {at}; you have edited it since."
    assert f"the design as trained at {at}; you have edited it since" in shown["training"]
    assert f"the design as trained at {at}" in shown["save_weights"]
    ui.doc.edit_input_shape((784,))  # any change of what the network is counts, not only parameters
    assert all(marks(ui, actions).values())
    ui.doc.undo_stack.undo()
    ui.doc.undo_stack.undo()
    assert marks(ui, actions) == {"results": "", "training": "", "save_weights": ""}
    ui.doc.set_extra("training", dict(ui.doc.extras["training"], lr=0.5))  # settings are not the design
    assert marks(ui, actions) == {"results": "", "training": "", "save_weights": ""}


def test_an_edit_inside_a_group_changes_the_design_and_a_rename_or_new_ids_do_not():
    spec, _ = load_design("resnet18")
    key = design_key(spec)
    assert design_key(spec) is key  # the same spec object: its key is kept, not recomputed
    conv = spec.layer("res1-4")
    changed = [
        spec.with_param("res1-4", "out_channels", conv.params["out_channels"] * 2),  # two levels down
        spec.with_layer(replace(conv, frozen=True)),
        spec.with_contents("res1", "shortcut", [LayerSpec("Conv2d", {"out_channels": 64, "kernel_size": 1})]),
    ]
    for other in changed:
        assert design_key(other) != key
    same = [
        spec.with_layer(replace(spec.layer("res1"), name="first block")),
        NetworkSpec.from_dict(spec.to_dict()),  # a copy: equal key, computed afresh
        replace(spec, layers=tuple(replace(layer, id=f"renamed{i}") for i, layer in enumerate(spec.layers))),
    ]
    for other in same:
        assert design_key(other) == key


def test_opening_another_design_marks_them_too(area):
    ui, actions = trained(area)
    ui.doc.load(DesignFile(tiny_spec(classes=3), "other"))
    shown = marks(ui, actions)
    assert all(shown.values())
    assert shown["results"].endswith("; you have opened another design since.")
    assert "you have opened another design since" in shown["training"]
    ui.doc.load(DesignFile(tiny_spec(), "the trained one again"))
    assert marks(ui, actions) == {"results": "", "training": "", "save_weights": ""}


def test_saving_weights_after_an_edit_asks_and_can_save_the_trained_design_next_to_them(area, tmp_path):
    ui, actions = trained(area)
    trained_spec = ui.doc.spec
    ui.doc.edit_param("hidden", "out_features", 32)
    weights = tmp_path / "net.pt"
    dialogs = Dialogs(QMessageBox.StandardButton.Yes, [weights])
    try:
        actions.save_weights.trigger()
    finally:
        dialogs.stop()
    at = clock(ui.controller.model_origin.at)
    assert len(dialogs.boxes) == 1
    assert dialogs.boxes[0].startswith(f"These are the weights of the design as trained at {at}, before your edits.")
    assert dialogs.file_dialogs == [f"Save the weights of the design as trained at {at}"]
    design = DesignFile.read(companion_design_path(weights))
    assert companion_design_path(weights).name == "net.design.json"
    assert design.spec == trained_spec and design.extras["training"] == ui.doc.extras["training"]
    model = build_model(design.spec)  # the saved design takes the saved weights, unlike the edited one
    model.load_state_dict(read_state_dict(weights))
    trained_state = ui.controller.model.state_dict()
    assert all(torch.equal(model.state_dict()[k], trained_state[k].cpu()) for k in trained_state)


def test_saving_after_an_edit_can_save_the_weights_alone_or_nothing(area, tmp_path):
    ui, actions = trained(area)
    ui.doc.edit_param("hidden", "out_features", 32)
    folder = tmp_path / "out"
    folder.mkdir()
    alone = folder / "alone.pt"
    dialogs = Dialogs(QMessageBox.StandardButton.No, [alone])
    try:
        actions.save_weights.trigger()
        assert alone.is_file() and not companion_design_path(alone).exists()
        dialogs.box_answer, dialogs.paths = QMessageBox.StandardButton.Cancel, [str(folder / "never.pt")]
        actions.save_weights.trigger()
    finally:
        dialogs.stop()
    assert len(dialogs.boxes) == 2 and len(dialogs.file_dialogs) == 1  # Cancel: no file dialog, no file
    assert sorted(p.name for p in folder.iterdir()) == ["alone.pt"]


def test_saving_weights_of_the_design_as_it_is_asks_nothing(area, tmp_path):
    ui, actions = trained(area)
    folder = tmp_path / "out"
    folder.mkdir()
    dialogs = Dialogs(QMessageBox.StandardButton.Cancel, [folder / "plain.pt"])
    try:
        actions.save_weights.trigger()
    finally:
        dialogs.stop()
    assert dialogs.boxes == [] and dialogs.file_dialogs == ["Save weights"]
    assert sorted(p.name for p in folder.iterdir()) == ["plain.pt"]


def test_results_are_marked_when_other_weights_are_loaded(area, tmp_path):
    ui, actions = trained(area)
    other = tmp_path / "other.pt"
    save_weights(build_model(ui.doc.spec), other)
    assert actions.load_weights_from(other)
    banner = ui.results.stale_banner
    assert not banner.isHidden() and "other weights were loaded at" in banner.text()
    assert ui.panel.stale_note.isHidden()  # the loaded weights fit the design


def test_the_time_names_the_day_when_it_is_not_today():
    now = datetime(2025, 5, 3, 9, 30)
    assert clock(datetime(2025, 5, 3, 14, 2), now) == "14:02"
    assert clock(now - timedelta(days=1), now) == "09:30 on 2 May"


def test_a_failed_design_write_keeps_the_weights_and_says_why(area, tmp_path):
    ui, actions = trained(area)
    ui.doc.edit_param("hidden", "out_features", 32)
    weights = tmp_path / "w.pt"
    companion_design_path(weights).mkdir()  # a folder where the design would go
    assert not actions.save_weights_to(weights, with_design=True)
    assert weights.is_file()
    dialog = actions.last_dialog
    assert dialog is not None and "folder" in dialog.text()
    dialog.close()


def test_evaluate_after_an_edit_evaluates_the_trained_design_and_says_so(area, qtbot):
    ui, actions = trained(area)
    at = clock(ui.controller.model_origin.at)
    ui.doc.edit_param("hidden", "out_features", 32)
    with qtbot.waitSignal(ui.controller.evaluated, timeout=60_000):
        assert ui.controller.evaluate()
        assert ui.controller.state == states.EVALUATING
        assert not ui.panel.start_action.isEnabled()
        assert ui.panel.start_action.toolTip() == ui.panel.status_label.text() == EVALUATING_NOW
    qtbot.waitUntil(lambda: ui.controller.state == states.IDLE)
    assert ui.results.stale_banner.text() == f"These results are for the design as trained at {at}; you have " \
                                             f"edited it since."
    assert ui.panel.start_action.isEnabled()
