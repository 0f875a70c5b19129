"""The window reads and writes files through the engine's checks: bad design files, clipboard junk, odd
weights files and bad save targets give a sentence where the user looks, and nothing is lost."""
from __future__ import annotations

import os
import warnings

import pytest
import torch
from PySide6.QtGui import QGuiApplication

from engine.build import build_model
from engine.io import save_weights
from engine.spec import MAX_INPUT_DIMENSION
from gui.file_dialogs import with_suffix
from gui.training import install_training
from gui.training.actions import CHECKPOINT_FILTER, WEIGHTS_FILTER
from tests.gui.helpers import ids


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="this OS has no FIFOs")
def test_opening_a_fifo_or_a_deep_file_shows_a_sentence_and_keeps_the_design(window, tmp_path, message_boxes):
    before = window.document.spec
    fifo = tmp_path / "pipe.json"
    os.mkfifo(fifo)
    deep = tmp_path / "deep.json"
    deep.write_text("[" * 100_000 + "]" * 100_000)
    surrogate = tmp_path / "surrogate.json"
    surrogate.write_text('{"name": "\\udc80"}')
    for path, fragment in ((fifo, "is a pipe (FIFO)"), (deep, "too deep"), (surrogate, "lone surrogate")):
        assert not window.open_file(path)
        assert f"Cannot open {path.name}" in message_boxes.texts[-1] and fragment in message_boxes.texts[-1]
    assert window.document.spec is before


def test_saving_a_design_under_a_bad_name_says_so_and_writes_nothing(window, tmp_path, message_boxes):
    for name, fragment in (("design.txt", "Cannot tell the format of 'design.txt'"),
                           ("missing/d.json", "does not exist")):
        assert not window.save_to(tmp_path / name)
        assert fragment in message_boxes.texts[-1]
    assert not window.save_to(tmp_path)
    assert "is a folder" in message_boxes.texts[-1]
    assert list(tmp_path.iterdir()) == [] and window.document.path is None
    assert window.save_to(tmp_path / "design.JSON")  # the suffix is compared without case


def test_a_typed_name_without_a_suffix_gets_the_chosen_filters_suffix():
    assert with_suffix("/x/weights", "safetensors (*.safetensors)", ".pt") == "/x/weights.safetensors"
    assert with_suffix("/x/weights", WEIGHTS_FILTER.split(";;")[0], ".pt") == "/x/weights.pt"
    assert with_suffix("/x/weights", "All files (*)", ".pt") == "/x/weights.pt"
    assert with_suffix("/x/run", CHECKPOINT_FILTER.split(";;")[0], ".pt") == "/x/run.pt"
    assert with_suffix("/x/model.txt", "All files (*)", ".pt") == "/x/model.txt"  # kept: the save then refuses it


@pytest.mark.parametrize("text, fragment", [
    ("[" * 50_000, "too deep"),
    ('[{"kind": "ReLU", "id": "x\\n__import__(\'os\')"}]', "field 'id'"),
    ('[{"kind": "Dropout", "params": {"p": ' + "9" * 4000 + "}}]", "4000 digits"),
    ('[{"kind": "ReLU", "id": "\\ud800"}]', "lone surrogate"),
    ('{"layers": []}', "holds no layers"),
    ('{"layers": 7}', "must be an object"),
    ("hello", "holds text, not layers"),
])
def test_pasting_junk_from_the_clipboard_says_so_and_changes_nothing(window, text, fragment):
    before = ids(window)
    QGuiApplication.clipboard().setText(text)
    window.actions["paste"].trigger()
    assert ids(window) == before
    message = window.statusBar().currentMessage()
    assert message.startswith("Nothing pasted: ") and fragment in message, message


def test_an_input_shape_a_design_file_could_not_hold_is_not_taken(window):
    assert not window.document.edit_input_shape((MAX_INPUT_DIMENSION + 1,))
    assert not window.document.edit_input_shape((4096, 4096, 4096))
    assert window.document.edit_input_shape((1, 32, 32))


@pytest.mark.filterwarnings("ignore:Validating sparse tensor invariants")
def test_weights_actions_refuse_bad_files_and_bad_targets_with_a_sentence(window, tmp_path):
    actions = (getattr(window, "training", None) or install_training(window)).weights
    good = tmp_path / "good.pt"
    save_weights(build_model(window.document.spec), good)
    renamed = tmp_path / "good.safetensors"  # a torch file under the other suffix: read by its content
    os.replace(good, renamed)
    assert actions.load_weights_from(renamed)

    state = build_model(window.document.spec).state_dict()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        state["0.weight"] = state["0.weight"].to_sparse()
    torch.save(state, tmp_path / "sparse.pt")
    assert not actions.load_weights_from(tmp_path / "sparse.pt")
    assert "0.weight is a sparse tensor" in actions.last_dialog.text()

    assert not actions.save_weights_to(tmp_path / "trained.txt")
    assert "Cannot tell the format of 'trained.txt'" in actions.last_dialog.text()
    assert not actions.save_weights_to(tmp_path)
    assert "is a folder" in actions.last_dialog.text()
    assert actions.save_weights_to(tmp_path / "trained.pt")
    actions.last_dialog.close()
