"""Predictions for single inputs (engine.predict): real image files and rows of numbers prepared exactly like the
training data, probabilities that are the model's own, and a sentence for every input that cannot be used."""
from __future__ import annotations

import csv

import numpy as np
import pytest
import torch
from PIL import Image

from engine.build import build_model
from engine.data import DataConfig, load_data
from engine.errors import DataError, TrainingError
from engine.predict import (
    IMAGE,
    TABLE,
    InputFormat,
    Predictor,
    class_probabilities,
    parse_row,
    prepare_image,
    prepare_row,
)
from engine.spec import LayerSpec, NetworkSpec
from engine.training import TrainConfig, Trainer
from tests.digits import write_digit

QUICK = TrainConfig(epochs=1, batch_size=32, device="cpu", seed=0)


def classifier(input_shape=(1, 28, 28), classes: int = 10) -> NetworkSpec:
    return NetworkSpec(tuple(input_shape), (
        LayerSpec("Flatten"), LayerSpec("Linear", {"out_features": 16}), LayerSpec("ReLU"),
        LayerSpec("Linear", {"out_features": classes})))


@pytest.fixture(scope="module")
def mnist():
    return load_data(DataConfig(limit=400, val_fraction=0.2))


@pytest.fixture(scope="module")
def trained(mnist):
    trainer = Trainer(classifier(), mnist, QUICK)
    assert trainer.run().reason == "completed"
    return trainer


@pytest.fixture(scope="module")
def predictor(trained, mnist):
    return Predictor(trained.spec, trained.model, mnist, QUICK)


def model_probabilities(model, x: torch.Tensor) -> list[float]:
    model.eval()
    with torch.no_grad():
        return torch.softmax(model(x), dim=1)[0].tolist()


# --------------------------------------------------------------------------- images

def test_a_png_of_a_test_digit_becomes_exactly_that_test_sample(mnist, tmp_path):
    form = InputFormat.of(mnist)
    assert (form.kind, form.input_shape, form.decode_size, form.resize_to) == (IMAGE, (1, 28, 28), 28, 0)
    for index in (0, 7, 999):
        path = tmp_path / f"digit{index}.png"
        write_digit(path, index)
        assert torch.equal(prepare_image(path, form)[0], mnist.test_x[index])  # same decoding and statistics


def test_the_prediction_is_the_models_softmax_on_the_prepared_image(predictor, trained, mnist, tmp_path):
    for index in (3, 42):
        path = tmp_path / f"{index}.png"
        label = write_digit(path, index)
        result = predictor.image(path)
        expected = model_probabilities(trained.model, mnist.test_x[index:index + 1])
        assert result.scores == pytest.approx(expected, abs=1e-6)
        assert result.predicted == int(np.argmax(expected))
        assert result.names == [str(d) for d in range(10)] and result.source == str(path)
        assert sum(result.scores) == pytest.approx(1.0)
        assert result.top(3)[0] == (result.label, max(result.scores))
        assert label == int(mnist.test_y[index])


@pytest.mark.parametrize("mode, size, suffix", [("RGB", (56, 56), ".png"), ("RGBA", (20, 35), ".png"),
                                                ("P", (28, 28), ".gif"), ("RGB", (100, 80), ".jpg"),
                                                ("I;16", (28, 28), ".png"), ("1", (28, 28), ".bmp")])
def test_images_of_other_sizes_and_colours_are_converted_like_training_images(predictor, mnist, tmp_path, mode, size,
                                                                              suffix):
    path = tmp_path / f"digit{suffix}"
    write_digit(path, 5, mode, size)
    x = prepare_image(path, predictor.format)
    assert x.shape == (1, 1, 28, 28) and x.dtype == torch.float32
    with Image.open(path) as image:  # what decode_image does: to grayscale, bilinear to 28x28
        expected = np.array(image.convert("L").resize((28, 28), Image.Resampling.BILINEAR), dtype=np.float32)
    mean, std = mnist.mean[0], mnist.std[0]
    assert x[0, 0].numpy() == pytest.approx((expected / 255 - mean) / std, abs=1e-5)
    assert len(predictor.image(path).scores) == 10


def test_enlarged_builtin_data_enlarges_the_image_the_same_way(tmp_path):
    data = load_data(DataConfig(limit=100, image_size=36))
    form = InputFormat.of(data)
    assert (form.input_shape, form.decode_size, form.resize_to) == ((1, 36, 36), 28, 36)
    path = tmp_path / "digit.png"
    write_digit(path, 11)
    assert torch.equal(prepare_image(path, form)[0], data.model_inputs(data.test_x[11:12])[0])


def test_image_folder_data_decodes_at_its_image_size_in_colour(tmp_path):
    generator = np.random.default_rng(0)
    for split in ("train", "test"):
        for name in ("cat", "dog"):
            folder = tmp_path / "pets" / split / name
            folder.mkdir(parents=True)
            for k in range(3):
                pixels = generator.integers(0, 256, (24 + 4 * k, 30, 3), dtype=np.uint8)
                Image.fromarray(pixels).save(folder / f"{k}.png")
    data = load_data(DataConfig(source="folder", root=str(tmp_path / "pets"), image_size=12, grayscale=False))
    form = InputFormat.of(data)
    assert (form.input_shape, form.decode_size, form.resize_to) == ((3, 12, 12), 12, 0)
    test_files = sorted((tmp_path / "pets" / "test" / "cat").glob("*.png")) + sorted(
        (tmp_path / "pets" / "test" / "dog").glob("*.png"))
    for index, path in enumerate(test_files):
        assert torch.allclose(prepare_image(path, form)[0], data.test_x[index], atol=1e-6)
    spec = classifier((3, 12, 12), classes=2)
    result = Predictor(spec, build_model(spec), data).image(test_files[0])
    assert result.names == ["cat", "dog"] and len(result.scores) == 2


def test_files_that_are_not_images_get_a_sentence(predictor, tmp_path):
    notes = tmp_path / "notes.txt"
    notes.write_text("not a picture")
    with pytest.raises(DataError, match=r"^notes\.txt is not an image LayerStudio can read: choose a PNG"):
        predictor.image(notes)
    truncated = tmp_path / "half.png"
    write_digit(truncated, 1)
    truncated.write_bytes(truncated.read_bytes()[:60])
    with pytest.raises(DataError, match=r"^half\.png is not an image LayerStudio can read"):
        predictor.image(truncated)
    with pytest.raises(DataError, match="does not exist"):
        predictor.image(tmp_path / "missing.png")
    with pytest.raises(DataError, match="is a folder"):
        predictor.image(tmp_path)
    with pytest.raises(DataError, match="takes grayscale images, 1x28x28: open an image file"):
        predictor.row("1, 2, 3")


# --------------------------------------------------------------------------- rows of numbers

@pytest.fixture(scope="module")
def table(tmp_path_factory):
    """A CSV table (3 features, 3 classes named by words) loaded with every row in the training split."""
    path = tmp_path_factory.mktemp("table") / "flowers.csv"
    generator = np.random.default_rng(1)
    with open(path, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["petal", "sepal", "stem", "label"])
        for k in range(60):
            kind = ("iris", "rose", "tulip")[k % 3]
            writer.writerow([f"{v:.3f}" for v in generator.normal(k % 3, 1.0 + k % 2, 3)] + [kind])
    return path, load_data(DataConfig(source="csv", root=str(path), val_fraction=0.0))


def test_a_typed_row_is_normalised_like_the_training_rows(table):
    path, data = table
    form = InputFormat.of(data)
    assert (form.kind, form.input_shape) == (TABLE, (3,))
    with open(path, newline="") as handle:
        rows = list(csv.reader(handle))[1:]
    for index in (0, 17, 59):
        typed = "  ".join(rows[index][:3]) if index % 2 else ", ".join(rows[index][:3])
        assert torch.equal(prepare_row(typed, form)[0], data.train_x[index])


def test_a_row_prediction_is_the_models_own_and_named_by_class(table):
    _, data = table
    spec = NetworkSpec((3,), (LayerSpec("Linear", {"out_features": 3}),))
    trainer = Trainer(spec, data, TrainConfig(epochs=3, device="cpu"))
    assert trainer.run().reason == "completed"
    result = Predictor(spec, trainer.model, data).row("0.5; 1.5; -0.25")
    x = prepare_row([0.5, 1.5, -0.25], InputFormat.of(data))
    assert result.names == ["iris", "rose", "tulip"]
    assert result.scores == pytest.approx(model_probabilities(trainer.model, x), abs=1e-6)
    assert result.source == "0.5; 1.5; -0.25"


@pytest.mark.parametrize("text, message", [
    ("1, 2", "takes 3 numbers per row, got 2"),
    ("1, 2, 3, 4", "takes 3 numbers per row, got 4"),
    ("1, two, 3", r"Value 2 \('two'\) is not a finite number"),
    ("1, nan, 3", r"Value 2 \('nan'\) is not a finite number"),
    ("1e999, 0, 0", "Value 1"),
    ("   ", "Type the input numbers"),
])
def test_rows_that_cannot_be_used_get_a_sentence(table, text, message):
    with pytest.raises(DataError, match=message):
        prepare_row(text, InputFormat.of(table[1]))


def test_parse_row_accepts_commas_semicolons_and_spaces():
    assert parse_row(" 1.5, -2;3\t4e-1 ") == [1.5, -2.0, 3.0, 0.4]


def test_regression_predicts_the_raw_output_values():
    data = load_data(DataConfig(source="synthetic-regression", samples=100))
    spec = NetworkSpec((2,), (LayerSpec("Linear", {"out_features": 1}),))
    model = build_model(spec)
    result = Predictor(spec, model, data).row("1.5, -2")
    with torch.no_grad():
        expected = model(torch.tensor([[1.5, -2.0]])).item()  # synthetic data is never normalised
    assert not result.classification and result.names == ["y"]
    assert result.scores == [pytest.approx(expected)]
    assert result.to_dict() == {"input": "1.5, -2", "values": {"y": pytest.approx(expected)}}


# --------------------------------------------------------------------------- outputs and designs

def test_probabilities_follow_the_loss_that_trained_the_outputs():
    out = torch.tensor([[2.0, -1.0, 0.5]])
    close = torch.testing.assert_close
    close(class_probabilities(out, "cross_entropy"), torch.softmax(out, 1))
    close(class_probabilities(torch.log_softmax(out, 1), "nll"), torch.softmax(out, 1))
    close(class_probabilities(out, "bce_with_logits"), torch.sigmoid(out))
    p = torch.sigmoid(torch.tensor(2.0)).item()
    close(class_probabilities(torch.tensor([[0.0], [2.0]]), "bce_with_logits"), torch.tensor([[0.5, 0.5], [1 - p, p]]))
    close(class_probabilities(torch.tensor([[0.8]]), "bce"), torch.tensor([[0.2, 0.8]]))


def test_a_design_that_does_not_fit_the_data_is_refused(mnist):
    spec = classifier(classes=4)
    with pytest.raises(TrainingError, match="10 classes"):
        Predictor(spec, build_model(spec), mnist)
    data = load_data(DataConfig(limit=50, task="reconstruction"))
    with pytest.raises(DataError, match="reconstruction"):
        Predictor(spec, build_model(spec), data)


def test_a_flat_design_predicts_image_files_reshaped(mnist, tmp_path):
    spec = classifier(input_shape=(784,))
    model = build_model(spec)
    path = tmp_path / "digit.png"
    write_digit(path, 2)
    result = Predictor(spec, model, mnist).image(path)
    assert result.scores == pytest.approx(model_probabilities(model, mnist.test_x[2:3].reshape(1, 784)), abs=1e-6)


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_a_model_on_the_gpu_predicts_what_its_cpu_copy_predicts(trained, mnist, tmp_path):
    import copy

    path = tmp_path / "digit.png"
    write_digit(path, 8)
    on_cpu = Predictor(trained.spec, copy.deepcopy(trained.model).cpu(), mnist).image(path)
    on_gpu = Predictor(trained.spec, copy.deepcopy(trained.model).cuda(), mnist).image(path)
    assert on_gpu.scores == pytest.approx(on_cpu.scores, abs=1e-5) and on_gpu.predicted == on_cpu.predicted
