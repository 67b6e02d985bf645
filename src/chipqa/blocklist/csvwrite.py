"""Writing blocklist rows: cells escaped for spreadsheets, the header with a user's own
columns after chipqa's (the rules are in :mod:`chipqa.blocklist.csvformat` and
``labels/README.md``)."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Mapping, Sequence

from chipqa.blocklist.csvformat import COLUMNS, ESCAPED_COLUMNS, Decision
from chipqa.io.spreadsheet import escape_cell

_ESCAPED_AT = tuple(i for i, c in enumerate(COLUMNS) if c in ESCAPED_COLUMNS)
_MAY_NEED_ESCAPE = frozenset("=+-@\t\r'")
"""First characters of the cells :func:`escape_cell` may change (a quick test first)."""


def _escaped(v: str) -> str:
    return escape_cell(v) if v and v[0] in _MAY_NEED_ESCAPE else v


def _cells(d: Decision, extra: Sequence[str]) -> list[str]:
    cells = [getattr(d, c) for c in COLUMNS]
    for i in _ESCAPED_AT:
        cells[i] = _escaped(cells[i])
    cells.extend(_escaped(d.extra.get(name, "")) for name in extra)
    return cells


def header_for(rows: Iterable[Decision]) -> list[str]:
    """The header a file of ``rows`` gets: chipqa's columns, then the extra columns the
    rows have, in the order they first appear."""
    extra: dict[str, None] = {}
    for d in rows:
        if d.extra:
            extra.update(dict.fromkeys(d.extra))
    return [*COLUMNS, *extra]


def render_rows(rows: Iterable[Decision], header: Sequence[str] = COLUMNS) -> bytes:
    """Rows, each with its line end, as they go into a file with ``header`` (chipqa's
    columns first, then extra ones)."""
    extra = header[len(COLUMNS) :]
    buf = io.StringIO()
    csv.writer(buf, lineterminator="\n").writerows(_cells(d, extra) for d in rows)
    return buf.getvalue().encode("utf-8")


def render_row(d: Decision) -> bytes:
    """One row, with its line end, as it goes into a file with chipqa's header."""
    return render_rows([d])


def render(decisions: Mapping[str, Decision], only: str | None = None) -> str:
    """A whole blocklist file: the header (with the rows' extra columns), then one row per
    decision (``only``: of that decision only)."""
    rows = [d for d in decisions.values() if only is None or d.decision == only]
    header = header_for(rows)
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(header)
    w.writerows(_cells(d, header[len(COLUMNS) :]) for d in rows)
    return buf.getvalue()
