"""A layer's parameter tensors as numbers a person can read: shape, count, mean, std, min, max and a histogram.

The inspector shows them for the selected layer of the current model: the trained (or loaded) one when it fits
the design, else ``initial_model``, the model a run of the design would start from (same seed, same inits).
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from engine.build import build_model, module_paths
from engine.spec import NetworkSpec
from engine.training.config import TrainConfig
from engine.training.optim import initialize_weights
from engine.training.runtime import RandomStreams

HISTOGRAM_BINS = 24


@dataclass(frozen=True)
class ParamStats:
    """One parameter tensor, named as ``model.state_dict()`` names it (``3.weight``)."""

    name: str
    shape: tuple[int, ...]
    count: int
    mean: float
    std: float  # 0 for a single value
    min: float
    max: float
    histogram: tuple[int, ...]  # HISTOGRAM_BINS equal bins from min to max


def parameter_stats(model: nn.Sequential, layer: str | int, spec: NetworkSpec | None = None,
                    bins: int = HISTOGRAM_BINS) -> list[ParamStats]:
    """The statistics of every parameter of one layer of ``model`` (inner layers of a group included), in
    ``state_dict`` order; empty for a layer without parameters. ``layer`` is the layer's id in ``spec`` when that
    is given (any depth; every copy of a layer in a repeated group), else the module's dotted name ("3",
    "4.body.0")."""
    names = module_paths(spec).get(str(layer), []) if spec is not None else [str(layer)]
    out = []
    with torch.no_grad():
        for path in names:
            for name, param in model.get_submodule(path).named_parameters():
                values = param.detach().reshape(-1).to("cpu", torch.float32)
                low, high = values.aminmax()
                out.append(ParamStats(
                    f"{path}.{name}", tuple(param.shape), values.numel(), values.mean().item(),
                    values.std().item() if values.numel() > 1 else 0.0, low.item(), high.item(),
                    tuple(int(n) for n in torch.histc(values, bins, low.item(), high.item()).tolist())))
    return out


def initial_model(spec: NetworkSpec, config: TrainConfig | None = None) -> nn.Sequential:
    """The model a run of ``spec`` with ``config`` starts from (on the CPU): built and initialised under the run's
    seed, the global init and then each layer's own, without touching torch's global random state."""
    config = config or TrainConfig()
    with RandomStreams(torch.device("cpu")).seeded(config.seed):
        model = build_model(spec)
        initialize_weights(model, config, spec)
    return model
