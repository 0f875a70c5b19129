"""Shape layers PyTorch has no nn module for: Reshape, Permute and Squeeze, each acting on every sample of a batch.

Like torch.nn's layers, each keeps its constructor arguments as attributes of the same names, so a built model
prints them and engine.export can write the call back as source. The registry (engine.layers.core) checks a
layer's parameters against its input before one of these is built.
"""
from __future__ import annotations

import torch
from torch import nn


class Reshape(nn.Module):
    """Gives each sample the shape ``shape`` (one entry may be -1: worked out from the others); the batch stays."""

    def __init__(self, shape: tuple[int, ...]):
        super().__init__()
        self.shape = tuple(shape)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.reshape(x.shape[0], *self.shape)

    def extra_repr(self) -> str:
        return f"shape={self.shape}"


class Permute(nn.Module):
    """Reorders each sample's dimensions: ``dims`` lists them counted from 1 (the batch is 0 and stays first)."""

    def __init__(self, dims: tuple[int, ...]):
        super().__init__()
        self.dims = tuple(dims)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.permute(0, *self.dims)

    def extra_repr(self) -> str:
        return f"dims={self.dims}"


class Squeeze(nn.Module):
    """Drops dimension ``dim`` (counted with the batch as 0; -1 is the last), which must have size 1."""

    def __init__(self, dim: int):
        super().__init__()
        self.dim = dim

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.squeeze(self.dim)

    def extra_repr(self) -> str:
        return f"dim={self.dim}"
