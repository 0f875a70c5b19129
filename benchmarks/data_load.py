"""How fast data loads: the bundled MNIST sample (cold and warm), its two possible readers side by side,
and a full-size MNIST-format folder read by torchvision versus the engine's cache.

Run: python benchmarks/data_load.py   (writes only to a temporary folder; no network)
"""
from __future__ import annotations

import gzip
import os
import shutil
import struct
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def timed(function, repeat: int = 1) -> tuple[float, object]:
    """Best wall time of ``repeat`` calls, and the last result."""
    best, result = float("inf"), None
    for _ in range(repeat):
        start = time.perf_counter()
        result = function()
        best = min(best, time.perf_counter() - start)
    return best, result


def main() -> None:
    start = time.perf_counter()
    import torch  # counted separately: every command pays it anyway
    torch_import = time.perf_counter() - start
    from engine.data import DataConfig, load_data, read_idx
    from resources import MNIST_SAMPLE

    cold, bundle = timed(lambda: load_data(DataConfig()))
    warm, _ = timed(lambda: load_data(DataConfig()), repeat=5)
    print(f"import torch: {torch_import:.2f} s (not counted below)")
    print(f"bundled sample, load_data cold (first call in the process): {cold * 1000:.0f} ms")
    print(f"bundled sample, load_data warm (best of 5):                 {warm * 1000:.0f} ms   -> {bundle.summary()}")

    names = ["train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"]
    engine_read, _ = timed(lambda: [read_idx(MNIST_SAMPLE / f"{n}.gz") for n in names], repeat=5)
    start = time.perf_counter()
    from torchvision.datasets.mnist import read_image_file, read_label_file
    torchvision_import = time.perf_counter() - start

    def through_torchvision():
        with tempfile.TemporaryDirectory() as folder:        # torchvision reads only uncompressed files
            tensors = []
            for name in names:
                target = Path(folder) / name
                with gzip.open(MNIST_SAMPLE / f"{name}.gz") as packed, open(target, "wb") as out:
                    shutil.copyfileobj(packed, out)
                tensors.append((read_image_file if "images" in name else read_label_file)(str(target)))
            return tensors

    torchvision_read, _ = timed(through_torchvision, repeat=5)
    print(f"sample IDX gz -> tensors: engine read_idx (gzip + numpy) {engine_read * 1000:.1f} ms, "
          f"torchvision reader (gunzip to temp + read_*_file) {torchvision_read * 1000:.1f} ms "
          f"+ import torchvision.datasets {torchvision_import * 1000:.0f} ms once; "
          f"ratio {torchvision_read / engine_read:.2f}x (import excluded)")

    with tempfile.TemporaryDirectory() as folder:
        os.environ["LAYERSTUDIO_HOME"] = str(Path(folder) / "home")
        raw = Path(folder) / "MNIST" / "raw"
        raw.mkdir(parents=True)
        for name, shape in (("train-images-idx3-ubyte", (60000, 28, 28)), ("train-labels-idx1-ubyte", (60000,)),
                            ("t10k-images-idx3-ubyte", (10000, 28, 28)), ("t10k-labels-idx1-ubyte", (10000,))):
            header = struct.pack(">BBBB", 0, 0, 8, len(shape)) + struct.pack(f">{len(shape)}I", *shape)
            count = 1
            for d in shape:
                count *= d
            data = torch.randint(0, 10 if len(shape) == 1 else 256, (count,), dtype=torch.uint8).numpy().tobytes()
            (raw / name).write_bytes(header + data)
        config = DataConfig(source="mnist", root=folder)
        first, _ = timed(lambda: load_data(config))
        second, full = timed(lambda: load_data(config), repeat=3)
        print(f"full-size MNIST folder: first load (torchvision decode + cache write) {first:.2f} s, "
              f"second load (cache) {second:.2f} s, ratio {first / second:.2f}x -> {full.summary()}")

        from PIL import Image
        pictures = Path(folder) / "pictures"
        for index in range(2000):
            klass = pictures / f"class{index % 10}"
            klass.mkdir(parents=True, exist_ok=True)
            pixels = torch.randint(0, 256, (48, 40, 3), dtype=torch.uint8).numpy()
            Image.fromarray(pixels).save(klass / f"{index}.png" if index % 2 else klass / f"{index}.jpg")
        config = DataConfig(source="folder", root=str(pictures), image_size=32, grayscale=False)
        first, _ = timed(lambda: load_data(config))
        second, full = timed(lambda: load_data(config), repeat=3)
        print(f"image folder (2000 PNG/JPEG 40x48 -> 32x32 RGB): first load (PIL decode + cache write) {first:.2f} s, "
              f"second load (cache) {second:.3f} s, ratio {first / second:.1f}x -> {full.summary()}")


if __name__ == "__main__":
    main()
