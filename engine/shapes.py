"""Live shape and parameter analysis of a design, as plain data.

``analyze(spec)`` walks the layers with each kind's pure-Python ``infer``
(no torch, no allocation), so it is cheap enough to run on every edit; results
per (kind, input shape, params) are memoised, so a one-parameter change only
recomputes the layers whose input actually changed. It keeps going past an
error whenever the erroneous layer's output shape is still known.
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property, lru_cache

from engine.errors import LayerError, SpecError
from engine.layers import KINDS, Inference, Shape, prod
from engine.spec import NetworkSpec, coerce_params

BYTES_PER_VALUE = 4  # float32
ENTRY_ONLY = "Embedding"  # the registry's one kind fed token indices (LayerKind.tokens); engine.export reads it
TORCH_LIMIT = 2**63 - 1  # PyTorch counts elements in int64: no tensor may hold more


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
    min_batch: int = 1  # smallest training batch this layer can run on
    path: str = ""  # where it sits, e.g. "8 › branch 2 › 1" (engine.tree.step_text); the index at the top level
    children: tuple[LayerRow, ...] = ()  # a group's rows: its body, or one per branch (engine.group_analysis)
    shortcut: tuple[LayerRow, ...] = ()  # a residual group's custom shortcut rows
    group: dict | None = None  # a group's settings (mode, repeat, merge, shortcut, activation); None for a layer

    def walk(self):
        """This row, then every row inside it, depth first (body before shortcut)."""
        yield self
        for row in self.children + self.shortcut:
            yield from row.walk()

    @property
    def activation_bytes(self) -> int | None:
        """Size of this layer's output for one sample."""
        return None if self.shape is None else prod(self.shape) * BYTES_PER_VALUE


@dataclass(frozen=True)
class Analysis:
    """Rows plus totals for the whole design: ``rows`` holds the top level (a group's row counts what is inside
    it); ``all_rows`` every row at any depth."""

    input_shape: Shape
    rows: tuple[LayerRow, ...]

    @cached_property
    def all_rows(self) -> tuple[LayerRow, ...]:
        return tuple(inner for row in self.rows for inner in row.walk())

    @cached_property
    def _by_id(self) -> dict[str, LayerRow]:
        return {row.layer_id: row for row in self.all_rows}

    @property
    def errors(self) -> list[LayerRow]:
        """Every row with an error, at any depth, in design order."""
        return [r for r in self.all_rows if r.error]

    @property
    def ok(self) -> bool:
        return not self.errors

    @property
    def complete(self) -> bool:
        """True when every layer's cost is known (totals are then exact, not lower bounds)."""
        return all(r.params is not None for r in self.rows)

    @property
    def min_batch(self) -> int:
        """Smallest training batch every layer can run on (2 with a BatchNorm that sees one value per channel)."""
        return max((r.min_batch for r in self.rows), default=1)

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
        """The row of the layer with this id, at any depth; KeyError if there is none."""
        return self._by_id[layer_id]


def tokens_not_first(kind: str) -> str:
    """Why a layer fed token indices (``LayerKind.tokens``) cannot sit below another layer."""
    return f"{kind} needs integer token indices, so it must be the first layer: move it to the top"


def beyond_torch(shape: Shape, params: int = 0) -> str:
    """The sentence saying a layer's output or weights would hold more values than PyTorch can count, or ''.

    Such a layer's output is treated as unknown, so the numbers below it stay bounded."""
    values = max(prod(shape), params)
    if values <= TORCH_LIMIT:
        return ""
    what = "output" if prod(shape) > TORCH_LIMIT else "weights"
    return (f"This layer's {what} would hold {format_count(values)} values, more than PyTorch can count "
            f"(2^63 - 1): lower the sizes, strides or features that lead here")


def _params_key(params: dict) -> tuple | None:
    """A hashable form of a layer's parameters for the caches; None for unhashable junk."""
    try:
        key = tuple(sorted(params.items()))
        hash(key)
    except TypeError:
        return None
    return key


def _checked_uncached(kind: str, params: dict) -> dict | str:
    """The parameters checked against the kind's schema, or the sentence saying what is wrong.

    A spec edited in code (``with_param``) is not checked until here."""
    layer_kind = KINDS.get(kind)
    if layer_kind is None:
        return f"unknown kind {kind!r}: replace this layer with one from the palette"
    try:
        return coerce_params(layer_kind, params, kind)
    except SpecError as exc:
        return str(exc)


@lru_cache(maxsize=20_000)
def _checked_cached(kind: str, key: tuple) -> dict | str:
    return _checked_uncached(kind, dict(key))


def _checked(kind: str, params: dict, key: tuple | None) -> dict | str:
    return _checked_cached(kind, key) if key is not None else _checked_uncached(kind, params)


def _infer_checked(kind: str, in_shape: Shape, checked: dict | str) -> Inference | LayerError:
    if isinstance(checked, str):
        return LayerError(checked, torch_fails=False)
    try:
        return KINDS[kind].infer(in_shape, checked)
    except LayerError as exc:
        return exc


@lru_cache(maxsize=20_000)
def _infer_cached(kind: str, in_shape: Shape, key: tuple) -> Inference | LayerError:
    return _infer_checked(kind, in_shape, _checked_cached(kind, key))


def _infer(kind: str, in_shape: Shape, params: dict, key: tuple | None) -> Inference | LayerError:
    """Memoised per (kind, input shape, parameters), so an edit recomputes only what changed."""
    if key is not None:
        return _infer_cached(kind, in_shape, key)
    return _infer_checked(kind, in_shape, _checked_uncached(kind, params))


@lru_cache(maxsize=20_000)
def _label_cached(kind: str, key: tuple) -> str:
    return KINDS[kind].short(dict(key))


def _label(kind: str, params: dict, key: tuple | None, checked: dict | str) -> str:
    if isinstance(checked, str):  # unknown kind or junk parameters: the name is all we can show
        return kind
    return _label_cached(kind, key) if key is not None else KINDS[kind].short(checked)


def clear_cache() -> None:
    """Forget memoised results (for benchmarks measuring a cold analysis)."""
    for cache in (_checked_cached, _infer_cached, _label_cached):
        cache.cache_clear()


def infer_layer(kind: str, in_shape: Shape, params: dict) -> Inference:
    """Infer one layer (memoised); raises LayerError."""
    result = _infer(kind, tuple(in_shape), params, _params_key(params))
    if isinstance(result, LayerError):
        raise result
    return result


def analyze(spec: NetworkSpec) -> Analysis:
    """One row per layer: output shape, parameters, MACs, formula, error and warning; a group's row holds its
    layers' rows (engine.group_analysis).

    Problems that do not depend on the incoming shape (unknown kind, bad parameter values,
    Embedding not first) are reported even below a layer whose output is unknown. A layer whose
    output or weights would pass PyTorch's int64 element count is an error with an unknown output,
    so counts stay exact Python ints of bounded size whatever the parameters."""
    from engine.group_analysis import Walk

    shape: Shape | None = tuple(spec.input_shape)
    problem = ""
    if prod(shape) > TORCH_LIMIT:  # refused by the spec's bounds; here so analysis never overflows
        shape, problem = None, "The input shape holds more values than PyTorch can count (2^63 - 1): lower it"
    rows, _ = Walk(input_problem=problem).chain(spec.layers, shape, None, "layers", "", False)
    return Analysis(tuple(spec.input_shape), tuple(rows))


def leaf_row(layer, index: int, path: str, shape: Shape | None, first: bool, frozen: bool,
             problem: str = "") -> LayerRow:
    """The row of one registry layer fed ``shape`` (None: unknown); ``first`` when it is the design's first
    layer to see the input, ``problem`` a sentence to report on it whatever its input (the input's own)."""
    key = _params_key(layer.params)
    checked = _checked(layer.kind, layer.params, key)
    label = _label(layer.kind, layer.params, key, checked)
    problem = problem or (checked if isinstance(checked, str) else "")
    if not problem and not first and KINDS[layer.kind].tokens:
        problem = tokens_not_first(layer.kind)
    if problem:
        return LayerRow(index, layer.id, layer.kind, label, shape, None, error=problem, path=path)
    if shape is None:
        return LayerRow(index, layer.id, layer.kind, label, None, None, path=path)
    inf = _infer(layer.kind, shape, layer.params, key)
    if isinstance(inf, LayerError):
        out = None if inf.shape is None or beyond_torch(inf.shape) else inf.shape
        return LayerRow(index, layer.id, layer.kind, label, shape, out, error=str(inf), path=path)
    too_big = beyond_torch(inf.shape, inf.params)
    if too_big:
        return LayerRow(index, layer.id, layer.kind, label, shape, None, error=too_big, path=path)
    trainable = 0 if frozen or layer.frozen else inf.params
    return LayerRow(index, layer.id, layer.kind, label, shape, inf.shape, inf.params, trainable,
                    inf.buffers, inf.macs, inf.formula, warning=inf.warning, min_batch=inf.min_batch, path=path)


def format_count(n: int | None) -> str:
    """1234567 -> '1.23M'; None -> '?'."""
    if n is None:
        return "?"
    units = (("k", 1e3), ("M", 1e6), ("G", 1e9), ("T", 1e12))
    if abs(n) < 1e3:
        return str(n)
    for unit, size in units:
        text = f"{n / size:.3g}"
        if abs(float(text)) < 1000 or unit == "T":
            return text + unit
    raise AssertionError("unreachable")


def format_shape(shape: Shape | None) -> str:
    """(1, 28, 28) -> '1x28x28'; () -> 'scalar'; None (unknown) -> '?'."""
    if shape is None:
        return "?"
    return "x".join(map(str, shape)) if shape else "scalar"
