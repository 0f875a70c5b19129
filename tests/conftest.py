import os
import tempfile

import pytest

from engine.openmp import use_passive_wait

use_passive_wait()  # first, as the app does: before any test imports torch

# Under pytest-xdist the workers share the cores: each worker's torch (and the processes its tests start) takes
# its share of them instead of one thread team per core in every worker, which only contend. A user's own wins.
if os.environ.get("PYTEST_XDIST_WORKER_COUNT"):
    _cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    os.environ.setdefault("OMP_NUM_THREADS", str(max(1, _cores // int(os.environ["PYTEST_XDIST_WORKER_COUNT"]))))

# Headless Qt for every test; set before anything imports PySide6.
os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

# The app's own folders (data, cache, logs) go to a fresh temporary folder: tests never touch the user's.
os.environ["LAYERSTUDIO_HOME"] = tempfile.mkdtemp(prefix="layerstudio-tests-")


@pytest.fixture
def log_to_file(tmp_path, monkeypatch):
    """The log configured as an entry point does it (no console), into this test's own log folder; its path."""
    from engine.log import close_logging, configure_logging

    monkeypatch.setenv("LAYERSTUDIO_HOME", str(tmp_path / "home"))
    path = configure_logging(console=False)
    yield path
    close_logging()


@pytest.fixture(autouse=True)
def engine_naming():
    """Each test starts with the engine naming settings itself: a window or command of an earlier test
    (they install their own naming, see engine.controls) does not change what the next one reads."""
    from engine.controls import use_naming

    use_naming(None)
    yield
    use_naming(None)
