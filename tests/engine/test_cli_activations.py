"""`layerstudio activations`: real weights files, real PNG files read back with PIL, bad input refused."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image

from engine.activations import GAP, enlargement, picture, to_rgb
from engine.build import build_model
from engine.cli import main
from engine.data import DataConfig, load_data
from engine.io import save_weights
from engine.templates import load_design

DATA = {"source": "mnist-sample", "limit": 200, "val_fraction": 0.2}


def run(capsys, *args) -> tuple[int, list[str], list[str]]:
    code = main([*map(str, args)])
    captured = capsys.readouterr()
    return code, captured.out.splitlines(), captured.err.splitlines()


@pytest.fixture(scope="module")
def lenet_files(tmp_path_factory):
    """A LeNet design file with its data section, and weights for it (as a fresh model has them)."""
    folder = tmp_path_factory.mktemp("activations-cli")
    _, design = load_design("lenet")
    path = folder / "lenet.json"
    path.write_text(json.dumps({**design, "data": DATA}))
    torch.manual_seed(0)
    weights = folder / "lenet.pt"
    save_weights(build_model(load_design(path)[0]), weights)
    return path, weights


def test_writes_one_png_per_layer_the_input_and_the_filters(lenet_files, tmp_path, capsys):
    design, weights = lenet_files
    out = tmp_path / "maps" / "sample-7"  # made, with its parent
    code, lines, err = run(capsys, "activations", design, "--weights", weights, "--sample", 7, "--out", out)
    assert code == 0, err
    names = ["input.png"] + [f"layer-{i:02d}-{kind}.png" for i, kind in enumerate(
        ("conv2d", "sigmoid", "avgpool2d", "conv2d", "avgpool2d", "conv2d", "flatten", "linear", "linear"))]
    names.append("filters.png")
    assert sorted(p.name for p in out.iterdir()) == sorted(names)
    assert [line.split(":")[0] for line in lines[:-1]] == [str(out / name) for name in names]
    assert lines[1] == f"{out / 'layer-00-conv2d.png'}: layer 0 (Conv2d 6, k5, p2), 6x28x28"
    assert lines[-1].startswith("Test sample 7 (true ") and ": predicted " in lines[-1]

    # 6 maps of 28x28, each pixel doubled (tiles of at least 32 pixels), in 2 columns and 3 rows, 1 pixel apart
    with Image.open(out / "layer-00-conv2d.png") as image:
        assert image.format == "PNG" and image.mode == "RGB"
        assert image.size == (2 * 56 + GAP, 3 * 56 + 2 * GAP)
    with Image.open(out / "filters.png") as image:  # 6 filters 1x5x5, each pixel 7 times
        assert image.size == (2 * 35 + GAP, 3 * 35 + 2 * GAP)
    with Image.open(out / "layer-07-linear.png") as image:  # 84 values: 32 cells of 16 pixels to a row, 3 rows
        assert image.size == (32 * 16 + 31 * GAP, 3 * 16 + 2 * GAP)

    # the input picture is the sample itself, scaled to 0..255 grey
    sample = load_data(DataConfig.from_dict(DATA)).test_x[7].numpy()
    with Image.open(out / "input.png") as image:
        pixels = np.asarray(image)
    np.testing.assert_array_equal(pixels, to_rgb(picture(sample, enlargement(sample))))
    grey = pixels[::2, ::2, 0].astype(float) / 255  # the picture is enlarged twice
    expected = (sample[0] - sample.min()) / np.ptp(sample)
    assert np.abs(grey - expected).max() <= 0.5 / 255 + 1e-6


def refused(capsys, *args) -> str:
    code, lines, err = run(capsys, "activations", *args)
    assert code == 1 and not lines
    assert err and err[0].startswith("Error: "), err
    return "\n".join(err)


def test_a_missing_weights_file_is_refused(lenet_files, tmp_path, capsys):
    design, _ = lenet_files
    text = refused(capsys, design, "--weights", tmp_path / "none.pt", "--out", tmp_path / "out")
    assert "none.pt" in text and len(text.splitlines()) == 1
    assert not (tmp_path / "out").exists()


def test_weights_of_another_design_are_refused(lenet_files, tmp_path, capsys):
    design, _ = lenet_files
    other = tmp_path / "mlp.pt"
    save_weights(build_model(load_design("mlp")[0]), other)
    text = refused(capsys, design, "--weights", other, "--out", tmp_path / "out")
    assert "do not fit this design" in text and "layer 0 (Conv2d)" in text
    assert not (tmp_path / "out").exists()


def test_a_sample_out_of_range_is_refused(lenet_files, tmp_path, capsys):
    design, weights = lenet_files
    text = refused(capsys, design, "--weights", weights, "--sample", 1000, "--out", tmp_path / "out")
    assert text == "Error: There is no test sample 1000: the test split has 1,000 samples, numbered 0 to 999."
    assert not (tmp_path / "out").exists()


def test_out_naming_a_file_is_refused_and_the_file_kept(lenet_files, tmp_path, capsys):
    design, weights = lenet_files
    target = tmp_path / "maps.png"
    target.write_bytes(b"keep me")
    text = refused(capsys, design, "--weights", weights, "--out", target)
    assert text.startswith(f"Error: {target} is a file: --out takes a folder") and len(text.splitlines()) == 1
    assert target.read_bytes() == b"keep me"
