"""Stop and closing the window while data loads: real slow loads (large pictures to decode, a download from a
real HTTP server on 127.0.0.1 that stalls), the thread ends within 2 s, nothing half-written stays behind."""
from __future__ import annotations

import shutil
import time

import numpy as np
import pytest
from PIL import Image
from PySide6.QtCore import Qt

from engine.paths import cache_dir
from engine.spec import LayerSpec, NetworkSpec
from gui.document import DesignDocument
from gui.training import controller as states
from gui.training import install_training
from gui.training.controller import TrainingController
from gui.training.panel import TrainingPanel
from tests.slow_server import SlowServer

STOP_WITHIN_S = 2.0
QUICK_RUN = {"epochs": 1, "batch_size": 8, "device": "cpu"}


@pytest.fixture(autouse=True)
def private_home(tmp_path, monkeypatch):
    monkeypatch.setenv("LAYERSTUDIO_HOME", str(tmp_path / "home"))


@pytest.fixture
def slow_mnist_mirror(monkeypatch):
    """torchvision's MNIST downloads come from a loopback server that sends two pieces, then stalls."""
    from torchvision import datasets

    with SlowServer(stall=True) as server:
        monkeypatch.setattr(datasets.MNIST, "mirrors", [server.url()])
        yield server


def slow_picture_folder(root, per_class: int = 30) -> None:
    """Pictures of 1500x1500 pixels (small files, slow to decode and shrink): a load that takes seconds here."""
    side = 1500
    ramp = np.add.outer(np.arange(side), np.arange(side)).astype(np.uint8)
    first = root / "a" / "0.png"
    first.parent.mkdir(parents=True)
    Image.fromarray(np.stack([ramp, ramp.T, 255 - ramp], -1)).save(first)
    for name in ("a", "b"):
        (root / name).mkdir(exist_ok=True)
        for k in range(per_class):
            if (root / name / f"{k}.png") != first:
                shutil.copyfile(first, root / name / f"{k}.png")


def tiny_spec(input_shape=(1, 28, 28)) -> NetworkSpec:
    return NetworkSpec(input_shape,
                       (LayerSpec("Flatten", id="flat"), LayerSpec("Linear", {"out_features": 2}, id="out")))


def mnist_download(tmp_path) -> dict:
    return {"source": "mnist", "root": str(tmp_path / "mnist"), "download": True}


def picture_folder(tmp_path) -> dict:
    slow_picture_folder(tmp_path / "pictures")
    return {"source": "folder", "root": str(tmp_path / "pictures"), "image_size": 28, "grayscale": True}


def no_partial_files(tmp_path) -> bool:
    """No download (whole or partial) in the MNIST folder, no data cache or temp file in the app's cache."""
    raw = tmp_path / "mnist" / "MNIST" / "raw"
    downloads = list(raw.iterdir()) if raw.is_dir() else []
    caches = list(cache_dir().iterdir()) if cache_dir().is_dir() else []
    return downloads == [] and caches == []


class Panel:
    def __init__(self, qtbot, data: dict):
        self.doc = DesignDocument(tiny_spec())
        self.doc.extras = {"data": data, "training": dict(QUICK_RUN)}
        self.controller = TrainingController(self.doc, warm_up=False)
        self.panel = TrainingPanel(self.controller)
        qtbot.addWidget(self.panel)
        self.progress: list[str] = []
        self.controller.dataLoading.connect(lambda fraction, text: self.progress.append(text))

    def started(self, word: str) -> bool:
        """True once the loading reported a step starting with ``word`` ("Downloading", "Decoding")."""
        return any(text.startswith(word) and " of " in text for text in self.progress)


@pytest.fixture
def panel(qtbot):
    made = []

    def make(data: dict) -> Panel:
        made.append(Panel(qtbot, data))
        return made[-1]

    yield make
    for ui in made:
        ui.controller.shutdown()
        assert ui.controller.running_threads() == []


@pytest.mark.parametrize("data, step", [(mnist_download, "Downloading"), (picture_folder, "Decoding")])
def test_stop_while_a_run_loads_its_data_ends_it_stopped_within_2_s(qtbot, tmp_path, panel, slow_mnist_mirror,
                                                                    data, step):
    ui = panel(data(tmp_path))
    qtbot.mouseClick(ui.panel.start_button, Qt.LeftButton)
    qtbot.waitUntil(lambda: ui.started(step), timeout=60_000)
    assert ui.controller.state == states.LOADING and ui.panel.stop_button.isEnabled()
    clicked = time.monotonic()
    with qtbot.waitSignal(ui.controller.finished, timeout=int(STOP_WITHIN_S * 1000)) as blocker:
        qtbot.mouseClick(ui.panel.stop_button, Qt.LeftButton)
    qtbot.waitUntil(lambda: ui.controller.running_threads() == [], timeout=int(STOP_WITHIN_S * 1000))
    assert time.monotonic() - clicked < STOP_WITHIN_S
    result = blocker.args[0]
    assert (result.reason, result.message, result.epochs_done) == ("stopped", "Stopped while loading the data.", 0)
    assert ui.controller.state == states.IDLE and not ui.doc.read_only
    assert ui.controller.data is None and ui.panel.failure_dialog is None
    assert "Stopped by you" in ui.panel.progress_label.text()
    assert no_partial_files(tmp_path)


@pytest.mark.parametrize("data, step", [(mnist_download, "Downloading"), (picture_folder, "Decoding")])
def test_stop_while_load_data_runs_ends_the_loading_within_2_s(qtbot, tmp_path, panel, slow_mnist_mirror, data, step):
    ui = panel(data(tmp_path))
    loaded = []
    ui.controller.dataLoaded.connect(loaded.append)
    qtbot.mouseClick(ui.panel.data_section.load_button, Qt.LeftButton)
    qtbot.waitUntil(lambda: ui.started(step), timeout=60_000)
    assert ui.panel.stop_button.isEnabled()
    clicked = time.monotonic()
    with qtbot.waitSignal(ui.controller.dataStopped, timeout=int(STOP_WITHIN_S * 1000)):
        qtbot.mouseClick(ui.panel.stop_button, Qt.LeftButton)
    qtbot.waitUntil(lambda: ui.controller.state == states.IDLE and not ui.controller.running_threads(),
                    timeout=int(STOP_WITHIN_S * 1000))
    assert time.monotonic() - clicked < STOP_WITHIN_S
    assert loaded == [] and ui.controller.data is None
    assert ui.panel.data_section.summary.text().startswith("Loading the data stopped")
    assert ui.panel.start_button.isEnabled() and ui.panel.data_section.load_button.isEnabled()
    assert no_partial_files(tmp_path)


@pytest.mark.parametrize("data, step", [(mnist_download, "Downloading"), (picture_folder, "Decoding")])
def test_closing_the_window_while_data_loads_ends_within_2_s(window, qtbot, tmp_path, slow_mnist_mirror, data, step):
    ui = getattr(window, "training", None) or install_training(window)
    window.document.set_extra("data", data(tmp_path))
    window.document.set_extra("training", dict(QUICK_RUN))
    window.document.undo_stack.setClean()    # so closing asks nothing
    progress, finished = [], []
    ui.controller.dataLoading.connect(lambda fraction, text: progress.append(text))
    ui.controller.finished.connect(finished.append)
    assert ui.controller.start()
    qtbot.waitUntil(lambda: any(text.startswith(step) and " of " in text for text in progress), timeout=60_000)
    assert ui.controller.state == states.LOADING
    closing = time.monotonic()
    assert window.close()
    assert time.monotonic() - closing < STOP_WITHIN_S
    assert ui.controller.running_threads() == []
    assert ui.controller.state == states.IDLE
    assert [r.reason for r in finished] == ["stopped"]
    assert no_partial_files(tmp_path)
