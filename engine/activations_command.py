"""`layerstudio activations`: what trained weights make of one test sample, layer by layer, as PNG files.

The weights and their data are named as for `layerstudio predict` (``--weights``, the design's "data" section,
``--config``, ``--data``, ``--limit``). ``--out`` is a folder (made when missing); it receives ``input.png``, one
``layer-NN-kind.png`` per layer (a convolution's or pooling's channels side by side, each scaled to its own range;
a Linear layer's values as a strip of cells) and ``filters.png`` (the first convolution's filters, one row per
output channel). Each file is written atomically; the command prints one line per file and the prediction.
"""
from __future__ import annotations

import argparse
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from engine.predict_command import DEFAULT_TOP, add_trained_model_arguments


def add_activations_arguments(parser: argparse.ArgumentParser) -> None:
    add_trained_model_arguments(parser)
    parser.add_argument("--sample", type=int, default=0, metavar="N",
                        help="which test sample (validation without a test split), from 0 (default 0)")
    parser.add_argument("--out", required=True, metavar="FOLDER", help="the folder to write the PNG files to")


def run_activations(args: argparse.Namespace) -> int:
    from engine.activations import sample_activations
    from engine.predict_command import trained_model
    from engine.text import printable

    folder = output_folder(args.out)  # before any long work
    spec, model, data, config = trained_model(args)
    activations = sample_activations(spec, model, data, args.sample, config)
    for path, what in write_pictures(activations, folder):
        print(printable(f"{path}: {what}"))
    print(printable(outcome_line(activations)))
    return 0


def output_folder(out: str) -> Path:
    """The --out folder, checked before any work: DataError when it is a file, or when it is missing and
    cannot be made (it is made when the first file is written, so a refused command leaves nothing)."""
    from engine.errors import DataError

    folder = Path(out).expanduser()
    if folder.exists() and not folder.is_dir():
        raise DataError(f"{out} is a file: --out takes a folder for the PNG files, e.g. {folder.with_suffix('')}-"
                        "activations")
    existing = next(parent for parent in (folder, *folder.parents) if parent.exists())
    if not existing.is_dir() or not os.access(existing, os.W_OK | os.X_OK):
        raise DataError(f"Cannot write the PNG files to {out}: {existing} is not a writable folder; choose "
                        "another --out")
    return folder


def write_pictures(activations, folder: Path) -> list[tuple[Path, str]]:
    """Write the input, each layer's output and the first convolution's filters as PNG files into ``folder``;
    (path, what it shows) for each file, in the order written."""
    from engine.activations import enlargement, filter_picture, picture
    from engine.errors import DataError
    from engine.shapes import format_shape

    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise DataError(f"Cannot create the folder {folder} ({exc.strerror or exc}): choose another --out") from None
    written = []
    width = max(2, len(str(len(activations.layers) - 1)))
    items: list[tuple[str, str, Any, Callable[..., Any]]] = [
        ("input.png", f"{activations.source} as the model takes it", activations.input, picture)]
    items += [(f"layer-{layer.index:0{width}d}-{layer.kind.lower()}.png",
               f"layer {layer.index} ({layer.label}), {format_shape(layer.output.shape)}", layer.output, picture)
              for layer in activations.layers]
    if activations.filters is not None:
        items.append(("filters.png", f"filters of layer {activations.filters_layer}, "
                                     f"{format_shape(activations.filters.shape)}", activations.filters, filter_picture))
    for name, what, values, draw in items:
        grid = draw(values, enlargement(values))
        if grid is not None:
            written.append((save_png(folder / name, grid), what))
    return written


def save_png(path: Path, grid) -> Path:
    """A picture (engine.activations) as a PNG file, written atomically."""
    from PIL import Image

    from engine.activations import to_rgb
    from engine.errors import DataError
    from engine.files import write_atomically

    image = Image.fromarray(to_rgb(grid), "RGB")
    write_atomically(path, lambda f: image.save(f, format="PNG"), "picture", DataError)
    return path


def outcome_line(activations, top: int = DEFAULT_TOP) -> str:
    """``Test sample 7 (true 2): predicted 2 (2 98.1%, 7 1.2%, 3 0.4%)``, or the output values."""
    names = activations.class_names
    head = activations.source[:1].upper() + activations.source[1:]
    if activations.target is not None:
        true = activations.target
        head += f" (true {names[true] if names and isinstance(true, int) and 0 <= true < len(names) else f'{true:g}'})"
    if activations.probabilities is None:
        values = activations.layers[-1].output.reshape(-1)[:8] if activations.layers else []
        return f"{head}: output " + ", ".join(f"{v:.6g}" for v in values)
    p = activations.probabilities
    ranked = sorted(range(len(p)), key=lambda k: -p[k])[:top]
    label = names[ranked[0]] if names else str(ranked[0])
    return f"{head}: predicted {label} (" + ", ".join(
        f"{names[k] if names else k} {100 * p[k]:.1f}%" for k in ranked) + ")"
