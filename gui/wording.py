"""How the window writes shapes in sentences: one way everywhere, 1x28x28 as in the shape columns.

The engine's messages write a shape the way Python prints a tuple, (16, 4, 4) or (784,), because
the command line shows them next to Python code; the window shows them as 16x4x4 and 784.
"""
from __future__ import annotations

import re

# a tuple of two or more whole numbers, or one with Python's trailing comma: (16, 4, 4), (784,)
SHAPE_TUPLE = re.compile(r"\((\d+(?:,\s*\d+)+|\d+,)\s*\)")


def shapes_in_prose(message: str) -> str:
    """'got (16, 4, 4)' -> 'got 16x4x4'; '(784,)' -> '784'; other text is left as it is."""
    return SHAPE_TUPLE.sub(lambda m: "x".join(part.strip() for part in m.group(1).split(",") if part.strip()), message)
