"""PyTorch models imported as designs: a source file read with ``ast`` (never run), torchvision's classic models
traced with ``torch.fx`` on the meta device, and a bare state_dict's keys and shapes. All three read modules into
layers through one mapping (``engine.importing.mapping``) and report what they could not map, in sentences."""
from __future__ import annotations

from engine.importing.mapping import Imported, Note

__all__ = ["Imported", "Note"]
