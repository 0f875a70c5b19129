"""The parts of the window that need torch, built on the meta device (no memory, no weights).

torch is imported here lazily, on first use, so the window shows before the
~2 s torch import; ``preload_torch`` warms it up in a background thread.
"""
from __future__ import annotations

import importlib
import logging
import threading

log = logging.getLogger(__name__)


PRELOAD = ("engine.build", "engine.export", "engine.training.trainer", "engine.data.bundle", "engine.io")


def preload_torch(modules=PRELOAD) -> threading.Thread:
    """Import torch and the Qt-free engine modules that use it in a daemon thread.

    The import lock makes a later import of the same module in the GUI thread
    wait for this one instead of importing twice.
    """
    def load():
        for name in modules:
            try:
                importlib.import_module(name)
            except ImportError:  # the Train button's own import reports it to the person
                log.warning("Preloading %s failed", name, exc_info=True)

    thread = threading.Thread(target=load, name="torch-preload", daemon=True)
    thread.start()
    return thread


def model_text(spec) -> str:
    """print(model) of the built network (meta device, so even VGG costs no memory)."""
    import torch

    from engine.build import build_model

    with torch.device("meta"):
        return repr(build_model(spec))
