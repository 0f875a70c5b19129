"""Real image files for the prediction tests: test digits of the bundled MNIST sample written as PNG/JPEG."""
from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from engine.data import read_idx
from resources import MNIST_SAMPLE


@lru_cache(maxsize=1)
def sample_test_digits():
    """The sample's test images (N x 28 x 28 uint8) and labels, in file order (= the bundle's test split)."""
    return (read_idx(MNIST_SAMPLE / "t10k-images-idx3-ubyte.gz"),
            read_idx(MNIST_SAMPLE / "t10k-labels-idx1-ubyte.gz"))


def write_digit(path: Path, index: int, mode: str = "L", size: tuple[int, int] | None = None) -> int:
    """Test digit ``index`` as an image file (PIL picks the format from the suffix), converted to ``mode``
    and resized to ``size`` when given; returns its label."""
    from PIL import Image

    images, labels = sample_test_digits()
    image = Image.fromarray(images[index].numpy()).convert(mode)
    if size is not None:
        image = image.resize(size, Image.Resampling.BILINEAR)
    image.save(path)
    return int(labels[index])
