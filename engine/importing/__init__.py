"""PyTorch models imported as designs: a source file read with ``ast`` (never run), torchvision's classic models
traced with ``torch.fx`` on the meta device, and a bare state_dict's keys and shapes. All three read modules into
layers through one mapping (``engine.importing.mapping``) and report what they could not map, in sentences.

``import_model`` picks the importer from the source's form; ``write_design`` saves the result as a design file."""
from __future__ import annotations

import json
import re
from pathlib import Path

from engine.errors import SpecError
from engine.files import check_output_path, write_text_atomically
from engine.importing.mapping import Imported, Note
from engine.spec import DESIGN_SUFFIXES, MAX_NAME, check_input_shape

__all__ = ["TORCHVISION_PREFIX", "Imported", "Note", "design_data", "import_model", "parse_shape", "write_design"]

TORCHVISION_PREFIX = "torchvision:"
SHAPE = re.compile(r"\d{1,9}(?:x\d{1,9}){0,7}")


def import_model(source: str, input_shape: tuple[int, ...] | None = None) -> Imported:
    """The design in ``source``: a .py file, ``torchvision:NAME`` or a state_dict file (.pt, .pth,
    .safetensors); ``input_shape`` is one sample's shape (a .py file's INPUT_SHAPE when not given)."""
    from engine.importing.source import SOURCE_SUFFIXES, import_source
    from engine.importing.state_dict import WEIGHT_SUFFIXES, propose_from_file
    from engine.importing.torchvision_models import import_torchvision

    if source.startswith(TORCHVISION_PREFIX):
        return import_torchvision(source[len(TORCHVISION_PREFIX):], input_shape)
    suffix = Path(source).suffix.lower()
    if suffix in SOURCE_SUFFIXES:
        return import_source(source, input_shape)
    if suffix in WEIGHT_SUFFIXES:
        return propose_from_file(source, input_shape)
    raise SpecError(f"{source} is not something to import: give a PyTorch file (.py), a state_dict "
                    f"({', '.join(WEIGHT_SUFFIXES)}) or {TORCHVISION_PREFIX}NAME, e.g. {TORCHVISION_PREFIX}resnet18")


def parse_shape(text: str) -> tuple[int, ...]:
    """``1x28x28`` -> (1, 28, 28); SpecError with the form to write otherwise."""
    cleaned = text.strip().replace("×", "x").replace(",", "x").replace(" ", "")
    if not SHAPE.fullmatch(cleaned):
        raise SpecError(f"The input shape {text!r} is not sizes joined by x: write one sample's shape, e.g. 1x28x28")
    shape = tuple(int(part) for part in cleaned.split("x"))
    check_input_shape(list(shape))
    return shape


def design_data(imported: Imported) -> dict:
    """The imported design as a design file's object, named after its source."""
    return {**imported.spec.to_dict(), "name": (Path(imported.source).stem or imported.source)[:MAX_NAME],
            "description": f"Imported from {imported.source}"}


def write_design(imported: Imported, path: str | Path, what: str = "design file") -> None:
    """Save the imported design as a design file (``what`` names the target in messages)."""
    target = check_output_path(path, DESIGN_SUFFIXES, what, SpecError)
    write_text_atomically(target, json.dumps(design_data(imported), indent=2) + "\n", "design", SpecError)
