"""Built-in images kept at their own size and enlarged per batch to the size the model takes.

D2L trains AlexNet, VGG and NiN on Fashion-MNIST resized to 224 pixels: held enlarged, its 60,000 images
take 12 GB of float32. A ``DataBundle`` keeps them at 28x28 and says the side they are shown at
(``DataBundle.enlarge_to``); ``enlarge`` makes a batch that size on the batch's own device, with the
interpolation the up-front path used (bilinear, ``align_corners=False``, ``antialias=True``).

Normalisation is a per-channel affine map and bilinear interpolation a convex combination of pixels, so
enlarging normalised images gives the values that normalising enlarged images gave (up to float rounding),
provided the statistics are those of the enlarged images. ``enlarged_moments`` computes exactly those
without enlarging anything: the interpolation is separable, ``Y = A X Bᵀ`` with small matrices read from
``F.interpolate`` itself, so the mean and the mean square of every enlarged image follow from the stored one.
"""
from __future__ import annotations

from collections.abc import Callable

import torch
from torch.nn import functional as F

MOMENT_CHUNK = 1024   # stored images per step of enlarged_moments (float64 copies of this many at a time)


def enlarge(x: torch.Tensor, side: int) -> torch.Tensor:
    """Images (N, C, H, W) enlarged to ``side`` x ``side``; ``x`` itself when ``side`` is 0 or already its size."""
    if not side or tuple(x.shape[-2:]) == (side, side):
        return x
    return F.interpolate(x, size=(side, side), mode="bilinear", align_corners=False, antialias=True)


def interpolation_matrix(size: int, side: int) -> torch.Tensor:
    """The (side, size) float64 matrix ``enlarge`` applies along one axis, read from F.interpolate itself: row
    ``k`` of the identity, spread over a 2-wide image, enlarged along its height only."""
    rows = torch.eye(size, dtype=torch.float64)[:, None, :, None].expand(size, 1, size, 2)
    out = F.interpolate(rows, size=(side, 2), mode="bilinear", align_corners=False, antialias=True)
    return out[:, 0, :, 0].T


def enlarged_moments(images: torch.Tensor, side: int,
                     check: Callable[[], None] | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-channel mean and standard deviation (float64) of uint8 images (N, C, H, W) in [0, 1] units, as
    ``enlarge`` would make them at ``side`` x ``side``, without making them.

    With ``Y = A X Bᵀ``: the sum of Y is ``aᵀ X b`` (a, b the column sums of A and B) and the sum of its squares
    ``Σ (X Gw) ⊙ (Gh X)`` with Gh = AᵀA, Gw = BᵀB, so each image costs two small matrix products.
    ``check()`` is called between chunks (a stop request).
    """
    count, channels, height, width = images.shape
    rows, columns = interpolation_matrix(height, side), interpolation_matrix(width, side)
    row_sums, column_sums = rows.sum(0), columns.sum(0)
    row_gram, column_gram = rows.T @ rows, columns.T @ columns
    total = torch.zeros(channels, height, width, dtype=torch.float64)
    squares = torch.zeros(channels, dtype=torch.float64)
    for start in range(0, count, MOMENT_CHUNK):
        if check is not None:
            check()
        x = images[start:start + MOMENT_CHUNK].to(torch.float64).div_(255)
        total += x.sum(0)
        squares += ((x @ column_gram) * (row_gram @ x)).sum((0, 2, 3))
    values = max(1, count) * side * side
    mean = (row_sums @ total @ column_sums) / values
    std = (squares / values - mean.square()).clamp_min(0).sqrt()
    return mean, std
