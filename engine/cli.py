"""`layerstudio` headless commands: the same engine as the window, from a terminal.

Each subcommand is one ``cmd_*`` function taking the parsed arguments and
returning the exit code. User errors (LayerStudioError) print one line and exit 1.
"""
from __future__ import annotations

import argparse
import sys

from engine.errors import LayerStudioError


def cmd_templates(args: argparse.Namespace) -> int:
    """List the bundled templates."""
    raise NotImplementedError


def cmd_summary(args: argparse.Namespace) -> int:
    """Print the layer table and totals of a design or template."""
    raise NotImplementedError


def cmd_export(args: argparse.Namespace) -> int:
    """Write a standalone PyTorch script for a design."""
    raise NotImplementedError


def cmd_train(args: argparse.Namespace) -> int:
    """Train a design or template headless."""
    raise NotImplementedError


def make_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="layerstudio", description="Design, inspect and train PyTorch networks. "
                                     "Run with no command to open the window.")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("templates", help="list the bundled templates")
    p.set_defaults(func=cmd_templates)

    p = sub.add_parser("summary", help="print each layer's output shape, parameters and MACs")
    p.add_argument("design", help="a design .json file or a template name")
    p.set_defaults(func=cmd_summary)

    p = sub.add_parser("export", help="write a standalone PyTorch script of a design")
    p.add_argument("design", help="a design .json file or a template name")
    p.add_argument("--python", required=True, metavar="FILE", help="the .py file to write")
    p.set_defaults(func=cmd_export)

    p = sub.add_parser("train", help="train a design on a dataset")
    p.add_argument("design", help="a design .json file or a template name")
    p.set_defaults(func=cmd_train)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = make_parser().parse_args(argv)
    try:
        return args.func(args)
    except LayerStudioError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
