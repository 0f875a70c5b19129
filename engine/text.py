"""Text for people: the engine's messages as sentences, and user text made safe to print on a terminal.

A design's name, a file name or a message quoting them may hold control characters: an ANSI escape
can recolour or rewrite the terminal, a carriage return can hide the text before it, bidirectional
overrides can reorder what is shown, and a lone surrogate (from an undecodable file name) cannot be
encoded at all. ``printable`` writes each such character as a visible escape, the rest unchanged.
"""
from __future__ import annotations

import re
import unicodedata

# Bidirectional controls (embeddings, overrides, isolates, marks): invisible, they reorder the text around them.
BIDI_CONTROLS = frozenset("\u061c\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")


def printable(text: str, keep_newlines: bool = False) -> str:
    """``text`` with control characters, bidirectional controls and lone surrogates written as escapes
    (``\\x1b``, ``\\u202e``, ``\\udcff``); newlines kept when ``keep_newlines`` (a multi-line report)."""
    text = str(text)
    if text.isprintable():  # the common case: nothing to escape
        return text
    return "".join(_escape(char, keep_newlines) for char in text)


def _escape(char: str, keep_newlines: bool) -> str:
    if char == "\n" and keep_newlines:
        return char
    if char in BIDI_CONTROLS or unicodedata.category(char) in ("Cc", "Cs"):
        code = ord(char)
        return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"
    return char


def sentence(text: str) -> str:
    """An engine message as a sentence: a capital first letter (unless it starts with a file name or a path,
    kept as written) and, for a one-line message, a final full stop. The one place messages are shaped for
    display, so the window and the command line read alike."""
    text = str(text).strip()
    if not re.match(r"\S*([/\\]|\.\w)", text):  # a first word like notes.txt or C:\\data stays as written
        text = text[:1].upper() + text[1:]
    if not text or "\n" in text or text.endswith((".", "!", "?", ":")):
        return text
    return text + "."


# --------------------------------------------------------------------------- figures, written one way everywhere

MISSING = "—"  # a figure a run or trial does not have (no validation set, still running, failed before it started)


def percent_text(value: float | None) -> str:
    """A fraction as a percentage with two decimals (``91.20%``), ``MISSING`` for none."""
    return MISSING if value is None else f"{100 * value:.2f}%"


def duration_text(seconds: float | None) -> str:
    """An elapsed time: ``42.1 s``, ``12 min 05 s``, ``3 h 02 min``; ``MISSING`` for none."""
    if seconds is None:
        return MISSING
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, secs = divmod(round(seconds), 60)
    return f"{minutes} min {secs:02d} s" if minutes < 60 else f"{minutes // 60} h {minutes % 60:02d} min"

