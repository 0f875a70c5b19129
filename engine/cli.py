"""`layerstudio` headless commands: the same engine as the window, from a terminal.

Each subcommand is one ``cmd_*`` function taking the parsed arguments and
returning the exit code. User errors (LayerStudioError) print one line and exit 1;
an unexpected error prints one line naming the log file that holds its traceback
and exits 2 (``--verbose`` prints the traceback too). Every line the commands print
starts with a capital letter; an error line is ``Error: `` and the engine's sentence as written.
"""
from __future__ import annotations

import argparse
import importlib
import logging
import re
import shutil
import sys
import textwrap
from collections.abc import Callable, Sequence
from collections.abc import Set as AbstractSet

from engine.controls import naming, setting_name
from engine.errors import LayerStudioError
from engine.log import close_logging, configure_logging, report_unexpected
from engine.text import printable
from engine.version import version

EXIT_INTERRUPTED = 130  # the shell's code for "ended by SIGINT"

EXIT_USER_ERROR = 1
EXIT_UNEXPECTED = 2
PIPE_WIDTH = 100        # the width of tables written to a pipe or file
MIN_LAST_COLUMN = 24    # a table's last column never gets narrower than this, even on a narrow terminal
USAGE = """
  layerstudio [--verbose] [DESIGN.json]     open the window (on that design)
  layerstudio [--verbose] COMMAND ...       run a command headless (layerstudio COMMAND --help)
  layerstudio --version"""
log = logging.getLogger(__name__)


def error_line(message: str) -> str:
    """A user error as the command line prints it: ``Error: `` and the engine's sentence as written (it may
    start with a file name), control characters escaped."""
    return f"Error: {printable(message, keep_newlines=True)}"


# --------------------------------------------------------------------------- settings named by their flags

def _setting_flags() -> dict[str, str]:
    """The settings (``engine.controls`` keys) that `layerstudio train` and `lr-find` set with a flag, and the flag:
    every declared setting's own (engine.schema), the source and its files through ``--data``."""
    from engine.lr_find_command import SWEEP
    from engine.schema import settings_of
    from engine.settings import SECTIONS

    flags = {f"{section}.{s.name}": s.cli_flag for section, cls in {**SECTIONS, **SWEEP}.items()
             for s in settings_of(cls) if s.cli_flag}
    flags.update({"data.source": "--data", "data.root": "--data SOURCE:PATH"})
    return flags


def flag_for(key: str) -> str:
    """A setting as the command line names it: its flag, else where a --config file sets it."""
    flag = _setting_flags().get(key)
    if flag:
        return flag
    section, _, name = key.partition(".")
    if section == "training":
        return f'"{name}" in the --config file'
    if section == "data":
        return f'"{name}" in the "data" section of the --config file'
    return setting_name(key)


# --------------------------------------------------------------------------- tables

def output_width() -> int:
    """Columns to fit: the terminal's width on a terminal, PIPE_WIDTH when the output is a pipe or file."""
    return shutil.get_terminal_size((PIPE_WIDTH, 24)).columns if sys.stdout.isatty() else PIPE_WIDTH


def wrap(text: str, width: int) -> list[str]:
    """``text`` in lines of at most ``width`` characters, broken after a ``;`` where it can, else between
    words, a word longer than a line split; joined with single spaces the lines give ``text`` back."""
    if len(text) <= width:
        return [text]
    lines: list[str] = []
    for clause in re.split(r"(?<=;) ", text):
        if lines and len(lines[-1]) + 1 + len(clause) <= width:
            lines[-1] += " " + clause
        else:
            lines += textwrap.wrap(clause, width, break_on_hyphens=False) or [""]
    return lines


def text_table(header: tuple[str, ...], rows: Sequence[tuple[str, ...]], right: AbstractSet[int] = frozenset(),
               width: int | None = None, squeeze: int | None = None) -> list[str]:
    """Text columns padded to their widest cell; the last column is left ragged and, with ``width``,
    wrapped onto continuation lines that start under it, so a long formula or error is never cut. When the
    other columns leave the last one too little room, column ``squeeze`` (a label) is wrapped narrower too."""
    rows = [tuple(printable(cell) for cell in row) for row in (header, *rows)]
    widths = [max(len(row[i]) for row in rows) for i in range(len(header) - 1)]
    if width and squeeze is not None:
        over = sum(widths) + 2 * len(widths) + MIN_LAST_COLUMN - width
        longest_word = max((len(word) for row in rows for word in row[squeeze].split()), default=1)
        widths[squeeze] = max(widths[squeeze] - max(over, 0), longest_word, len(header[squeeze]))
    indent = sum(widths) + 2 * len(widths)
    room = max(width - indent, MIN_LAST_COLUMN) if width else None

    def lines(cells):
        pieces = [_wrap_indented(c, widths[i]) if i == squeeze else [c] for i, c in enumerate(cells[:-1])]
        pieces.append(wrap(cells[-1], room) if room else [cells[-1]])
        out = []
        for line in range(max(map(len, pieces))):
            cols = [column[line] if line < len(column) else "" for column in pieces]
            # every column but the last is padded: widths has one entry fewer than cells
            padded = [c.rjust(w) if i in right else c.ljust(w)
                      for i, (c, w) in enumerate(zip(cols, widths, strict=False))]
            out.append("  ".join(padded + [cols[-1]]).rstrip())
        return out

    return [line for row in rows for line in lines(row)]


def _wrap_indented(text: str, width: int) -> list[str]:
    """``text`` wrapped to ``width``, each piece keeping its leading spaces (a nested row's indent)."""
    if len(text) <= width:
        return [text]
    margin = " " * (len(text) - len(text.lstrip()))
    return [margin + piece for piece in wrap(text.lstrip(), max(width - len(margin), 1))]


def _count(n: int | None) -> str:
    return "?" if n is None else f"{n:,}"


def cmd_templates(args: argparse.Namespace) -> int:
    """List the bundled templates."""
    from engine.shapes import analyze
    from engine.templates import list_templates, load_template

    rows = [(t.name, t.dataset, _count(analyze(load_template(t.name)).params), t.description)
            for t in list_templates()]
    print("\n".join(text_table(("Template", "Dataset", "Params", "Description"), rows, right={2},
                               width=output_width())))
    return 0


def _row_note(row) -> str:
    if row.error:
        return f"Error: {row.error}"
    if row.warning:
        return f"Warning: {row.warning}" + (f"; {row.formula}" if row.formula else "")
    return row.formula


def _nested(rows, depth: int = 0, prefix: str = ""):
    """(row, depth, its step in its group: "3", "branch 2", "shortcut › 0"), a group's rows (body or branches,
    then custom shortcut) right after it, so the # column shows the tree; an error names the whole path."""
    for row in rows:
        yield row, depth, row.path[len(prefix):]
        yield from _nested(row.children + row.shortcut, depth + 1, row.path + " › ")


def cmd_summary(args: argparse.Namespace) -> int:
    """Print the layer table and totals of a design or template."""
    from engine.errors import SpecError
    from engine.shapes import analyze, format_count, format_shape
    from engine.templates import load_design

    spec, data = load_design(args.design)
    analysis = analyze(spec)
    rows = []
    for row, depth, step in _nested(analysis.rows):
        label = row.label + (" (frozen)" if spec.layer(row.layer_id).frozen else "")
        macs = "?" if row.macs is None else format_count(row.macs)
        rows.append(("!" if row.error else "", "  " * depth + step, label, format_shape(row.shape),
                     _count(row.params), macs, _row_note(row)))
    title = data.get("name") or args.design  # the design's own text: printed escaped, never raw
    width = output_width()
    inside = len(analysis.all_rows) - len(analysis.rows)
    counted = f"{len(spec.layers)} layers" + (f" ({inside} more inside groups)" if inside else "")
    print("\n".join(wrap(f"{printable(title)}: input {format_shape(spec.input_shape)}, {counted}", width)))
    print("\n".join(text_table(("", "#", "Layer", "Output", "Params", "MACs", "Formula / error"), rows,
                               right={4, 5}, width=width, squeeze=2)))
    if not analysis.ok:
        first = analysis.errors[0]
        raise SpecError(f"{len(analysis.errors)} broken layer(s), marked '!' above; first: layer {first.path} "
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
    """Write a design as a standalone PyTorch script, an ONNX model or a TorchScript module (every target is
    checked before any work)."""
    from engine.errors import SpecError
    from engine.export import SCRIPT_SUFFIXES, python_source
    from engine.files import check_output_path, write_text_atomically
    from engine.model_export import (
        ONNX_SUFFIXES,
        TORCHSCRIPT_SUFFIXES,
        export_onnx,
        export_torchscript,
        untrained_weights_text,
    )
    from engine.templates import load_design

    targets = (("--python", args.python, SCRIPT_SUFFIXES), ("--onnx", args.onnx, ONNX_SUFFIXES),
               ("--torchscript", args.torchscript, TORCHSCRIPT_SUFFIXES))
    if not any(path for _, path, _ in targets):
        raise SpecError("Name a file to write: --python FILE, --onnx FILE or --torchscript FILE")
    if args.weights and not (args.onnx or args.torchscript):
        raise SpecError("--weights goes with --onnx or --torchscript: the --python script holds no weights")
    for flag, path, suffixes in targets:
        if path:
            check_output_path(path, suffixes, f"{flag} file")
    spec, _ = load_design(args.design)
    if args.python:
        write_text_atomically(args.python, python_source(spec), "script")
        print(printable(f"Wrote {args.python}: nn.Sequential of {len(spec.layers)} layers; run it with: "
                        f"python {args.python}"))
    weights = (f"the weights of {args.weights}" if args.weights else
               f"{untrained_weights_text()}: --weights FILE exports trained ones")
    for path, export in ((args.onnx, export_onnx), (args.torchscript, export_torchscript)):
        if path:
            print(printable(f"Wrote {path}: {export(spec, path, args.weights)}; with {weights}"))
    return 0


# The commands that take a design and live in a module of their own, engine.<name with _ for ->_command:
# (name, help); the module has ``add_<name>_arguments(parser)`` and ``run_<name>(args)``.
MODULE_COMMANDS = (
    ("train", "train a design on a dataset"),
    ("lr-find", "sweep the learning rate on a copy of the model and suggest one"),
    ("profile", "measure each layer's time and memory in a training step, and the peak"),
    ("predict", "predict the class of images (or rows of numbers) with trained weights"),
    ("activations", "write what trained weights make of one test sample, layer by layer, as PNG files"),
    ("search", "search training settings and architecture with optuna, a trial at a time"),
)


def _command_module(name: str):
    return importlib.import_module(f"engine.{name.replace('-', '_')}_command")


def _module_command(name: str) -> Callable[[argparse.Namespace], int]:
    """The command's ``run_<name>(args)``, its module imported only when the command runs. Ctrl-C (or the work it
    cancelled) ends any of them with "Interrupted" and EXIT_INTERRUPTED."""
    def run(args: argparse.Namespace) -> int:
        from engine.errors import Cancelled

        try:
            return getattr(_command_module(name), f"run_{name.replace('-', '_')}")(args)
        except (KeyboardInterrupt, Cancelled):
            print("\nInterrupted", file=sys.stderr)
            return EXIT_INTERRUPTED

    return run


def make_parser() -> argparse.ArgumentParser:
    # --verbose works before or after the command: `layerstudio --verbose train ...`, `layerstudio train ... --verbose`
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--verbose", action="store_true", default=argparse.SUPPRESS,
                        help="print log messages and full tracebacks on stderr (the log file gets them either way)")
    parser = argparse.ArgumentParser(prog="layerstudio", parents=[common], usage=USAGE,
                                     description="Design, inspect and train PyTorch networks. With no command "
                                     "it opens the window; with a design file, the window on that design.")
    parser.add_argument("--version", action="version", version=f"LayerStudio {version()}")
    sub = parser.add_subparsers(dest="command", required=True, prog="layerstudio")

    def add_command(name: str, **options) -> argparse.ArgumentParser:
        return sub.add_parser(name, parents=[common], **options)

    p = add_command("templates", help="list the bundled templates")
    p.set_defaults(func=cmd_templates)

    p = add_command("summary", help="print each layer's output shape, parameters and MACs")
    p.add_argument("design", help="a design .json file or a template name")
    p.set_defaults(func=cmd_summary)

    p = add_command("export", help="write a design as a PyTorch script, an ONNX model or a TorchScript module")
    p.add_argument("design", help="a design .json file or a template name")
    p.add_argument("--python", metavar="FILE", help="the standalone PyTorch script (.py) to write")
    p.add_argument("--onnx", metavar="FILE", help="the ONNX model (.onnx) to write, for any batch size")
    p.add_argument("--torchscript", metavar="FILE", help="the TorchScript module (.pt) to write, for torch.jit.load")
    p.add_argument("--weights", metavar="WEIGHTS", help="the trained state_dict (.pt or .safetensors, or a "
                   "checkpoint) for --onnx and --torchscript (default: the weights a run starts from)")
    p.set_defaults(func=cmd_export)

    for name, help_text in MODULE_COMMANDS:
        p = add_command(name, help=help_text)
        p.add_argument("design", help="a design .json file or a template name")
        getattr(_command_module(name), f"add_{name.replace('-', '_')}_arguments")(p)
        p.set_defaults(func=_module_command(name))

    p = add_command("import", help="read a PyTorch model (a .py file, torchvision:NAME or a state_dict) as a design")
    _command_module("import").add_import_arguments(p)
    p.set_defaults(func=_module_command("import"))

    p = add_command("runs", help="list, show, compare and export the recorded training runs")
    _command_module("runs").add_runs_arguments(p)
    p.set_defaults(func=_module_command("runs"))
    return parser


def command_names() -> set[str]:
    """The commands `layerstudio` runs headless (``templates``, ``summary``, ...)."""
    commands = next(action for action in make_parser()._actions if isinstance(action, argparse._SubParsersAction))
    return set(commands.choices)


def main(argv: list[str] | None = None) -> int:
    """Run one command; exit 0 on success, 1 on a user error, 2 on an unexpected error (its traceback is logged)."""
    args = make_parser().parse_args(argv)
    args.argv = list(sys.argv[1:] if argv is None else argv)  # as typed: `train --nproc-per-node` launches it again
    configure_logging(verbose=getattr(args, "verbose", False))
    try:
        with naming(flag_for):  # the engine's sentences name settings by their flags
            return args.func(args)
    except LayerStudioError as exc:  # its sentence may quote a file name or a design's text: printed escaped
        print(error_line(str(exc)), file=sys.stderr)
        return EXIT_USER_ERROR
    except BrokenPipeError:  # e.g. `layerstudio summary vgg | head`
        sys.stderr.close()
        return 0
    except Exception as exc:  # a bug: one line for the person, the traceback in the log file
        print(report_unexpected(exc, f"running layerstudio {args.command}", log), file=sys.stderr)
        return EXIT_UNEXPECTED
    finally:
        close_logging()


if __name__ == "__main__":
    from engine.openmp import use_passive_wait

    use_passive_wait()
    sys.exit(main())
