"""The Training tab's TensorBoard switch: it turns the one declared setting (TrainConfig.tensorboard) on with a
folder in the user's data folder, a real run writes its event files there (read back with TensorBoard's own
EventAccumulator), and a folder that cannot be written keeps the run from starting."""
from __future__ import annotations

import pytest
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from engine.controls import naming
from engine.training.tensorboard_log import default_folder
from gui.training.settings import control_label
from tests.gui.test_training import make_document


def events_of(folder):
    runs = [path for path in folder.iterdir() if path.is_dir()]
    assert len(runs) == 1, runs
    events = EventAccumulator(str(runs[0]))
    events.Reload()
    return runs[0], events


def values(events, tag):
    return [event.value for event in events.Scalars(tag)]


def test_the_switch_turns_tensorboard_on_in_the_data_folder_and_the_run_writes_there(area, qtbot):
    ui = area()
    ui.doc.name = "tiny"
    switch = ui.panel.train_form.widget("tensorboard")
    assert not switch.check.isChecked() and switch.note.isHidden()
    switch.check.click()  # as a click does: the toggle reaches the form
    folder = default_folder()
    assert ui.doc.extras["training"]["tensorboard"] == str(folder)  # the setting itself, saved with the design
    assert not switch.note.isHidden()
    assert f"tensorboard --logdir {folder}" in switch.note.text() and str(folder) in switch.note.text()

    result = ui.run()
    assert result.reason == "completed", result.message
    run, events = events_of(folder)
    assert run.name.startswith("tiny-")
    history = ui.controller.trainer.history
    assert values(events, "epoch/train_loss") == pytest.approx(history["train_loss"], rel=1e-6)
    assert values(events, "epoch/val_acc") == pytest.approx(history["val_acc"], rel=1e-6)
    assert values(events, "epoch/lr") == pytest.approx(history["lr"], rel=1e-6)
    qtbot.waitUntil(lambda: ui.controller.last_evaluation is not None)
    assert values(events := events_of(folder)[1], "final/test_acc") == \
        pytest.approx([ui.controller.last_evaluation.accuracy], rel=1e-6)
    assert any(tag.startswith("health/") for tag in events.Tags()["scalars"])
    assert events.Tags()["graph"]
    assert "_hparams_/session_start_info" in events.PluginTagToContent("hparams")

    switch.check.click()  # off again: the setting is empty, the folder stays shown
    assert ui.doc.extras["training"]["tensorboard"] == ""
    assert switch.folder.edit.text() == str(folder) and not switch.folder.isEnabled()


def test_a_saved_folder_shows_in_the_switch(area, tmp_path):
    ui = area(make_document(training={"tensorboard": str(tmp_path / "boards")}))
    switch = ui.panel.train_form.widget("tensorboard")
    assert switch.check.isChecked() and switch.folder.edit.text() == str(tmp_path / "boards")
    assert switch.value() == str(tmp_path / "boards")


def test_a_folder_that_cannot_be_written_keeps_the_run_from_starting(area, tmp_path):
    taken = tmp_path / "taken"
    taken.write_text("a file")
    ui = area(make_document(training={"tensorboard": str(taken)}))
    with naming(control_label):  # as the window names its controls
        result = ui.run()
    assert result.reason == "error" and result.epochs_done == 0
    assert f"The TensorBoard folder {taken} is a file" in result.message
    assert "“TensorBoard”" in result.message  # the window names its own control
    assert ui.controller.trainer is None
    assert taken.read_text() == "a file"
