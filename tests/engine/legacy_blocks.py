"""The four fixed blocks of version 1 designs, copied from engine/blocks.py before groups (commit c644284):
the reference that converted version 1 designs are counted against."""
from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from tests.engine.d2l_reference import D2LInception


class VGGBlock(nn.Sequential):
    """num_convs x (3x3 conv, padding 1, ReLU), then a 2x2 max-pool."""

    def __init__(self, in_channels: int, num_convs: int, out_channels: int):
        layers: list[nn.Module] = []
        in_channels_given = in_channels
        for _ in range(num_convs):
            layers += [nn.Conv2d(in_channels, out_channels, kernel_size=3, padding=1), nn.ReLU()]
            in_channels = out_channels
        layers.append(nn.MaxPool2d(kernel_size=2, stride=2))
        super().__init__(*layers)
        self.in_channels, self.num_convs, self.out_channels = in_channels_given, num_convs, out_channels


class NiNBlock(nn.Sequential):
    """A conv with the given kernel followed by two 1x1 convs, each with ReLU."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, stride: int, padding: int):
        super().__init__(
            nn.Conv2d(in_channels, out_channels, kernel_size, stride, padding), nn.ReLU(),
            nn.Conv2d(out_channels, out_channels, kernel_size=1), nn.ReLU(),
            nn.Conv2d(out_channels, out_channels, kernel_size=1), nn.ReLU(),
        )
        self.in_channels, self.out_channels = in_channels, out_channels
        self.kernel_size, self.stride, self.padding = kernel_size, stride, padding


class Residual(nn.Module):
    """ResNet basic block; the shortcut gets a 1x1 conv when channels or size change."""

    def __init__(self, in_channels: int, out_channels: int, stride: int = 1):
        super().__init__()
        self.in_channels, self.out_channels, self.stride = in_channels, out_channels, stride
        self.conv1 = nn.Conv2d(in_channels, out_channels, kernel_size=3, padding=1, stride=stride)
        self.conv2 = nn.Conv2d(out_channels, out_channels, kernel_size=3, padding=1)
        self.conv3 = (
            nn.Conv2d(in_channels, out_channels, kernel_size=1, stride=stride)
            if stride != 1 or in_channels != out_channels else None
        )
        self.bn1 = nn.BatchNorm2d(out_channels)
        self.bn2 = nn.BatchNorm2d(out_channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = F.relu(self.bn1(self.conv1(x)))
        y = self.bn2(self.conv2(y))
        if self.conv3 is not None:
            x = self.conv3(x)
        return F.relu(y + x)


class Inception(D2LInception):
    """GoogLeNet block: four parallel branches concatenated along channels (the book's layout and forward, which
    LayerStudio 1 kept, plus its constructor arguments as attributes)."""

    def __init__(self, in_channels: int, c1: int, c2: tuple[int, int], c3: tuple[int, int], c4: int):
        super().__init__(in_channels, c1, c2, c3, c4)
        self.in_channels, self.c1, self.c2, self.c3, self.c4 = in_channels, c1, tuple(c2), tuple(c3), c4
