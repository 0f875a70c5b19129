"""Layer registry: one entry per layer kind.

Each entry knows its category, its parameter schema, how to infer its output
shape / parameter count / MACs from the incoming shape (pure Python, no torch,
so analysis is fast), and how to build the real ``nn.Module``, filling
``in_features`` / ``in_channels`` / ``num_features`` / ``input_size`` from the
incoming shape. Shapes never include the batch dimension.

``registry`` holds the machinery (Param, LayerKind, KINDS, register and the shared
helpers); one module per palette category registers its kinds. Importing this
package registers them all, in palette order (the palette and docs/layers.md
follow it). Adding a layer kind = adding one ``register(...)`` call to its
category's module.
"""
from __future__ import annotations

from engine.layers.registry import (
    BIAS,
    CATEGORIES,
    KINDS,
    PADDING_PRESETS,
    PARAM_TYPES,
    RANGED_TYPES,
    Inference,
    LayerKind,
    P,
    Param,
    Shape,
    build_layer,
    kinds_by_category,
    prod,
    shape_tuple_text,
)

# Importing the category modules registers their kinds; their order here is the palette's order.
# isort: off
from engine.layers import core, convolution, pooling, normalization, dropout, activation, recurrent, group  # noqa: F401
# isort: on

from engine.layers.convolution import CONV_KEY
from engine.layers.core import suggest_hidden_sizes
from engine.layers.dropout import DROP_P
from engine.layers.normalization import EPS, NORM_PARAMS
from engine.layers.pooling import POOL_KEY, POOL_PARAMS, adaptive_window_total
from engine.layers.recurrent import RNN_HINT

__all__ = [
    "BIAS", "CATEGORIES", "CONV_KEY", "DROP_P", "EPS", "KINDS", "NORM_PARAMS", "PADDING_PRESETS", "PARAM_TYPES",
    "POOL_KEY", "POOL_PARAMS", "RANGED_TYPES", "RNN_HINT", "Inference", "LayerKind", "P", "Param", "Shape",
    "adaptive_window_total", "build_layer", "kinds_by_category", "prod", "shape_tuple_text", "suggest_hidden_sizes",
]
