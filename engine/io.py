"""Weights and checkpoints on disk: safe to load, atomic to write, clear when they do not fit.

Weights are a plain ``state_dict`` (``0.weight``, ``1.bias``, ...) stored as
``.pt`` (``torch.save``) or ``.safetensors``, so they move freely between this
app and hand-written PyTorch. Loading never runs code from the file: torch files
are read with ``weights_only=True`` and a file that needs anything else is
refused, never retried unsafely. Every write goes to a temp file in the target
folder first and then ``os.replace``-s it, so a crash mid-write leaves the
previous file intact.
"""
from __future__ import annotations

import collections
import logging
import os
import pickle
import re
import struct
from dataclasses import dataclass, field
from pathlib import Path
from typing import cast

import torch
from torch import nn

from engine.errors import WeightsError
from engine.files import check_output_path, file_info, write_atomically
from engine.legacy import RENAMED_NOTE, renamed_legacy_keys
from engine.shapes import format_shape

log = logging.getLogger(__name__)

SAFETENSORS_SUFFIX = ".safetensors"
TORCH_SUFFIXES = (".pt", ".pth", ".bin", ".ckpt")
# What a save accepts (the suffix picks the format; the most common first, as messages list them).
# Reading ignores the suffix: the content tells a torch file from a safetensors one.
WEIGHTS_SUFFIXES = (TORCH_SUFFIXES[0], SAFETENSORS_SUFFIX, *TORCH_SUFFIXES[1:])
CHECKPOINT_SUFFIXES = TORCH_SUFFIXES
# Wrappers whose prefixes are stripped from keys: DataParallel/DDP ("module.") and torch.compile ("_orig_mod.").
WRAPPER_PREFIXES = ("module.", "_orig_mod.")
# Where a checkpoint-like file keeps its model weights (ours is "model"; the others are common conventions).
NESTED_STATE_KEYS = ("model", "state_dict", "model_state_dict", "model_state")

_ZIP_MAGIC = b"PK\x03\x04"
_PICKLE_PROTO = 0x80
_MAX_SAFETENSORS_HEADER = 100_000_000


# --------------------------------------------------------------------------- reading files

def _file_kind(path: Path, what: str = "weights") -> str:
    """'torch' or 'safetensors' from the file's first bytes (never its suffix); WeightsError for anything else.

    A folder, a FIFO or a device is refused before it is opened, so reading never blocks or streams forever."""
    size = file_info(path, what, WeightsError).st_size
    try:
        with open(path, "rb") as f:
            head = f.read(9)
    except OSError as exc:
        raise WeightsError(f"{path} cannot be read ({exc.strerror or exc}): check its permissions") from None
    if size == 0:
        raise WeightsError(f"{path} is empty: it was probably not written completely; save the weights again")
    if head.startswith(_ZIP_MAGIC):
        return "torch"
    # Before the pickle test: a safetensors header of 128 + 256k bytes also starts with the byte 0x80.
    if len(head) == 9 and head[8:9] == b"{":
        (header_len,) = struct.unpack("<Q", head[:8])
        if header_len <= min(size - 8, _MAX_SAFETENSORS_HEADER):
            return "safetensors"
        raise WeightsError(f"{path} has a damaged safetensors header (it claims {header_len} bytes but the file "
                           f"has {size}): the file is truncated or corrupt; save the weights again")
    if head[:1] == bytes([_PICKLE_PROTO]):
        return "torch"
    raise WeightsError(f"{path} is not a PyTorch (.pt) or safetensors file: choose a file saved with "
                       "torch.save or safetensors")


def _unsafe_reason(message: str) -> str:
    """The Python global a weights-only load refused, from torch's message (or a generic phrase)."""
    found = re.search(r"GLOBAL ([\w.]+)", message)
    return f"it refers to Python code ({found.group(1)})" if found else "it holds pickled Python objects"


def _torch_load(path: Path):
    """torch.load with weights_only=True, turning every failure into one WeightsError sentence.

    torch.load is given the open file, not the path: given a path ending in .safetensors it would hand
    the file to safetensors whatever it holds, and the content has already said it is a torch file."""
    try:
        with open(path, "rb") as file:
            return torch.load(file, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        raise WeightsError(
            f"{path} was refused because {_unsafe_reason(str(exc))} besides tensors and plain data, and loading "
            "it could run that code; LayerStudio only loads plain state_dicts and checkpoints"
        ) from None
    except OSError as exc:
        raise WeightsError(f"{path} cannot be read ({exc.strerror or exc}): check the file") from None
    except Exception as exc:  # a damaged file can make torch fail in many ways (RuntimeError, AssertionError, ...)
        log.info("torch.load could not read %s", path, exc_info=True)
        raise WeightsError(f"{path} is damaged, truncated or not a PyTorch file and cannot be read "
                           f"({_first_line(exc)}): save it again") from None


def _safetensors_load(path: Path) -> dict[str, torch.Tensor]:
    import safetensors.torch

    try:
        return safetensors.torch.load_file(str(path), device="cpu")
    except OSError as exc:
        raise WeightsError(f"{path} cannot be read ({exc.strerror or exc}): check the file") from None
    except Exception as exc:  # safetensors raises its own SafetensorError (and a few builtins) on bad files
        log.info("safetensors could not read %s", path, exc_info=True)
        raise WeightsError(f"{path} is not a valid safetensors file ({_first_line(exc)}): save it again") from None


def _first_line(exc: BaseException) -> str:
    """The first sentence of a library's message, without C++ assertion locations."""
    text = re.sub(r"\[enforce fail at [^\]]*\]\s*\.?\s*", "", str(exc)).strip()
    text = text.splitlines()[0].split(". ")[0].rstrip(".") if text else ""
    return text or type(exc).__name__


def _as_state_dict(loaded, path: Path) -> dict[str, torch.Tensor]:
    """The tensors of a loaded object: a flat state_dict, or the model part of a checkpoint-like dict."""
    if not isinstance(loaded, dict):
        raise WeightsError(f"{path} holds a {type(loaded).__name__}, not a state_dict: save model.state_dict()")
    if not all(isinstance(v, torch.Tensor) for v in loaded.values()):
        for key in NESTED_STATE_KEYS:
            nested = loaded.get(key)
            if isinstance(nested, dict) and nested and all(isinstance(v, torch.Tensor) for v in nested.values()):
                loaded = nested
                break
        else:
            bad = next(k for k, v in loaded.items() if not isinstance(v, torch.Tensor))
            raise WeightsError(f"{path} is not a state_dict: entry {bad!r} is a {type(loaded[bad]).__name__}, "
                               "not a tensor; save model.state_dict()")
    if not all(isinstance(k, str) for k in loaded):
        raise WeightsError(f"{path} is not a state_dict: its keys must be names like '0.weight'")
    return dict(loaded)


def read_state_dict(path: str | os.PathLike) -> dict[str, torch.Tensor]:
    """Read a state_dict from a .pt or .safetensors file (or the model part of a checkpoint), on the CPU."""
    path = Path(path)
    if _file_kind(path) == "safetensors":
        return _safetensors_load(path)
    return _as_state_dict(_torch_load(path), path)


def read_checkpoint(path: str | os.PathLike) -> dict:
    """Read a checkpoint dict written by save_checkpoint (tensors and plain data only, weights_only=True)."""
    path = Path(path)
    if _file_kind(path, "checkpoint") != "torch":
        raise WeightsError(f"{path} is a safetensors weights file, not a checkpoint: resume from a checkpoint .pt")
    loaded = _torch_load(path)
    if not isinstance(loaded, dict):
        raise WeightsError(f"{path} holds a {type(loaded).__name__}, not a checkpoint dict")
    return loaded


# --------------------------------------------------------------------------- writing files

def _weights_to_save(model_or_state_dict: nn.Module | dict) -> dict[str, torch.Tensor]:
    state = model_or_state_dict.state_dict() if isinstance(model_or_state_dict, nn.Module) else model_or_state_dict
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise TypeError("save_weights takes an nn.Module or a dict of tensors")
    # Plain keys ("0.weight"), whatever wrapper (torch.compile, DataParallel) the model was trained in.
    return {bare: state[original].detach().cpu() for bare, original in _normalized(state, "the model").items()}


def save_weights(model_or_state_dict: nn.Module | dict, path: str | os.PathLike) -> None:
    """Save a model's state_dict as .safetensors or as a torch.save .pt file (chosen by the suffix), atomically."""
    path = check_output_path(path, WEIGHTS_SUFFIXES, "weights", WeightsError)
    state = _weights_to_save(model_or_state_dict)
    if path.suffix.lower() == SAFETENSORS_SUFFIX:
        import safetensors.torch

        data = safetensors.torch.save(_unshared_contiguous(state))
        write_atomically(path, lambda f: f.write(data), "weights", WeightsError)
    else:
        write_atomically(path, lambda f: torch.save(state, f), "weights", WeightsError)


def _unshared_contiguous(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """safetensors refuses tensors that share memory (tied weights) or are not contiguous: give each its own."""
    out, seen = {}, set()
    for key, value in state.items():
        value = value.contiguous()
        ptr = value.untyped_storage().data_ptr() if value.numel() else None
        if ptr is not None and ptr in seen:
            value = value.clone()
        seen.add(ptr)
        out[key] = value
    return out


_PLAIN_LEAVES = (str, bytes, int, float, bool, complex, type(None), torch.Tensor, torch.dtype, torch.device, torch.Size)
_PLAIN_KEYS = (str, int, float, bool, type(None))


def _check_plain(checkpoint: dict) -> None:
    """Refuse anything weights_only=True could not read back (so every checkpoint written can be resumed)."""
    stack: list[tuple[str, object]] = [("checkpoint", checkpoint)]
    while stack:
        where, value = stack.pop()
        kind = type(value)
        # exact types (a subclass may not load back), which type checkers do not narrow on: hence the casts
        if kind in (dict, collections.OrderedDict):
            for key, item in cast(dict, value).items():
                if type(key) not in _PLAIN_KEYS and type(key) is not tuple:
                    raise WeightsError(f"{where} has a key of type {type(key).__name__}; "
                                       "checkpoints hold plain keys only")
                stack.append((f"{where}[{key!r}]", item))
        elif kind in (list, tuple):
            stack.extend((f"{where}[{i}]", item) for i, item in enumerate(cast(list, value)))
        elif not isinstance(value, torch.Tensor) and kind not in _PLAIN_LEAVES:
            raise WeightsError(f"{where} is a {kind.__name__}; a checkpoint may hold only tensors and plain Python "
                               "data (dict, list, str, numbers), so convert it before saving")


def save_checkpoint(path: str | os.PathLike, checkpoint: dict) -> None:
    """Write a training checkpoint (tensors and plain data only) atomically with torch.save."""
    if not isinstance(checkpoint, dict):
        raise TypeError("save_checkpoint takes a dict")
    path = check_output_path(path, CHECKPOINT_SUFFIXES, "checkpoint", WeightsError)
    _check_plain(checkpoint)
    write_atomically(path, lambda f: torch.save(checkpoint, f), "checkpoint", WeightsError)


# --------------------------------------------------------------------------- fitting weights to a model

def strip_wrapper_prefixes(key: str) -> str:
    """'module._orig_mod.3.weight' -> '3.weight' (DataParallel/DDP and torch.compile wrappers)."""
    stripped = True
    while stripped:
        stripped = False
        for prefix in WRAPPER_PREFIXES:
            if key.startswith(prefix):
                key, stripped = key[len(prefix):], True
    return key


def _normalized(keys, where: str) -> dict[str, str]:
    """Map each key without wrapper prefixes to its original key; WeightsError when two collapse into one."""
    out: dict[str, str] = {}
    for key in keys:
        bare = strip_wrapper_prefixes(key)
        if bare in out:
            raise WeightsError(f"{where} holds both {out[bare]!r} and {key!r}, which name the same tensor")
        out[bare] = key
    return out


def _module_key(module: str) -> tuple:
    """Sort key of a dotted module name in model order: numbers by value, names after them."""
    return tuple((0, int(part), "") if part.isdigit() else (1, 0, part) for part in module.split("."))


@dataclass(frozen=True)
class FitReport:
    """How a state_dict fits a model: keys missing from the file, extra in it, and shape mismatches.

    ``layer_kinds`` maps a module's dotted name ("3", or "4.body.0" inside a group) to its kind ("Linear") and
    ``layer_paths`` to the layer's path as the design shows it ("4 › 0"), so ``text()`` names each layer, inner
    layers of groups included. ``renamed`` counts the keys renamed from LayerStudio 1 blocks (engine.legacy).
    """

    missing: list[str] = field(default_factory=list)
    unexpected: list[str] = field(default_factory=list)
    mismatched: list[tuple[str, tuple[int, ...], tuple[int, ...]]] = field(default_factory=list)
    layer_kinds: dict[str, str] = field(default_factory=dict)
    unexpected_shapes: dict[str, tuple[int, ...]] = field(default_factory=dict)
    matched: int = 0
    layer_paths: dict[str, str] = field(default_factory=dict)
    renamed: int = 0

    @property
    def ok(self) -> bool:
        return not (self.missing or self.unexpected or self.mismatched)

    def group_of(self, key: str) -> str:
        """The module a key belongs to: the deepest known layer holding it, else its first part."""
        module = key
        while "." in module:
            module = module.rpartition(".")[0]
            if module in self.layer_kinds:
                return module
        return key.split(".", 1)[0]

    def problems_by_layer(self) -> dict[str, list[str]]:
        """One line per problem, grouped under their layer ("3", "4.body.0") in model order."""
        groups: dict[str, list[str]] = {}
        for key, expected, got in self.mismatched:
            groups.setdefault(self.group_of(key), []).append(
                f"{key} has shape {format_shape(got)} in the file but {format_shape(expected)} in the design")
        for key in self.missing:
            groups.setdefault(self.group_of(key), []).append(f"{key} is missing from the file")
        for key in self.unexpected:
            shape = self.unexpected_shapes.get(key)
            shape_text = f" ({format_shape(shape)})" if shape is not None else ""
            groups.setdefault(self.group_of(key), []).append(f"{key}{shape_text} is in the file but not in the design")
        return {group: groups[group] for group in sorted(groups, key=_module_key)}

    def layer_title(self, group: str) -> str:
        kind = self.layer_kinds.get(group)
        if kind:
            return f"layer {self.layer_paths.get(group, group)} ({kind})"
        return f"layer {group} (not in the design)" if group.isdigit() else group

    def text(self) -> str:
        """A sentence, then one indented line per problem, grouped layer by layer."""
        renamed = f"; {RENAMED_NOTE.format(count=self.renamed)}" if self.renamed else ""
        if self.ok:
            return f"The weights fit the design ({self.matched} tensors{renamed})."
        counts = [f"{len(items)} {label}" for items, label in
                  ((self.missing, "missing"), (self.unexpected, "unexpected"), (self.mismatched, "with another shape"))
                  if items]
        lines = [f"The weights do not fit this design ({', '.join(counts)}{renamed}); nothing was loaded:"]
        for group, problems in self.problems_by_layer().items():
            lines.append(f"  {self.layer_title(group)}:")
            lines.extend(f"    {problem}" for problem in problems)
        return "\n".join(lines)


def _layer_names(model: nn.Module, spec=None) -> tuple[dict[str, str], dict[str, str]]:
    """(module name -> kind, module name -> the layer's path in the design): every layer of the design, inner
    layers of groups too (a group by its label), when given; else every submodule of the model by its class."""
    if spec is None:
        return {name: type(module).__name__ for name, module in model.named_modules() if name}, {}
    from engine.build import module_paths
    from engine.groups import group_label
    from engine.tree import walk_paths

    names = module_paths(spec)
    kinds, paths = {}, {}
    for layer, path in walk_paths(spec.layers):
        copies = names.get(layer.id, [])
        for copy, module in enumerate(copies):
            kinds[module] = group_label(layer) if layer.is_group else layer.kind
            paths[module] = path if len(copies) == 1 else f"{path}, copy {copy + 1} of {len(copies)}"
    return kinds, paths


def upgraded_state_dict(model: nn.Module, state_dict: dict[str, torch.Tensor]) -> tuple[dict[str, torch.Tensor], int]:
    """The state_dict with keys saved by LayerStudio 1 blocks renamed to the model's groups (engine.legacy), when
    that makes them fit exactly; and how many keys were renamed."""
    own = [strip_wrapper_prefixes(key) for key in model.state_dict()]
    bare = _normalized(state_dict, "the file")
    renames = renamed_legacy_keys(bare, own)
    if not renames:
        return state_dict, 0
    log.info("renamed %d keys from LayerStudio 1 blocks", len(renames))
    return {renames.get(key, key): state_dict[original] for key, original in bare.items()}, len(renames)


def _by_layer_ids(model: nn.Module, state_dict: dict[str, torch.Tensor], spec) -> dict[str, torch.Tensor]:
    """Weights of a design proposed from a state_dict (engine.importing.state_dict) renamed to the design's keys
    through its layer ids, when the keys do not fit as they are and the renamed ones do."""
    from engine.importing.state_dict import weights_by_layer_ids

    own = set(_normalized(model.state_dict(), "the model"))
    if spec is None or set(_normalized(state_dict, "the file")) == own:
        return state_dict
    renamed = weights_by_layer_ids(spec, state_dict)
    return renamed if set(_normalized(renamed, "the file")) == own else state_dict


def _fit(model: nn.Module, state_dict: dict[str, torch.Tensor], spec=None) -> tuple[FitReport, dict]:
    state_dict, renamed = upgraded_state_dict(model, _by_layer_ids(model, state_dict, spec))
    own = model.state_dict()
    own_keys = _normalized(own, "the model")
    file_keys = _normalized(state_dict, "the file")
    missing = [k for k in own_keys if k not in file_keys]
    unexpected = [k for k in file_keys if k not in own_keys]
    mismatched = []
    for key, original in own_keys.items():
        if key in file_keys:
            expected, got = tuple(own[original].shape), tuple(state_dict[file_keys[key]].shape)
            if expected != got:
                mismatched.append((key, expected, got))
    kinds, paths = _layer_names(model, spec)
    report = FitReport(
        missing=missing, unexpected=unexpected, mismatched=mismatched, layer_kinds=kinds, layer_paths=paths,
        unexpected_shapes={k: tuple(state_dict[file_keys[k]].shape) for k in unexpected},
        matched=len(own_keys) - len(missing) - len(mismatched), renamed=renamed,
    )
    return report, state_dict


def check_fit(model: nn.Module, state_dict: dict[str, torch.Tensor], spec=None) -> FitReport:
    """Compare a state_dict with a model's own keys and shapes (wrapper prefixes stripped on both sides; keys of
    LayerStudio 1 blocks renamed to the groups that replaced them)."""
    return _fit(model, state_dict, spec)[0]


def apply_state_dict(model: nn.Module, state_dict: dict[str, torch.Tensor], spec=None) -> FitReport:
    """Load a state_dict into a model, all or nothing: WeightsError (with the report) and no change if it does
    not fit."""
    report, state_dict = _fit(model, state_dict, spec)
    if not report.ok:
        raise WeightsError(report.text())
    own = model.state_dict()
    file_keys = _normalized(state_dict, "the file")
    prepared = {}
    for key, original in _normalized(own, "the model").items():
        target, source = own[original], state_dict[file_keys[key]]
        _check_loadable(key, source, target)
        try:  # convert every tensor before touching the model, so a failure leaves it as it was
            prepared[original] = source.to(device=target.device, dtype=target.dtype)
        except (RuntimeError, TypeError) as exc:
            raise WeightsError(f"{key} cannot be converted to {target.dtype} ({_first_line(exc)}); "
                               "nothing was loaded") from None
    model.load_state_dict(prepared, strict=True)
    return report


def _number_kind(tensor: torch.Tensor) -> str:
    if tensor.is_complex():
        return "complex numbers"
    if tensor.is_floating_point():
        return "real numbers"
    return "true/false values" if tensor.dtype == torch.bool else "whole numbers"


def _check_loadable(key: str, source: torch.Tensor, target: torch.Tensor) -> None:
    """WeightsError naming ``key`` when the file's tensor is not plain dense data of the design's kind of numbers.

    Sparse, quantized and meta (data-less) tensors cannot be copied into a dense parameter; integers or
    booleans for real-valued weights (or the reverse) would be converted silently into wrong weights."""
    if source.layout != torch.strided:
        raise WeightsError(f"{key} is a sparse tensor ({str(source.layout).removeprefix('torch.')}) in the file; "
                           "LayerStudio loads dense tensors only: save the weights with .to_dense(); "
                           "nothing was loaded")
    if source.is_quantized:
        raise WeightsError(f"{key} is a quantized tensor ({str(source.dtype).removeprefix('torch.')}) in the file; "
                           "LayerStudio loads real-valued weights only: save the weights before quantizing; "
                           "nothing was loaded")
    if source.is_meta:
        raise WeightsError(f"{key} holds no values in the file (a meta tensor, saved without its data): save the "
                           "weights of a model that was built on a real device; nothing was loaded")
    if _number_kind(source) != _number_kind(target):
        raise WeightsError(f"{key} holds {_number_kind(source)} ({str(source.dtype).removeprefix('torch.')}) in the "
                           f"file but {_number_kind(target)} in the design; nothing was loaded")


def load_weights(model: nn.Module, path: str | os.PathLike, spec=None) -> FitReport:
    """Read weights from a file into the model, all or nothing (see apply_state_dict)."""
    return apply_state_dict(model, read_state_dict(path), spec)
