"""The blocklist CSV format: its rows, the rules for reading them, and how cells are written.

The format is documented in ``labels/README.md``. In short: ``chip_id`` first, then the
decision (``keep``, ``block``, ``unsure``, ``fix`` or ``undone``), the reason, the flags
and numbers that were on screen, the model, who decided and when, the rule of a bulk
decision, and for a label fix the fix file and where the fixed label came from. A file
may hold several rows for one chip: the row with the later ``decided_at`` wins (equal or
missing times: the later row in the file). ``chip_id`` is taken exactly as written,
spaces included.

Text cells that a spreadsheet would run as a formula (starting with ``=``, ``+``, ``-``,
``@``, tab or CR, after any leading quotes) are written with a leading single quote, and
that quote is taken off again on reading, so every value reads back as it was decided.
``chip_id`` is never altered: a chip id that would need escaping, or that holds a control
character, is refused.

A file that the store appends to can end in a row cut short by a crash. A last line
without a line end is read only when it is whole (all its cells, and a complete
``decided_at``); otherwise it is a write that never finished and is left out.

This module is plain I/O (no review logic), so that the dataset reader can apply the
label fixes a blocklist records; :mod:`chipqa.blocklist.store` keeps the file.
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, fields
from datetime import datetime, timedelta, timezone
from pathlib import Path

from chipqa.errors import ChipqaError
from chipqa.io.spreadsheet import escape_cell, needs_escape, unescape_cell

DECISIONS = ("keep", "block", "unsure", "fix")
FIX = "fix"
"""Decision value of a label fix: the chip stays, with the label in ``fix_file``."""
FIX_SOURCES = ("model", "painted", "file")
"""Where a fixed label came from: a model's mask, painted in napari, or a file given."""
UNDONE = "undone"
"""Decision value of a row that records an undo; readers treat the chip as undecided."""

COLUMNS = (
    "chip_id",
    "decision",
    "reason",
    "flags",
    "suspicion",
    "iou",
    "label_cloud_fraction",
    "pred_cloud_fraction",
    "model",
    "reviewer",
    "decided_at",
    "rule",
    "fix_file",
    "fix_source",
)
NUMBER_COLUMNS = ("suspicion", "iou", "label_cloud_fraction", "pred_cloud_fraction")
TEXT_COLUMNS = ("reason", "flags", "model", "reviewer", "rule", "fix_file")
ESCAPED_COLUMNS = TEXT_COLUMNS + NUMBER_COLUMNS
"""Cells that get a leading quote when a spreadsheet would read them as a formula."""

_DECIDED_AT = COLUMNS.index("decided_at")
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]")
_TIME_FORMAT = "%Y-%m-%dT%H:%M:%S.%fZ"


class BlocklistError(ChipqaError):
    """A blocklist file cannot be read or written, or a value cannot go into it."""


@dataclass
class Decision:
    """One row of the blocklist."""

    chip_id: str
    decision: str
    reason: str = ""
    flags: str = ""
    suspicion: str = ""
    iou: str = ""
    label_cloud_fraction: str = ""
    pred_cloud_fraction: str = ""
    model: str = ""
    reviewer: str = ""
    decided_at: str = ""
    rule: str = ""
    fix_file: str = ""
    fix_source: str = ""

    def as_row(self) -> dict[str, str]:
        return {f.name: getattr(self, f.name) for f in fields(self)}


def fix_in_effect(d: Decision | None) -> str:
    """The fix file (relative to the dataset's fixes folder) that stands for the chip's
    label under decision ``d``, or ``""``: the label of a chip whose current row names a
    fix file. A ``fix`` row names one; a later ``keep``, ``block`` or ``unsure`` carries
    it on; an ``undone`` row (or an undo back past the fix) does not."""
    if d is None or d.decision == UNDONE:
        return ""
    return d.fix_file


def fix_file_problem(name: str) -> str | None:
    """Why ``name`` cannot be a ``fix_file`` cell (None: it can): it must be the plain
    name of a ``.tif`` file in the fixes folder, never a path that leads elsewhere."""
    if (
        not name.endswith(".tif")
        or name.startswith(".")
        or "/" in name
        or "\\" in name
        or control_character(name) is not None
    ):
        return (
            f"fix file {name!r} is not the plain name of a .tif file in the dataset's fixes folder"
        )
    return None


# -- cells -----------------------------------------------------------------------
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


def refuse_control(what: str, value: str) -> str:
    """``value``, or a :class:`BlocklistError` when it holds a control character."""
    bad = control_character(value)
    if bad is not None:
        raise BlocklistError(
            f"{what} {value!r} contains the control character {bad!r}; a blocklist row must "
            "stay on one line. Use plain text; no decision was recorded."
        )
    return value


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


def supersedes(new: Decision, old: Decision | None) -> bool:
    """Whether ``new``, read after ``old``, replaces it: the later ``decided_at`` wins;
    when a time is missing or both are equal, the later row (``new``) does."""
    if old is None:
        return True
    t_new, t_old = parse_time(new.decided_at), parse_time(old.decided_at)
    return not (t_new is not None and t_old is not None and t_old > t_new)


def resolve(rows: Iterable[Decision]) -> dict[str, Decision]:
    """One decision per chip from rows in file order (see :func:`supersedes`)."""
    out: dict[str, Decision] = {}
    for d in rows:
        if supersedes(d, out.get(d.chip_id)):
            out[d.chip_id] = d
    return out


# -- parsing ---------------------------------------------------------------------
@dataclass
class Chunk:
    """What :func:`parse_chunk` read: the rows in file order, the header, and how many
    bytes and lines of the chunk are whole (a torn last row is not)."""

    rows: list[Decision]
    header: list[str]
    used: int
    lines: int

    @property
    def canonical(self) -> bool:
        return tuple(self.header) == COLUMNS


def _decode(data: bytes, path: Path, start: bool) -> str:
    try:
        return data.decode("utf-8-sig" if start else "utf-8")
    except UnicodeDecodeError as exc:
        raise BlocklistError(
            f"blocklist {path} cannot be read ({exc}). Save it as UTF-8 text."
        ) from exc


def _whole_last_line(tail: bytes, header: list[str]) -> bool:
    """Whether a last line without a line end is a row to read, or the fragment of a
    write cut short by a crash (ignored by readers, cut off by the next writer).

    A line is read when it holds a usable chip id, a known decision and, where it has a
    ``decided_at`` cell, an empty one or a time: a row typed by hand in an editor that
    adds no final newline counts. A fragment of a row chipqa was writing fails one of
    these (a cut decision word or time, a cut UTF-8 character)."""
    try:
        cells = next(csv.reader([tail.decode("utf-8")]), [])
    except (UnicodeDecodeError, csv.Error):
        return False
    row = dict(zip(header, cells, strict=False))
    if chip_id_problem(row.get("chip_id", "")) is not None:
        return False
    decision = (row.get("decision") or "").strip()
    if "decision" in header and decision not in (*DECISIONS, UNDONE):
        return False
    when = (row.get("decided_at") or "").strip()
    if when and parse_time(when) is None:
        return False
    if tuple(header) != COLUMNS or len(cells) <= _DECIDED_AT + 1:
        return True  # typed by hand: a row ending at (or before) its time counts
    # chipqa writes every cell: a row with cells after its time is whole only with all
    # of them, and a fix file only with its (complete) source
    fix_file, source = row.get("fix_file", ""), row.get("fix_source", "")
    if len(cells) != len(COLUMNS):
        return False
    if fix_file or decision == FIX:
        return fix_file_problem(fix_file) is None and source in FIX_SOURCES
    return not source


def _row(cells: list[str], header: list[str], path: Path, lineno: int) -> Decision:
    row = dict(zip(header, cells, strict=False))
    chip_id = row.get("chip_id", "")
    problem = chip_id_problem(chip_id)
    if problem is not None:
        raise BlocklistError(f"{path}, line {lineno}: {problem}. Fix or delete that line.")
    decision = (row.get("decision") or "").strip() if "decision" in header else "block"
    if decision not in (*DECISIONS, UNDONE):
        raise BlocklistError(
            f"{path}, line {lineno}: decision {decision!r} for chip {chip_id!r} is not one of "
            f"{', '.join(DECISIONS)}. Fix or delete that line."
        )
    values = {c: (row.get(c) or "").strip() for c in COLUMNS[2:]}
    for c in ESCAPED_COLUMNS:
        values[c] = unescape_cell(values[c])
    fix_file = values["fix_file"]
    if fix_file or decision == FIX:
        problem = fix_file_problem(fix_file) if fix_file else "a fix row names no fix_file"
        if problem is not None:
            raise BlocklistError(
                f"{path}, line {lineno}: {problem} (chip {chip_id!r}). Fix or delete that line."
            )
    return Decision(chip_id=chip_id, decision=decision, **values)


def parse_chunk(
    data: bytes, path: Path, header: list[str] | None = None, first_line: int = 1
) -> Chunk:
    """Parse blocklist bytes that start at a line start.

    Args:
        data: the whole file (``header`` None: its first line is the header) or the bytes
            appended after a line end of a file whose header is ``header``.
        path: named in messages.
        first_line: the line number of the first line of ``data``.

    Raises:
        BlocklistError: not a blocklist, not UTF-8, not CSV, or a bad row (the message
            names the line).
    """
    end = data.rfind(b"\n") + 1
    body, tail = data[:end], data[end:]
    if header is None and not body:
        body, tail = data, b""  # a header without a line end (or nothing at all)
    text = _decode(body, path, start=header is None)
    if tail and _whole_last_line(tail, header or _first_line_header(text)):
        text += _decode(tail, path, start=False)
        body, tail = data, b""
    reader = csv.reader(io.StringIO(text))
    try:
        if header is None:
            header = [h.strip() for h in next(reader, [])]
            if header:
                header[0] = header[0].lstrip("\ufeff")
                if header[0] != "chip_id":
                    raise BlocklistError(
                        f"{path} is not a chipqa blocklist: its first column is "
                        f"{header[0]!r}, not 'chip_id'. Fix the header or choose another "
                        "blocklist file."
                    )
        rows = []
        start = reader.line_num  # a quoted cell may span lines: name the row's first
        for cells in reader:
            if cells:
                rows.append(_row(cells, header, path, first_line + start))
            start = reader.line_num
    except csv.Error as exc:
        raise BlocklistError(
            f"{path} is not valid CSV ({exc}). Fix it or choose another file."
        ) from exc
    return Chunk(rows, header, len(body), body.count(b"\n"))


def _first_line_header(text: str) -> list[str]:
    first = next(csv.reader(io.StringIO(text)), [])
    return [h.strip() for h in first]


def parse_blocklist(text: str, path: str | Path) -> dict[str, Decision]:
    """Parse blocklist CSV text: one decision per chip, ``undone`` rows included.

    Raises:
        BlocklistError: naming the line at fault.
    """
    return resolve(parse_chunk(text.encode("utf-8"), Path(path)).rows)


def read_rows(path: str | Path, *, missing_ok: bool = False) -> dict[str, Decision]:
    """Every chip's latest row, ``undone`` ones included."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except FileNotFoundError as exc:
        if missing_ok:
            return {}
        raise BlocklistError(
            f"blocklist {path} does not exist. Check the path: without the file no chip "
            "would be left out. To use no blocklist, do not give one."
        ) from exc
    except OSError as exc:
        raise BlocklistError(f"blocklist {path} cannot be read ({exc})") from exc
    return resolve(parse_chunk(data, path).rows)


def read_blocklist(path: str | Path, *, missing_ok: bool = False) -> dict[str, Decision]:
    """Read a blocklist CSV: the current decision per chip (undone chips left out).

    Args:
        path: the CSV.
        missing_ok: a missing file is an empty blocklist. By default it is an error, so
            that a mistyped path never means "no chip is blocked".

    Raises:
        BlocklistError: the file is missing (unless ``missing_ok``), unreadable, or not a
            blocklist; the message names the file and the line.
    """
    return {k: d for k, d in read_rows(path, missing_ok=missing_ok).items() if d.decision != UNDONE}


def blocked_ids(path: str | Path, *, missing_ok: bool = False) -> list[str]:
    """Chip ids whose decision is ``block`` (what training leaves out).

    Raises:
        BlocklistError: as :func:`read_blocklist`; a missing file is an error unless
            ``missing_ok``.
    """
    rows = read_blocklist(path, missing_ok=missing_ok)
    return [d.chip_id for d in rows.values() if d.decision == "block"]


# -- writing ---------------------------------------------------------------------
_ESCAPED_AT = tuple(i for i, c in enumerate(COLUMNS) if c in ESCAPED_COLUMNS)
_MAY_NEED_ESCAPE = frozenset("=+-@\t\r'")
"""First characters of the cells :func:`escape_cell` may change (a quick test first)."""


def _cells(d: Decision) -> list[str]:
    cells = [getattr(d, c) for c in COLUMNS]
    for i in _ESCAPED_AT:
        v = cells[i]
        if v and v[0] in _MAY_NEED_ESCAPE:
            cells[i] = escape_cell(v)
    return cells


def render_row(d: Decision) -> bytes:
    """One row, with its line end, as it goes into the file."""
    return render_rows([d])


def render_rows(rows: Iterable[Decision]) -> bytes:
    """Rows, each with its line end, as they go into the file."""
    buf = io.StringIO()
    csv.writer(buf, lineterminator="\n").writerows(_cells(d) for d in rows)
    return buf.getvalue().encode("utf-8")


def render(decisions: Mapping[str, Decision], only: str | None = None) -> str:
    """A whole blocklist file: the header, then one row per decision (``only``: of that
    decision only)."""
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(COLUMNS)
    for d in decisions.values():
        if only is None or d.decision == only:
            w.writerow(_cells(d))
    return buf.getvalue()
