"""The `layerstudio` console script: no arguments (or a design file) opens the window, a command runs headless.

``layerstudio`` and ``layerstudio --verbose`` open the window on the usual first design;
``layerstudio my-design.json`` opens that design in it. Anything else is a command of ``engine.cli``
(``layerstudio summary lenet``, ``layerstudio --version``, ``layerstudio --help``).
"""
from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path

WINDOW_FLAGS = ("--verbose",)


@dataclass(frozen=True)
class WindowRequest:
    """What the command line asks of the window: the design file to open (or None) and verbose logging."""

    design: str | None = None
    verbose: bool = False


def window_request(argv: list[str]) -> WindowRequest | None:
    """The window to open for ``argv``, or None when ``argv`` is a command for ``engine.cli``.

    One argument that names a design file (as ``engine.templates.is_design_path`` reads a name: a
    *.json path, a path with a folder, or an existing file) and is not a command opens that design;
    a command name always wins (``layerstudio train`` is the command, ``./train`` the file).
    """
    rest = [arg for arg in argv if arg not in WINDOW_FLAGS]
    verbose = len(rest) < len(argv)
    if not rest:
        return WindowRequest(None, verbose)
    if len(rest) > 1 or rest[0].startswith("-"):
        return None
    from engine.cli import command_names
    from engine.templates import is_design_path

    if rest[0] in command_names() or not is_design_path(rest[0]):
        return None
    return WindowRequest(rest[0], verbose)


def main(argv: list[str] | None = None) -> int:
    from engine.openmp import use_passive_wait

    use_passive_wait()  # before anything loads torch
    argv = sys.argv[1:] if argv is None else argv
    request = window_request(argv)
    if request is None:
        from engine.cli import main as cli_main

        return cli_main(argv)
    if request.design is not None and not Path(request.design).exists():
        # Typed in a terminal: say so there, as any command would, instead of opening a window to say it.
        from engine.cli import EXIT_USER_ERROR, error_line

        print(error_line(f"{request.design} does not exist: check the path, or run layerstudio alone to open "
                         f"the window"), file=sys.stderr)
        return EXIT_USER_ERROR
    from gui.app import run_app

    return run_app(verbose=request.verbose, design=request.design)  # --verbose: the log on stderr too


if __name__ == "__main__":
    sys.exit(main())
