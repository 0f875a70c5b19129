"""Will it fit? Memory estimates for a training run and a dataset, checked before anything large is allocated.

A design far too large for the machine (a Linear of 10^6 x 10^6, a batch of 10^5 images at 224x224) or a
dataset that cannot be held (10^10 synthetic samples) should be refused with a sentence giving both numbers,
not allocate until the operating system kills the app. The estimates come from the design's analysis
(``engine.shapes.analyze``: parameters and per-sample activation sizes, no torch allocation) and from the
data settings; they aim to be within a factor of about two of the real peak, never to be exact.

- ``estimate_training_bytes``: weights, buffers, gradients, optimizer state, and the activations autograd keeps
  for one batch (every layer's output, blocks counting their inner layers, and the batch itself at the size the
  model takes: built-in images enlarged per batch are enlarged there) plus the gradient flowing back.
- ``estimate_data_bytes``: what loading a dataset holds at its peak (decoded uint8 images plus their float32
  copies, built-in ones at their own size whatever image_size is, CSV text cells plus their numbers, synthetic
  samples and their split copies).
- ``available_bytes``: free RAM on the CPU, free memory on a CUDA GPU, the recommended limit on Apple GPUs.
- ``check_fits``: refuse with both numbers, e.g. "Training this design at batch size 4096 needs about 38.2 GB
  but the CPU has 21.3 GB available: lower the batch size or make the design smaller." Every check takes
  ``available`` (bytes) to judge for a machine other than this one.
"""
from __future__ import annotations

import os
from pathlib import Path

import psutil
import torch

from engine.data.config import DataConfig
from engine.data.folders import STREAM_STATS_SAMPLES
from engine.data.sources import IMAGE_EXTENSIONS, SOURCES
from engine.errors import DataError, LayerStudioError, TrainingError
from engine.layers import prod
from engine.layers.group import GROUP
from engine.shapes import BYTES_PER_VALUE, Analysis

# Optimizer state per trainable value, in tensors the size of the parameters (torch.optim's own state).
OPTIMIZER_STATE = {"sgd": 0, "adam": 2, "adamw": 2, "rmsprop": 1, "adagrad": 1, "adadelta": 2, "adamax": 2}
# What autograd keeps of a layer, in multiples of its output's size (1 when not listed): views keep nothing;
# max-pooling keeps int64 indices (twice the output). A group keeps what its layers keep (its glue, the sum or
# the concatenation, nothing more), plus the activation after a residual sum.
KEPT_PER_OUTPUT = {"Flatten": 0, "Unflatten": 0, "Reshape": 0, "Permute": 0, "Squeeze": 0, "Identity": 0,
                   "MaxPool1d": 3, "MaxPool2d": 3,
                   "AdaptiveMaxPool2d": 3}
# Recurrent layers keep their gates and states at every time step: this many hidden-sized tensors per step.
KEPT_PER_STEP = {"LSTM": 6, "GRU": 4}
# Activations whose backward pass uses their result: the output of the layer before them is not kept.
KEEPS_ITS_RESULT = frozenset({"ReLU", "Sigmoid", "Tanh", "Softmax", "LogSoftmax"})
# One CSV cell while it is read: a Python str (49 bytes plus its text), its place in the row's list and in the
# column selection the numbers are parsed from, with the lists' own headers spread over their cells.
CSV_CELL_OVERHEAD = 75
CSV_SAMPLE_BYTES = 1 << 16     # the head of a CSV file read to measure its rows and columns


def format_bytes(count: float) -> str:
    """12.3 GB, 456.0 MB, 789 kB (powers of ten, as file managers show them)."""
    for unit, size in (("TB", 1e12), ("GB", 1e9), ("MB", 1e6)):
        if count >= size:
            return f"{count / size:.1f} {unit}"
    return f"{max(count, 0) / 1e3:.0f} kB"


# --------------------------------------------------------------------------- training

def optimizer_state_tensors(optimizer: str, amsgrad: bool = False, momentum: float = 0.0) -> int:
    """How many parameter-sized tensors the optimizer keeps: Adam's two moments (+ the max with amsgrad),
    SGD's momentum buffer, RMSprop's square average, Adagrad's sum, Adadelta's two averages, Adamax's two."""
    count = OPTIMIZER_STATE.get(optimizer, 2)
    if optimizer in ("adam", "adamw") and amsgrad:
        count += 1
    if optimizer == "sgd" and momentum > 0:
        count += 1
    return count


def activation_bytes_per_sample(analysis: Analysis) -> tuple[int, int]:
    """(kept, widest): the bytes autograd keeps for one sample (the input and what every layer keeps, inner layers
    of groups included, see KEPT_PER_OUTPUT, KEPT_PER_STEP and KEEPS_ITS_RESULT) and the largest single layer
    output among them."""
    first = prod(analysis.input_shape) * BYTES_PER_VALUE
    kept, widest = _kept_by_chain(analysis.rows)
    return first + kept, max(first, widest)


def _kept_by_chain(rows) -> tuple[int, int]:
    """(kept, widest) of rows run one after another (a design, a group's body or shortcut, one branch)."""
    kept = widest = 0
    for index, row in enumerate(rows):
        if row.activation_bytes is None:
            continue
        widest = max(widest, row.activation_bytes)
        if row.children or row.shortcut or row.kind == GROUP:
            inner, inner_widest = _kept_by_group(row)
            kept, widest = kept + inner, max(widest, inner_widest)
            continue
        if row.kind in KEPT_PER_STEP and row.in_shape and row.shape:
            kept += row.in_shape[0] * row.shape[-1] * KEPT_PER_STEP[row.kind] * BYTES_PER_VALUE
            continue
        factor = KEPT_PER_OUTPUT.get(row.kind, 1)
        if index + 1 < len(rows) and rows[index + 1].kind in KEEPS_ITS_RESULT:
            factor = max(0, factor - 1)
        kept += row.activation_bytes * factor
    return kept, widest


def _kept_by_group(row) -> tuple[int, int]:
    """A group's (kept, widest): its chains' (each branch is one), plus the activation after a residual's sum; its
    inner rows show the first repeat, so each repeat is counted like it."""
    settings = row.group or {}
    chains = [(child,) for child in row.children] if settings.get("mode") == "branches" else [row.children]
    kept = widest = 0
    for chain in [*chains, row.shortcut]:
        inner, inner_widest = _kept_by_chain(chain)
        kept, widest = kept + inner, max(widest, inner_widest)
    if settings.get("mode") == "residual" and settings.get("activation", "none") != "none":
        kept += row.activation_bytes or 0
    return kept * settings.get("repeat", 1), widest


def estimate_training_bytes(analysis: Analysis, batch_size: int, optimizer: str = "adam", *,
                            amsgrad: bool = False, momentum: float = 0.0) -> int:
    """Bytes one training step needs: weights and buffers, gradients, optimizer state, and the batch's
    activations (kept for the backward pass, plus the gradient flowing back at the widest layer, twice)."""
    weights = (analysis.params + analysis.buffers) * BYTES_PER_VALUE
    trainable = analysis.trainable * BYTES_PER_VALUE
    state = trainable * optimizer_state_tensors(optimizer, amsgrad, momentum)
    kept, widest = activation_bytes_per_sample(analysis)
    return weights + trainable + state + batch_size * (kept + 2 * widest)


def check_training_fits(analysis: Analysis, config, device: torch.device, data=None,
                        available: int | None = None) -> None:
    """TrainingError when a run of this design with ``config`` (a TrainConfig) cannot fit on ``device``
    (``available`` bytes when given, else what it has free now).

    The batch is at most the training set; on a GPU the dataset's tensors count too (they move there once, as
    stored: built-in images at their own size, each batch enlarged as the model's input, which the activations
    count).
    """
    samples = getattr(data, "train_size", None) or len(getattr(data, "train_x", ())) or config.batch_size
    batch = min(config.batch_size, samples)
    needed = estimate_training_bytes(analysis, batch, config.optimizer, amsgrad=config.amsgrad,
                                     momentum=config.momentum)
    fix = "lower the batch size or make the design smaller"
    if device.type != "cpu" and data is not None:
        needed += _bundle_bytes(data)
        fix += ", or train on the CPU"
    check_fits(needed, device, f"Training this design at batch size {batch}", fix, TrainingError, available)


def _bundle_bytes(data) -> int:
    """The bytes of a loaded dataset's tensors that a run moves to its device."""
    names = ("val_x", "val_y", "test_x", "test_y") if getattr(data, "streaming", False) else (
        "train_x", "train_y", "val_x", "val_y", "test_x", "test_y")
    seen, total = set(), 0
    for name in names:
        tensor = getattr(data, name, None)
        if isinstance(tensor, torch.Tensor) and id(tensor) not in seen:   # reconstruction: y is x
            seen.add(id(tensor))
            total += tensor.nbytes
    return total


# --------------------------------------------------------------------------- data

def estimate_data_bytes(config: DataConfig) -> int:
    """The peak bytes of RAM loading ``config``'s data takes (0 when the files are not there to measure:
    the loader then says what is missing)."""
    source, entry = config.source, SOURCES.get(config.source)
    if entry is None or (entry.needs_root and not config.root.strip()):
        return 0
    if entry.builtin is not None:        # held at their own size: a larger image_size enlarges each batch
        known = entry.builtin
        return _image_bytes(known.train, known.test, known.channels, known.side, config.limit)
    if source == "folder":
        return _folder_bytes(config)
    if source == "csv":
        return _csv_bytes(config)
    if source == "synthetic-regression":
        return _synthetic_bytes(config.samples, len(config.weights), config.limit)
    return 0


def _image_bytes(train: int, test: int, channels: int, side: int, limit: int) -> int:
    """Decoded uint8 images, the training split's uint8 copy, and the float32 samples, all ``side`` x ``side``."""
    used = min(train, limit) if limit else train
    pixels = channels * side * side
    return (train + test) * pixels + used * pixels + (used + test) * pixels * BYTES_PER_VALUE


def _folder_bytes(config: DataConfig) -> int:
    root = Path(config.root).expanduser()
    pictures = _count_pictures(root)
    channels = 1 if config.grayscale else 3
    if config.stream:   # only validation, test and the statistics sample are decoded (uint8, then float32)
        pictures = min(pictures, round(pictures * config.val_fraction) + STREAM_STATS_SAMPLES)
        return pictures * channels * config.image_size ** 2 * (1 + BYTES_PER_VALUE)
    return _image_bytes(pictures, 0, channels, config.image_size, config.limit)


def _count_pictures(root: Path) -> int:
    """Image files (by extension) below ``root``; 0 when it is not a readable folder."""
    count = 0
    for _folder, _subfolders, files in os.walk(root):
        count += sum(1 for name in files if os.path.splitext(name)[1].lower() in IMAGE_EXTENSIONS)
    return count


def _csv_bytes(config: DataConfig) -> int:
    """From the file's size and its head: rows x columns cells, each a Python string while read, then numbers
    (float64 parsed, float32 samples, the split's copies and the float64 normalisation)."""
    path = Path(config.root).expanduser()
    try:
        size = path.stat().st_size
        with open(path, "rb") as handle:
            head = handle.read(CSV_SAMPLE_BYTES)
    except OSError:
        return 0
    lines = [line for line in head.split(b"\n")[:-1] if line.strip()] or [head]
    columns = max(1, lines[0].count(b",") + 1)
    rows = size / max(1, sum(len(line) + 1 for line in lines) / len(lines))
    cell_text = max(1.0, size / (rows * columns))
    numbers = 8 + BYTES_PER_VALUE + BYTES_PER_VALUE + 8
    return int(rows * columns * (CSV_CELL_OVERHEAD + cell_text + numbers))


def _synthetic_bytes(samples: int, features: int, limit: int) -> int:
    """X and y with its noise, the seeded permutation and its sort (int64), the split's copies of X and y."""
    used = min(samples, limit) if limit else samples
    return samples * (features + 3) * BYTES_PER_VALUE + 3 * samples * 8 + used * (features + 1) * BYTES_PER_VALUE


def check_data_fits(config: DataConfig, available: int | None = None) -> None:
    """DataError when loading ``config``'s data cannot fit in this computer's free memory (or ``available``
    bytes when given)."""
    needed = estimate_data_bytes(config)
    if not needed:
        return
    source = config.source
    if source == "synthetic-regression":
        what, fix = f"Making {config.samples:,} synthetic samples", "lower samples"
    elif source == "csv":
        what, fix = f"Reading {Path(config.root).name}", "use a smaller file (fewer rows or columns)"
    elif source == "folder":
        what = f"Loading the pictures of {Path(config.root).name} at image size {config.image_size}"
        fix = "lower image_size, set a limit, or turn on stream to read the training pictures from disk"
    else:
        what, fix = f"Loading {SOURCES[source].title}", "set a limit"
    check_fits(needed, torch.device("cpu"), what, fix, DataError, available)


# --------------------------------------------------------------------------- the device

def available_bytes(device: torch.device | str) -> int:
    """Memory a new allocation can use now: free RAM (CPU), free plus this process's cached-but-unused
    memory (CUDA), the recommended working set less what is allocated (Apple MPS)."""
    device = torch.device(device)
    if device.type == "cuda":
        free, _total = torch.cuda.mem_get_info(device)
        return free + torch.cuda.memory_reserved(device) - torch.cuda.memory_allocated(device)
    if device.type == "mps":
        return max(0, torch.mps.recommended_max_memory() - torch.mps.driver_allocated_memory())
    return psutil.virtual_memory().available


def device_words(device: torch.device) -> str:
    """How a refusal names the device: 'the CPU', 'the GPU cuda:0', 'the Apple GPU'."""
    if device.type == "cuda":
        return f"the GPU cuda:{device.index if device.index is not None else torch.cuda.current_device()}"
    if device.type == "mps":
        return "the Apple GPU"
    return "the CPU"


def check_fits(needed: int, device: torch.device | str, what: str, fix: str,
               error: type[LayerStudioError] = TrainingError, available: int | None = None) -> None:
    """Raise ``error`` when ``needed`` bytes exceed what ``device`` has available (``available`` bytes when
    given, else ``available_bytes(device)``), giving both numbers."""
    device = torch.device(device)
    available = available_bytes(device) if available is None else available
    if needed > available:
        raise error(f"{what} needs about {format_bytes(needed)} but {device_words(device)} has "
                    f"{format_bytes(available)} available: {fix}.")
