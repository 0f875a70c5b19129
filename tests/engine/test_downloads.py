"""Downloads: declared sizes, the default data folder, what is pending, and a real first download from a
loopback HTTP server (tests/file_server.py) into the default folder; nothing reaches the network."""
from __future__ import annotations

import gzip
import hashlib
import json
import struct

import numpy as np
import pytest

from engine.cli import main
from engine.controls import naming
from engine.data import DataConfig, load_data, parse_data_arg
from engine.data.downloads import dataset_root, pending_download
from engine.data.sources import SOURCES
from engine.errors import DataError
from engine.paths import datasets_dir
from engine.templates import list_templates, load_design
from tests.file_server import FileServer

MNIST_BYTES = 9_912_422 + 28_881 + 1_648_877 + 4_542


@pytest.fixture(autouse=True)
def private_home(tmp_path, monkeypatch):
    """Every test gets its own data folder (the default download root) and cache."""
    monkeypatch.setenv("LAYERSTUDIO_HOME", str(tmp_path / "home"))


def write_idx_gz(path, array: np.ndarray) -> None:
    array = np.ascontiguousarray(array, dtype=np.uint8)
    header = struct.pack(">BBBB", 0, 0, 0x08, array.ndim) + struct.pack(f">{array.ndim}I", *array.shape)
    path.write_bytes(gzip.compress(header + array.tobytes()))


def mnist_mirror(folder, train: int = 60, test: int = 20) -> list[tuple[str, str]]:
    """MNIST's four files, gzipped IDX as the real mirrors serve them; returns (file name, md5) like
    torchvision's ``MNIST.resources``."""
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    arrays = {"train-images-idx3-ubyte.gz": rng.integers(0, 256, (train, 28, 28)),
              "train-labels-idx1-ubyte.gz": np.arange(train) % 10,
              "t10k-images-idx3-ubyte.gz": rng.integers(0, 256, (test, 28, 28)),
              "t10k-labels-idx1-ubyte.gz": np.arange(test) % 10}
    resources = []
    for name, array in arrays.items():
        write_idx_gz(folder / name, array)
        resources.append((name, hashlib.md5((folder / name).read_bytes()).hexdigest()))
    return resources


def test_sizes_are_declared_for_exactly_the_files_torchvision_fetches():
    from torchvision import datasets

    for source, cls in (("mnist", datasets.MNIST), ("fashion-mnist", datasets.FashionMNIST)):
        download = SOURCES[source].download
        assert [name for name, _size, _unpacked in download.files] == [name for name, _md5 in cls.resources]
        assert download.folder == f"{cls.__name__}/raw"
    cifar = datasets.CIFAR10
    (archive, _size, unpacked), = SOURCES["cifar10"].download.files
    assert archive == cifar.filename and SOURCES["cifar10"].download.folder == cifar.base_folder
    assert set(unpacked) == {name for name, _md5 in cifar.train_list + cifar.test_list} | {cifar.meta["filename"]}
    assert SOURCES["mnist"].download.total_bytes == MNIST_BYTES
    assert round(SOURCES["fashion-mnist"].download.total_bytes / 2**20) == 29     # ~30 MB
    assert round(SOURCES["cifar10"].download.total_bytes / 2**20) == 163


def test_an_empty_folder_means_the_default_data_folder_for_downloads_only(tmp_path):
    assert datasets_dir() == tmp_path / "home" / "data" / "datasets"
    assert dataset_root("fashion-mnist", "") == datasets_dir()
    assert dataset_root("cifar10", "  ") == datasets_dir()
    assert dataset_root("mnist", str(tmp_path / "mine")) == tmp_path / "mine"
    assert dataset_root("folder", "") is None and dataset_root("csv", "") is None
    assert parse_data_arg("mnist") == DataConfig(source="mnist")       # ROOT is optional for a download
    with pytest.raises(DataError, match="needs a path: write folder:PATH"):
        parse_data_arg("folder")


def test_what_is_pending_names_the_size_and_the_folder_and_counts_only_missing_files(tmp_path):
    pending = pending_download(DataConfig(source="fashion-mnist", download=True))
    assert pending.size == SOURCES["fashion-mnist"].download.total_bytes and pending.root == datasets_dir()
    assert pending.sentence() == f"Fashion-MNIST will be downloaded (30.9 MB) into {datasets_dir()}."
    off = pending_download(DataConfig(source="cifar10"))
    assert not off.enabled
    with naming(lambda key: {"data.download": "--download"}.get(key)):      # as the command line names it
        assert off.sentence() == f"CIFAR-10 is not in {datasets_dir()} yet: turn on --download to fetch it (170.5 MB)."
    raw = tmp_path / "d" / "MNIST" / "raw"
    raw.mkdir(parents=True)
    (raw / "train-images-idx3-ubyte").write_bytes(b"x")        # unpacked counts
    (raw / "t10k-images-idx3-ubyte.gz").write_bytes(b"x")      # so does the gzipped file the loader unpacks
    partial = pending_download(DataConfig(source="mnist", root=str(tmp_path / "d"), download=True))
    assert partial.size == 28_881 + 4_542
    for name in ("train-labels-idx1-ubyte", "t10k-labels-idx1-ubyte"):
        (raw / name).write_bytes(b"x")
    assert pending_download(DataConfig(source="mnist", root=str(tmp_path / "d"))) is None
    for config in (DataConfig(), DataConfig(source="synthetic-regression"), DataConfig(source="csv", root="t.csv")):
        assert pending_download(config) is None


@pytest.mark.parametrize("template", [info.name for info in list_templates()])
def test_every_template_names_its_own_dataset_and_can_fetch_it(template):
    """One click trains a template on its own data: the sample and synthetic data need nothing, the others
    download into the default folder."""
    _spec, design = load_design(template)
    config = DataConfig.from_dict(design["data"])
    if SOURCES[config.source].download is not None:
        assert config.download and not config.root      # on, into the default data folder
        assert pending_download(config).enabled
    else:
        assert config.source in ("mnist-sample", "synthetic-regression") and pending_download(config) is None


def test_the_first_download_goes_into_the_default_folder_and_the_next_load_needs_none(tmp_path, monkeypatch):
    from torchvision import datasets

    resources = mnist_mirror(tmp_path / "mirror")
    monkeypatch.setattr(datasets.MNIST, "resources", resources)
    with FileServer(tmp_path / "mirror") as server:
        monkeypatch.setattr(datasets.MNIST, "mirrors", [server.url()])
        config = DataConfig(source="mnist", download=True, val_fraction=0.2)
        assert pending_download(config).enabled
        bundle = load_data(config)
    assert sorted(server.requests) == sorted(f"/{name}" for name, _md5 in resources)
    assert bundle.summary() == "MNIST: 48 train / 12 val / 20 test, 1x28x28, 10 classes"
    assert (datasets_dir() / "MNIST" / "raw" / "train-images-idx3-ubyte").is_file()
    assert pending_download(config) is None
    assert load_data(DataConfig(source="mnist")).train_size == 54      # offline now, download off


def test_the_cli_says_what_it_will_download_before_it_starts(tmp_path, monkeypatch, capsys):
    from torchvision import datasets

    resources = mnist_mirror(tmp_path / "mirror")
    monkeypatch.setattr(datasets.MNIST, "resources", resources)
    _spec, design = load_design("lenet")
    path = tmp_path / "lenet.json"
    path.write_text(json.dumps({**design, "data": {"source": "mnist", "download": True}}))
    with FileServer(tmp_path / "mirror") as server:
        monkeypatch.setattr(datasets.MNIST, "mirrors", [server.url()])
        code = main(["train", str(path), "--epochs", "1", "--batch-size", "16", "--device", "cpu"])
    lines = capsys.readouterr().out.splitlines()
    assert code == 0
    assert lines[0] == f"MNIST will be downloaded (11.6 MB) into {datasets_dir()}."
    assert lines[1].startswith("Data: MNIST: 54 train / 6 val / 20 test")


def test_a_missing_download_that_is_off_names_the_default_folder_and_the_switch(tmp_path):
    with pytest.raises(DataError) as error:
        load_data(DataConfig(source="cifar10"))
    assert f"CIFAR-10 files not found in {datasets_dir() / 'cifar-10-batches-py'}" in str(error.value)
    assert "turn on the data setting 'download'" in str(error.value)
