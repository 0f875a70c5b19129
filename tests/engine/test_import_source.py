"""engine.importing.source: a PyTorch file read as a design with ast, never run; what cannot be mapped is listed
by line with the reason."""
from __future__ import annotations

import textwrap

import pytest
import torch

from engine.build import build_model
from engine.errors import SpecError
from engine.export import python_source
from engine.importing.source import import_source, source_design
from engine.shapes import analyze
from engine.templates import list_templates, load_template
from tests.engine.test_export import IMAGE_DESIGN, TOKEN_DESIGN

D2L_LENET = """\
import torch
from torch import nn

net = nn.Sequential(
    nn.Conv2d(1, 6, kernel_size=5, padding=2), nn.Sigmoid(),
    nn.AvgPool2d(kernel_size=2, stride=2),
    nn.Conv2d(6, 16, kernel_size=5), nn.Sigmoid(),
    nn.AvgPool2d(kernel_size=2, stride=2),
    nn.Flatten(),
    nn.Linear(16 * 5 * 5, 120), nn.Sigmoid(),
    nn.Linear(120, 84), nn.Sigmoid(),
    nn.Linear(84, 10))
"""


def design_form(layer) -> dict:
    """A layer as its file holds it, without group names (the exported script does not carry them)."""
    data = layer.to_dict()
    data.pop("name", None)
    for slot in ("layers", "shortcut"):
        if slot in data:
            data[slot] = [design_form(child) for child in getattr(layer, slot)]
    return data


@pytest.mark.parametrize("name", [t.name for t in list_templates()])
def test_every_template_comes_back_from_its_exported_script(name):
    spec = load_template(name)
    imported = source_design(python_source(spec), f"{name}.py")
    assert imported.notes == ()
    assert imported.spec.input_shape == spec.input_shape  # from the script's INPUT_SHAPE
    assert [design_form(layer) for layer in imported.spec.layers] == [design_form(layer) for layer in spec.layers]
    assert analyze(imported.spec).params == analyze(spec).params


@pytest.mark.parametrize("spec", [IMAGE_DESIGN, TOKEN_DESIGN], ids=["image", "tokens"])
def test_every_layer_kind_setting_group_mode_repeat_and_freeze_comes_back(spec):
    """The export tests' designs hold every kind (and every group mode, a repeated group, a frozen layer)."""
    imported = source_design(python_source(spec), "model.py")
    assert imported.notes == ()
    full = [layer for layer in spec.all_layers() if layer.params.get("padding") == "full"]
    expected = spec
    for layer in full:  # the script writes the number 'full' stands for: the same network
        p = layer.params
        expected = expected.with_param(layer.id, "padding", p["dilation"] * (p["kernel_size"] - 1))
    assert [design_form(layer) for layer in imported.spec.layers] == [design_form(layer) for layer in expected.layers]
    assert repr(build_model(imported.spec)) == repr(build_model(spec))


def test_the_notes_lenet_imports_as_written():
    imported = source_design(D2L_LENET, "lenet.py", (1, 28, 28))
    assert imported.notes == ()
    assert [layer.short() for layer in imported.spec.layers] == [
        "Conv2d 6, k5, p2", "Sigmoid", "AvgPool2d 2, s2", "Conv2d 16, k5", "Sigmoid", "AvgPool2d 2, s2", "Flatten",
        "Linear 120", "Sigmoid", "Linear 84", "Sigmoid", "Linear 10"]
    analysis = analyze(imported.spec)
    assert analysis.params == 61_706 and analysis.output_shape == (10,)
    assert "Imported lenet.py: 12 layers, 61,706 parameters, output 10" == imported.summary()


def test_opening_a_file_never_runs_it(tmp_path):
    marker = tmp_path / "ran"
    source = textwrap.dedent(f"""\
        import os
        from torch import nn
        open({str(marker)!r}, "w").write("top level")
        os.system("touch {marker}")

        class Evil(nn.Module):
            open({str(marker)!r}, "w")

        model = nn.Sequential(
            nn.Linear(__import__("os").system("touch {marker}"), 10),
            nn.ReLU(inplace=open({str(marker)!r}, "w") is None),
            nn.Linear(10, out_features=eval("3")),
            Evil(),
        )
        """)
    path = tmp_path / "evil.py"
    path.write_text(source)
    imported = import_source(path, (4,))
    assert not marker.exists()
    # the input width need not be given (the shapes decide it); the other computed values are refused, by line
    assert [layer.kind for layer in imported.spec.layers] == ["Linear"]
    reasons = {note.where: note.reason for note in imported.notes}
    assert "is not a literal" in reasons["line 11"] and "never runs code" in reasons["line 11"]
    assert "out_features" in reasons["line 12"]
    assert "never runs the file's own code" in reasons["line 13"]


def test_what_cannot_be_mapped_is_listed_by_line_with_its_reason():
    source = textwrap.dedent("""\
        import torch.nn as nn
        width = 32
        model = nn.Sequential(
            nn.Conv2d(3, 8, kernel_size=(3, 5)),
            nn.Conv2d(3, 8, 3, padding_mode="reflect"),
            nn.MaxPool2d(2, return_indices=True),
            nn.Conv2d(3, 8, 3),
            nn.MaxPool2d(2, ceil_mode=True),
            nn.Flatten(),
            nn.Linear(999, width),
            nn.LSTM(10, 20),
            nn.TransformerEncoderLayer(8, 2),
            nn.Linear(8, 10, bias=False),
            nn.Softmax(),
            nn.Conv2d(3, 8, 3, stride=2, padding="same"),
            nn.Conv2d(3, -8, 3),
        )
        """)
    imported = source_design(source, "model.py", (3, 9, 9))
    sentences = [note.sentence() for note in imported.notes]
    assert sentences[0] == ("Line 4: nn.Conv2d(3, 8, kernel_size=(3, 5)): kernel_size (3, 5) differs between axes; "
                            "the design's Conv2d takes one kernel_size for every axis")
    assert sentences[1].startswith("Line 5: nn.Conv2d(3, 8, 3, padding_mode=\"reflect\"): padding_mode='reflect' has "
                                   "no setting in the design's Conv2d")
    assert sentences[2].startswith("Line 6: ") and "return_indices=True" in sentences[2]
    changed = [note for note in imported.notes if not note.left_out]
    assert [note.where for note in changed] == ["line 8", "line 13"]
    assert changed[0].reason == ("ceil_mode=True has no setting in the design and is left out, so the design gives "
                                 "8x3x3 here where PyTorch's layer gives 8x4x4")
    assert changed[1].reason == "in_features is 8 as written, but its input is 72 here, so the design uses 72"
    by_line = {note.where: note.reason for note in imported.left_out}
    assert "width" in by_line["line 10"] and "not a literal" in by_line["line 10"]
    assert "returns (output, state)" in by_line["line 11"]
    assert "TransformerEncoderLayer has no layer kind" in by_line["line 12"]
    assert "'dim'" in by_line["line 14"]  # nn.Softmax() with an implicit dim
    assert by_line["line 15"] == ("PyTorch refuses these arguments: padding='same' is not supported for strided "
                                  "convolutions")
    assert "'out_channels' must be an integer between 1 and 100000, got -8" in by_line["line 16"]
    # the rest is imported, in order
    assert not imported.spec.layers[-1].params["bias"]
    assert [layer.short() for layer in imported.spec.layers] == ["Conv2d 8, k3", "MaxPool2d 2, s2", "Flatten",
                                                                 "Linear 10"]


def test_a_class_with_a_forward_chain_imports():
    source = textwrap.dedent("""\
        import torch
        import torch.nn as nn
        import torch.nn.functional as F

        class Net(nn.Module):
            def __init__(self):
                super(Net, self).__init__()
                self.conv1 = nn.Conv2d(1, 6, 5)
                self.pool = nn.MaxPool2d(2, 2)
                self.conv2 = nn.Conv2d(6, 16, 5)
                self.fc1 = nn.Linear(16 * 4 * 4, 120)
                self.fc2 = nn.Linear(120, 10)
                self.helper = make_helper()

            def forward(self, x):
                x = self.pool(F.relu(self.conv1(x)))
                x = self.pool(F.relu(self.conv2(x)))
                x = x.view(-1, 16 * 4 * 4)
                x = F.relu(self.fc1(x))
                y = torch.special.expit(x)
                x = self.fc2(x)
                return F.log_softmax(x, dim=1)

        model = Net()
        """)
    imported = source_design(source, "net.py", (1, 28, 28))
    assert [layer.short() for layer in imported.spec.layers] == [
        "Conv2d 6, k5", "ReLU", "MaxPool2d 2, s2", "Conv2d 16, k5", "ReLU", "MaxPool2d 2, s2", "Flatten",
        "Linear 120", "ReLU", "Linear 10", "LogSoftmax"]
    assert [note.where for note in imported.notes] == ["line 13", "line 20"]
    assert analyze(imported.spec).ok


@pytest.mark.parametrize(("source", "shape", "message"), [
    ("model = nn.Sequential(\n", (1,), "model.py is not valid Python (line 1:"),
    ("x = 1\n", (1,), "model.py holds no model LayerStudio can read"),
    ("model = nn.Sequential(nn.Linear(3, 2))\n", None, "model.py does not say the shape of one input sample"),
    ("model = nn.Sequential(nn.Linear(3, 2))\n", (0, 3), "model.py: field 'input_shape'"),
    ("model = nn.Sequential(nn.Linear(3, 2), nn.Foo())\n" * 1, (3,), None),
])
def test_files_without_a_readable_model_get_one_sentence(source, shape, message):
    if message is None:
        assert len(source_design(source, "model.py", shape).notes) == 1
        return
    with pytest.raises(SpecError, match=message.replace("(", r"\(")):
        source_design(source, "model.py", shape)


def test_counts_beyond_the_designs_bounds_are_refused_before_anything_is_built():
    source = "model = nn.Sequential(SequenceLSTM(4, 8, num_layers=10_000_000), nn.Linear(4, 1_000_000_000))\n"
    imported = source_design(source, "huge.py", (3, 4))
    assert [note.reason for note in imported.notes] == [
        "the design's LSTM parameter 'num_layers' must be an integer between 1 and 100, got 10000000",
        "the design's Linear parameter 'out_features' must be an integer between 1 and 1000000, got 1000000000"]


def test_deep_nesting_is_refused_with_a_sentence():
    source = "model = " + "nn.Sequential(" * 60 + "nn.ReLU()" + ")" * 60 + "\n"
    imported = source_design(source, "deep.py", (3,))
    assert any("nest more than" in note.reason for note in imported.notes)


def test_the_imported_design_builds_and_runs():
    imported = source_design(D2L_LENET, "lenet.py", (1, 28, 28))
    model = build_model(imported.spec)
    assert model(torch.zeros(2, 1, 28, 28)).shape == (2, 10)
