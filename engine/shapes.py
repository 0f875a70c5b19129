"""Live shape and parameter analysis of a design, as plain data.

``analyze(spec)`` walks the layers with each kind's pure-Python ``infer``
(no torch, no allocation), so it is cheap enough to run on every edit; results
per (kind, input shape, params) are memoised, so a one-parameter change only
recomputes the layers whose input actually changed. It keeps going past an
error whenever the erroneous layer's output shape is still known.
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

from engine.errors import LayerError
from engine.layers import KINDS, Inference, Shape
from engine.spec import NetworkSpec

BYTES_PER_VALUE = 4  # float32
ENTRY_ONLY = "Embedding"


@dataclass(frozen=True)
class LayerRow:
    """One layer's analysis. ``shape`` is None when it cannot be known (an error upstream or here)."""

    index: int
    layer_id: str
    kind: str
    label: str
    in_shape: Shape | None
    shape: Shape | None
    params: int | None = None
    trainable: int | None = None
    buffers: int | None = None
    macs: int | None = None
    formula: str = ""
    error: str = ""
    warning: str = ""

    @property
    def activation_bytes(self) -> int | None:
        """Size of this layer's output for one sample."""
        return None if self.shape is None else _prod(self.shape) * BYTES_PER_VALUE


@dataclass(frozen=True)
class Analysis:
    """Rows plus totals for the whole design."""

    input_shape: Shape
    rows: tuple[LayerRow, ...]

    @property
    def errors(self) -> list[LayerRow]:
        return [r for r in self.rows if r.error]

    @property
    def ok(self) -> bool:
        return not self.errors

    @property
    def output_shape(self) -> Shape | None:
        return self.rows[-1].shape if self.rows else self.input_shape

    def _total(self, attr: str) -> int:
        return sum(getattr(r, attr) or 0 for r in self.rows)

    @property
    def params(self) -> int:
        return self._total("params")

    @property
    def trainable(self) -> int:
        return self._total("trainable")

    @property
    def buffers(self) -> int:
        return self._total("buffers")

    @property
    def macs(self) -> int:
        return self._total("macs")

    @property
    def size_mb(self) -> float:
        """Parameters and buffers in float32, in megabytes (10^6 bytes)."""
        return (self.params + self.buffers) * BYTES_PER_VALUE / 1e6

    def row(self, layer_id: str) -> LayerRow:
        return next(r for r in self.rows if r.layer_id == layer_id)


def _prod(shape) -> int:
    n = 1
    for s in shape:
        n *= s
    return n


@lru_cache(maxsize=20_000)
def _infer(kind: str, in_shape: Shape, params: tuple) -> Inference | LayerError:
    try:
        return KINDS[kind].infer(in_shape, dict(params))
    except LayerError as exc:
        return exc


def infer_layer(kind: str, in_shape: Shape, params: dict) -> Inference:
    """Infer one layer (memoised); raises LayerError."""
    result = _infer(kind, tuple(in_shape), tuple(sorted(params.items())))
    if isinstance(result, LayerError):
        raise result
    return result


def analyze(spec: NetworkSpec) -> Analysis:
    """One row per layer: output shape, parameters, MACs, formula, error and warning."""
    rows = []
    shape: Shape | None = tuple(spec.input_shape)
    for i, layer in enumerate(spec.layers):
        label = layer.short()
        if shape is None:
            rows.append(LayerRow(i, layer.id, layer.kind, label, None, None))
            continue
        if layer.kind == ENTRY_ONLY and i != 0:
            rows.append(LayerRow(i, layer.id, layer.kind, label, shape, None,
                                 error="Embedding needs integer token indices, so it must be the first layer: move it to the top"))
            shape = None
            continue
        try:
            inf = infer_layer(layer.kind, shape, layer.params)
        except LayerError as exc:
            rows.append(LayerRow(i, layer.id, layer.kind, label, shape, exc.shape, error=str(exc)))
            shape = exc.shape
            continue
        trainable = 0 if layer.frozen else inf.params
        rows.append(LayerRow(i, layer.id, layer.kind, label, shape, inf.shape, inf.params, trainable,
                             inf.buffers, inf.macs, inf.formula, warning=inf.warning))
        shape = inf.shape
    return Analysis(tuple(spec.input_shape), tuple(rows))


def format_count(n: int | None) -> str:
    """1234567 -> '1.23M'; None -> '?'."""
    if n is None:
        return "?"
    for unit, size in (("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if abs(n) >= size:
            return f"{n / size:.3g}{unit}"
    return str(n)


def format_shape(shape: Shape | None) -> str:
    """(1, 28, 28) -> '1x28x28'; None -> '?'."""
    return "?" if shape is None else "x".join(map(str, shape))
