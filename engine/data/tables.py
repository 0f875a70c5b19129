"""Tables: a CSV file (numeric feature columns plus label column(s), for classification or regression) and
synthetic linear regression (y = Xw + b + noise, D2L 3.2).

A CSV cell that cannot be a training value, a missing label or a malformed row raises ``DataError`` naming
its line and column.
"""
from __future__ import annotations

import csv
import io
import math
from typing import Any

import numpy as np
import torch

from engine.controls import control
from engine.data.bundle import DataBundle, Decoded, assemble
from engine.data.config import DataConfig
from engine.data.downloads import needed_root
from engine.data.sources import SOURCES
from engine.errors import DataError
from engine.task import Task

# CSV labels that are whole numbers with at most this many distinct values are class labels.
MAX_INTEGER_CLASSES = 20
# CSV label cells that mean "no value" (compared in lower case; pandas' defaults, less the exotic ones).
MISSING_LABELS = frozenset({"", "nan", "-nan", "na", "n/a", "#n/a", "null", "none", "<na>"})
CSV_ROWS_PER_REPORT = 4096
FLOAT32_MAX = float(np.finfo(np.float32).max)


def load_csv(config: DataConfig, progress: Task) -> DataBundle:
    """Numeric feature columns plus label column(s); classification or regression (see ``_csv_targets``)."""
    path = needed_root(config)
    if not path.is_file():
        raise DataError(f"CSV file {path} does not exist: choose a .csv file with a header row.")
    progress(0.0, f"Reading {path.name}")
    try:
        size = max(1, path.stat().st_size)
        with open(path, "rb") as raw, io.TextIOWrapper(raw, encoding="utf-8-sig", newline="") as handle:
            reader = csv.reader(handle)
            header = [cell.strip() for cell in next(reader, [])]
            rows, lines = [], []
            for row in reader:
                if any(cell.strip() for cell in row):
                    rows.append(row)
                    lines.append(reader.line_num)
                    if len(rows) % CSV_ROWS_PER_REPORT == 0:
                        progress(0.8 * raw.tell() / size, f"Reading {path.name}: {len(rows):,} rows")
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise DataError(f"Cannot read {path} as CSV text ({exc}): save it as UTF-8 CSV.") from exc

    name = f"CSV {path.name}"
    if not header:
        raise DataError(f"{path.name} is empty: it needs a header row naming the columns, then one row per sample.")
    duplicate = next((c for i, c in enumerate(header) if c in header[:i]), None)
    if duplicate is not None:
        raise DataError(f"{path.name} line 1: column name {duplicate!r} appears twice: give each column its own name.")
    targets = [column.strip() for column in config.label_column.split(",")]
    absent = [column for column in targets if column not in header]
    if absent:
        raise DataError(f"{path.name} has no column {absent[0]!r} (its columns are {', '.join(header)}): "
                        f"set the label column to the one holding the targets.")
    if not rows:
        raise DataError(f"{path.name} has a header but no data rows: add one row per sample.")
    for row, line in zip(rows, lines, strict=True):
        if len(row) != len(header):
            raise DataError(f"{path.name} line {line}: {len(row)} cells, but the header has {len(header)} columns: "
                            f"fix that row.")

    target_idx = [header.index(column) for column in targets]
    feature_idx = [i for i in range(len(header)) if i not in target_idx]
    if not feature_idx:
        raise DataError(f"{path.name} has no feature columns besides {config.label_column!r}: add input columns.")
    features = _numeric_columns(rows, lines, feature_idx, header, path.name)
    x = torch.from_numpy(features.astype(np.float32))
    classes: list[str] = []
    if config.task == "reconstruction":      # the target is the input: the label column is not read
        y, task = torch.zeros(len(x), 1), "regression"
    else:
        y, classes, task = _csv_targets(rows, lines, target_idx, header, path.name, config.task)
    decoded = Decoded(name, x, y, classes, task, feature_names=[header[i] for i in feature_idx],
                      target_names=[] if config.task == "reconstruction" else targets)
    return assemble(decoded, config, progress)


def _numeric_columns(rows: list[list[str]], lines: list[int], columns: list[int], header: list[str],
                     file_name: str) -> np.ndarray:
    """The given columns as float64 (N, k), every value finite and within float32's range (training's
    number type); DataError naming line and column of the first cell that is not."""
    try:
        values = np.array([[row[i] for i in columns] for row in rows], dtype=np.float64)
        if np.isfinite(values).all() and np.abs(values).max(initial=0.0) <= FLOAT32_MAX:
            return values
    except ValueError:
        pass
    for row, line in zip(rows, lines, strict=True):
        for i in columns:
            problem = _cell_problem(row[i])
            if problem:
                raise DataError(f"{file_name} line {line}, column {header[i]!r} (column {i + 1}): {row[i]!r} "
                                f"{problem}.")
    raise DataError(f"{file_name} holds values that are not numbers: check its cells.")  # not reached


def _cell_problem(text: str) -> str:
    """Why a CSV cell cannot be a training value (the end of a sentence), or "" when it can."""
    try:
        value = float(text)
    except ValueError:
        return "is not a number: fix or remove that row"
    if not math.isfinite(value):
        return "is not a finite number: fix or remove that row"
    if abs(value) > FLOAT32_MAX:
        return (f"is beyond the range of float32, the number type training uses (at most about "
                f"{FLOAT32_MAX:.1e} in size): rescale that column, e.g. divide it by a power of ten")
    return ""


def _check_labels_present(texts: list[list[str]], lines: list[int], target_idx: list[int], header: list[str],
                          file_name: str) -> None:
    """DataError naming the line of the first empty or NaN-like label (NA, N/A, null, ...)."""
    for values, line in zip(texts, lines, strict=True):
        for value, i in zip(values, target_idx, strict=True):
            if value.lower() in MISSING_LABELS:
                raise DataError(f"{file_name} line {line}, column {header[i]!r} (column {i + 1}): the label is "
                                f"missing ({value!r}): fill it in or remove that row.")


def _csv_targets(rows: list[list[str]], lines: list[int], target_idx: list[int], header: list[str], file_name: str,
                 requested: str) -> tuple[torch.Tensor, list[str], str]:
    """Class indices with names, or float targets: classification for non-numeric labels or whole numbers
    with at most MAX_INTEGER_CLASSES distinct values, otherwise regression; ``requested`` overrides."""
    texts = [[row[i].strip() for i in target_idx] for row in rows]
    _check_labels_present(texts, lines, target_idx, header, file_name)
    try:
        numbers: np.ndarray | None = np.array(texts, dtype=np.float64)
    except ValueError:
        numbers = None
    if numbers is not None and not np.isfinite(numbers).all():
        numbers = None   # NaN or infinite labels are read as text

    def regression() -> tuple[torch.Tensor, list[str], str]:
        values = _numeric_columns(rows, lines, target_idx, header, file_name)   # names a bad or too large cell
        return torch.from_numpy(values.astype(np.float32)), [], "regression"

    if requested == "regression" or (requested == "auto" and len(target_idx) > 1):
        return regression()
    if requested == "auto" and numbers is not None:
        unique = np.unique(numbers)
        if not (np.all(unique == np.round(unique)) and len(unique) <= MAX_INTEGER_CLASSES):
            return regression()
    if len(target_idx) > 1:
        raise DataError(f"{file_name}: classification takes one label column, not {len(target_idx)}: "
                        f"set {control('data.label_column')} to a single column "
                        f"or set {control('data.task')} to regression.")
    keys: list[Any]   # each row's label: a number, or a text
    if numbers is not None:
        keys = [float(v) for v in numbers[:, 0]]
        distinct = sorted(set(keys))
        names = [str(int(v)) if v == int(v) else repr(v) for v in distinct]
    else:
        keys = [t[0] for t in texts]
        distinct = sorted(set(keys))
        names = list(distinct)
    index = {key: i for i, key in enumerate(distinct)}
    return torch.tensor([index[key] for key in keys], dtype=torch.int64), names, "classification"


def load_synthetic_regression(config: DataConfig, progress: Task) -> DataBundle:
    """y = Xw + b + noise with X ~ N(0, 1) (D2L 3.2), seeded; never normalised so w and b stay recoverable."""
    generator = torch.Generator().manual_seed(config.seed)
    w = torch.tensor(config.weights, dtype=torch.float32)
    x = torch.randn(config.samples, len(w), generator=generator)
    y = x @ w + config.bias + config.noise * torch.randn(config.samples, generator=generator)
    decoded = Decoded(SOURCES[config.source].title, x, y.reshape(-1, 1), [], "regression", normalize=False,
                       feature_names=[f"x{i + 1}" for i in range(len(w))], target_names=["y"])
    return assemble(decoded, config, progress)
