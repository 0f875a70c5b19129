"""Predictions for single inputs, an image file or a row of numbers, prepared exactly like the training data.

The preparation steps are engine.data's own, in training's order: ``decode_image`` (grayscale or RGB,
bilinear resize to the size the data is stored at), normalisation with the *training split's* mean and
standard deviation, then the enlargement the built-in datasets get per batch (``engine.data.enlarge``).
Those statistics and the class names come from the DataBundle the model was trained on; they are a function
of the data settings, so the command line loads the design's data again (cached, or a fraction of a second
for the bundled sample) instead of storing them beside the weights, which stay a plain state_dict.
"""
from __future__ import annotations

import io
import math
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from engine.data import DataBundle, decode_image
from engine.data.bundle import to_normalised_float  # training's own steps: a prediction sees what training saw
from engine.data.enlarge import enlarge
from engine.errors import DataError
from engine.evaluation import input_reshape_needed, make_objective, model_device
from engine.files import read_bytes
from engine.shapes import format_shape
from engine.spec import NetworkSpec

MAX_IMAGE_BYTES = 200 * 1024 * 1024
IMAGE, TABLE = "image", "table"
_SEPARATORS = re.compile(r"[,;\s]+")


# --------------------------------------------------------------------------- preparing inputs

@dataclass(frozen=True)
class InputFormat:
    """How one input becomes a sample of the training data: its kind, shape, decoding and statistics."""

    kind: str                          # IMAGE or TABLE
    input_shape: tuple[int, ...]       # one prepared sample, as the data gives it (before any reshape)
    decode_size: int = 0               # images: the side decode_image resizes a picture to (the stored size)
    resize_to: int = 0                 # images: then enlarged to this side, as DataBundle.model_inputs does
    mean: tuple[float, ...] | None = None
    std: tuple[float, ...] | None = None

    @classmethod
    def of(cls, bundle: DataBundle) -> InputFormat:
        """The format of a bundle's samples (DataError for inputs that are neither images nor rows)."""
        shape = tuple(bundle.input_shape)
        if len(shape) == 1:
            return cls(TABLE, shape, mean=bundle.mean, std=bundle.std)
        if len(shape) != 3 or shape[0] not in (1, 3):
            raise DataError(f"{bundle.name} gives inputs of shape {format_shape(shape)}: predictions take "
                            f"images (1 or 3 channels) or rows of numbers.")
        stored = bundle.train_x.shape[-1] if bundle.enlarge_to else shape[-1]
        return cls(IMAGE, shape, decode_size=stored, resize_to=bundle.enlarge_to, mean=bundle.mean, std=bundle.std)

    @property
    def grayscale(self) -> bool:
        return self.kind == IMAGE and self.input_shape[0] == 1

    def describe(self) -> str:
        """What the model takes, e.g. ``grayscale images, 1x28x28`` or ``rows of 2 numbers``."""
        if self.kind == TABLE:
            count = self.input_shape[0]
            return f"rows of {count} number{'s' if count != 1 else ''}"
        return f"{'grayscale' if self.grayscale else 'colour'} images, {format_shape(self.input_shape)}"


def prepare_image(path: str | Path, form: InputFormat) -> torch.Tensor:
    """An image file as one normalised sample (1, C, H, W) as the model takes it: converted to the data's
    colours and stored size, normalised, then enlarged like the data's batches."""
    path = Path(path)
    if form.kind != IMAGE:
        raise DataError(f"This model takes {form.describe()}, not images: type the numbers instead of "
                        f"opening {path.name}.")
    raw = read_bytes(path, "picture", MAX_IMAGE_BYTES, DataError)
    try:
        pixels = decode_image(io.BytesIO(raw), form.decode_size, form.grayscale)
    except DataError as exc:
        from PIL import UnidentifiedImageError

        cause = exc.__cause__
        detail = "" if cause is None or isinstance(cause, UnidentifiedImageError) else f" ({cause})"
        raise DataError(f"{path.name} is not an image LayerStudio can read{detail}: choose a PNG, JPEG, "
                        f"BMP, GIF, TIFF or WebP file.") from None
    x = to_normalised_float(torch.from_numpy(pixels)[None], form.mean, form.std)
    return enlarge(x, form.resize_to)


def parse_row(text: str) -> list[float]:
    """Numbers separated by commas, semicolons or spaces (DataError naming the first that is not one)."""
    cells = [cell for cell in _SEPARATORS.split(text.strip()) if cell]
    if not cells:
        raise DataError("Type the input numbers, separated by commas (e.g. 1.5, -2, 0.3).")
    values = []
    for position, cell in enumerate(cells, 1):
        try:
            value = float(cell)
        except ValueError:
            value = math.nan
        if not math.isfinite(value):
            raise DataError(f"Value {position} ({cell!r}) is not a finite number: type numbers such as 1.5 or -2.")
        values.append(value)
    return values


def prepare_row(values: str | Sequence[float], form: InputFormat) -> torch.Tensor:
    """A row of numbers (text or a sequence) as one normalised sample (1, d)."""
    if form.kind != TABLE:
        raise DataError(f"This model takes {form.describe()}: open an image file instead of typing numbers.")
    row = parse_row(values) if isinstance(values, str) else [float(v) for v in values]
    expected = form.input_shape[0]
    if len(row) != expected:
        raise DataError(f"The model takes {expected} number{'s' if expected != 1 else ''} per row, got "
                        f"{len(row)}: type one value per feature column, in the order of the training data.")
    return to_normalised_float(torch.tensor([row], dtype=torch.float32), form.mean, form.std)


# --------------------------------------------------------------------------- predicting

@dataclass(frozen=True)
class PredictionResult:
    """One input's prediction: class probabilities (classification) or the raw output values (regression)."""

    source: str                  # the file name or the row as typed
    names: list[str]             # class names, or output names for regression
    scores: list[float]          # probabilities per class, or output values
    predicted: int | None        # the predicted class (classification), as Evaluate counts it

    @property
    def classification(self) -> bool:
        return self.predicted is not None

    @property
    def label(self) -> str:
        """The predicted class name, or the output value(s)."""
        if self.predicted is not None:  # classification
            return self.names[self.predicted]
        return ", ".join(f"{value:.6g}" for value in self.scores)

    def top(self, count: int) -> list[tuple[str, float]]:
        """The ``count`` most probable classes with their probabilities, most probable first."""
        order = sorted(range(len(self.scores)), key=lambda i: -self.scores[i])
        return [(self.names[i], self.scores[i]) for i in order[:count]]

    def to_dict(self) -> dict:
        if self.classification:
            return {"input": self.source, "predicted": self.label,
                    "probabilities": dict(zip(self.names, self.scores, strict=True))}
        return {"input": self.source, "values": dict(zip(self.names, self.scores, strict=True))}


def class_probabilities(out: torch.Tensor, loss: str) -> torch.Tensor:
    """Per-class probabilities (N, classes) from a classifier's outputs, read the way its loss reads them:
    softmax for cross-entropy (and log-probabilities for nll), a sigmoid for bce_with_logits, the outputs
    themselves (clipped to 0..1) otherwise; one output is a two-class [1 - p, p]."""
    out = out.float().reshape(out.shape[0], -1)
    if loss in ("cross_entropy", "nll") and out.shape[1] > 1:
        return torch.softmax(out, dim=1)
    p = torch.sigmoid(out) if loss == "bce_with_logits" else out.clamp(0, 1)
    return torch.cat([1 - p, p], dim=1) if out.shape[1] == 1 else p


class Predictor:
    """Predicts single inputs with a model trained on ``bundle`` (its format, statistics and class names).

    ``config`` (a TrainConfig) names the loss, which says how outputs become probabilities. TrainingError
    when the design does not fit the data; DataError for data whose outputs are images (reconstruction).
    """

    def __init__(self, spec: NetworkSpec, model: nn.Module, bundle: DataBundle, config=None):
        if bundle.task == "reconstruction":
            raise DataError("This data trains a reconstruction, whose output is an image: predictions show "
                            "classes or values, so choose a classification or regression task.")
        self.spec, self.model, self.bundle = spec, model, bundle
        self.format = InputFormat.of(bundle)
        self.reshape = input_reshape_needed(spec.input_shape, bundle.input_shape)
        self.objective = make_objective(spec, bundle, config)
        self.names = list(bundle.class_names) if self.objective.classification else _output_names(bundle)

    def image(self, path: str | Path) -> PredictionResult:
        """The prediction for an image file; its source is the path as written."""
        return self.tensor(prepare_image(path, self.format), [str(path)])[0]

    def row(self, values: str | Sequence[float]) -> PredictionResult:
        source = values.strip() if isinstance(values, str) else ", ".join(f"{v:g}" for v in values)
        return self.tensor(prepare_row(values, self.format), [source])[0]

    def tensor(self, x: torch.Tensor, sources: Sequence[str]) -> list[PredictionResult]:
        """Predictions for prepared samples ``x`` (N, *input_shape), one per source name."""
        out = self.outputs(x)
        if not self.objective.classification:
            values = out.float().reshape(out.shape[0], -1).tolist()
            return [PredictionResult(source, self.names, row, None)
                    for source, row in zip(sources, values, strict=True)]
        probabilities = class_probabilities(out, self.objective.name).tolist()
        predicted = self.objective.predict(out).tolist()
        return [PredictionResult(source, self.names, p, int(k)) for source, p, k in zip(sources, probabilities,
                                                                                          predicted, strict=True)]

    def outputs(self, x: torch.Tensor) -> torch.Tensor:
        """The model's raw outputs for prepared samples, in eval mode (its mode is restored)."""
        x = x.to(model_device(self.model))
        if self.reshape:
            x = x.reshape(x.shape[0], *self.spec.input_shape)
        was_training = self.model.training
        self.model.eval()
        try:
            with torch.inference_mode():
                return self.model(x).cpu()
        finally:
            self.model.train(was_training)


def _output_names(bundle: DataBundle) -> list[str]:
    """Names of a regression's outputs: the CSV's target columns, else ``y`` or ``y1``, ``y2``, ..."""
    count = bundle.train_y.shape[1] if bundle.train_y.ndim == 2 else 1
    config = bundle.config
    if config is not None and config.source == "csv":
        columns = [column.strip() for column in config.label_column.split(",")]
        if len(columns) == count:
            return columns
    return ["y"] if count == 1 else [f"y{i + 1}" for i in range(count)]


def predict_inputs(predictor: Predictor, inputs: Sequence[str],
                   failed: Callable[[str, str], None]) -> list[PredictionResult]:
    """Predict command-line inputs: image paths for image data, rows of numbers for tables; an input that
    cannot be read is reported through ``failed(input, sentence)`` and skipped."""
    results = []
    for text in inputs:
        try:
            results.append(predictor.row(text) if predictor.format.kind == TABLE else predictor.image(text))
        except DataError as exc:
            failed(text, str(exc))
    return results
