"""cpu_module_copy keeps a model's weights while letting the model itself (and what it pins) go."""
from __future__ import annotations

import gc
import weakref

import torch

from engine.build import build_model
from engine.device_memory import cpu_module_copy, released_model
from engine.spec import LayerSpec, NetworkSpec


def trained_model():
    spec = NetworkSpec((1, 8, 8), (
        LayerSpec("Conv2d", {"out_channels": 4, "kernel_size": 3, "padding": 1}), LayerSpec("BatchNorm2d"),
        LayerSpec("ReLU"), LayerSpec("Flatten"), LayerSpec("Linear", {"out_features": 3}, frozen=True)))
    model = build_model(spec).to(memory_format=torch.channels_last)
    model(torch.randn(5, 1, 8, 8)).sum().backward()  # gradients and updated running statistics
    return model


def test_the_copy_has_the_same_weights_in_its_own_memory_without_gradients():
    torch.manual_seed(0)
    model = trained_model()
    copy = cpu_module_copy(model)
    assert copy is not model and repr(copy) == repr(model)
    original, copied = model.state_dict(), copy.state_dict()
    assert original.keys() == copied.keys()
    for key in original:
        assert torch.equal(original[key], copied[key]), key
        assert original[key].data_ptr() != copied[key].data_ptr(), key
    assert [p.requires_grad for p in copy.parameters()] == [p.requires_grad for p in model.parameters()]
    assert any(p.grad is not None for p in model.parameters()) and all(p.grad is None for p in copy.parameters())
    sample = torch.randn(2, 1, 8, 8)
    model.eval(), copy.eval()
    assert torch.equal(model(sample), copy(sample))


def test_the_copy_holds_no_reference_to_the_original():
    model = trained_model()
    gone = weakref.ref(model)
    params = [weakref.ref(p) for p in model.parameters()]
    copy = cpu_module_copy(model)
    del model
    gc.collect()
    assert gone() is None and all(ref() is None for ref in params)
    assert sum(p.numel() for p in copy.parameters()) > 0


def test_a_released_cpu_model_is_kept_as_it_is_without_its_gradients():
    """Between runs on the CPU there is no device to free: the trained model itself stays (a copy only cost time)."""
    model = trained_model()
    weights = {key: value.clone() for key, value in model.state_dict().items()}
    kept = released_model(model)
    assert kept is model and all(p.grad is None for p in kept.parameters())
    assert all(torch.equal(weights[key], value) for key, value in kept.state_dict().items())
