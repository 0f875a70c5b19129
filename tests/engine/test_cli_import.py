"""`layerstudio import`: a PyTorch file as a design file, what did not map printed, the flags named in errors."""
from __future__ import annotations

import pytest

from engine.cli import main
from engine.shapes import analyze
from engine.templates import load_design, load_template
from tests.engine.test_import_source import D2L_LENET


def test_the_notes_lenet_becomes_a_design_file(tmp_path, capsys):
    source, target = tmp_path / "lenet.py", tmp_path / "lenet.json"
    source.write_text(D2L_LENET + "extra = nn.Sequential(nn.Linear(4, 2))\n")
    assert main(["import", str(source), "--input-shape", "1x28x28", "-o", str(target)]) == 0
    out = capsys.readouterr().out
    assert out.splitlines()[0] == "Imported lenet.py: 12 layers, 61,706 parameters, output 10"
    assert f"Wrote {target}; see it with: layerstudio summary {target}" in out
    spec, data = load_design(target)
    assert data["name"] == "lenet" and data["description"] == "Imported from lenet.py"
    assert analyze(spec).params == analyze(load_template("lenet-d2l")).params == 61_706


def test_parts_that_did_not_map_are_printed_and_the_rest_is_written(tmp_path, capsys):
    source, target = tmp_path / "model.py", tmp_path / "model.json"
    source.write_text("from torch import nn\nmodel = nn.Sequential(\n    nn.Flatten(),\n    nn.Bilinear(3, 3, 3),\n"
                      "    nn.Linear(100, 10),\n)\n")
    assert main(["import", str(source), "--input-shape", "1x4x4", "-o", str(target)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[1] == ("Not mapped: Line 4: nn.Bilinear(3, 3, 3): Bilinear has no layer kind in the design: add the "
                        "nearest layer by hand, or leave it out")
    assert lines[2] == ("Changed: Line 5: nn.Linear(100, 10): in_features is 100 as written, but its input is 16 "
                        "here, so the design uses 16")
    assert [layer.kind for layer in load_design(target)[0].layers] == ["Flatten", "Linear"]


def test_the_exported_script_comes_back_without_an_input_shape_flag(tmp_path, capsys):
    script, target = tmp_path / "resnet.py", tmp_path / "resnet.json"
    assert main(["export", "resnet18", "--python", str(script)]) == 0
    assert main(["import", str(script), "-o", str(target)]) == 0  # INPUT_SHAPE in the script
    spec = load_design(target)[0]
    original = load_template("resnet18")
    assert spec.input_shape == original.input_shape
    assert [layer.id for layer in spec.all_layers()] == [layer.id for layer in original.all_layers()]


@pytest.mark.parametrize(("arguments", "message"), [
    (["--input-shape", "1x28"], None),
    ([], "Error: model.py does not say the shape of one input sample: give it with --input-shape, e.g. 1x28x28"),
    (["--input-shape", "28 by 28"], "Error: --input-shape: The input shape '28 by 28' is not sizes joined by x: "
                                    "write one sample's shape, e.g. 1x28x28"),
    (["--input-shape", "0x3"], "Error: --input-shape: field 'input_shape'"),
])
def test_the_input_shape_comes_from_the_flag(tmp_path, capsys, arguments, message):
    source = tmp_path / "model.py"
    source.write_text("import torch.nn as nn\nmodel = nn.Sequential(nn.Flatten(), nn.Linear(28, 2))\n")
    code = main(["import", str(source), *arguments, "-o", str(tmp_path / "out.json")])
    if message is None:
        assert code == 0
        return
    assert code == 1
    assert capsys.readouterr().err.startswith(message)
    assert not (tmp_path / "out.json").exists()


def test_a_bad_target_or_source_is_refused_before_any_work(tmp_path, capsys):
    source = tmp_path / "model.py"
    source.write_text("model = nn.Sequential(nn.ReLU())\n")
    assert main(["import", str(source), "--input-shape", "3", "-o", str(tmp_path / "design.txt")]) == 1
    assert "name the -o design file .json" in capsys.readouterr().err
    assert main(["import", str(tmp_path / "notes.txt"), "-o", str(tmp_path / "d.json")]) == 1
    assert capsys.readouterr().err.startswith("Error: ") and not (tmp_path / "d.json").exists()
    assert main(["import", str(tmp_path / "missing.py"), "--input-shape", "3", "-o", str(tmp_path / "d.json")]) == 1
    assert "missing.py" in capsys.readouterr().err


def test_a_torchvision_model_becomes_a_design_file(tmp_path, capsys):
    target = tmp_path / "resnet18.json"
    assert main(["import", "torchvision:resnet18", "-o", str(target)]) == 0
    assert capsys.readouterr().out.splitlines()[0] == ("Imported torchvision:resnet18: 65 layers, 11,689,512 "
                                                       "parameters, output 1000")
    spec, data = load_design(target)
    assert spec.input_shape == (3, 224, 224) and data["name"] == "torchvision:resnet18"
