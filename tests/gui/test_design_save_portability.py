"""The window saves a design where os.fchmod does not exist (Windows), with the mode a plain open() gives."""
from __future__ import annotations

import os
import stat

from engine.spec import LayerSpec, NetworkSpec
from gui.document import DesignDocument


def test_a_design_saves_without_fchmod_with_the_plain_open_mode(tmp_path, monkeypatch):
    monkeypatch.delattr(os, "fchmod", raising=False)
    previous = os.umask(0o027)
    try:
        with open(tmp_path / "plain.json", "wb"):
            pass
        doc = DesignDocument(NetworkSpec((4,), (LayerSpec("Linear", {"out_features": 2}),)))
        doc.save(tmp_path / "net.json")
        doc.save(tmp_path / "net.json")  # and again, over the first file
    finally:
        os.umask(previous)
    modes = {name: stat.S_IMODE((tmp_path / name).stat().st_mode) for name in ("plain.json", "net.json")}
    assert modes["net.json"] == modes["plain.json"] == 0o640
    reopened = DesignDocument(NetworkSpec((1,), ()))
    reopened.open(tmp_path / "net.json")
    assert reopened.spec.input_shape == (4,) and [layer.kind for layer in reopened.spec.layers] == ["Linear"]
    assert not list(tmp_path.glob(".*.tmp"))
