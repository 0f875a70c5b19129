"""engine.activations: one sample's layer outputs against a plain forward pass, hooks and modes left as they were
(after an error too), the first convolution's filters, weight histograms, probabilities and the pictures."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from engine import groups
from engine.activations import (
    GAP,
    filter_picture,
    first_conv_filters,
    layer_outputs,
    picture,
    record_activations,
    sample_activations,
    tile,
    weight_histograms,
)
from engine.build import build_model
from engine.data import DataConfig, load_data
from engine.errors import DataError
from engine.evaluation import make_objective
from engine.spec import LayerSpec, NetworkSpec
from engine.templates import load_template

DATA = {"source": "mnist-sample", "limit": 200, "val_fraction": 0.2}


@pytest.fixture(scope="module")
def data():
    return load_data(DataConfig.from_dict(DATA))


@pytest.fixture
def lenet():
    torch.manual_seed(0)
    spec = load_template("lenet")
    return spec, build_model(spec)


def no_hooks(model: nn.Module) -> bool:
    return all(not m._forward_hooks and not m._forward_pre_hooks for m in model.modules())


def plain_outputs(model: nn.Sequential, x: torch.Tensor) -> list[torch.Tensor]:
    """Each layer's output, by running the layers one after the other (no hooks at all)."""
    outputs = []
    with torch.no_grad():
        for layer in model:
            x = layer(x)
            outputs.append(x[0])
    return outputs


def test_each_layers_output_is_the_plain_forward_pass(lenet, data, one_torch_thread):
    spec, model = lenet
    x = data.test_x[7:8]
    model.eval()
    expected = plain_outputs(model, x)
    model.train()
    layers = layer_outputs(spec, model, x)
    assert [layer.index for layer in layers] == list(range(len(spec.layers)))
    assert [layer.kind for layer in layers] == [layer.kind for layer in spec.layers]
    assert layers[0].label == "Conv2d 6, k5, p2" and layers[-1].label == "Linear 10"
    for layer, want in zip(layers, expected, strict=True):
        assert layer.output.shape == tuple(want.shape)
        np.testing.assert_allclose(layer.output, want.numpy(), rtol=1e-5, atol=1e-6)
    assert no_hooks(model)
    assert model.training and all(m.training for m in model.modules())


def test_eval_mode_for_the_pass_and_every_modules_own_mode_restored(data, one_torch_thread):
    """Dropout is off during the pass (two passes agree); a module left in eval mode stays so."""
    spec = NetworkSpec((1, 28, 28), (LayerSpec("Flatten"), LayerSpec("Linear", {"out_features": 32}),
                                     LayerSpec("Dropout", {"p": 0.5}), LayerSpec("Linear", {"out_features": 10})))
    model = build_model(spec)
    model.train()
    model[1].eval()
    x = data.test_x[:1]
    first, second = layer_outputs(spec, model, x), layer_outputs(spec, model, x)
    np.testing.assert_array_equal(first[2].output, first[1].output)  # dropout did nothing
    np.testing.assert_array_equal(first[3].output, second[3].output)
    assert [m.training for m in model] == [True, False, True, True]


def test_hooks_are_removed_and_modes_restored_when_a_layer_raises(lenet):
    spec, model = lenet
    model.train()
    wrong = torch.zeros(1, 1, 20, 20)  # the third convolution gets 2x2 maps for its 5x5 kernel and raises
    with pytest.raises(RuntimeError):
        layer_outputs(spec, model, wrong)
    assert no_hooks(model)
    assert all(m.training for m in model.modules())
    layers = layer_outputs(spec, model, torch.zeros(1, 1, 28, 28))  # and the model still works
    assert len(layers) == len(spec.layers)


def test_outputs_are_copies_a_later_in_place_layer_cannot_change(data):
    spec = NetworkSpec((1, 28, 28), (LayerSpec("Flatten"), LayerSpec("Linear", {"out_features": 8}),
                                     LayerSpec("ReLU")))
    model = build_model(spec)
    model[2].inplace = True  # as a hand-written model may have it
    x = data.test_x[:1]
    layers = layer_outputs(spec, model, x)
    with torch.no_grad():
        before_relu = model[1](model[0](x))[0].numpy()
    np.testing.assert_allclose(layers[1].output, before_relu, rtol=1e-6)
    assert (layers[1].output < 0).any() and (layers[2].output >= 0).all()


def test_first_conv_filters_are_the_weight_tensor_also_inside_a_block():
    spec = NetworkSpec((1, 16, 16), (LayerSpec("Identity"), groups.vgg_block(1, 4)))
    model = build_model(spec)
    index, filters = first_conv_filters(model)
    assert index == 1
    np.testing.assert_array_equal(filters, model[1][0].weight.detach().numpy())
    assert first_conv_filters(build_model(NetworkSpec((4,), (LayerSpec("Linear", {"out_features": 2}),)))) is None


def test_histograms_count_every_weight_and_leave_out_biases(lenet):
    spec, model = lenet
    histograms = weight_histograms(spec, model, bins=25)
    assert [h.index for h in histograms] == [0, 3, 5, 7, 8]  # the layers with weights
    for h in histograms:
        weight = model[h.index].weight.detach().numpy()
        assert h.total == weight.size and h.counts.sum() == weight.size and h.nonfinite == 0
        assert len(h.counts) == 25 and len(h.edges) == 26
        assert h.edges[0] == weight.min() and h.edges[-1] == weight.max()


def test_histograms_keep_count_of_weights_that_are_not_finite(lenet):
    spec, model = lenet
    with torch.no_grad():
        model[7].weight[0, :3] = torch.tensor([float("nan"), float("inf"), -float("inf")])
    h = next(h for h in weight_histograms(spec, model) if h.index == 7)
    assert h.nonfinite == 3 and h.counts.sum() + h.nonfinite == h.total == model[7].weight.numel()


def test_sample_activations_gives_the_nth_test_sample_and_softmax_probabilities(lenet, data):
    spec, model = lenet
    found = sample_activations(spec, model, data, 5)
    assert found.source == "test sample 5" and found.target == int(data.test_y[5])
    np.testing.assert_array_equal(found.input, data.test_x[5].numpy())
    model.eval()
    with torch.no_grad():
        expected = torch.softmax(model(data.test_x[5:6]), dim=1)[0].numpy()
    np.testing.assert_allclose(found.probabilities, expected, rtol=1e-5)
    assert found.predicted == int(expected.argmax())
    assert found.class_names == tuple(data.class_names)
    np.testing.assert_array_equal(found.filters, model[0].weight.detach().numpy())
    assert found.filters_layer == 0


def test_a_flat_design_gets_the_sample_reshaped_like_evaluate_does(data):
    spec = NetworkSpec((784,), (LayerSpec("Linear", {"out_features": 10}),))
    model = build_model(spec)
    found = sample_activations(spec, model, data, 0)
    assert found.input.shape == (784,) and found.layers[0].output.shape == (10,)
    assert found.filters is None


def test_regression_has_no_probabilities():
    spec = NetworkSpec((2,), (LayerSpec("Linear", {"out_features": 1}),))
    bundle = load_data(DataConfig.from_dict({"source": "synthetic-regression", "limit": 50}))
    found = sample_activations(spec, build_model(spec), bundle, 3)  # no test split: the validation split's
    assert found.source == "validation sample 3" and found.target == pytest.approx(float(bundle.val_y[3, 0]))
    assert found.probabilities is None and found.predicted is None
    assert found.layers[0].output.shape == (1,)


@pytest.mark.parametrize("index", [-1, 1000, 10_000])
def test_a_sample_out_of_range_is_refused_with_a_sentence(lenet, data, index):
    spec, model = lenet
    count = len(data.test_x)
    with pytest.raises(DataError, match=rf"^There is no test sample {index}: the test split has {count:,} samples, "
                                        rf"numbered 0 to {count - 1}\.$"):
        sample_activations(spec, model, data, index)


def test_record_activations_of_a_prepared_input_with_the_training_objective(lenet, data):
    spec, model = lenet
    x = data.test_x[3:4]
    found = record_activations(spec, model, x, make_objective(spec, data), data.class_names, "seven.png")
    assert found.source == "seven.png" and found.target is None
    assert abs(float(found.probabilities.sum()) - 1) < 1e-5


# --------------------------------------------------------------------------- pictures

def test_tile_places_each_map_scaled_to_its_own_range_with_gaps():
    maps = np.stack([np.arange(6, dtype=np.float32).reshape(2, 3) * k for k in (1, 2, -3)])
    grid = tile(maps, columns=2)
    assert grid.shape == (2 * 2 + GAP, 2 * 3 + GAP)
    for k, (r, c) in enumerate([(0, 0), (0, 1), (1, 0)]):
        cell = grid[r * 3:r * 3 + 2, c * 4:c * 4 + 3]
        assert cell.min() == 0 and cell.max() == 1
        np.testing.assert_allclose(cell, (maps[k] - maps[k].min()) / np.ptp(maps[k]))
    assert np.isnan(grid[2]).all() and np.isnan(grid[:, 3]).all() and np.isnan(grid[3:, 4:]).all()


def test_pictures_of_values_scale_across_the_layer_and_survive_constants_and_nan():
    strip = picture(np.array([1.0, np.nan, 3.0, 2.0]))
    np.testing.assert_allclose(strip[0, ::2], [0.0, 0.5, 1.0, 0.5])  # NaN shows as the middle
    assert (picture(np.zeros((2, 4, 4)))[~np.isnan(picture(np.zeros((2, 4, 4))))] == 0.5).all()
    assert picture(np.array(3.0)) is None
    assert picture(np.zeros((3, 4, 4)), scale=3).shape == (2 * 12 + GAP, 2 * 12 + GAP)  # 2 x 2 tiles, one empty


def test_filter_picture_has_a_row_per_output_channel_and_a_column_per_input_channel():
    grid = filter_picture(np.random.default_rng(0).normal(size=(16, 6, 5, 5)), scale=2)
    assert grid.shape == (16 * 10 + 15 * GAP, 6 * 10 + 5 * GAP)


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_a_model_on_the_gpu_gives_the_cpu_numbers(lenet, data):
    spec, model = lenet
    on_cpu = sample_activations(spec, model, data, 2)
    on_gpu = sample_activations(spec, model.cuda(), data, 2)
    for cpu, gpu in zip(on_cpu.layers, on_gpu.layers, strict=True):
        np.testing.assert_allclose(gpu.output, cpu.output, rtol=1e-3, atol=1e-4)
    np.testing.assert_allclose(on_gpu.filters, on_cpu.filters)
    assert no_hooks(model)
