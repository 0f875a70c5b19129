"""engine.data on real files: the bundled sample, tiny MNIST/FashionMNIST/CIFAR-10 files in their own formats
read by torchvision's own classes, image folders written by PIL, CSV tables, synthetic regression."""
from __future__ import annotations

import gzip
import hashlib
import json
import os
import pickle
import re
import socket
import struct

import numpy as np
import pytest
import torch
from PIL import Image

from engine.controls import control
from engine.data import (
    Augment,
    DataBundle,
    DataConfig,
    augment_batch,
    cache_dir,
    download_file,
    load_data,
    parse_data_arg,
    vision_tensors,
)
from engine.errors import DataError
from resources import MNIST_SAMPLE

MNIST_NAMES = ["train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"]


@pytest.fixture(autouse=True)
def private_cache(tmp_path, monkeypatch):
    """Every test gets its own cache folder, never the user's."""
    monkeypatch.setenv("LAYERSTUDIO_HOME", str(tmp_path / "home"))


@pytest.fixture
def no_network(monkeypatch):
    """Records (and refuses) any attempt to resolve or connect: loading with download off must not try."""
    attempts = []

    def refuse(*args, **kwargs):
        attempts.append(args)
        raise OSError("network access attempted in a test")

    monkeypatch.setattr(socket, "getaddrinfo", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.setattr(socket.socket, "connect", refuse)
    return attempts


@pytest.fixture(scope="module")
def sample() -> DataBundle:
    return load_data(DataConfig())


def raw_idx(path) -> np.ndarray:
    """Independent reader for the checks: IDX header, then the payload."""
    raw = gzip.decompress(path.read_bytes()) if path.suffix == ".gz" else path.read_bytes()
    rank = raw[3]
    dims = struct.unpack(f">{rank}I", raw[4:4 + 4 * rank])
    return np.frombuffer(raw, np.uint8, offset=4 + 4 * rank).reshape(dims)


def write_idx(path, array: np.ndarray) -> None:
    """Write uint8 data in MNIST's IDX format (gzipped when the name ends in .gz)."""
    array = np.ascontiguousarray(array, dtype=np.uint8)
    payload = struct.pack(">BBBB", 0, 0, 0x08, array.ndim) + struct.pack(f">{array.ndim}I", *array.shape)
    payload += array.tobytes()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(gzip.compress(payload) if path.suffix == ".gz" else payload)


def write_mnist(raw_folder, train=20, test=10, gz=False, seed=0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    arrays = {
        "train-images-idx3-ubyte": rng.integers(0, 256, (train, 28, 28)),
        "train-labels-idx1-ubyte": np.arange(train) % 10,
        "t10k-images-idx3-ubyte": rng.integers(0, 256, (test, 28, 28)),
        "t10k-labels-idx1-ubyte": (np.arange(test) * 3) % 10,
    }
    for name, array in arrays.items():
        write_idx(raw_folder / (name + (".gz" if gz else "")), array)
    return arrays


def denormalise(x: torch.Tensor, bundle: DataBundle) -> np.ndarray:
    """Back to the uint8 pixels the files held."""
    mean = torch.tensor(bundle.mean).view(1, -1, 1, 1)
    std = torch.tensor(bundle.std).view(1, -1, 1, 1)
    return (x * std + mean).mul(255).round().to(torch.uint8).numpy()


# --------------------------------------------------------------------------- bundled sample

def test_bundled_sample_loads_split_and_balanced(sample):
    assert sample.summary() == "MNIST sample: 3600 train / 400 val / 1000 test, 1x28x28, 10 classes"
    assert sample.task == "classification" and sample.num_classes == 10 and sample.class_names == list("0123456789")
    assert sample.input_shape == (1, 28, 28)
    assert sample.train_x.dtype == torch.float32 and sample.train_y.dtype == torch.int64
    assert sample.train_x.device.type == "cpu"
    both = torch.cat([sample.train_y, sample.val_y])
    assert torch.bincount(both, minlength=10).tolist() == [400] * 10
    assert torch.bincount(sample.test_y, minlength=10).tolist() == [100] * 10


def test_bundled_sample_split_is_a_partition_of_the_training_file(sample):
    images = raw_idx(MNIST_SAMPLE / "train-images-idx3-ubyte.gz")
    labels = raw_idx(MNIST_SAMPLE / "train-labels-idx1-ubyte.gz")
    file_rows = sorted((img.tobytes(), int(lab)) for img, lab in zip(images, labels, strict=True))
    train = denormalise(sample.train_x, sample)[:, 0]
    val = denormalise(sample.val_x, sample)[:, 0]
    bundle_rows = sorted([(img.tobytes(), int(lab)) for img, lab in zip(train, sample.train_y, strict=True)]
                         + [(img.tobytes(), int(lab)) for img, lab in zip(val, sample.val_y, strict=True)])
    assert bundle_rows == file_rows     # every sample once, pixels and labels intact
    test_images = raw_idx(MNIST_SAMPLE / "t10k-images-idx3-ubyte.gz")
    assert np.array_equal(denormalise(sample.test_x, sample)[:, 0], test_images)


def test_normalisation_uses_training_statistics_only(sample):
    images = raw_idx(MNIST_SAMPLE / "train-images-idx3-ubyte.gz")
    train_pixels = denormalise(sample.train_x, sample).astype(np.float64) / 255
    assert sample.mean[0] == pytest.approx(train_pixels.mean(), abs=1e-6)
    assert sample.std[0] == pytest.approx(train_pixels.std(), abs=1e-6)
    assert sample.mean[0] != pytest.approx(images.mean() / 255, abs=1e-7)     # the whole file would differ
    assert sample.train_x.mean().item() == pytest.approx(0, abs=1e-5)
    assert sample.train_x.std().item() == pytest.approx(1, abs=1e-3)
    assert abs(sample.val_x.mean().item()) > 1e-5                                 # not re-centred on itself


def test_split_is_seeded_and_limit_caps_the_training_set(sample):
    again = load_data(DataConfig())
    assert torch.equal(again.train_x, sample.train_x) and torch.equal(again.val_y, sample.val_y)
    other = load_data(DataConfig(seed=1))
    assert not torch.equal(other.val_y, sample.val_y)
    small = load_data(DataConfig(limit=500, val_fraction=0.2))
    assert (len(small.train_x), len(small.val_x), len(small.test_x)) == (400, 100, 1000)
    none = load_data(DataConfig(val_fraction=0))
    assert none.val_x.shape == (0, 1, 28, 28) and none.val_y.shape == (0,) and len(none.train_x) == 4000


def test_reconstruction_targets_are_the_unnormalised_inputs():
    bundle = load_data(DataConfig(task="reconstruction", limit=200))
    assert bundle.train_y is bundle.train_x and bundle.test_y is bundle.test_x
    assert bundle.num_classes is None and bundle.mean is None
    assert 0 <= bundle.train_x.min().item() and bundle.train_x.max().item() <= 1
    assert bundle.summary().endswith("1x28x28, reconstruction")


def test_images_cannot_be_regression_targets():
    with pytest.raises(DataError, match=re.escape(f"classification targets, so it cannot be used for regression: "
                                                 f"set {control('data.task')} to "
                                                 "classification or reconstruction.")):
        load_data(DataConfig(task="regression"))


def test_builtin_images_are_enlarged_never_shrunk():
    bigger = load_data(DataConfig(image_size=32, limit=50))
    assert bigger.input_shape == (1, 32, 32) and bigger.model_inputs(bigger.test_x).shape == (1000, 1, 32, 32)
    assert bigger.test_x.shape == (1000, 1, 28, 28) and bigger.enlarge_to == 32   # stored at the own size
    same = load_data(DataConfig(image_size=20, limit=50))
    assert same.input_shape == (1, 28, 28)


# --------------------------------------------------------------------------- torchvision MNIST / FashionMNIST

def test_mnist_raw_idx_files_load_through_torchvision(tmp_path, no_network):
    arrays = write_mnist(tmp_path / "MNIST" / "raw")
    bundle = load_data(DataConfig(source="mnist", root=str(tmp_path), val_fraction=0.25))
    assert bundle.summary() == "MNIST: 15 train / 5 val / 10 test, 1x28x28, 10 classes"
    assert bundle.class_names == list("0123456789")
    assert np.array_equal(denormalise(bundle.test_x, bundle)[:, 0], arrays["t10k-images-idx3-ubyte"])
    assert bundle.test_y.tolist() == arrays["t10k-labels-idx1-ubyte"].tolist()
    assert sorted(bundle.train_y.tolist() + bundle.val_y.tolist()) == sorted(arrays["train-labels-idx1-ubyte"].tolist())
    assert not no_network


def test_fashion_mnist_gz_files_load_through_torchvision(tmp_path, no_network):
    arrays = write_mnist(tmp_path / "FashionMNIST" / "raw", gz=True)
    bundle = load_data(DataConfig(source="fashion-mnist", root=str(tmp_path), val_fraction=0))
    assert bundle.class_names[0] == "T-shirt/top" and bundle.class_names[9] == "Ankle boot"
    assert np.array_equal(denormalise(bundle.train_x, bundle)[:, 0], arrays["train-images-idx3-ubyte"])
    assert (tmp_path / "FashionMNIST" / "raw" / "train-images-idx3-ubyte").is_file()   # unpacked as torchvision does
    assert not no_network


def test_missing_mnist_files_name_the_files_and_folder_without_network(tmp_path, no_network):
    raw = tmp_path / "MNIST" / "raw"
    with pytest.raises(DataError) as error:
        load_data(DataConfig(source="mnist", root=str(tmp_path)))
    message = str(error.value)
    assert f"MNIST files not found in {raw}" in message and f"turn on {control('data.download')}." in message
    assert all(f"{name}(.gz)" in message for name in MNIST_NAMES)
    write_idx(raw / "train-images-idx3-ubyte", np.zeros((2, 28, 28)))
    with pytest.raises(DataError) as error:
        load_data(DataConfig(source="fashion-mnist", root=str(tmp_path)))
    assert str(tmp_path / "FashionMNIST" / "raw") in str(error.value)
    write_mnist(raw)
    (raw / "t10k-labels-idx1-ubyte").unlink()
    with pytest.raises(DataError, match=r"put t10k-labels-idx1-ubyte\(\.gz\) there") as error:
        load_data(DataConfig(source="mnist", root=str(tmp_path)))
    assert "train-images" not in str(error.value)
    assert not no_network


def test_second_load_comes_from_the_cache(tmp_path, no_network):
    raw = tmp_path / "MNIST" / "raw"
    arrays = write_mnist(raw)
    config = DataConfig(source="mnist", root=str(tmp_path), val_fraction=0)
    first = load_data(config)
    entries = list(cache_dir().glob("mnist-*.pt"))
    assert len(entries) == 1 and not list(cache_dir().glob(".*.tmp"))

    # Same size and modification time but unreadable content: only the cache can still give the images.
    images = raw / "train-images-idx3-ubyte"
    stat = images.stat()
    images.write_bytes(b"\xff" * stat.st_size)
    os.utime(images, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    second = load_data(config)
    assert torch.equal(second.train_x, first.train_x)

    # A changed file is read again (and the stale entry replaced).
    write_idx(images, arrays["train-images-idx3-ubyte"][::-1])
    os.utime(images, ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))
    third = load_data(config)
    assert np.array_equal(denormalise(third.train_x, third)[:, 0], arrays["train-images-idx3-ubyte"][::-1])
    assert len(list(cache_dir().glob("mnist-*.pt"))) == 1
    assert not no_network


def test_progress_reports_fractions_and_ends_with_the_summary(tmp_path):
    write_mnist(tmp_path / "MNIST" / "raw")
    calls = []
    bundle = load_data(DataConfig(source="mnist", root=str(tmp_path)), progress=lambda f, m: calls.append((f, m)))
    assert calls[-1] == (1.0, bundle.summary())
    assert all(0 <= f <= 1 for f, _ in calls) and [f for f, _ in calls] == sorted(f for f, _ in calls)


# --------------------------------------------------------------------------- torchvision CIFAR-10

CIFAR_CLASSES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]


class RunsCodeWhenUnpickled:
    """Unpickling this creates a marker file: proof that a file was (or was not) unpickled."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return open, (self.marker, "w")


def write_cifar(root, per_batch=4, marker=None) -> dict[str, tuple[np.ndarray, list[int]]]:
    """CIFAR-10's python pickle batches: rows of 3072 bytes, the R, G and B planes of a 32x32 image."""
    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    batches = {}
    for index, name in enumerate([f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]):
        data = rng.integers(0, 256, (per_batch, 3072), dtype=np.uint8)
        labels = [(index + k) % 10 for k in range(per_batch)]
        entry = {"batch_label": name, "labels": labels, "data": data,
                 "filenames": [f"{name}_{k}.png" for k in range(per_batch)]}
        if marker is not None and name == "data_batch_1":
            entry["payload"] = RunsCodeWhenUnpickled(marker)
        with open(folder / name, "wb") as handle:
            pickle.dump(entry, handle)
        batches[name] = (data, labels)
    with open(folder / "batches.meta", "wb") as handle:
        pickle.dump({"label_names": CIFAR_CLASSES, "num_cases_per_batch": per_batch, "num_vis": 3072}, handle)
    return batches


def md5(path) -> str:
    return hashlib.md5(path.read_bytes()).hexdigest()


def torchvision_cifar10(root, train: bool):
    """torchvision's own CIFAR10 class on the test's batches, its MD5 checks still on, against these files' MD5s.

    The class keeps its checksum tables in attributes that its __init__ reads through ``self``; setting them on
    the instance (no subclass, no patching of torchvision) points the checks at the files this test wrote.
    """
    from torchvision.datasets import CIFAR10

    folder = root / CIFAR10.base_folder
    dataset = CIFAR10.__new__(CIFAR10)
    dataset.train_list = [[name, md5(folder / name)] for name, _ in CIFAR10.train_list]
    dataset.test_list = [[name, md5(folder / name)] for name, _ in CIFAR10.test_list]
    dataset.meta = {**CIFAR10.meta, "md5": md5(folder / CIFAR10.meta["filename"])}
    CIFAR10.__init__(dataset, str(root), train=train, download=False)
    return dataset


def test_cifar10_pickle_batches_decode_to_channel_first_images(tmp_path):
    batches = write_cifar(tmp_path)
    images, labels, classes = vision_tensors(torchvision_cifar10(tmp_path, train=True))
    assert images.shape == (20, 3, 32, 32) and images.dtype == torch.uint8 and classes == CIFAR_CLASSES
    data, first_labels = batches["data_batch_1"]
    assert torch.equal(images[0].reshape(-1), torch.from_numpy(data[0]))    # R plane, then G, then B
    assert labels[:4].tolist() == first_labels and labels.dtype == torch.int64
    test_images, test_labels, _ = vision_tensors(torchvision_cifar10(tmp_path, train=False))
    assert test_images.shape == (4, 3, 32, 32) and test_labels.tolist() == batches["test_batch"][1]


def test_cifar10_copies_that_fail_torchvisions_checksums_are_refused_unread(tmp_path, no_network):
    marker = tmp_path / "unpickled"
    write_cifar(tmp_path, marker=marker)
    with pytest.raises(DataError) as error:
        load_data(DataConfig(source="cifar10", root=str(tmp_path)))
    message = str(error.value)
    assert "do not match the original download" in message and "data_batch_1" in message
    assert f"turn on {control('data.download')}." in message
    assert not marker.exists()             # torchvision checked the MD5 before unpickling anything
    assert not no_network


def test_missing_cifar10_files_name_the_files_and_folder(tmp_path, no_network):
    with pytest.raises(DataError) as error:
        load_data(DataConfig(source="cifar10", root=str(tmp_path)))
    message = str(error.value)
    assert f"CIFAR-10 files not found in {tmp_path / 'cifar-10-batches-py'}" in message
    assert all(name in message for name in ["data_batch_1", "data_batch_5", "test_batch", "batches.meta",
                                            "cifar-10-python.tar.gz"])
    assert not no_network


def test_a_source_that_needs_a_folder_says_so():
    with pytest.raises(DataError, match="needs a folder"):
        load_data(DataConfig(source="folder"))
    with pytest.raises(DataError, match="needs a file"):
        load_data(DataConfig(source="csv"))


# --------------------------------------------------------------------------- image folders

def write_image_folder(root, colours, sizes=((12, 10), (7, 9), (16, 16))):
    """One subfolder per class: PNG and JPEG files of one flat colour each, in assorted sizes."""
    for name, colour in colours.items():
        (root / name).mkdir(parents=True)
        for index, size in enumerate(sizes):
            Image.new("RGB", size, colour).save(root / name / f"{index}.png")
        Image.new("RGB", (20, 14), colour).save(root / name / "extra.jpg", quality=95)
        (root / name / "notes.txt").write_text("not an image")


COLOURS = {"blue": (0, 0, 255), "red": (255, 0, 0), "white": (255, 255, 255)}


def test_image_folder_rgb_resized_with_class_names(tmp_path):
    write_image_folder(tmp_path / "shapes", COLOURS)
    bundle = load_data(DataConfig(source="folder", root=str(tmp_path / "shapes"), image_size=8, grayscale=False,
                                  val_fraction=0.25))
    assert bundle.class_names == ["blue", "red", "white"] and bundle.input_shape == (3, 8, 8)
    assert bundle.summary() == "Image folder shapes: 9 train / 3 val / 0 test, 3x8x8, 3 classes"
    assert bundle.test_x.shape == (0, 3, 8, 8)
    pixels = np.concatenate([denormalise(bundle.train_x, bundle), denormalise(bundle.val_x, bundle)])
    labels = torch.cat([bundle.train_y, bundle.val_y]).tolist()
    for image, label in zip(pixels, labels, strict=True):
        colour = np.array(COLOURS[bundle.class_names[label]])
        assert np.abs(image.reshape(3, -1).astype(int) - colour[:, None]).max() <= 3    # JPEG may be off by a little


def test_image_folder_grayscale_with_train_and_test_subfolders(tmp_path):
    write_image_folder(tmp_path / "train", {"dark": (10, 10, 10), "light": (240, 240, 240)})
    write_image_folder(tmp_path / "test", {"dark": (10, 10, 10), "light": (240, 240, 240)}, sizes=((5, 5),))
    bundle = load_data(DataConfig(source="folder", root=str(tmp_path), image_size=6, val_fraction=0))
    assert bundle.input_shape == (1, 6, 6) and bundle.class_names == ["dark", "light"]
    assert (len(bundle.train_x), len(bundle.test_x)) == (8, 4)
    assert sorted(bundle.test_y.tolist()) == [0, 0, 1, 1]
    assert len(list(cache_dir().glob("folder-*.pt"))) == 1


def test_image_folder_errors_name_the_problem(tmp_path):
    (tmp_path / "flat").mkdir()
    Image.new("RGB", (4, 4)).save(tmp_path / "flat" / "a.png")
    with pytest.raises(DataError, match="one subfolder per class"):
        load_data(DataConfig(source="folder", root=str(tmp_path / "flat")))
    write_image_folder(tmp_path / "broken", {"a": (1, 2, 3), "b": (4, 5, 6)})
    (tmp_path / "broken" / "a" / "bad.png").write_bytes(b"not a png at all")
    bundle = load_data(DataConfig(source="folder", root=str(tmp_path / "broken")))  # skipped and named, not fatal
    assert any("Skipped 1 of 9 images" in note and "a/bad.png" in note for note in bundle.notes)
    with pytest.raises(DataError, match="does not exist"):
        load_data(DataConfig(source="folder", root=str(tmp_path / "nowhere")))


def test_streamed_image_folder_matches_the_in_memory_path(tmp_path):
    write_image_folder(tmp_path / "shapes", COLOURS)
    config = DataConfig(source="folder", root=str(tmp_path / "shapes"), image_size=8, grayscale=False)
    memory = load_data(config)
    streamed = load_data(DataConfig(**{**config.to_dict(), "stream": True}))
    assert streamed.streaming and len(streamed.train_x) == 0 and streamed.train_size == len(memory.train_x)
    assert streamed.summary().endswith("streamed") and streamed.mean == pytest.approx(memory.mean, abs=1e-6)
    x, y = streamed.train_dataset[2]
    assert torch.allclose(x, memory.train_x[2], atol=1e-5) and y.item() == memory.train_y[2].item()
    torch.testing.assert_close(streamed.val_x, memory.val_x)
    batch_x, batch_y = next(iter(streamed.train_loader(batch_size=4)))
    assert batch_x.shape == (4, 3, 8, 8) and batch_y.dtype == torch.int64


def test_stream_flag_on_in_memory_sources_gives_a_dataset():
    bundle = load_data(DataConfig(stream=True, limit=100))
    assert bundle.streaming and bundle.train_size == 90 and bundle.train_x.shape == (0, 1, 28, 28)
    x, y = next(iter(bundle.train_loader(batch_size=32, generator=torch.Generator().manual_seed(0))))
    assert x.shape == (32, 1, 28, 28) and y.shape == (32,)


# --------------------------------------------------------------------------- CSV

def write_csv(path, text: str):
    path.write_text(text.strip() + "\n", encoding="utf-8")
    return str(path)


def test_csv_with_text_labels_is_classification(tmp_path):
    rows = "\n".join(f"{i},{i * 2 % 7},{['cat', 'dog', 'bird'][i % 3]}" for i in range(30))
    path = write_csv(tmp_path / "pets.csv", "size,weight,label\n" + rows)
    bundle = load_data(DataConfig(source="csv", root=path, val_fraction=0.2))
    assert bundle.task == "classification" and bundle.class_names == ["bird", "cat", "dog"]
    assert bundle.input_shape == (2,) and (len(bundle.train_x), len(bundle.val_x)) == (24, 6)
    assert bundle.summary() == "CSV pets.csv: 24 train / 6 val / 0 test, 2 features, 3 classes"
    assert bundle.train_x.mean(0).abs().max().item() < 1e-5          # per-feature normalisation
    assert bundle.train_x.std(0, correction=0).sub(1).abs().max().item() < 1e-5
    sizes = bundle.train_x[:, 0] * bundle.std[0] + bundle.mean[0]
    names = [["cat", "dog", "bird"][round(s.item()) % 3] for s in sizes]
    assert names == [bundle.class_names[i] for i in bundle.train_y.tolist()]


def test_csv_small_integer_labels_are_classes_and_real_labels_regression(tmp_path):
    ints = write_csv(tmp_path / "ints.csv", "a,b,label\n" + "\n".join(f"{i},{-i},{i % 4 + 1}" for i in range(20)))
    bundle = load_data(DataConfig(source="csv", root=ints))
    assert bundle.task == "classification" and bundle.class_names == ["1", "2", "3", "4"]
    forced = load_data(DataConfig(source="csv", root=ints, task="regression", val_fraction=0))
    assert forced.task == "regression" and forced.train_y.dtype == torch.float32 and forced.train_y.shape == (20, 1)
    assert forced.train_y[:, 0].tolist() == [float(i % 4 + 1) for i in range(20)]

    reals = write_csv(tmp_path / "price.csv", "x,price\n" + "\n".join(f"{i},{i * 1.5 + 0.25}" for i in range(20)))
    bundle = load_data(DataConfig(source="csv", root=reals, label_column="price", val_fraction=0))
    assert bundle.task == "regression" and bundle.num_classes is None
    assert bundle.train_y[:, 0].tolist() == [i * 1.5 + 0.25 for i in range(20)]     # targets not normalised
    assert bundle.summary().endswith("regression, 1 target")


def test_csv_bad_cells_and_rows_name_line_and_column(tmp_path):
    bad_cell = write_csv(tmp_path / "bad.csv", "a,b,label\n1,2,x\n3,4,y\n5,oops,x\n")
    with pytest.raises(DataError, match=r"bad\.csv line 4, column 'b' \(column 2\): 'oops' is not a number"):
        load_data(DataConfig(source="csv", root=bad_cell))
    short_row = write_csv(tmp_path / "short.csv", "a,b,label\n1,2,x\n3,y\n")
    with pytest.raises(DataError, match=r"short\.csv line 3: 2 cells, but the header has 3 columns"):
        load_data(DataConfig(source="csv", root=short_row))
    no_label = write_csv(tmp_path / "nolabel.csv", "a,b,target\n1,2,3\n")
    with pytest.raises(DataError, match="no column 'label' \\(its columns are a, b, target\\)"):
        load_data(DataConfig(source="csv", root=no_label))
    text_target = write_csv(tmp_path / "text.csv", "a,label\n1,2.5\n2,high\n")
    with pytest.raises(DataError, match=r"line 3, column 'label' \(column 2\): 'high' is not a number"):
        load_data(DataConfig(source="csv", root=text_target, task="regression"))
    with pytest.raises(DataError, match="does not exist"):
        load_data(DataConfig(source="csv", root=str(tmp_path / "missing.csv")))


# --------------------------------------------------------------------------- synthetic regression

def test_synthetic_regression_follows_the_d2l_recipe():
    bundle = load_data(DataConfig(source="synthetic-regression"))
    assert bundle.task == "regression" and bundle.input_shape == (2,) and bundle.mean is None
    assert bundle.summary() == "Synthetic regression: 900 train / 100 val / 0 test, 2 features, regression, 1 target"
    assert (len(bundle.train_x), len(bundle.val_x), len(bundle.test_x)) == (900, 100, 0)
    x = torch.cat([bundle.train_x, bundle.val_x]).double()
    y = torch.cat([bundle.train_y, bundle.val_y]).double()
    assert y.shape == (1000, 1)
    assert x.mean(0).abs().max().item() < 0.1 and (x.std(0) - 1).abs().max().item() < 0.1   # X ~ N(0, 1)
    solution = torch.linalg.lstsq(torch.cat([x, torch.ones(1000, 1, dtype=x.dtype)], 1), y).solution[:, 0]
    assert solution.tolist() == pytest.approx([2.0, -3.4, 4.2], abs=0.005)
    residual = y[:, 0] - x @ solution[:2] - solution[2]
    assert residual.std().item() == pytest.approx(0.01, rel=0.1)
    again = load_data(DataConfig(source="synthetic-regression"))
    assert torch.equal(again.train_x, bundle.train_x)
    custom = load_data(DataConfig(source="synthetic-regression", weights=(1.0, 2.0, 3.0), bias=-1.0, samples=50,
                                  noise=0.0, val_fraction=0))
    assert torch.allclose(custom.train_y[:, 0], custom.train_x @ torch.tensor([1.0, 2.0, 3.0]) - 1.0, atol=1e-5)


# --------------------------------------------------------------------------- augmentation

def test_flip_keeps_shape_and_flips_about_half():
    x = torch.arange(64 * 2 * 5 * 7, dtype=torch.float32).view(64, 2, 5, 7)
    out = augment_batch(x, Augment(hflip=True), torch.Generator().manual_seed(0))
    assert out.shape == x.shape
    flipped = [torch.equal(o, xi.flip(-1)) for o, xi in zip(out, x, strict=True)]
    kept = [torch.equal(o, xi) for o, xi in zip(out, x, strict=True)]
    assert all(f != k for f, k in zip(flipped, kept, strict=True))          # each sample exactly one of the two
    assert 16 < sum(flipped) < 48
    again = augment_batch(x, Augment(hflip=True), torch.Generator().manual_seed(0))
    assert torch.equal(out, again)                           # reproducible from the generator


def test_crop_takes_a_window_of_the_zero_padded_image():
    x = torch.rand(32, 3, 6, 6) + 1             # no zeros inside, so padding shows as zeros
    out = augment_batch(x, Augment(crop_padding=2), torch.Generator().manual_seed(1))
    assert out.shape == x.shape
    padded = torch.nn.functional.pad(x, (2, 2, 2, 2))
    offsets = []
    for sample, image in zip(out, padded, strict=True):
        matches = [(dy, dx) for dy in range(5) for dx in range(5)
                   if torch.equal(image[:, dy:dy + 6, dx:dx + 6], sample)]
        assert len(matches) == 1
        offsets.append(matches[0])
    assert len(set(offsets)) > 5                # offsets vary per sample


def test_augment_leaves_other_data_alone():
    x = torch.rand(4, 1, 5, 5)
    assert augment_batch(x, Augment(), None) is x
    table = torch.rand(4, 3)
    assert augment_batch(table, Augment(crop_padding=2, hflip=True), None) is table
    both = augment_batch(x, Augment(crop_padding=1, hflip=True), None)
    assert both.shape == x.shape
    bundle = load_data(DataConfig(source="synthetic-regression", augment_hflip=True))
    assert not bundle.augment.active
    images = load_data(DataConfig(augment_crop_padding=4, augment_hflip=True, limit=100))
    assert images.augment == Augment(4, True) and images.summary().endswith("augment crop pad 4 + flip")


# --------------------------------------------------------------------------- settings and the CLI form

def test_config_json_round_trip():
    config = DataConfig(source="csv", root="/data/t.csv", task="regression", weights=(1.5, 2.0, -1.0), limit=10,
                        augment_hflip=True, stream=True)
    text = json.dumps(config.to_dict())
    assert DataConfig.from_dict(json.loads(text)) == config
    assert DataConfig.from_dict({}) == DataConfig()
    assert DataConfig.from_dict({"bias": 3}).bias == 3.0


@pytest.mark.parametrize("data, message", [
    ([], "must be a JSON object"),
    ({"colour": "red"}, "Unknown data setting 'colour'"),
    ({"source": "imagenet"}, "'source' .* must be one of mnist-sample, .*, got 'imagenet'"),
    ({"task": "clustering"}, "'task' .* must be one of auto, classification, .*, got 'clustering'"),
    ({"download": "yes"}, "'download' .* must be true or false"),
    ({"samples": 10.5}, "'samples' .* must be a whole number"),
    ({"limit": True}, "'limit' .* must be a whole number"),
    ({"noise": "low"}, "'noise' .* must be a number"),
    ({"weights": [1, "two"]}, "'weights' .* must be a list of one to 100,000 numbers"),
    ({"weights": []}, "'weights' .* must be a list of one to"),
    ({"val_fraction": 1.0}, "'val_fraction' .* must be a number between 0 and 0.9"),
    ({"image_size": 0}, "'image_size' .* must be a whole number between 1 and 4096"),
])
def test_config_from_dict_rejects_bad_fields_with_a_sentence(data, message):
    with pytest.raises(DataError, match=message):
        DataConfig.from_dict(data)


def test_parse_data_arg_forms():
    assert parse_data_arg("mnist-sample") == DataConfig()
    assert parse_data_arg("synthetic-regression") == DataConfig(source="synthetic-regression")
    assert parse_data_arg("mnist:/data") == DataConfig(source="mnist", root="/data")
    assert parse_data_arg("fashion-mnist:~/d") == DataConfig(source="fashion-mnist", root="~/d")
    assert parse_data_arg("cifar10:C:\\data") == DataConfig(source="cifar10", root="C:\\data")
    assert parse_data_arg("folder:/pics").source == "folder" and parse_data_arg("csv:t.csv").root == "t.csv"
    with pytest.raises(DataError, match="Unknown --data 'imagenet:/x'"):
        parse_data_arg("imagenet:/x")
    assert parse_data_arg("mnist") == DataConfig(source="mnist")     # a download's ROOT defaults to the data folder
    with pytest.raises(DataError, match="needs a path: write csv:PATH"):
        parse_data_arg("csv")
    with pytest.raises(DataError, match="takes no path"):
        parse_data_arg("mnist-sample:/x")


# --------------------------------------------------------------------------- downloads (file:// URLs, no network)

def test_download_file_reports_progress_and_checks_md5(tmp_path, no_network):
    source = tmp_path / "remote.bin"
    source.write_bytes(os.urandom(300_000))
    target = tmp_path / "downloads" / "copy.bin"
    calls = []
    download_file(source.as_uri(), target, md5(source), lambda f, m: calls.append((f, m)))
    assert target.read_bytes() == source.read_bytes()
    assert calls[-1][0] == 1.0 and len(calls) > 2 and "copy.bin" in calls[-1][1]
    with pytest.raises(DataError, match="damaged"):
        download_file(source.as_uri(), tmp_path / "other.bin", "0" * 32)
    assert not (tmp_path / "other.bin").exists() and not list(tmp_path.glob("*.part"))
    with pytest.raises(DataError, match="Could not download"):
        download_file((tmp_path / "absent.bin").as_uri(), tmp_path / "absent-copy.bin")
    assert not no_network
