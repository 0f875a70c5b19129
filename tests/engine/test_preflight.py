"""Trainer refuses, before training, what analysis cannot see: a batch too small for a BatchNorm and
inputs of the wrong kind for the first layer (real torch, tiny tensors, one epoch where it trains)."""
from __future__ import annotations

import pytest
import torch

from engine.controls import control
from engine.data import DataBundle
from engine.errors import TrainingError
from engine.groups import residual_block
from engine.spec import LayerSpec, NetworkSpec
from engine.training import TrainConfig, Trainer

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def design(input_shape, *layers) -> NetworkSpec:
    return NetworkSpec(input_shape, tuple(LayerSpec(kind, params) for kind, params in layers))


def bundle(x: torch.Tensor, classes: int = 2) -> DataBundle:
    """Classification data: the same tensors for every split (the label is the first value's parity)."""
    y = (x.reshape(len(x), -1)[:, 0].round().long() % classes).abs()
    return DataBundle("test data", "classification", tuple(x.shape[1:]), classes, [str(c) for c in range(classes)],
                      x, y, x, y, x, y)


def train(spec: NetworkSpec, data: DataBundle, **settings):
    trainer = Trainer(spec, data, TrainConfig(device="cpu", epochs=1, **settings))
    return trainer.run()


FEATURES_BN = design((6,), ("Linear", {"out_features": 8}), ("BatchNorm1d", {}), ("Linear", {"out_features": 2}))
POOLED_BN = design((2, 4, 4), ("Conv2d", {"out_channels": 3}), ("AdaptiveAvgPool2d", {}), ("BatchNorm2d", {}),
                   ("Flatten", {}), ("Linear", {"out_features": 2}))
RESIDUAL_1X1 = NetworkSpec((2, 1, 1), (residual_block(3), LayerSpec("Flatten"),
                                       LayerSpec("Linear", {"out_features": 2})))


@pytest.mark.parametrize("spec, layer", [(FEATURES_BN, "layer 1 (BatchNorm1d)"), (POOLED_BN, "layer 2 (BatchNorm2d)"),
                                         (RESIDUAL_1X1, "layer 0 › 1 (BatchNorm2d)")])
def test_batch_size_one_is_refused_for_a_batch_norm_over_one_value_per_channel(spec, layer):
    data = bundle(torch.randn(9, *spec.input_shape))
    with pytest.raises(TrainingError) as refused:
        Trainer(spec, data, TrainConfig(device="cpu", batch_size=1))
    assert str(refused.value) == (f"Batch size 1 is too small for {layer}, which needs training batches of 2 or more "
                                  f"(it normalises over the batch): set {control('training.batch_size')} to 2 or more.")
    # at batch 2 it trains, the trailing batch of one (9 = 4 x 2 + 1) skipped
    assert train(spec, data, batch_size=2).reason == "completed"


def test_a_single_training_sample_is_refused_for_such_a_batch_norm():
    with pytest.raises(TrainingError,
                       match=r"^The data has only 1 training sample, too few for layer 1 \(BatchNorm1d\)"):
        Trainer(FEATURES_BN, bundle(torch.randn(1, 6)), TrainConfig(device="cpu", batch_size=64))


def test_batch_norm_with_several_values_per_channel_trains_on_batches_of_one():
    spec = design((2, 4, 4), ("Conv2d", {"out_channels": 3}), ("BatchNorm2d", {}), ("Flatten", {}),
                  ("Linear", {"out_features": 2}))
    assert train(spec, bundle(torch.randn(5, 2, 4, 4)), batch_size=1).reason == "completed"


TOKENS = design((6,), ("Embedding", {"num_embeddings": 20, "embedding_dim": 4}), ("Flatten", {}),
                ("Linear", {"out_features": 2}))


def test_token_data_trains_an_embedding():
    tokens = torch.randint(0, 20, (40, 6), generator=torch.Generator().manual_seed(0))
    assert train(TOKENS, bundle(tokens), batch_size=8).reason == "completed"


def test_real_numbers_into_an_embedding_are_refused_with_a_sentence():
    with pytest.raises(TrainingError) as refused:
        Trainer(TOKENS, bundle(torch.rand(10, 6) * 19), TrainConfig(device="cpu"))
    assert str(refused.value) == (
        "Layer 0 (Embedding) looks up integer token indices but the training data holds float32 values: give it "
        "token data (whole numbers from 0 to 19), or start the design with a layer that takes real numbers, "
        "such as Linear.")


@pytest.mark.parametrize("bad, message", [
    (20, "Layer 0 (Embedding) has vectors for tokens 0 to 19, but the training data holds token 20: "
         "set num_embeddings to 21 or more."),
    (-1, "Layer 0 (Embedding) looks up token indices from 0, but the training data holds -1: "
         "map the tokens to whole numbers from 0 to 19."),
])
def test_tokens_the_embedding_has_no_vector_for_are_refused(bad, message):
    tokens = torch.randint(0, 20, (10, 6))
    tokens[3, 2] = bad
    with pytest.raises(TrainingError) as refused:
        Trainer(TOKENS, bundle(tokens), TrainConfig(device="cpu"))
    assert str(refused.value) == message


def test_integers_into_a_layer_that_takes_real_numbers_are_refused():
    spec = design((6,), ("Linear", {"out_features": 2}))
    with pytest.raises(TrainingError,
                       match=r"^Layer 0 \(Linear\) takes real numbers but the training data holds int64"):
        Trainer(spec, bundle(torch.randint(0, 5, (10, 6))), TrainConfig(device="cpu"))


def test_the_layer_the_input_meets_first_decides_also_inside_a_group():
    """An Embedding that opens a group (itself first in the design) takes token data, trains and profiles; wrong
    tokens are refused naming its path."""
    from engine.groups import group
    from engine.profile import profile_design

    spec = NetworkSpec((6,), (group("sequence", [group("sequence", TOKENS.layers[:1])], id="outer"),
                              *TOKENS.layers[1:]))
    tokens = torch.randint(0, 20, (40, 6), generator=torch.Generator().manual_seed(0))
    assert train(spec, bundle(tokens), batch_size=8).reason == "completed"
    assert len(profile_design(spec, 4, "cpu", repeats=1, search_largest=False).rows) == 3
    tokens[3, 2] = 20
    with pytest.raises(TrainingError) as refused:
        Trainer(spec, bundle(tokens), TrainConfig(device="cpu"))
    assert str(refused.value).startswith("Layer 0 › 0 › 0 (Embedding) has vectors for tokens 0 to 19, but the ")
