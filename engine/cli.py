"""`layerstudio` headless commands: the same engine as the window, from a terminal.

Each subcommand is one ``cmd_*`` function taking the parsed arguments and
returning the exit code. User errors (LayerStudioError) print one line and exit 1;
an unexpected error prints one line naming the log file that holds its traceback
and exits 2 (``--verbose`` prints the traceback too).
"""
from __future__ import annotations

import argparse
import logging
import sys

from engine.errors import LayerStudioError
from engine.log import close_logging, configure_logging, report_unexpected
from engine.text import printable

EXIT_USER_ERROR = 1
EXIT_UNEXPECTED = 2
log = logging.getLogger(__name__)


def _table(header: tuple[str, ...], rows: list[tuple[str, ...]], right: set[int] = frozenset()) -> list[str]:
    """Text columns padded to their widest cell; the last column is left ragged."""
    widths = [max(len(row[i]) for row in (header, *rows)) for i in range(len(header) - 1)]

    def line(cells):
        padded = [c.rjust(w) if i in right else c.ljust(w) for i, (c, w) in enumerate(zip(cells, widths))]
        return "  ".join(padded + [cells[-1]]).rstrip()

    return [line(header)] + [line(row) for row in rows]


def _count(n: int | None) -> str:
    return "?" if n is None else f"{n:,}"


def cmd_templates(args: argparse.Namespace) -> int:
    """List the bundled templates."""
    from engine.shapes import analyze
    from engine.templates import list_templates, load_template

    rows = [(t.name, t.dataset, _count(analyze(load_template(t.name)).params), t.description)
            for t in list_templates()]
    print(printable("\n".join(_table(("template", "dataset", "params", "description"), rows, right={2})),
                    keep_newlines=True))
    return 0


def _row_note(row) -> str:
    if row.error:
        return f"ERROR: {row.error}"
    if row.warning:
        return f"warning: {row.warning}" + (f"; {row.formula}" if row.formula else "")
    return row.formula


def cmd_summary(args: argparse.Namespace) -> int:
    """Print the layer table and totals of a design or template."""
    from engine.errors import SpecError
    from engine.shapes import analyze, format_count, format_shape
    from engine.templates import load_design

    spec, data = load_design(args.design)
    analysis = analyze(spec)
    rows = []
    for row, layer in zip(analysis.rows, spec.layers):
        label = row.label + (" (frozen)" if layer.frozen else "")
        macs = "?" if row.macs is None else format_count(row.macs)
        rows.append(("!" if row.error else "", str(row.index), label, format_shape(row.shape), _count(row.params),
                     macs, _row_note(row)))
    title = data.get("name") or args.design  # the design's own text: printed escaped, never raw
    print(f"{printable(title)}: input {format_shape(spec.input_shape)}, {len(spec.layers)} layers")
    print("\n".join(_table(("", "#", "layer", "output", "params", "MACs", "formula / error"), rows, right={1, 4, 5})))
    if not analysis.ok:
        first = analysis.errors[0]
        raise SpecError(f"{len(analysis.errors)} broken layer(s), marked '!' above; first: layer {first.index} "
                        f"({first.label}): {first.error}")
    totals = [
        ("Total params", _count(analysis.params)),
        ("Trainable params", _count(analysis.trainable)),
        ("Non-trainable params", _count(analysis.params - analysis.trainable)),
        ("Buffers", _count(analysis.buffers)),
        ("Size (MB, float32)", f"{analysis.size_mb:.2f}"),
        ("MACs per sample", f"{format_count(analysis.macs)} ({analysis.macs:,})"),
        ("Output shape", format_shape(analysis.output_shape)),
    ]
    print("\n".join(f"{name + ':':<22}{value}" for name, value in totals))
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    """Write a standalone PyTorch script for a design (the target is checked before any work)."""
    from engine.export import SCRIPT_SUFFIXES, python_source
    from engine.files import check_output_path, write_text_atomically
    from engine.templates import load_design

    target = check_output_path(args.python, SCRIPT_SUFFIXES, "--python file")
    spec, _ = load_design(args.design)
    write_text_atomically(target, python_source(spec), "script")
    print(printable(f"wrote {args.python}: nn.Sequential of {len(spec.layers)} layers; run it with: "
                    f"python {args.python}"))
    return 0


def cmd_train(args: argparse.Namespace) -> int:
    """Train a design or template headless (the work lives in engine.train_command)."""
    from engine.train_command import run_train

    return run_train(args)


def cmd_predict(args: argparse.Namespace) -> int:
    """Predict the class of image files (or rows of numbers) with trained weights (engine.predict_command)."""
    from engine.predict_command import run_predict

    return run_predict(args)


def make_parser() -> argparse.ArgumentParser:
    # --verbose works before or after the command: `layerstudio --verbose train ...`, `layerstudio train ... --verbose`
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--verbose", action="store_true", default=argparse.SUPPRESS,
                        help="print log messages and full tracebacks on stderr (the log file gets them either way)")
    parser = argparse.ArgumentParser(prog="layerstudio", parents=[common],
                                     description="Design, inspect and train PyTorch networks. "
                                     "Run with no command to open the window.")
    sub = parser.add_subparsers(dest="command", required=True)

    def add_command(name: str, **options) -> argparse.ArgumentParser:
        return sub.add_parser(name, parents=[common], **options)

    p = add_command("templates", help="list the bundled templates")
    p.set_defaults(func=cmd_templates)

    p = add_command("summary", help="print each layer's output shape, parameters and MACs")
    p.add_argument("design", help="a design .json file or a template name")
    p.set_defaults(func=cmd_summary)

    p = add_command("export", help="write a standalone PyTorch script of a design")
    p.add_argument("design", help="a design .json file or a template name")
    p.add_argument("--python", required=True, metavar="FILE", help="the .py file to write")
    p.set_defaults(func=cmd_export)

    p = add_command("train", help="train a design on a dataset")
    p.add_argument("design", help="a design .json file or a template name")
    from engine.train_command import add_train_arguments

    add_train_arguments(p)
    p.set_defaults(func=cmd_train)

    p = add_command("predict", help="predict the class of images (or rows of numbers) with trained weights")
    p.add_argument("design", help="a design .json file or a template name")
    from engine.predict_command import add_predict_arguments

    add_predict_arguments(p)
    p.set_defaults(func=cmd_predict)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run one command; exit 0 on success, 1 on a user error, 2 on an unexpected error (its traceback is logged)."""
    args = make_parser().parse_args(argv)
    configure_logging(verbose=getattr(args, "verbose", False))
    try:
        return args.func(args)
    except LayerStudioError as exc:  # its sentence may quote a file name or a design's text: printed escaped
        print(f"error: {printable(str(exc), keep_newlines=True)}", file=sys.stderr)
        return EXIT_USER_ERROR
    except BrokenPipeError:  # e.g. `layerstudio summary vgg | head`
        sys.stderr.close()
        return 0
    except Exception as exc:  # noqa: BLE001 - a bug: one line for the person, the traceback in the log file
        print(report_unexpected(exc, f"running layerstudio {args.command}", log), file=sys.stderr)
        return EXIT_UNEXPECTED
    finally:
        close_logging()


if __name__ == "__main__":
    sys.exit(main())
