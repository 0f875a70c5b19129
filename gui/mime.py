"""Layers and layer kinds as drag-and-drop / clipboard data.

The clipboard holds the layers' JSON (the same dicts a design file has), as
plain text too, so a copied stack can be pasted into a text editor or from one.
"""
from __future__ import annotations

import json

from PySide6.QtCore import QMimeData

from engine.errors import SpecError
from engine.files import parse_json
from engine.spec import MAX_DESIGN_BYTES, LayerSpec

KIND_MIME = "application/x-layerstudio-kind"
LAYERS_MIME = "application/x-layerstudio-layers"


def kind_to_mime(kind: str) -> QMimeData:
    data = QMimeData()
    data.setData(KIND_MIME, kind.encode())
    return data


def kind_from_mime(data: QMimeData) -> str | None:
    """The dragged palette entry's name, a kind or a group preset (checked by DesignDocument.add_kind), or None."""
    return bytes(data.data(KIND_MIME)).decode("utf-8", "replace") if data.hasFormat(KIND_MIME) else None


def layers_to_mime(layers, source: str = "") -> QMimeData:
    """``layers`` as JSON; ``source`` tells a drop whether it came from the same stack (a move)."""
    dicts = [layer.to_dict() for layer in layers]
    data = QMimeData()
    data.setData(LAYERS_MIME, json.dumps({"source": source, "layers": dicts}).encode())
    data.setText(json.dumps(dicts, indent=2))
    return data


def layers_from_mime(data: QMimeData) -> tuple[list[LayerSpec], str]:
    """(layers, source) from our own format or from JSON text; SpecError if it holds no layers.

    The clipboard is read like a design file (same JSON checks, same size bound, same layer checks):
    another program may have put anything there."""
    if data.hasFormat(LAYERS_MIME):
        raw = bytes(data.data(LAYERS_MIME))
        payload = _parse_json(raw.decode("utf-8", "replace"))
        if not isinstance(payload, dict):
            raise SpecError("The dragged layers are damaged: copy the layers in LayerStudio again")
        return _parse(payload.get("layers")), str(payload.get("source", ""))
    if data.hasText():
        payload = _parse_json(data.text())
        if isinstance(payload, dict) and "layers" in payload:
            payload = payload["layers"]
        return _parse(payload if isinstance(payload, list) else [payload]), ""
    raise SpecError("The clipboard holds no layers: copy layers in LayerStudio first")


def _parse_json(text: str):
    if len(text) > MAX_DESIGN_BYTES or not text.lstrip().startswith(("[", "{")):
        raise SpecError("The clipboard holds text, not layers: copy layers in LayerStudio first")
    return parse_json(text, "list of layers", SpecError, "The clipboard")


def _parse(items) -> list[LayerSpec]:
    if not isinstance(items, list) or not items:
        raise SpecError("The clipboard holds no layers: copy layers in LayerStudio first")
    return [LayerSpec.from_dict(item, f"pasted layer {i}") for i, item in enumerate(items)]
