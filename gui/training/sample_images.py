"""Samples as pictures: a normalised input tensor shown as the image it was (Results grid, Predict, Activations),
and the colours a right and a wrong prediction are written in."""
from __future__ import annotations

import math

import torch
from PySide6.QtGui import QColor, QImage

WRONG = QColor(200, 30, 40)
RIGHT = QColor(30, 130, 60)


def sample_image(bundle, index: int, split: str = "test") -> QImage | None:
    """One sample of a bundle as a QImage (de-normalised), or None for non-image inputs."""
    return tensor_image(getattr(bundle, f"{split}_x")[index], bundle.mean, bundle.std)


def tensor_image(x: torch.Tensor, mean, std) -> QImage | None:
    """A normalised sample (C x H x W, or a flattened square) as a QImage, or None when it is not an image."""
    if x.dim() == 1 and math.isqrt(x.numel()) ** 2 == x.numel():  # flattened square grayscale (e.g. 784)
        side = math.isqrt(x.numel())
        x = x.view(1, side, side)
    if x.dim() != 3 or x.shape[0] not in (1, 3):
        return None
    x = x.detach().float().cpu()
    if mean is not None and std is not None and len(mean) == x.shape[0]:
        x = x * torch.tensor(std).view(-1, 1, 1) + torch.tensor(mean).view(-1, 1, 1)
    pixels = (x.clamp(0, 1) * 255).round().to(torch.uint8).permute(1, 2, 0).contiguous().numpy()
    height, width, channels = pixels.shape
    fmt = QImage.Format_Grayscale8 if channels == 1 else QImage.Format_RGB888
    return QImage(pixels.data, width, height, width * channels, fmt).copy()
