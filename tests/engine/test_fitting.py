"""Fitting designs to data: every template on every kind of data either fits without an analysis error (and
runs in torch) or is refused with a sentence; every template trains one click away on the bundled sample."""
from __future__ import annotations

import math
from dataclasses import replace

import pytest
import torch

from engine.build import build_model
from engine.data import DIGIT_NAMES, DataConfig, load_data
from engine.fitting import (
    DataFacts,
    builtin_facts,
    fit,
    fit_problems,
    output_fits,
    sample_trial,
)
from engine.shapes import analyze
from engine.spec import LayerSpec, NetworkSpec
from engine.templates import list_templates, load_design
from engine.training import TrainConfig, Trainer

TEMPLATES = [info.name for info in list_templates()]
KINDS = ("sample", "csv", "csv-regression", "synthetic")


@pytest.fixture(scope="module")
def bundles(tmp_path_factory):
    """One bundle of each kind of data: images, a classification table, a two-target regression table,
    synthetic regression."""
    folder = tmp_path_factory.mktemp("tables")
    flowers = folder / "flowers.csv"
    species = ("setosa", "versicolor", "virginica")
    rows = [f"{5 + i % 7 / 10},{3 + i % 5 / 10},{1 + i % 9 / 2},{i % 4 / 10},{species[i % 3]}" for i in range(60)]
    flowers.write_text("sepal_length,sepal_width,petal_length,petal_width,species\n" + "\n".join(rows) + "\n")
    houses = folder / "houses.csv"
    houses.write_text("rooms,area,age,price,rent\n" + "\n".join(
        f"{1 + i % 5},{40 + 3.5 * i},{i % 30},{100 + 2.5 * i},{0.5 + i / 7}" for i in range(50)) + "\n")
    return {
        "sample": load_data(DataConfig(limit=200)),
        "csv": load_data(DataConfig(source="csv", root=str(flowers), label_column="species")),
        "csv-regression": load_data(DataConfig(source="csv", root=str(houses), label_column="price,rent")),
        "synthetic": load_data(DataConfig(source="synthetic-regression", samples=100)),
    }


def runs_in_torch(spec: NetworkSpec, bundle) -> tuple[int, ...]:
    """The output shape of the built model on two real samples (reshaped as the trainer does)."""
    model = build_model(spec).eval()
    x = bundle.model_inputs(bundle.train_x[:2]).reshape(2, *spec.input_shape)
    with torch.no_grad():
        return tuple(model(x).shape[1:])


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("template", TEMPLATES)
def test_fitting_any_template_to_any_data_fits_or_explains(template, kind, bundles):
    spec, _ = load_design(template)
    bundle = bundles[kind]
    facts = DataFacts.of(bundle)
    result = fit(spec, facts)
    if not result.ok:
        sentence = result.refusal
        assert sentence[:1].isupper() and sentence.endswith(".") and bundle.name in sentence
        assert "Traceback" not in sentence and not result.changes
        if len(bundle.input_shape) == 1 and spec.layers[0].kind in ("Conv2d", "VGGBlock", "NiNBlock"):
            assert f"starts with {spec.layers[0].kind}, which needs images (CxHxW)" in sentence
            assert f"gives {bundle.input_shape[0]} features per sample" in sentence and "MLP template" in sentence
        return
    analysis = analyze(result.spec)
    assert analysis.ok, analysis.errors[0].error
    if result.image_size:       # the images are to be enlarged: the design fits them at that size
        side = result.image_size
        facts = replace(facts, input_shape=(facts.input_shape[0], side, side))
        bundle = load_data(DataConfig(limit=20, image_size=side))
    assert output_fits(analysis.output_shape, facts) and fit_problems(result.spec, facts) == []
    assert math.prod(result.spec.input_shape) == math.prod(bundle.input_shape)
    assert runs_in_torch(result.spec, bundle) == analysis.output_shape
    assert [layer.kind for layer in result.spec.layers] == [layer.kind for layer in spec.layers]


def test_conv_nets_on_tables_are_refused_in_the_words_of_the_issue(bundles):
    spec, _ = load_design("cnn")
    result = fit(spec, DataFacts.of(bundles["csv"]))
    assert result.refusal == ("This design starts with Conv2d, which needs images (CxHxW), but CSV flowers.csv gives "
                              "4 features per sample: choose image data or start from an MLP template.")


def test_a_design_taking_flat_vectors_gets_the_flattened_image_and_the_classes(bundles):
    spec, _ = load_design("linear-regression")       # Linear(1) on 2 features: on images it would act per row
    result = fit(spec, DataFacts.of(bundles["sample"]))
    assert result.spec.input_shape == (784,)
    assert analyze(result.spec).output_shape == (10,)
    assert result.changes == ("input 2 → 784", "the last Linear gives 10 outputs instead of 1")


def test_a_table_of_pixels_keeps_the_image_design_a_reshape_apart(tmp_path):
    """784 columns feed LeNet unchanged: the trainer reshapes each row to 1x28x28."""
    header = ",".join(f"p{i}" for i in range(784)) + ",label"
    rows = [",".join(str((i * 7 + j) % 256) for j in range(784)) + f",{i % 2}" for i in range(20)]
    (tmp_path / "pixels.csv").write_text(header + "\n" + "\n".join(rows) + "\n")
    bundle = load_data(DataConfig(source="csv", root=str(tmp_path / "pixels.csv")))
    spec, _ = load_design("lenet")
    result = fit(spec, DataFacts.of(bundle))
    assert result.spec.input_shape == (1, 28, 28)
    assert result.changes == ("the last Linear gives 2 outputs instead of 10",)


def test_images_too_small_for_the_strides_are_enlarged_to_the_smallest_size_that_works():
    spec, _ = load_design("alexnet")
    result = fit(spec, builtin_facts("mnist-sample"))
    assert result.image_size == 65 and result.spec.input_shape == (1, 65, 65)
    assert not analyze(spec.with_input_shape((1, 64, 64))).ok and analyze(result.spec).ok


def test_a_design_broken_whatever_the_input_is_refused_not_applied():
    spec = NetworkSpec((1, 28, 28), (LayerSpec("MaxPool2d", {"kernel_size": 2, "padding": 2}, id="pool"),
                                     LayerSpec("Flatten", id="flat"),
                                     LayerSpec("Linear", {"out_features": 10}, id="out")))
    result = fit(spec, builtin_facts("mnist-sample"))
    assert not result.ok and result.spec is None
    assert result.refusal.startswith(
        "This design cannot take the 1x28x28 samples of MNIST sample: at layer 0 (MaxPool2d)")


def test_an_output_no_layer_can_resize_is_refused_with_the_fix():
    spec = NetworkSpec((1, 28, 28), (LayerSpec("Conv2d", {"out_channels": 4, "kernel_size": 3}, id="conv"),
                                     LayerSpec("ReLU", id="relu")))
    result = fit(spec, builtin_facts("mnist-sample"))
    assert not result.ok and "end it with a layer that gives 10 values" in result.refusal


@pytest.mark.parametrize("template", TEMPLATES)
def test_every_templates_own_data_fits_it(template):
    """The one-click path on the template's own dataset: the design needs no fitting."""
    spec, design = load_design(template)
    config = DataConfig.from_dict(design["data"])
    if config.source == "synthetic-regression":
        facts = DataFacts.of(load_data(config))
    else:
        facts = builtin_facts(config.source, config.task, config.image_size)
    assert fit_problems(spec, facts) == []
    assert fit(spec, facts).changes == ()


@pytest.mark.parametrize("template", TEMPLATES)
def test_every_template_trains_on_the_bundled_sample_after_one_click(template):
    """Try it on the bundled sample, then train: a few steps, one epoch, without an error."""
    spec, design = load_design(template)
    trial = sample_trial(spec, design["data"])
    assert trial.fit.ok, trial.sentence
    data = DataConfig.from_dict({**trial.data, "limit": 64})
    assert data.source == "mnist-sample" and not data.augment_hflip
    assert data.augment_crop_padding == design["data"].get("augment_crop_padding", 0)   # shifting digits is fine
    bundle = load_data(data)
    fitted = trial.fit.spec
    assert math.prod(fitted.input_shape) == math.prod(bundle.input_shape)
    trainer = Trainer(fitted, bundle, TrainConfig(epochs=1, batch_size=32, device="cpu", seed=0))
    finished = trainer.run()
    assert finished.reason == "completed", finished.message
    assert trainer.global_step == 2
    if design["data"]["source"] != "mnist-sample":
        assert trial.changed and "bundled MNIST sample" in trial.sentence
    if bundle.task == "classification":
        assert bundle.num_classes == len(DIGIT_NAMES) and analyze(fitted).output_shape == (10,)


def test_the_trial_sentence_says_what_changed():
    spec, design = load_design("resnet18")
    trial = sample_trial(spec, design["data"])
    assert trial.sentence == (
        "Now trying it on the bundled sample: the data is the bundled MNIST sample (4,000 handwritten digits for "
        "training, works offline); input 3x32x32 → 1x28x28; random horizontal flip is off (a mirrored 2 or 7 is no "
        "digit). Undo (Ctrl+Z) goes back.")
    spec, design = load_design("lenet")
    same = sample_trial(spec, design["data"])
    assert not same.changed and same.sentence == "Already on the bundled MNIST sample, and the design fits it."


def test_flipping_digits_is_noted_when_the_data_loads():
    notes = load_data(DataConfig(limit=100, augment_hflip=True)).notes
    assert any("mirrored 2 or 7 is no digit" in note for note in notes)


def test_samples_too_large_for_any_design_are_refused_not_fitted():
    spec, _ = load_design("lenet")
    result = fit(spec, DataFacts("Big pictures", (3, 4096, 4096), "classification", 10))
    assert not result.ok and result.refusal.startswith("A design cannot take the 3x4096x4096 samples of Big pictures")
    assert "too large" in result.refusal
