"""Cells that are safe to open in a spreadsheet, and read back exactly.

A CSV cell starting with ``=``, ``+``, ``-``, ``@``, a tab or a carriage return is read
by Excel, LibreOffice and Google Sheets as a formula, which can run commands or send
data away (CSV injection). As OWASP recommends, chipqa writes such a text cell with a
leading single quote (``=1+1`` → ``'=1+1``), which spreadsheets show as text, and its
readers strip that quote again. Numbers, negative ones included, are written as they
are. To keep the escaping reversible, a text cell that already starts with a quote
followed by one of those characters (or another quote) gets one more quote.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable

import pandas as pd

FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
"""Characters that make a spreadsheet read a cell as a formula when they start it."""

ESCAPE = "'"

_NUMBER = re.compile(r"^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$")


def is_number_text(text: str) -> bool:
    """True when ``text`` is a plain decimal number such as ``-12.5`` or ``+3e4``."""
    return bool(_NUMBER.match(text))


def needs_escape(text: str) -> bool:
    """True when a text cell would be read as a formula (or starts like an escaped one)."""
    if not text or is_number_text(text):
        return False
    if text.startswith(FORMULA_START):
        return True
    return text[0] == ESCAPE and len(text) > 1 and text[1] in (*FORMULA_START, ESCAPE)


def escape_cell(value):
    """``value`` as written to a CSV meant for spreadsheets (non-text values unchanged)."""
    if isinstance(value, str) and needs_escape(value):
        return ESCAPE + value
    return value


def unescape_cell(value):
    """The original of a cell written by :func:`escape_cell` (other values unchanged)."""
    if isinstance(value, str) and len(value) > 1 and value[0] == ESCAPE and needs_escape(value[1:]):
        return value[1:]
    return value


def _text_columns(df: pd.DataFrame, skip: Iterable[str]) -> list[str]:
    skip = set(skip)
    return [
        c
        for c in df.columns
        if c not in skip and (df[c].dtype == object or pd.api.types.is_string_dtype(df[c]))
    ]


def escape_frame(df: pd.DataFrame, skip: Iterable[str] = ()) -> pd.DataFrame:
    """A copy of ``df`` with every text cell escaped (columns in ``skip`` left as they are)."""
    out = df.copy()
    for c in _text_columns(out, skip):
        out[c] = out[c].map(escape_cell)
    return out


def unescape_frame(df: pd.DataFrame, skip: Iterable[str] = ()) -> pd.DataFrame:
    """Undo :func:`escape_frame` in place on the text columns of ``df``; returns ``df``."""
    for c in _text_columns(df, skip):
        df[c] = df[c].map(unescape_cell)
    return df


def control_characters(text: str) -> list[str]:
    """The control and line-breaking characters in ``text`` (``\\n``, ``\\r``, ``\\t``,
    NUL, U+2028 …), each once, as ``repr`` would show them."""
    found = []
    for ch in text:
        if unicodedata.category(ch) in ("Cc", "Zl", "Zp") and repr(ch) not in found:
            found.append(repr(ch))
    return found
