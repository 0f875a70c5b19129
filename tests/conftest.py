import os
import tempfile

import engine  # noqa: F401 - first, so its OpenMP setting is in place before any test imports torch

# Headless Qt for every test; set before anything imports PySide6.
os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

# The app's own folders (data, cache, logs) go to a fresh temporary folder: tests never touch the user's.
os.environ["LAYERSTUDIO_HOME"] = tempfile.mkdtemp(prefix="layerstudio-tests-")
