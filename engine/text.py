"""User text made safe to print on a terminal.

A design's name, a file name or a message quoting them may hold control characters: an ANSI escape
can recolour or rewrite the terminal, a carriage return can hide the text before it, bidirectional
overrides can reorder what is shown, and a lone surrogate (from an undecodable file name) cannot be
encoded at all. ``printable`` writes each such character as a visible escape, the rest unchanged.
"""
from __future__ import annotations

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
