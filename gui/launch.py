"""The `layerstudio` console script: no arguments opens the window, a subcommand runs headless."""
from __future__ import annotations

import sys


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv != ["--verbose"]:
        from engine.cli import main as cli_main

        return cli_main(argv)
    from gui.app import run_app

    return run_app(verbose=bool(argv))  # `layerstudio --verbose`: the window, with the log on stderr too


if __name__ == "__main__":
    sys.exit(main())
