"""`layerstudio templates | summary | export` run through engine.cli.main, as a terminal would."""
from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import replace

import torch

from engine.build import build_model
from engine.cli import main
from engine.shapes import analyze
from engine.templates import list_templates, load_design, load_template


def table_rows(lines: list[str]) -> list[str]:
    """A printed table's rows, each joined with the continuation lines its wrapped last column ran onto (a
    summary's wrapped layer label, on a line whose # column is blank, is left out)."""
    indent = len(lines[0]) - len(lines[0].split("  ")[-1].lstrip())  # where the header's last column starts
    label = lines[0].find("Layer")  # a summary: its # column ends where the Layer column starts
    rows: list[str] = []
    for line in lines:
        if rows and line[:indent].isspace() and len(line) > indent:
            rows[-1] += " " + line[indent:]
        elif rows and label > 0 and line[:label].isspace():
            rows[-1] += " " + line[indent:] if len(line) > indent else ""
        else:
            rows.append(line)
    return rows


def test_templates_lists_every_template_with_dataset_and_params(capsys):
    assert main(["templates"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].split() == ["Template", "Dataset", "Params", "Description"]
    listed = [line.split()[0] for line in out[1:] if not line.startswith(" ")]  # not a wrapped description
    assert listed == [t.name for t in list_templates()]
    lenet = next(line for line in out if line.startswith("lenet "))
    assert "mnist-sample" in lenet and "61,706" in lenet


def test_summary_of_a_template_prints_rows_and_totals(capsys):
    assert main(["summary", "lenet"]) == 0
    out, err = capsys.readouterr()
    assert err == ""
    lines = out.splitlines()
    conv = next(line for line in lines if "Conv2d 6, k5, p2" in line)
    assert conv.split()[:1] == ["0"] and "6x28x28" in conv and "156" in conv
    assert "H = floor((28 + 2*2 - 5)/1) + 1 = 28" in conv
    totals = dict(line.split(":", 1) for line in lines
                  if line.startswith(("Total", "Trainable", "Output", "Size", "MACs")))
    analysis = analyze(load_template("lenet"))
    assert totals["Total params"].strip() == f"{analysis.params:,}" == "61,706"
    assert totals["Trainable params"].strip() == "61,706"
    assert totals["Output shape"].strip() == "10"
    assert float(totals["Size (MB, float32)"]) == round(analysis.size_mb, 2)
    assert f"({analysis.macs:,})" in totals["MACs per sample"]


def test_summary_of_a_design_file_marks_frozen_layers(tmp_path, capsys):
    spec = load_template("mlp").with_param("fc1", "out_features", 64)
    spec = spec.with_layer(replace(spec.layer("fc1"), frozen=True))
    path = tmp_path / "small mlp.json"
    path.write_text(json.dumps({**spec.to_dict(), "name": "small mlp"}))
    assert main(["summary", str(path)]) == 0
    out = capsys.readouterr().out
    assert out.startswith("small mlp: input 1x28x28, 6 layers")
    assert "Linear 64 (frozen)" in out
    frozen = 784 * 64 + 64
    assert f"Non-trainable params: {frozen:,}" in out


def test_summary_of_a_broken_design_marks_the_row_and_exits_1_with_one_line(tmp_path, capsys, monkeypatch):
    spec = load_template("cnn").with_param("conv2", "kernel_size", 20)
    (tmp_path / "broken.json").write_text(spec.to_json())
    monkeypatch.chdir(tmp_path)  # a short title line: a long temporary path (pytest-xdist's) wraps it onto two
    assert main(["summary", "broken.json"]) == 1
    out, err = capsys.readouterr()
    broken = next(row for row in table_rows(out.splitlines()[1:]) if "k20" in row)
    assert broken.startswith("!") and "Error: kernel 20 is larger than the padded input 18" in broken
    assert "Total params" not in out  # no totals for a design that cannot be built
    assert len(err.strip().splitlines()) == 1
    assert err.startswith("Error: 1 broken layer(s)") and "layer 4" in err


def test_summary_of_a_non_json_file_exits_1_with_one_line(tmp_path, capsys):
    path = tmp_path / "notes.json"
    path.write_text("this is not a design")
    assert main(["summary", str(path)]) == 1
    out, err = capsys.readouterr()
    assert out == ""
    assert err.count("\n") == 1 and "not valid JSON" in err


def test_summary_of_an_unknown_template_names_the_known_ones(capsys):
    assert main(["summary", "lenet7"]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "unknown template 'lenet7'" in err and "resnet18" in err


def test_export_writes_a_script_that_runs_and_takes_the_built_weights(tmp_path, capsys):
    script = tmp_path / "model.py"
    assert main(["export", "resnet18", "--python", str(script)]) == 0
    assert str(script) in capsys.readouterr().out

    spec, _ = load_design("resnet18")
    weights = tmp_path / "weights.pt"
    torch.save(build_model(spec).state_dict(), weights)
    check = (
        "import runpy, sys, torch\n"
        "namespace = runpy.run_path(sys.argv[1], run_name='__main__')\n"
        "model = namespace['model']\n"
        "model.load_state_dict(torch.load(sys.argv[2], weights_only=True), strict=True)\n"
        "print('keys', len(model.state_dict()))\n"
    )
    result = subprocess.run([sys.executable, "-c", check, str(script), str(weights)], capture_output=True,
                            text=True, timeout=120, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "Residual(" in result.stdout  # the script's own print(model)
    assert "output shape per sample: (10,)" in result.stdout
    assert f"keys {len(build_model(spec).state_dict())}" in result.stdout


def test_export_of_a_broken_design_writes_nothing(tmp_path, capsys):
    path = tmp_path / "broken.json"
    path.write_text(load_template("lenet").with_param("conv3", "kernel_size", 9).to_json())
    script = tmp_path / "model.py"
    assert main(["export", str(path), "--python", str(script)]) == 1
    assert not script.exists()
    assert capsys.readouterr().err.count("\n") == 1


def test_export_to_an_unwritable_path_exits_1(tmp_path, capsys):
    assert main(["export", "lenet", "--python", str(tmp_path / "missing folder" / "model.py")]) == 1
    assert "Cannot write" in capsys.readouterr().err
