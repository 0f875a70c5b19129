"""Files in and out, one way for every kind (designs, weights, checkpoints, caches, exported code).

- ``write_atomically``: a temp file next to the target, flushed to disk, then ``os.replace``: a crash,
  a kill or a full disk leaves the previous file whole, never half a file.
- ``check_output_path``: what a save will need (a known suffix, an existing writable folder, not a
  folder itself), checked before any long work starts, so a typo never costs a trained model.
- ``read_bytes`` / ``read_text`` / ``read_json_object``: refuse what cannot be a file of that kind
  (a folder, a FIFO, a device such as /dev/zero, a file larger than the kind allows, text that is
  not UTF-8, JSON nested too deep or holding NaN) with one sentence, never a traceback or a hang.

Every function takes the project error type to raise (``error=``), so each caller keeps its own
(a design is a SpecError, a weights file a WeightsError).
"""
from __future__ import annotations

import json
import math
import os
import secrets
import stat
from collections.abc import Callable
from pathlib import Path
from typing import Any, BinaryIO

from engine.errors import LayerStudioError

ErrorType = type[LayerStudioError]
_TEMP_ATTEMPTS = 100
MAX_INTEGER_DIGITS = 100  # longer whole numbers in a file are refused, never converted
MAX_JSON_DEPTH = 100  # lists and objects nested deeper are refused (a design nests about five deep)


# --------------------------------------------------------------------------- writing

def write_atomically(path: str | os.PathLike, write: Callable[[BinaryIO], object], what: str,
                     error: ErrorType = LayerStudioError, make_folder: bool = False) -> None:
    """Write ``path`` through ``write(file)`` into a temp file beside it, then replace it in one step.

    The temp file is created with mode 0o666 so the OS applies the user's umask exactly as ``open``
    would (no process-wide umask read, and no ``os.fchmod``, which Windows lacks). A missing parent
    folder is an error (a path the user typed) unless ``make_folder`` (the app's own folders).
    Raises ``error`` with the OS reason; the previous file stays unchanged.
    """
    path = Path(path)
    if path.is_dir():
        raise error(f"{path} is a folder: give a file name for the {what}")
    if make_folder:
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise error(f"Cannot create the folder {path.parent} for the {what} ({_reason(exc)})") from None
    elif not path.parent.is_dir():
        raise error(f"Cannot write the {what} to {path}: the folder {path.parent} does not exist; create it or "
                    "choose another folder")
    try:
        fd, temp = _create_temp(path)
    except OSError as exc:
        raise error(f"Cannot write the {what} to {path.parent} ({_reason(exc)}): choose another folder") from None
    try:
        with os.fdopen(fd, "wb") as file:
            write(file)
            file.flush()
            os.fsync(file.fileno())
        os.replace(temp, path)
    except BaseException as exc:
        try:
            os.unlink(temp)
        except OSError:
            pass
        if isinstance(exc, (OSError, RuntimeError)):  # torch wraps the file's OSError in a RuntimeError
            raise error(f"Could not write the {what} to {path} ({_reason(exc)}); any previous file there "
                        "is unchanged") from exc
        raise


def write_text_atomically(path: str | os.PathLike, text: str, what: str, error: ErrorType = LayerStudioError,
                          make_folder: bool = False) -> None:
    """``write_atomically`` for UTF-8 text."""
    data = text.encode("utf-8")
    write_atomically(path, lambda file: file.write(data), what, error, make_folder)


def _create_temp(path: Path) -> tuple[int, str]:
    for _ in range(_TEMP_ATTEMPTS):
        temp = str(path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp"))
        try:
            return os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0), 0o666), temp
        except FileExistsError:
            continue
    raise FileExistsError(f"no free temporary name beside {path}")


def _reason(exc: BaseException) -> str:
    """The OS reason behind a failure, looking through wrapping exceptions; else its first line."""
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, OSError) and seen.strerror:
            return seen.strerror
        seen = seen.__cause__ or seen.__context__
    if isinstance(exc, RuntimeError):
        return "the write failed; is the disk full?"
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def check_output_path(path: str | os.PathLike, suffixes: tuple[str, ...], what: str,
                      error: ErrorType = LayerStudioError) -> Path:
    """The path a save will write, checked now: a known suffix, not a folder, an existing writable folder."""
    path = Path(path).expanduser()
    if path.is_dir():
        raise error(f"{path} is a folder: give a file name for the {what}, e.g. {path / ('model' + suffixes[0])}")
    if path.suffix.lower() not in suffixes:
        raise error(f"Cannot tell the format of {path.name!r} from its suffix: name the {what} "
                    f"{' or '.join(suffixes)}")
    folder = path.parent if str(path.parent) else Path(".")
    if not folder.is_dir():
        raise error(f"Cannot write {path}: the folder {folder} does not exist; create it or choose another path")
    if not os.access(folder, os.W_OK | os.X_OK):
        raise error(f"Cannot write {path}: the folder {folder} is not writable; choose another folder")
    if path.exists() and not os.access(path, os.W_OK):
        raise error(f"Cannot write {path}: the file is read-only; choose another name")
    return path


# --------------------------------------------------------------------------- reading

def read_bytes(path: str | os.PathLike, what: str, limit: int, error: ErrorType = LayerStudioError) -> bytes:
    """The bytes of a regular file of at most ``limit`` bytes; ``error`` for anything else.

    The type and size are checked before the file is opened, so a FIFO or a device never blocks
    or streams forever; the read itself stops one byte past the limit (a file still growing).
    """
    path = Path(path)
    info = file_info(path, what, error)
    if info.st_size > limit:
        raise error(f"{path} is {_megabytes(info.st_size)}, too large to be a {what} (the limit is "
                    f"{_megabytes(limit)}): choose the right file")
    try:
        with open(path, "rb") as file:
            data = file.read(limit + 1)
    except OSError as exc:
        raise error(f"Cannot read {path} ({_reason(exc)}): check the file and its permissions") from None
    if len(data) > limit:
        raise error(f"{path} is too large to be a {what} (the limit is {_megabytes(limit)}): choose the right file")
    return data


def file_info(path: Path, what: str, error: ErrorType = LayerStudioError) -> os.stat_result:
    """``os.stat`` of an existing regular file; ``error`` naming what it is instead."""
    try:
        info = os.stat(path)
    except FileNotFoundError:
        raise error(f"{path} does not exist: check the path") from None
    except OSError as exc:
        raise error(f"Cannot read {path} ({_reason(exc)}): check the path and its permissions") from None
    if stat.S_ISDIR(info.st_mode):
        raise error(f"{path} is a folder, not a {what} file: choose a file")
    if not stat.S_ISREG(info.st_mode):
        kind = "a pipe (FIFO)" if stat.S_ISFIFO(info.st_mode) else "a device or special file"
        raise error(f"{path} is {kind}, not a {what} file: choose a regular file")
    return info


def read_text(path: str | os.PathLike, what: str, limit: int, error: ErrorType = LayerStudioError) -> str:
    """A regular file's UTF-8 text (a byte-order mark is dropped); ``error`` when it is not UTF-8."""
    data = read_bytes(path, what, limit, error)
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise error(f"{Path(path).name} is not UTF-8 text (byte {exc.start} cannot be read): save the {what} "
                    "as UTF-8") from None


def parse_json(text: str, what: str, error: ErrorType = LayerStudioError, name: str = "") -> Any:
    """JSON text as Python data; one sentence for bad JSON, nesting too deep, numbers too long, NaN/Infinity
    or text that is not valid Unicode (a lone surrogate such as ``"\\ud800"``, which cannot be written back).

    ``name`` (a file name, kept as written) starts the sentence when given."""
    def refuse_constant(token: str):
        raise ValueError(f"{token} is not a number JSON allows")

    def finite_float(token: str) -> float:
        value = float(token)
        if value in (math.inf, -math.inf):
            raise ValueError(f"the number {token[:20]} is too large")
        return value

    def short_int(token: str) -> int:
        if len(token) > MAX_INTEGER_DIGITS:
            raise ValueError(f"a whole number has {len(token)} digits (at most {MAX_INTEGER_DIGITS} are read)")
        return int(token)

    def sentence(text: str) -> str:
        return f"{name} {text}" if name else text[:1].upper() + text[1:]

    try:
        data = json.loads(text, parse_constant=refuse_constant, parse_float=finite_float, parse_int=short_int)
        _check_plain_json(data)
    except json.JSONDecodeError as exc:
        raise error(sentence(f"is not valid JSON (line {exc.lineno}, column {exc.colno}: {exc.msg}): fix the "
                             f"{what} or save it again")) from None
    except (RecursionError, _TooDeepError):
        raise error(sentence(f"nests lists or objects more than {MAX_JSON_DEPTH} deep, too deep to be a "
                             f"{what}")) from None
    except (ValueError, OverflowError) as exc:  # e.g. an integer of 5000 digits, NaN, a lone surrogate
        raise error(sentence(f"cannot be read as a {what}: {exc}")) from None
    return data


class _TooDeepError(Exception):
    """Internal: JSON data nested deeper than MAX_JSON_DEPTH."""


def _check_plain_json(data: Any) -> None:
    """Refuse nesting deeper than MAX_JSON_DEPTH and strings (values or keys) holding lone surrogates.

    Iterative, so the check itself cannot overflow the stack; the depth limit lets every later
    reader (repr in a message, a recursive walk) handle the data without a RecursionError."""
    stack: list[tuple[Any, int]] = [(data, 1)]
    while stack:
        value, depth = stack.pop()
        if isinstance(value, str):
            _check_unicode(value)
        elif isinstance(value, (dict, list)):
            if depth > MAX_JSON_DEPTH:
                raise _TooDeepError
            if isinstance(value, dict):
                for key in value:
                    _check_unicode(key)
                value = value.values()
            stack.extend((item, depth + 1) for item in value)


def _check_unicode(text: str) -> None:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise ValueError(f"it holds text that is not valid Unicode (a lone surrogate "
                         f"\\u{ord(text[exc.start]):04x} at character {exc.start + 1} of a string)") from None


def read_json_object(path: str | os.PathLike, what: str, limit: int, error: ErrorType = LayerStudioError) -> dict:
    """A JSON file whose top level is an object, read with every check of ``read_text`` and ``parse_json``."""
    path = Path(path)
    data = parse_json(read_text(path, what, limit, error), what, error, path.name)
    if not isinstance(data, dict):
        raise error(f"{path.name} must hold a JSON object (a {what}), got {type(data).__name__}")
    return data


def _megabytes(size: int) -> str:
    return f"{size / 1e6:.1f} MB" if size < 1e9 else f"{size / 1e9:.1f} GB"
