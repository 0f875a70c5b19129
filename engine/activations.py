"""What a network makes of one sample, layer by layer, as plain numpy arrays.

``record_activations(spec, model, x)`` runs one forward pass of one prepared sample (eval mode, no gradients)
with a forward hook on each top-level layer and keeps each layer's output; every hook is removed when the pass
ends, also when a layer raises, and every module's train/eval mode is put back. With it come the first
convolution's filters, a histogram of each layer's weights and, for a classifier, the class probabilities read
the way its loss reads them (as Predict does). ``sample_activations`` picks the n-th sample of a DataBundle's
test split (validation without one) and prepares it exactly as Evaluate does.

``picture`` turns one layer's output into one image (channels tiled side by side, each scaled to its own range) and
``filter_picture`` a filter bank; the window shows them and ``layerstudio activations`` writes them as PNG files.
"""
from __future__ import annotations

import math
import warnings
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from engine.errors import DataError
from engine.evaluation import evaluation_split, input_reshape_needed, make_objective, model_device
from engine.predict import class_probabilities
from engine.shapes import analyze
from engine.spec import NetworkSpec

HISTOGRAM_BINS = 40
STRIP_CELLS = 32                     # a Linear layer's values drawn as cells, this many to a row
SPLIT_NAMES = {"train": "training", "val": "validation", "test": "test"}
GAP = 1                              # pixels between two tiles of a picture
GAP_COLOUR = (196, 208, 224)         # the gaps between tiles: a light blue-grey, so black and white tiles stand out


@dataclass(frozen=True)
class LayerOutput:
    """One top-level layer's output for the sample (without the batch dimension), named as the window names it."""

    index: int
    kind: str
    label: str
    output: np.ndarray


@dataclass(frozen=True)
class WeightHistogram:
    """A histogram of one layer's weights (every parameter but its biases); ``nonfinite`` counts NaN and
    infinite weights, which no bin holds, so ``counts.sum() + nonfinite == total``."""

    index: int
    kind: str
    label: str
    counts: np.ndarray
    edges: np.ndarray
    total: int
    nonfinite: int = 0


@dataclass(frozen=True)
class Activations:
    """Everything the activations view shows for one sample."""

    source: str                          # "test sample 7", or the file the input came from
    input: np.ndarray                    # the sample as the model takes it (normalised), without the batch dim
    layers: tuple[LayerOutput, ...]
    filters: np.ndarray | None           # the first Conv2d's weights (out, in, kh, kw), None without one
    filters_layer: int | None            # the top-level layer that holds them
    histograms: tuple[WeightHistogram, ...]
    probabilities: np.ndarray | None     # per class (classification only)
    class_names: tuple[str, ...] = ()
    target: int | float | None = None    # the sample's label, when it comes from the data

    @property
    def predicted(self) -> int | None:
        return int(np.argmax(self.probabilities)) if self.probabilities is not None else None


# --------------------------------------------------------------------------- recording

def layer_outputs(spec: NetworkSpec, model: nn.Sequential, x: torch.Tensor) -> tuple[LayerOutput, ...]:
    """Each top-level layer's output for the batch of one ``x`` (1, *input_shape), in eval mode without gradients.

    The hooks are registered in a try block whose finally removes them, so a layer that raises leaves none
    behind; each module's train/eval mode is restored the same way. Outputs are copied when recorded, so a
    later layer working in place cannot change them."""
    if len(model) != len(spec.layers):
        raise ValueError(f"the model has {len(model)} layers but the design {len(spec.layers)}")
    rows = analyze(spec).rows
    outputs: dict[int, np.ndarray] = {}

    def keep(index: int):
        def hook(module, args, output) -> None:
            tensor = output if isinstance(output, torch.Tensor) else next(
                (item for item in output if isinstance(item, torch.Tensor)), None)
            if tensor is not None:
                outputs[index] = tensor.detach()[0].to("cpu", torch.float32, copy=True).numpy()
        return hook

    modes = [(module, module.training) for module in model.modules()]
    handles = []
    try:
        for index, layer in enumerate(model):
            handles.append(layer.register_forward_hook(keep(index)))
        model.eval()
        with torch.no_grad():
            model(x.to(model_device(model)))
    finally:
        for handle in handles:
            handle.remove()
        for module, training in modes:
            module.training = training
    return tuple(LayerOutput(row.index, row.kind, row.label, outputs[row.index])
                 for row in rows if row.index in outputs)


def first_conv_filters(model: nn.Module) -> tuple[int, np.ndarray] | None:
    """(top-level layer index, weights (out, in, kh, kw)) of the first Conv2d, inside blocks too; None without one."""
    for index, layer in enumerate(model.children()):
        conv = next((m for m in layer.modules() if isinstance(m, nn.Conv2d)), None)
        if conv is not None:
            return index, conv.weight.detach().to("cpu", torch.float32, copy=True).numpy()
    return None


def weight_histograms(spec: NetworkSpec, model: nn.Sequential,
                      bins: int = HISTOGRAM_BINS) -> tuple[WeightHistogram, ...]:
    """One histogram per top-level layer that has weights (its parameters other than biases, blocks included)."""
    histograms = []
    for row, layer in zip(analyze(spec).rows, model, strict=True):
        weights = [p.detach().reshape(-1).to("cpu", torch.float32) for name, p in layer.named_parameters()
                   if name.rsplit(".", 1)[-1] != "bias"]
        if not weights:
            continue
        values = torch.cat(weights).numpy()
        finite = values[np.isfinite(values)]
        counts, edges = np.histogram(finite, bins=bins) if len(finite) else (np.zeros(bins, np.int64),
                                                                             np.linspace(-1, 1, bins + 1))
        histograms.append(WeightHistogram(row.index, row.kind, row.label, counts, edges, int(values.size),
                                          int(values.size - finite.size)))
    return tuple(histograms)


def record_activations(spec: NetworkSpec, model: nn.Sequential, x: torch.Tensor, objective=None,
                       class_names=(), source: str = "the sample", target=None,
                       bins: int = HISTOGRAM_BINS) -> Activations:
    """Layer outputs, first-convolution filters, weight histograms and, when ``objective`` (the training
    Objective) is a classification, the class probabilities for one prepared input ``x`` (1, *input_shape)."""
    layers = layer_outputs(spec, model, x)
    probabilities = None
    if objective is not None and objective.classification and layers:
        final = torch.from_numpy(layers[-1].output)[None]
        probabilities = class_probabilities(final, objective.name)[0].numpy()
    filters = first_conv_filters(model)
    return Activations(source, x.detach()[0].to("cpu", torch.float32).numpy(), layers,
                       filters[1] if filters else None, filters[0] if filters else None,
                       weight_histograms(spec, model, bins), probabilities, tuple(class_names), target)


def sample_activations(spec: NetworkSpec, model: nn.Sequential, data, index: int, config=None,
                       split: str | None = None) -> Activations:
    """``record_activations`` for sample ``index`` of a DataBundle's ``split`` (test, else validation), prepared
    as Evaluate prepares it. DataError when there is no such sample; TrainingError when the model does not fit
    the data. ``config`` (a TrainConfig) names the loss, which says how outputs become probabilities."""
    split = split or evaluation_split(data)
    samples = len(getattr(data, f"{split}_x")) if split else 0
    if split is None or not samples:
        raise DataError("The data has no test or validation samples to look at: lower the limit or raise the "
                        "validation fraction.")
    name = SPLIT_NAMES[split]
    if not 0 <= index < samples:
        raise DataError(f"There is no {name} sample {index}: the {name} split has {samples:,} samples, "
                        f"numbered 0 to {samples - 1:,}.")
    objective = make_objective(spec, data, config)
    x = data.model_inputs(getattr(data, f"{split}_x")[index:index + 1])
    if input_reshape_needed(spec.input_shape, data.input_shape):
        x = x.reshape(1, *spec.input_shape)
    label = getattr(data, f"{split}_y")[index]
    target = label.item() if label.numel() == 1 else None
    names = data.class_names if objective.classification else ()
    return record_activations(spec, model, x, objective, names, f"{name} sample {index}", target)


# --------------------------------------------------------------------------- pictures

def tile(maps: np.ndarray, columns: int | None = None, scale: int = 1) -> np.ndarray:
    """Maps (C, H, W) side by side in a grid, GAP pixels apart (NaN), each pixel enlarged to ``scale`` x ``scale``:
    a nearly square grid unless ``columns`` is given. Values are scaled to 0..1, each map to its own range when
    maps have more than one pixel, else all to the layer's range; a constant map, and a value that is not finite,
    show as 0.5."""
    maps = np.asarray(maps, dtype=np.float32)
    count, height, width = maps.shape
    columns = columns or max(1, round(math.sqrt(count * height / width)))
    rows = math.ceil(count / columns)
    flat = np.where(np.isfinite(maps), maps, np.nan).reshape(count, -1)
    each = flat if height * width > 1 else flat.reshape(1, -1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # an all-NaN map has no range: it shows as 0.5
        low, high = np.nanmin(each, axis=1, keepdims=True), np.nanmax(each, axis=1, keepdims=True)
    span = np.nan_to_num(high - low)
    scaled = np.where(span > 0, (each - np.nan_to_num(low)) / np.where(span > 0, span, 1), 0.5)
    scaled = np.nan_to_num(scaled, nan=0.5).reshape(count, height, width)
    if scale > 1:
        scaled = scaled.repeat(scale, axis=1).repeat(scale, axis=2)
        height, width = height * scale, width * scale
    step_y, step_x = height + GAP, width + GAP
    grid = np.full((rows * step_y - GAP, columns * step_x - GAP), np.nan, np.float32)
    for k in range(count):
        r, c = divmod(k, columns)
        grid[r * step_y:r * step_y + height, c * step_x:c * step_x + width] = scaled[k]
    return grid


def picture(output: np.ndarray, scale: int = 1, columns: int | None = None) -> np.ndarray | None:
    """One layer's output as one picture (0..1, NaN gaps): (C, H, W) as C tiles in ``columns`` (more dimensions
    folded into the channels), (L, F) as one map, (n,) values as a strip of cells, 32 to a row; None for a
    scalar."""
    output = np.asarray(output, dtype=np.float32)
    if output.ndim == 0 or output.size == 0:
        return None
    if output.ndim == 1:
        return tile(output.reshape(-1, 1, 1), min(output.size, STRIP_CELLS), scale)
    if output.ndim == 2:
        return tile(output[None], scale=scale)
    return tile(output.reshape(-1, *output.shape[-2:]), columns, scale)


def filter_picture(weights: np.ndarray, scale: int = 1) -> np.ndarray:
    """Convolution filters (out, in, kh, kw) as one picture: a row per output channel, a column per input
    channel (one filter of a single input channel per tile in a square grid)."""
    out, inputs, kh, kw = weights.shape
    return tile(weights.reshape(out * inputs, kh, kw), inputs if inputs > 1 else None, scale)


def to_rgb(grid: np.ndarray) -> np.ndarray:
    """A picture (0..1, NaN gaps) as an (H, W, 3) uint8 image: grey values, gaps in GAP_COLOUR."""
    gaps = np.isnan(grid)
    grey = np.round(np.nan_to_num(grid, nan=0.0).clip(0, 1) * 255).astype(np.uint8)
    rgb = np.repeat(grey[..., None], 3, axis=2)
    rgb[gaps] = GAP_COLOUR
    return rgb


def enlargement(values: np.ndarray, smallest: int = 32) -> int:
    """How many times to enlarge the pixels of a picture of ``values`` so each tile is at least ``smallest``
    pixels wide (values of a Linear layer, and 1x1 maps, half that: they are many small cells)."""
    values = np.asarray(values)
    side = max(values.shape[-2:]) if values.ndim >= 2 else 1
    if side == 1:
        smallest //= 2
    return max(1, math.ceil(smallest / side))
