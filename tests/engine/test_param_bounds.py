"""Every number a design file gives a layer is inside the range its kind declares, or refused with a
sentence; analysis never raises on what is accepted, however large; small accepted designs build and run."""
from __future__ import annotations

import math
import warnings
from pathlib import Path

import pytest
import torch
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from engine.build import build_model
from engine.errors import SpecError
from engine.layers import KINDS, PADDING_PRESETS, RANGED_TYPES, Param
from engine.shapes import analyze, format_count, format_shape
from engine.spec import FORMAT, MAX_RANK, NetworkSpec

pytestmark = pytest.mark.usefixtures("one_torch_thread")

BEYOND_ANY_RANGE = [2**63, -(2**63) - 1, 10**30, -(10**30), 10**400]
JUNK = [None, "3", [], {}, 1.5, True]


def test_every_number_parameter_declares_a_range_that_holds_its_default():
    for kind in KINDS.values():
        for p in kind.params:
            if p.type not in RANGED_TYPES:
                continue
            where = f"{kind.name}.{p.name}"
            assert p.min is not None and p.max is not None and p.min <= p.max, where
            defaults = p.default if p.type == "ints" else (p.default,)
            assert all(d in PADDING_PRESETS or p.min <= d <= p.max for d in defaults), where
            assert abs(p.max) < 2**63 and abs(p.min) < 2**63, \
                f"{where}: a bound past int64 reaches torch as an overflow"


def whole(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def acceptable(p: Param, value) -> bool:
    """What the schema promises to accept: the test's oracle, written from the declared ranges."""
    if p.type == "int":
        return whole(value) and p.min <= value <= p.max
    if p.type == "float":
        if not (whole(value) or isinstance(value, float)):
            return False
        try:
            number = float(value)
        except OverflowError:
            return False
        return math.isfinite(number) and p.min <= number <= p.max
    if p.type == "bool":
        return isinstance(value, bool)
    if p.type == "choice":
        return isinstance(value, str) and value in p.choices
    if p.type == "ints":
        return (isinstance(value, list) and 1 <= len(value) <= MAX_RANK
                and all(whole(v) and p.min <= v <= p.max for v in value))
    if p.type == "padding":
        return value in PADDING_PRESETS if isinstance(value, str) else whole(value) and p.min <= value <= p.max
    raise AssertionError(p.type)


def int_values(p: Param):
    edges = [p.min, p.max, p.min - 1, p.max + 1, *BEYOND_ANY_RANGE]
    return st.sampled_from(edges) | st.integers(int(p.min), int(p.max)) | st.sampled_from(JUNK + [float(p.min)])


def values(p: Param):
    """At the bounds, just beyond them, far beyond them, inside them, and not numbers at all."""
    if p.type == "int":
        return int_values(p)
    if p.type == "float":
        edges = [p.min, p.max, math.nextafter(p.min, -math.inf), math.nextafter(p.max, math.inf), 0, 1,
                 math.nan, math.inf, -math.inf, 1e308, -1e308, *BEYOND_ANY_RANGE]
        return st.sampled_from(edges) | st.floats(p.min, p.max) | st.sampled_from(JUNK)
    if p.type == "bool":
        return st.booleans() | st.sampled_from([0, 1, "true", None])
    if p.type == "choice":
        return st.sampled_from(p.choices) | st.sampled_from(["bogus", 1, None])
    if p.type == "ints":
        return st.lists(int_values(p), min_size=0, max_size=MAX_RANK + 1) | st.sampled_from(JUNK)
    if p.type == "padding":
        return int_values(p) | st.sampled_from([*PADDING_PRESETS, "bogus"])
    raise AssertionError(p.type)


@st.composite
def designs(draw):
    kind = KINDS[draw(st.sampled_from(sorted(KINDS)))]
    params = {p.name: draw(values(p)) for p in kind.params if draw(st.integers(0, 3))}
    shape = draw(st.lists(st.integers(1, 12), min_size=1, max_size=3))
    repeats = draw(st.integers(1, 3))  # a stack of the same layer multiplies any growth
    return kind, params, {"format": FORMAT, "version": 1, "input_shape": shape,
                          "layers": [{"kind": kind.name, "params": params} for _ in range(repeats)]}


def touch_every_number(analysis) -> None:
    """Everything the window and the CLI show of an analysis, formatted (must not raise)."""
    for row in analysis.rows:
        format_shape(row.shape), format_count(row.params), format_count(row.macs), row.activation_bytes
        str(row.error), str(row.warning), str(row.formula), str(row.label)
    format_count(analysis.params), format_count(analysis.macs), f"{analysis.macs:,}", f"{analysis.size_mb:.2f}"
    format_shape(analysis.output_shape), analysis.min_batch


def small(analysis) -> bool:
    sizes = [math.prod(r.shape) for r in analysis.rows if r.shape] + [math.prod(analysis.input_shape)]
    return analysis.params + analysis.buffers <= 200_000 and max(sizes) <= 100_000 and analysis.macs <= 20_000_000


@settings(max_examples=500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(designs(), st.sampled_from([(2**31,), (10**6, 10**6), (4096, 4096, 4096), (10**12, 10**6, 1)]))
def test_parameters_at_and_beyond_their_bounds_give_a_sentence_never_a_crash(design, big_input):
    kind, params, doc = design
    wrong = [name for name, value in params.items() if not acceptable(kind.param(name), value)]
    try:
        spec = NetworkSpec.from_dict(doc)
    except SpecError as exc:
        assert wrong, f"{kind.name} {params} is in range but was refused: {exc}"
        assert any(repr(name) in str(exc) for name in wrong), str(exc)
        event("refused with a sentence")
        return
    assert not wrong, f"{kind.name} accepted {wrong} out of range: {params}"

    analysis = analyze(spec)
    touch_every_number(analysis)
    touch_every_number(analyze(spec.with_input_shape(big_input[: max(1, len(spec.input_shape))])))
    if not analysis.ok:
        event("accepted, analysis reports an error")
        with pytest.raises(SpecError):
            build_model(spec)
        return
    if not small(analysis):
        event("accepted, too large to build here")
        return
    event("accepted and built")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = build_model(spec)
        tokens = KINDS[spec.layers[0].kind].tokens
        x = torch.zeros((2, *spec.input_shape), dtype=torch.long if tokens else torch.float32)
        assert tuple(model(x).shape[1:]) == analysis.output_shape


def test_the_layer_reference_page_shows_the_registrys_ranges():
    from engine.layer_reference import reference

    page = Path(__file__).parents[2] / "docs" / "layers.md"
    assert page.read_text(encoding="utf-8") == reference(), \
        "regenerate: python -m engine.layer_reference > docs/layers.md"
    assert "| `out_features` | int | 10 | 1 to 1,000,000 |" in reference()
