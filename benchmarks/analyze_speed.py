"""How fast is analyze() on a 200-layer design, cold and after a single-parameter edit, and on a design of
about 100 layers nested in groups (stages of residual blocks with parallel branches inside)?

analyze() runs on every edit in the designer, so the edit must stay well under a frame
(target: under 10 ms). Cold = caches cleared; edit = a new spec made with with_param,
then analyze, with the previous design's analysis already cached (as in the app).

Run: python benchmarks/analyze_speed.py
"""
from __future__ import annotations

import statistics
import time

from engine.groups import group
from engine.shapes import analyze, clear_cache
from engine.spec import LayerSpec, NetworkSpec

LAYERS = 200
REPEATS = 200
TARGET_MS = 10.0


def big_design() -> NetworkSpec:
    """Five VGG-like stages of (Conv2d, BatchNorm2d, ReLU) x 12 + MaxPool2d, then an MLP head: 200 layers."""
    layers: list[LayerSpec] = []

    def add(kind: str, **params) -> None:
        layers.append(LayerSpec(kind, params, f"layer{len(layers)}"))

    channels = 16
    for _stage in range(5):
        for _ in range(12):
            add("Conv2d", out_channels=channels, kernel_size=3, padding=1)
            add("BatchNorm2d")
            add("ReLU")
        add("MaxPool2d", kernel_size=2, stride=2)
        channels *= 2
    add("Flatten")
    for width in (1024, 512, 256, 128):
        add("Linear", out_features=width)
        add("ReLU")
        add("Dropout", p=0.3)
    add("Linear", out_features=10)
    add("LogSoftmax", dim=1)
    spec = NetworkSpec((3, 224, 224), tuple(layers))
    assert len(spec.layers) == LAYERS, len(spec.layers)
    assert analyze(spec).ok
    return spec


def grouped_design() -> NetworkSpec:
    """Four stages (sequence groups), each three residual groups whose body holds a two-branch concat group:
    about 100 layers in all, nested three deep."""
    count = 0

    def leaf(kind: str, **params) -> LayerSpec:
        nonlocal count
        count += 1
        return LayerSpec(kind, params, f"layer{count}")

    stages = []
    channels = 16
    for stage in range(4):
        blocks = []
        for block in range(3):
            stride = 2 if stage and not block else 1
            branches = group("branches", [
                group("sequence", [leaf("Conv2d", out_channels=channels // 2, kernel_size=1), leaf("ReLU")],
                      id=f"s{stage}b{block}a"),
                group("sequence", [leaf("Conv2d", out_channels=channels // 2, kernel_size=3, padding=1),
                                   leaf("ReLU")], id=f"s{stage}b{block}b"),
            ], id=f"s{stage}b{block}br")
            blocks.append(group("residual", [
                leaf("Conv2d", out_channels=channels, kernel_size=3, stride=stride, padding=1),
                leaf("BatchNorm2d"), leaf("ReLU"), branches, leaf("BatchNorm2d")],
                id=f"s{stage}b{block}", activation="ReLU"))
        stages.append(group("sequence", blocks, id=f"stage{stage}"))
        channels *= 2
    spec = NetworkSpec((3, 64, 64), (leaf("Conv2d", out_channels=16, kernel_size=3, padding=1), *stages,
                                     leaf("AdaptiveAvgPool2d", output_size=1), leaf("Flatten"),
                                     leaf("Linear", out_features=10)))
    assert analyze(spec).ok
    return spec


def median_ms(samples_ns: list[int]) -> float:
    return statistics.median(samples_ns) / 1e6


def time_cold(spec: NetworkSpec) -> float:
    samples = []
    for _ in range(REPEATS):
        clear_cache()
        start = time.perf_counter_ns()
        analyze(spec)
        samples.append(time.perf_counter_ns() - start)
    return median_ms(samples)


def time_edits(spec: NetworkSpec, layer_id: str, name: str, values) -> float:
    """Each repeat sets a value not seen before, after the previous design was analysed (warm caches)."""
    clear_cache()
    analyze(spec)
    samples = []
    for value in values:
        start = time.perf_counter_ns()
        spec = spec.with_param(layer_id, name, value)
        analysis = analyze(spec)
        samples.append(time.perf_counter_ns() - start)
        assert analysis.ok
    return median_ms(samples)


def main() -> None:
    spec = big_design()
    middle = next(i for i in range(LAYERS // 2, LAYERS) if spec.layers[i].kind == "Conv2d")  # mid third stage
    cold = time_cold(spec)
    distinct = spec  # every conv its own width: no two layers share a memoised result
    for index, layer in enumerate(spec.layers):
        if layer.kind == "Conv2d":
            distinct = distinct.with_param(layer.id, "out_channels", 16 + index)
    cold_distinct = time_cold(distinct)
    local = time_edits(spec, spec.layers[middle].id, "out_channels", range(100, 100 + REPEATS))
    # worst case: the first conv's padding changes every shape below it, so nothing below is cached
    everywhere = time_edits(spec, spec.layers[0].id, "padding", range(2, 2 + REPEATS))
    print(f"analyze() on a {LAYERS}-layer design, median of {REPEATS} runs")
    rows = [
        ("cold (caches cleared)", cold),
        ("cold, every layer distinct (nothing shared in one pass)", cold_distinct),
        (f"edit: out_channels of layer {middle} (with_param + analyze)", local),
        ("edit: padding of layer 0, every shape below changes", everywhere),
    ]
    for label, ms in rows:
        print(f"  {label:<58} {ms:8.3f} ms   cold/this = {cold / ms:5.1f}x")
    nested = grouped_design()
    total = len(nested.all_layers())
    inner = next(layer for layer in nested.all_layers() if layer.kind == "Conv2d" and layer.id.startswith("layer")
                 and nested.place(layer.id).parent == "s2b1b")  # three groups deep
    nested_cold = time_cold(nested)
    nested_local = time_edits(nested, inner.id, "out_channels", range(100, 100 + REPEATS))
    nested_everywhere = time_edits(nested, nested.layers[0].id, "out_channels", range(17, 17 + REPEATS))
    print(f"analyze() on a design of {total} layers and groups nested three deep, median of {REPEATS} runs")
    rows = [
        ("cold (caches cleared)", nested_cold),
        ("edit: a conv inside a branch inside a residual inside a stage", nested_local),
        ("edit: the first conv's width, every shape below changes", nested_everywhere),
    ]
    for label, ms in rows:
        print(f"  {label:<58} {ms:8.3f} ms   cold/this = {nested_cold / ms:5.1f}x")
    worst = max(local, everywhere, nested_local, nested_everywhere)
    verdict = "meets" if worst < TARGET_MS else "MISSES"
    print(f"  target: an edit under {TARGET_MS:g} ms -> {verdict} the target (worst {worst:.2f} ms)")


if __name__ == "__main__":
    main()
