"""File > Import PyTorch…: the imported design opens as a new, unsaved design, and a dialog lists what could not be
mapped, with its line or module and the reason."""
from __future__ import annotations

from PySide6.QtWidgets import QDialog

from engine.shapes import analyze
from gui.import_dialog import ImportDialog, import_into
from tests.engine.test_import_source import D2L_LENET

WITH_GAPS = D2L_LENET.replace("nn.Flatten(),", "nn.Flatten(), nn.Bilinear(1, 2, 3),").replace(
    "nn.Linear(84, 10))", "nn.Linear(84, num_classes))")


def test_the_menu_has_the_entry(window):
    titles = [action.text() for action in window.file_menu.actions()]
    assert titles.index("&Import PyTorch…") == titles.index("Open &Recent") + 1


def test_an_imported_file_opens_as_a_new_unsaved_design(window, tmp_path):
    path = tmp_path / "lenet.py"
    path.write_text(D2L_LENET)
    assert import_into(window, str(path), "1x28x28") is None  # everything mapped: no report
    document = window.document
    assert document.path is None and document.name == "lenet"
    assert analyze(document.spec).params == 61_706 and len(document.spec.layers) == 12
    assert window.statusBar().currentMessage().startswith("Imported lenet.py: 12 layers, 61,706 parameters")


def test_what_could_not_be_mapped_is_listed_in_a_dialog(window, tmp_path, qtbot):
    path = tmp_path / "gaps.py"
    path.write_text(WITH_GAPS)
    report = import_into(window, str(path), "1x28x28")
    assert report is not None and report.isVisible()
    rows = [[report.table.item(row, column).text() for column in range(4)] for row in range(report.table.rowCount())]
    assert rows == [
        ["Not mapped", "Line 9", "nn.Bilinear(1, 2, 3)",
         "Bilinear has no layer kind in the design: add the nearest layer by hand, or leave it out"],
        ["Not mapped", "Line 12", "nn.Linear(84, num_classes)",
         "out_features (num_classes) is not a literal; the importer reads numbers, strings, tuples and "
         "True/False/None, and never runs code: write the value out"]]
    assert report.windowTitle() == "Imported gaps.py"
    assert [layer.kind for layer in window.document.spec.layers][-1] == "Sigmoid"  # the rest is there
    report.accept()


def test_a_torchvision_model_imports_from_the_dialog(window, qtbot):
    dialog = ImportDialog(window)
    dialog.from_torchvision.setChecked(True)
    dialog.model.setCurrentText("resnet18")
    assert dialog.source() == "torchvision:resnet18"
    dialog.reject()
    assert dialog.result() == QDialog.DialogCode.Rejected
    assert import_into(window, dialog.source(), "3x64x64") is None
    assert window.document.spec.input_shape == (3, 64, 64)
    assert [layer.name for layer in window.document.spec.layers if layer.is_group] == [
        "layer1", "layer2", "layer3", "layer4"]


def test_a_bad_source_or_shape_keeps_the_design_and_says_why(window, tmp_path, message_boxes):
    before = window.document.spec
    path = tmp_path / "model.py"
    path.write_text("from torch import nn\nmodel = nn.Sequential(nn.Linear(3, 2))\n")
    assert import_into(window, str(path), "3 by 4") is None
    assert import_into(window, str(path), "") is None
    assert import_into(window, "", "") is None
    assert window.document.spec == before
    assert message_boxes.texts == [
        f"Cannot import {path}\nThe input shape '3 by 4' is not sizes joined by x: write one sample's shape, e.g. "
        "1x28x28.",
        f"Cannot import {path}\nmodel.py does not say the shape of one input sample: give it with the Input shape "
        "box, e.g. 1x28x28.",
        "Nothing to import\nChoose a PyTorch file or a torchvision model, then press Import."]
