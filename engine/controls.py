"""Settings named in messages the way the front end in use shows them.

A sentence that tells the person to change a setting names it through ``control(key)``, with
keys ``"data.<name>"`` (DataConfig) and ``"training.<name>"`` (TrainConfig). The command line names
a setting by its flag (``--download``), the window by its label on the Training tab (``Download if
missing``): each front end installs its naming once with ``naming``. The engine used as a library
names the setting itself (``the data setting 'download'``). One sentence, no copy per front end.
"""
from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager

# A front end's naming: the control for a setting key, or None where it has none (the key is then named).
Naming = Callable[[str], str | None]
_naming: Naming | None = None


def control(key: str) -> str:
    """How the front end in use names the setting ``key`` (e.g. ``"data.download"``)."""
    name = _naming(key) if _naming is not None else None
    return name or setting_name(key)


def setting_name(key: str) -> str:
    """The setting as the engine's own settings name it: ``the data setting 'download'``."""
    section, _, name = key.partition(".")
    return f"the {section} setting {name!r}"


def use_naming(naming_: Naming | None) -> Naming | None:
    """Install a front end's naming (None: the engine's own); returns the one it replaces."""
    global _naming
    previous, _naming = _naming, naming_
    return previous


@contextmanager
def naming(naming_: Naming | None) -> Iterator[None]:
    """``naming_`` while the block runs (a command line's run), the previous naming after it."""
    previous = use_naming(naming_)
    try:
        yield
    finally:
        use_naming(previous)
