"""`layerstudio import SOURCE -o design.json`: a PyTorch model as a design, headless.

SOURCE is a PyTorch file (read with ast, never run), ``torchvision:NAME`` or a bare state_dict. The design is
written even when parts could not be mapped; each such part is printed with its line (or module) and the reason.
"""
from __future__ import annotations

import argparse

from engine.text import printable


def add_import_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("source", metavar="SOURCE",
                        help="a PyTorch file (model.py; read, never run), torchvision:NAME (e.g. torchvision:resnet18) "
                             "or a state_dict (.pt, .pth, .safetensors)")
    parser.add_argument("--input-shape", metavar="CxHxW",
                        help="the shape of one input sample, e.g. 1x28x28 (default: the file's INPUT_SHAPE; "
                             "3x224x224 for torchvision models)")
    parser.add_argument("-o", "--output", required=True, metavar="DESIGN.json", help="the design file to write")


INPUT_SHAPE_FLAG = "--input-shape"


def run_import(args: argparse.Namespace) -> int:
    from engine.cli import flag_for
    from engine.controls import naming
    from engine.importing.source import INPUT_SHAPE_SETTING

    with naming(lambda key: INPUT_SHAPE_FLAG if key == INPUT_SHAPE_SETTING else flag_for(key)):
        return _run_import(args)


def _run_import(args: argparse.Namespace) -> int:
    from engine.errors import SpecError
    from engine.files import check_output_path
    from engine.importing import import_model, parse_shape, write_design
    from engine.spec import DESIGN_SUFFIXES

    check_output_path(args.output, DESIGN_SUFFIXES, "-o design file", SpecError)  # before any work
    shape = None
    if args.input_shape is not None:
        try:
            shape = parse_shape(args.input_shape)
        except SpecError as exc:
            raise SpecError(f"{INPUT_SHAPE_FLAG}: {exc}") from None
    imported = import_model(args.source, shape)
    print(printable(imported.summary()))
    for note in imported.notes:
        print(printable(("Not mapped: " if note.left_out else "Changed: ") + note.sentence()))
    write_design(imported, args.output, "-o design file")
    print(printable(f"Wrote {args.output}; see it with: layerstudio summary {args.output}"))
    return 0
