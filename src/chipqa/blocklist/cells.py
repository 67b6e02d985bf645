"""The cells of a blocklist row: which text may go in, how numbers and times are written.

Shared by the file format (:mod:`chipqa.blocklist.csvformat`) and the store
(:mod:`chipqa.blocklist.store`); plain functions on strings.
"""

from __future__ import annotations

import re
from datetime import datetime, timedelta, timezone

from chipqa.io.spreadsheet import needs_escape

_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]")
_TIME_FORMAT = "%Y-%m-%dT%H:%M:%S.%fZ"


def control_character(value: str) -> str | None:
    """The first control character in ``value`` (line ends, tab, other C0/C1), or None."""
    m = _CONTROL.search(value)
    return m.group() if m else None


def chip_id_problem(chip_id: str) -> str | None:
    """Why ``chip_id`` cannot be a blocklist row's chip id (None: it can)."""
    if not chip_id:
        return "empty chip_id"
    bad = control_character(chip_id)
    if bad is not None:
        return (
            f"chip id {chip_id!r} contains the control character {bad!r}, which would split its row"
        )
    if needs_escape(chip_id):
        return (
            f"chip id {chip_id!r} starts with {chip_id[0]!r}, which spreadsheets run as a "
            "formula, and a chip id is never altered in the blocklist"
        )
    return None


def clean_text(value: object) -> str:
    """Display text for a cell (flags, model): control characters become U+FFFD."""
    return _CONTROL.sub("\ufffd", str(value if value is not None else "")).strip()


def fmt_number(value: object) -> str:
    if value is None or value == "":
        return ""
    try:
        f = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return clean_text(value)
    return "" if f != f else f"{f:.6g}"


# -- times -----------------------------------------------------------------------
def now_utc() -> str:
    return datetime.now(timezone.utc).strftime(_TIME_FORMAT)


def parse_time(text: str) -> datetime | None:
    """``decided_at`` as an aware datetime (None: empty or not a time)."""
    if not text:
        return None
    try:
        t = datetime.fromisoformat(text)
    except ValueError:
        return None
    return t if t.tzinfo is not None else t.replace(tzinfo=timezone.utc)


def time_after(text: str) -> str:
    """A ``decided_at`` one microsecond after ``text`` (which must be a time)."""
    t = parse_time(text)
    assert t is not None
    return (t + timedelta(microseconds=1)).astimezone(timezone.utc).strftime(_TIME_FORMAT)
