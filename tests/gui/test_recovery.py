"""Checkpoints every epoch in the window, and the offer to resume a run LayerStudio did not end cleanly.

A crash is simulated the way it looks on disk afterwards: the marker a running run leaves in the data
folder, and a real checkpoint that run wrote (by the engine, stopped after its first epoch).
"""
from __future__ import annotations

import json
import re

import pytest
from PySide6.QtCore import Qt

from engine import paths
from engine.data import DataConfig, load_data
from engine.io import read_checkpoint, save_checkpoint
from engine.spec import NetworkSpec
from engine.training import TrainConfig, Trainer
from gui.app import attach_training
from gui.document import DesignDocument
from gui.training import recovery
from tests.gui.test_training import RUN_TIMEOUT_MS, SMALL_DATA, make_document, tiny_spec


@pytest.fixture(autouse=True)
def own_data_folder(tmp_path, monkeypatch):
    """Markers and checkpoints of these tests go to a folder of their own."""
    monkeypatch.setenv(paths.HOME_VARIABLE, str(tmp_path / "home"))


def saved_design(tmp_path, name: str = "my-net") -> DesignDocument:
    doc = make_document(training={"epochs": 3})
    doc.save(tmp_path / f"{name}.json")
    return doc


def interrupted_run(doc: DesignDocument, epochs_done: int = 1) -> str:
    """What a run that died after ``epochs_done`` epochs leaves behind: the marker and its last checkpoint."""
    checkpoint = recovery.checkpoint_path_for(doc)
    recovery.write_marker(doc, checkpoint)  # written when the run started
    data_config = DataConfig.from_dict(doc.extras["data"])
    trainer = Trainer(doc.spec, load_data(data_config), TrainConfig.from_dict(doc.extras["training"]))
    calls = iter(range(10**6))
    assert trainer.run(should_stop=lambda: next(calls) >= epochs_done * trainer.steps_per_epoch).reason == "stopped"
    checkpoint.parent.mkdir(parents=True, exist_ok=True)
    save_checkpoint(checkpoint, {**trainer.checkpoint(), "data": data_config.to_dict()})
    return str(checkpoint)


# --------------------------------------------------------------------------- the option

def test_the_option_is_on_by_default_and_shows_where_the_checkpoint_goes(area, tmp_path):
    doc = make_document()
    doc.name = "lenet"
    option = area(doc).panel.checkpoint_option
    assert option.check.isChecked() and option.check.text().startswith("Save a checkpoint every epoch to")
    assert option.path == str(paths.checkpoints_dir() / "lenet.checkpoint.pt")
    doc.save(tmp_path / "My Net.json")
    assert option.path == option.path_label.toolTip() == str(tmp_path / "My Net.checkpoint.pt")


def test_a_run_writes_its_checkpoint_every_epoch_and_the_marker_only_while_it_goes(area, qtbot, tmp_path):
    doc = saved_design(tmp_path)
    ui = area(doc)
    checkpoint = tmp_path / "my-net.checkpoint.pt"
    seen = []

    def at_epoch_end(event):
        marker = json.loads(recovery.marker_path().read_text())
        seen.append((event.epoch, read_checkpoint(checkpoint)["epoch"], marker["checkpoint"], marker["design"]))

    ui.controller.epochEnded.connect(at_epoch_end)
    result = ui.run()
    assert result.reason == "completed", result.message
    # The epoch's checkpoint is on disk when the window hears of the epoch (a later one may already be,
    # since the signal is queued while the worker goes on).
    assert [epoch for epoch, *_ in seen] == [1, 2, 3]
    assert all(epoch <= on_disk <= 3 for epoch, on_disk, *_ in seen)
    assert {tuple(rest) for _, _, *rest in seen} == {(str(checkpoint), str(tmp_path / "my-net.json"))}
    assert not recovery.marker_path().exists()  # the run ended: nothing to offer next time
    assert read_checkpoint(checkpoint)["epoch"] == 3


def test_with_the_option_off_a_run_writes_neither(area, tmp_path):
    doc = saved_design(tmp_path)
    ui = area(doc)
    ui.panel.checkpoint_option.check.setChecked(False)
    markers = []
    ui.controller.epochEnded.connect(lambda _: markers.append(recovery.marker_path().exists()))
    assert ui.run().reason == "completed"
    assert markers == [False, False, False] and not (tmp_path / "my-net.checkpoint.pt").exists()
    assert not recovery.checkpoint_every_epoch()  # kept for the next start


def test_a_checkpoint_that_cannot_be_written_is_reported_and_training_goes_on(area, tmp_path):
    doc = make_document()
    doc.path = tmp_path / "gone" / "design.json"  # its folder was removed after it was saved
    ui = area(doc)
    messages = []
    ui.controller.message.connect(messages.append)
    assert ui.run().reason == "completed"
    assert any(m.startswith("The checkpoint was not saved (training goes on):") and "does not exist" in m
               for m in messages)


# --------------------------------------------------------------------------- the offer

def test_after_a_crash_the_next_start_offers_to_resume_and_resume_continues_the_run(window, qtbot, tmp_path):
    doc = saved_design(tmp_path)
    checkpoint = interrupted_run(doc)
    ui = attach_training(window)
    offer = ui.recovery_offer
    assert offer is not None and offer.box.isVisible()
    assert re.fullmatch(r"LayerStudio closed during a run of my-net\.json \(epoch 1 of 3, saved at \d\d:\d\d\)\. "
                        r"Resume it\?", offer.box.text()), offer.box.text()
    assert checkpoint in offer.box.informativeText()
    with qtbot.waitSignal(ui.controller.finished, timeout=RUN_TIMEOUT_MS) as finished:
        qtbot.mouseClick(offer.resume_button, Qt.LeftButton)
    assert window.document.path == tmp_path / "my-net.json"
    result = finished.args[0]
    assert result.reason == "completed" and result.epochs_done == 3, result.message
    assert window.tabs.currentWidget() is ui.panel
    assert ui.panel.plots.current.point_counts()["train_loss"] == 3  # the plots carry the first epoch too
    assert not recovery.marker_path().exists()
    window.document.undo_stack.setClean()


def test_a_design_without_a_file_is_rebuilt_from_the_checkpoint(window, qtbot, tmp_path):
    doc = make_document(training={"epochs": 2})
    doc.name = "sketch"
    interrupted_run(doc)
    ui = attach_training(window)
    assert "a run of sketch (epoch 1 of 2" in ui.recovery_offer.box.text()
    with qtbot.waitSignal(ui.controller.finished, timeout=RUN_TIMEOUT_MS) as finished:
        ui.recovery_offer.resume_button.click()
    assert finished.args[0].reason == "completed" and finished.args[0].epochs_done == 2
    assert window.document.path is None
    assert [layer.kind for layer in window.document.spec.layers] == [layer.kind for layer in tiny_spec().layers]
    assert window.document.extras["data"]["limit"] == SMALL_DATA["limit"]
    window.document.undo_stack.setClean()


def test_discard_forgets_the_run_and_keeps_the_file(window, tmp_path):
    doc = saved_design(tmp_path)
    checkpoint = interrupted_run(doc)
    ui = attach_training(window)
    ui.recovery_offer.discard_button.click()
    assert not recovery.marker_path().exists()
    assert read_checkpoint(checkpoint)["epoch"] == 1
    assert ui.controller.state == "idle" and window.document.path != tmp_path / "my-net.json"
    assert recovery.offer_to_resume(window, ui) is None  # not asked again


@pytest.mark.parametrize("leftover", ["no checkpoint", "older checkpoint", "damaged marker", "damaged checkpoint"])
def test_no_offer_when_the_run_left_nothing_to_resume(window, tmp_path, leftover):
    doc = saved_design(tmp_path)
    checkpoint = recovery.checkpoint_path_for(doc)
    if leftover == "older checkpoint":  # from an earlier run: this one died before its first epoch ended
        checkpoint.write_bytes(b"")
        recovery.write_marker(doc, checkpoint)
        marker = json.loads(recovery.marker_path().read_text())
        recovery.marker_path().write_text(json.dumps({**marker, "started": marker["started"] + 3600}))
    elif leftover == "damaged marker":
        recovery.marker_path().parent.mkdir(parents=True, exist_ok=True)
        recovery.marker_path().write_text('{"design": 3')
    elif leftover == "damaged checkpoint":
        recovery.write_marker(doc, checkpoint)
        checkpoint.write_bytes(b"PK\x03\x04 not really a zip")
    else:
        recovery.write_marker(doc, checkpoint)
    ui = attach_training(window)
    assert ui.recovery_offer is None
    assert not recovery.marker_path().exists()


def test_the_checkpoint_path_of_an_unsaved_design_is_a_safe_file_name():
    doc = DesignDocument(NetworkSpec((2,)))
    doc.name = "../my net: v2"
    assert recovery.checkpoint_path_for(doc) == paths.checkpoints_dir() / "my_net_v2.checkpoint.pt"
    doc.name = ""
    assert recovery.checkpoint_path_for(doc).name == "untitled.checkpoint.pt"
