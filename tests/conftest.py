import os

import engine  # noqa: F401 - first, so its OpenMP setting is in place before any test imports torch

# Headless Qt for every test; set before anything imports PySide6.
os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
