"""`layerstudio predict`: weights trained by `layerstudio train`, real PNG files, one line (or JSON) per input."""
from __future__ import annotations

import json
import re
import subprocess
import sys

import pytest
import torch

from engine.build import build_model
from engine.cli import main
from engine.data import DataConfig, load_data
from engine.io import load_weights
from engine.templates import load_design
from tests.digits import write_digit

DATA = {"source": "mnist-sample", "limit": 300, "val_fraction": 0.2}
LINE = re.compile(r"^(?P<input>.+): (?P<label>\S+) \((?P<top>.+)\)$")


def run(capsys, *args) -> tuple[int, list[str], str]:
    code = main([*map(str, args)])
    captured = capsys.readouterr()
    return code, captured.out.splitlines(), captured.err


@pytest.fixture(scope="module")
def trained_design(tmp_path_factory):
    """A design file (softmax regression with a data section) and weights trained for it by `layerstudio train`."""
    folder = tmp_path_factory.mktemp("predict-cli")
    _, design = load_design("softmax-regression")
    path = folder / "softmax.json"
    path.write_text(json.dumps({**design, "data": DATA}))
    weights = folder / "softmax.pt"
    assert main(["train", str(path), "--epochs", "1", "--device", "cpu", "--save", str(weights)]) == 0
    return path, weights


def expected_probabilities(design, weights, index: int) -> list[float]:
    """softmax(model(x)) for test sample ``index`` of the design's own data."""
    spec, _ = load_design(design)
    model = build_model(spec)
    load_weights(model, weights, spec)
    model.eval()
    data = load_data(DataConfig.from_dict(DATA))
    with torch.no_grad():
        return torch.softmax(model(data.test_x[index:index + 1]), dim=1)[0].tolist()


def test_one_line_per_image_with_the_models_top_classes(trained_design, tmp_path, capsys):
    design, weights = trained_design
    files = []
    for index in (0, 1, 2):
        files.append(tmp_path / f"digit-{index}.png")
        write_digit(files[-1], index)
    code, lines, err = run(capsys, "predict", design, "--weights", weights, *files)
    assert code == 0, err
    assert len(lines) == 3
    for index, (path, line) in enumerate(zip(files, lines, strict=True)):
        match = LINE.match(line)
        assert match and match["input"] == str(path), line
        probabilities = expected_probabilities(design, weights, index)
        ranked = sorted(range(10), key=lambda k: -probabilities[k])[:3]
        assert match["label"] == str(ranked[0])
        assert match["top"] == ", ".join(f"{k} {100 * probabilities[k]:.1f}%" for k in ranked)


def test_json_output_carries_every_probability(trained_design, tmp_path, capsys):
    design, weights = trained_design
    path = tmp_path / "seven.png"
    write_digit(path, 0)
    code, lines, _ = run(capsys, "predict", design, "--weights", weights, "--json", path)
    assert code == 0
    [entry] = json.loads("\n".join(lines))
    probabilities = expected_probabilities(design, weights, 0)
    assert entry["input"] == str(path)
    assert list(entry["probabilities"]) == [str(k) for k in range(10)]
    assert list(entry["probabilities"].values()) == pytest.approx(probabilities, abs=1e-6)
    assert entry["predicted"] == str(max(range(10), key=lambda k: probabilities[k]))


def test_inputs_that_are_not_images_get_a_sentence_and_the_rest_are_still_predicted(trained_design, tmp_path,
                                                                                   capsys):
    design, weights = trained_design
    good, notes = tmp_path / "good.png", tmp_path / "notes.txt"
    write_digit(good, 4, "RGB", (64, 64))  # colour and larger: converted like the training images
    notes.write_text("hello")
    code, lines, err = run(capsys, "predict", design, "--weights", weights, notes, good, tmp_path / "gone.png")
    assert code == 1
    assert [LINE.match(line)["input"] for line in lines] == [str(good)]
    assert err.splitlines() == [
        "Error: notes.txt is not an image LayerStudio can read: choose a PNG, JPEG, BMP, GIF, TIFF or WebP file.",
        f"Error: {tmp_path / 'gone.png'} does not exist: check the path",
    ]
    code, lines, _ = run(capsys, "predict", design, "--weights", weights, "--json", notes)
    assert code == 1 and json.loads("\n".join(lines))[0]["error"].startswith("notes.txt is not an image")


def test_weights_of_another_design_are_refused_with_the_report(trained_design, tmp_path, capsys):
    design, _ = trained_design
    spec, _ = load_design("mlp")
    other = tmp_path / "mlp.pt"
    torch.save(build_model(spec).state_dict(), other)
    image = tmp_path / "digit.png"
    write_digit(image, 0)
    code, lines, err = run(capsys, "predict", design, "--weights", other, image)
    assert code == 1 and lines == []
    assert err.startswith("Error: The weights do not fit this design") and "nothing was loaded" in err


def test_rows_of_numbers_for_tabular_data(tmp_path, capsys):
    table = tmp_path / "points.csv"
    table.write_text("a,b,label\n" + "".join(f"{k % 7},{(3 * k) % 5},{k % 2}\n" for k in range(40)))
    design = tmp_path / "points.json"
    design.write_text(json.dumps({"format": "layerstudio.design", "version": 1, "input_shape": [2],
                                  "layers": [{"kind": "Linear", "params": {"out_features": 2}}],
                                  "data": {"source": "csv", "root": str(table), "val_fraction": 0.0}}))
    weights = tmp_path / "points.pt"
    assert main(["train", str(design), "--epochs", "1", "--device", "cpu", "--save", str(weights)]) == 0
    capsys.readouterr()
    code, lines, err = run(capsys, "predict", design, "--weights", weights, "--top", "2", "1,2", "--", "-3, 0.5",
                           "1,2,3")
    assert code == 1
    assert [LINE.match(line)["input"] for line in lines] == ["1,2", "-3, 0.5"]
    assert "takes 2 numbers per row, got 3" in err


def test_the_installed_command_runs_as_a_subprocess(trained_design, tmp_path):
    design, weights = trained_design
    image = tmp_path / "digit.png"
    write_digit(image, 9)
    done = subprocess.run([sys.executable, "-m", "engine.cli", "predict", str(design), "--weights", str(weights),
                           str(image)], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert LINE.match(done.stdout.strip())
