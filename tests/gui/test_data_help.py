"""The Training tab's help with data: Try it on the bundled sample, Fit that refuses instead of breaking the
design, the download line and question, and the data preview window (real loads through the controller)."""
from __future__ import annotations

import os

import pytest
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QMessageBox

from engine.controls import control
from engine.paths import datasets_dir
from gui.document import DesignDocument, DesignFile
from gui.training import controller as states
from gui.training.downloads import confirm_download
from tests.gui.test_training import RUN_TIMEOUT_MS, make_document


def template_document(name: str) -> DesignDocument:
    doc = DesignDocument()
    doc.load(DesignFile.template(name))
    return doc


def test_try_it_on_the_bundled_sample_is_one_undo_step_that_trains(area, qtbot):
    doc = template_document("cifar-cnn")         # CIFAR-10, 3x32x32, here with random flips
    doc.extras["data"] = dict(doc.extras["data"], augment_hflip=True)
    before_spec, before_data = doc.spec, dict(doc.extras["data"])
    ui = area(doc)
    depth = doc.undo_stack.count()
    qtbot.mouseClick(ui.panel.data_section.try_button, Qt.LeftButton)
    assert doc.undo_stack.count() == depth + 1 and doc.undo_stack.undoText() == "Try it on the bundled sample"
    assert doc.spec.input_shape == (1, 28, 28) and doc.analysis.ok
    data = doc.extras["data"]
    assert data["source"] == "mnist-sample" and data["augment_hflip"] is False and data["image_size"] == 28
    assert ui.panel.data_form.values()["source"] == "mnist-sample"      # the form follows
    note = ui.panel.data_section.trial_note
    assert note.isVisibleTo(ui.panel) and "bundled MNIST sample" in note.text() and "3x32x32 → 1x28x28" in note.text()
    assert "random horizontal flip is off" in note.text()
    assert not ui.panel.data_section.download_note.isVisibleTo(ui.panel)      # nothing to download any more

    doc.set_extra("data", dict(data, limit=64))                          # a quick run of what the click set up
    doc.set_extra("training", {"epochs": 1, "batch_size": 32, "device": "cpu"})
    assert not note.isVisibleTo(ui.panel)                                 # the sentence went with the next change
    result = ui.run()
    assert result.reason == "completed", result.message

    for _ in range(3):
        doc.undo_stack.undo()
    assert doc.spec == before_spec and doc.extras["data"] == before_data


def test_trying_a_design_that_already_runs_on_the_sample_changes_nothing(area):
    doc = template_document("lenet")
    ui = area(doc)
    depth = doc.undo_stack.count()
    assert not ui.panel.data_section.try_sample()
    assert doc.undo_stack.count() == depth
    assert ui.panel.data_section.trial_note.text() == "Already on the bundled MNIST sample, and the design fits it."


def test_fit_refuses_a_conv_net_on_a_table_with_a_sentence_and_leaves_the_design_alone(area, qtbot, tmp_path):
    table = tmp_path / "flowers.csv"
    table.write_text("a,b,c,d,label\n" + "\n".join(f"{i},{i % 3},{i % 5},{i % 7},{i % 2}" for i in range(40)) + "\n")
    doc = template_document("cnn")
    doc.extras["data"] = {"source": "csv", "root": str(table)}
    ui = area(doc)
    with qtbot.waitSignal(ui.controller.dataLoaded, timeout=RUN_TIMEOUT_MS):
        qtbot.mouseClick(ui.panel.data_section.load_button, Qt.LeftButton)
    qtbot.waitUntil(lambda: ui.controller.state == states.IDLE)
    before = doc.spec
    data = ui.panel.data_section
    assert data.fit_box.isVisibleTo(ui.panel) and not data.fit_button.isVisibleTo(ui.panel)
    assert data.fit_note.text() == ("This design starts with Conv2d, which needs images (CxHxW), but CSV "
                                    "flowers.csv gives 4 features per sample: choose image data or start from "
                                    "an MLP template.")
    assert not data.fit_design() and doc.spec == before and doc.analysis.ok


@pytest.mark.parametrize("template", ["mlp", "linear-regression", "lenet", "alexnet", "vgg", "nin", "resnet18"])
def test_fit_design_to_the_loaded_sample_never_leaves_an_analysis_error(area, qtbot, template):
    doc = template_document(template)
    doc.extras["data"] = {"source": "mnist-sample", "limit": 100}
    ui = area(doc)
    with qtbot.waitSignal(ui.controller.dataLoaded, timeout=RUN_TIMEOUT_MS):
        ui.panel.data_section.load_data()
    qtbot.waitUntil(lambda: ui.controller.state == states.IDLE)
    changed = ui.panel.data_section.fit_design()
    assert doc.analysis.ok
    assert changed == (template not in ("mlp", "lenet"))
    if template in ("alexnet", "vgg", "nin"):     # the sample is enlarged to the smallest size they take
        assert doc.extras["data"]["image_size"] == doc.spec.input_shape[-1] > 28


def test_the_download_line_shows_size_and_folder_and_asks_once(area, qtbot, message_boxes, tmp_path):
    doc = make_document(data={"source": "fashion-mnist", "download": True, "root": ""})
    ui = area(doc)
    note = ui.panel.data_section.download_note
    assert note.isVisibleTo(ui.panel)
    assert note.text() == f"Fashion-MNIST will be downloaded (30.9 MB) into {datasets_dir()}."
    assert datasets_dir().is_relative_to(os.environ["LAYERSTUDIO_HOME"])        # never the user's folder

    message_boxes.answer = QMessageBox.StandardButton.Cancel
    ui.panel.start_action.trigger()                    # declined: nothing starts, nothing is fetched
    qtbot.waitUntil(lambda: "Not started: you chose not to download it" in note.text())
    assert ui.controller.state == states.IDLE and not ui.controller.running_threads()
    assert len(message_boxes.texts) == 1
    assert "30.9 MB" in message_boxes.texts[0] and str(datasets_dir()) in message_boxes.texts[0]

    message_boxes.answer = QMessageBox.StandardButton.Ok   # "Download"
    values, went_on = ui.panel.data_form.values(), []
    assert confirm_download(ui.panel, values, lambda: went_on.append("first")) is not None   # asked, not blocking
    qtbot.waitUntil(lambda: went_on == ["first"])
    assert confirm_download(ui.panel, values, lambda: went_on.append("again")) is None       # asked once only
    chosen = dict(values, source="mnist", root=str(tmp_path / "mine"))                        # the user's folder
    assert confirm_download(ui.panel, chosen, lambda: went_on.append("chosen")) is None
    assert went_on == ["first", "again", "chosen"] and len(message_boxes.texts) == 2

    doc.set_extra("data", dict(values, download=False))
    assert note.text() == (f"Fashion-MNIST is not in {datasets_dir()} yet: turn on {control('data.download')} to "
                           f"fetch it (30.9 MB).")
    doc.set_extra("data", {"source": "mnist-sample"})
    assert not note.isVisibleTo(ui.panel)
    doc.set_extra("data", {"source": "cifar10"})                  # an empty Folder means the default data folder
    assert ui.panel.data_form.widget("root").edit.placeholderText() == f"{datasets_dir()} (default)"
    doc.set_extra("data", {"source": "folder"})                   # ... where the source has one
    assert ui.panel.data_form.widget("root").edit.placeholderText() == "choose…"


def test_the_preview_loads_off_the_ui_thread_and_shows_classes_counts_and_augmentation(area, qtbot):
    doc = make_document(data={"source": "mnist-sample", "limit": 400, "augment_crop_padding": 3})
    ui = area(doc)
    assert ui.controller.data is None
    with qtbot.waitSignal(ui.controller.dataLoaded, timeout=RUN_TIMEOUT_MS):
        qtbot.mouseClick(ui.panel.data_section.preview_button, Qt.LeftButton)
        assert "Loading" in ui.panel.data_section.preview_dialog.view.header.text()  # the UI thread went on meanwhile
    qtbot.waitUntil(lambda: ui.controller.state == states.IDLE)
    dialog = ui.panel.data_section.preview_dialog
    view = dialog.view
    bundle = ui.controller.data
    assert dialog.isVisible() and list(view.thumbnails) == bundle.class_names
    for index, name in enumerate(bundle.class_names):
        assert len(view.thumbnails[name]) == 8
        assert all(label.pixmap().height() == 56 for label in view.thumbnails[name])
        train = int((bundle.train_y == index).sum())
        assert f"train {train:,}" in view.count_labels[name].text()
    assert len(view.augment_rows) == 4 and all(len(row) == 5 for row in view.augment_rows)
    assert bundle.summary() in view.header.text()
    dialog.close()


def test_enlarged_builtin_images_say_their_stored_size_and_preview_at_the_models(area, qtbot):
    doc = make_document(data={"source": "mnist-sample", "limit": 100, "image_size": 36, "augment_crop_padding": 2})
    ui = area(doc)
    with qtbot.waitSignal(ui.controller.dataLoaded, timeout=RUN_TIMEOUT_MS):
        ui.panel.data_section.load_data()
    qtbot.waitUntil(lambda: ui.controller.state == states.IDLE)
    bundle = ui.controller.data
    assert bundle.train_x.shape[1:] == (1, 28, 28) and bundle.input_shape == (1, 36, 36)
    assert "1x36x36 enlarged from 28x28" in ui.panel.data_section.summary.text()
    dialog = ui.panel.data_section.preview_data()
    assert "1x36x36 enlarged from 28x28" in dialog.view.header.text()
    dialog.close()


def test_the_preview_of_a_table_shows_its_columns_and_first_rows(area, qtbot, tmp_path):
    table = tmp_path / "houses.csv"
    table.write_text("rooms,area,price\n" + "\n".join(f"{1 + i % 4},{50 + i},{100 + 3 * i}" for i in range(30)) + "\n")
    doc = make_document(data={"source": "csv", "root": str(table), "label_column": "price", "val_fraction": 0,
                              "limit": 0})
    ui = area(doc)
    with qtbot.waitSignal(ui.controller.dataLoaded, timeout=RUN_TIMEOUT_MS):
        ui.panel.data_section.load_data()
    qtbot.waitUntil(lambda: ui.controller.state == states.IDLE)
    dialog = ui.panel.data_section.preview_data()  # loaded already: shown at once
    table_view = dialog.view.table
    headers = [table_view.horizontalHeaderItem(i).text() for i in range(table_view.columnCount())]
    assert headers == ["rooms", "area", "price"] and table_view.rowCount() == 10
    assert [table_view.item(2, column).text() for column in range(3)] == ["3", "52", "106"]
    assert not dialog.view.thumbnails
    dialog.close()
