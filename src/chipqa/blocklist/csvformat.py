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
import difflib
import itertools
import os
from collections.abc import Container, Iterable
from dataclasses import dataclass, field
from pathlib import Path

from chipqa.blocklist.cells import chip_id_problem, control_character, parse_time
from chipqa.errors import ChipqaError
from chipqa.io.chunked import FileBytes, Lines
from chipqa.io.spreadsheet import unescape_cell

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


class BlocklistError(ChipqaError):
    """A blocklist file cannot be read or written, or a value cannot go into it."""


@dataclass(slots=True)
class Decision:
    """One row of the blocklist. ``extra``: the cells of columns chipqa does not know (a
    user's ``notes``), by column name; they are written back and carried on to the
    chip's later rows."""

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
    extra: dict[str, str] = field(default_factory=dict)

    def as_row(self) -> dict[str, str]:
        """The row by column name, the extra columns included."""
        row = {c: getattr(self, c) for c in COLUMNS}
        row.update(self.extra)
        return row

    def copy(self) -> Decision:
        return Decision(*(getattr(self, c) for c in COLUMNS), extra=dict(self.extra))


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


def refuse_control(what: str, value: str) -> str:
    """``value``, or a :class:`BlocklistError` when it holds a control character."""
    bad = control_character(value)
    if bad is not None:
        raise BlocklistError(
            f"{what} {value!r} contains the control character {bad!r}; a blocklist row must "
            "stay on one line. Use plain text; no decision was recorded."
        )
    return value


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
_KNOWN = frozenset(COLUMNS)
_VALID_DECISIONS = frozenset((*DECISIONS, UNDONE))
_ESCAPED_VALUES = frozenset(COLUMNS[1:].index(c) for c in ESCAPED_COLUMNS)
_CHECK_ID = frozenset(("", "=", "+", "-", "@", "'"))
"""A chip id starting so (or empty) gets the full :func:`chip_id_problem` check."""
_QUICK_DECISIONS = _VALID_DECISIONS - {FIX}
"""Decisions a row may hold without a closer look (a fix row's file is checked)."""
_TIME_CHARS = frozenset("0123456789-T:.Z+ ")


@dataclass
class Chunk:
    """What :func:`parse_chunk` read: each chip's row that wins (see :func:`supersedes`),
    in the order chips first appear; how many rows there were; the header; and how many
    bytes and lines of the chunk are whole (a torn last row is not)."""

    latest: dict[str, Decision]
    n_rows: int
    header: list[str]
    used: int
    lines: int
    blocked_outside: set[str] = field(default_factory=set)
    """With ``only``: the other chips whose last row in the file is a block."""


def header_problem(header: list[str]) -> str | None:
    """Why a blocklist cannot have this header (None: it can). ``chip_id`` comes first;
    every column has a name, once; a name chipqa does not know is a column of the
    user's own, kept as it is, unless it looks like one of chipqa's (other capitals, a
    typo: ``Decision``, ``decison``), which would silently change what the rows mean."""
    if header[0] != "chip_id":
        return f"its first column is {header[0]!r}, not 'chip_id'"
    seen: set[str] = set()
    for i, name in enumerate(header, start=1):
        if not name:
            return (
                f"column {i} of its header has no name; name it (a name chipqa does not use "
                "is kept as your own column) or delete the column"
            )
        if name in seen:
            return f"its header names column {name!r} twice"
        seen.add(name)
        if name in _KNOWN:
            continue
        like = difflib.get_close_matches(name.lower().replace(" ", "_"), COLUMNS, n=1, cutoff=0.8)
        if like:
            return (
                f"its header has a column {name!r}, which is not a chipqa column but looks "
                f"like {like[0]!r}; chipqa would keep it as a column of your own and "
                f"{'read every row as a block' if like[0] == 'decision' else 'ignore it'}. "
                f"Rename it to {like[0]!r} (chipqa's column names are lower case, as in "
                "labels/README.md) or to a name of your own"
            )
    return None


@dataclass
class _Layout:
    """Where each column is in a file's rows."""

    at: dict[str, int]
    extra: list[tuple[str, int]]
    decision: int | None
    time: int | None
    fix_file: int | None
    values: list[int | None]
    """Where the cells of ``decision`` and the columns after it are."""

    @classmethod
    def of(cls, header: list[str]) -> _Layout:
        at = {c: i for i, c in enumerate(header) if c in _KNOWN}
        extra = [(c, i) for i, c in enumerate(header) if c not in _KNOWN]
        values = [at.get(c) for c in COLUMNS[1:]]
        return cls(at, extra, at.get("decision"), at.get("decided_at"), at.get("fix_file"), values)


def _cell(cells: list[str], i: int | None) -> str:
    return cells[i] if i is not None and i < len(cells) else ""


def _first(line_num: int, cells: list[str], first_line: int) -> int:
    """The line number of a row that ended on the reader's line ``line_num`` (where a
    quoted cell spanning lines starts)."""
    return first_line + line_num - 1 - sum(c.count("\n") for c in cells)


def _time_wins(new: str, old: str) -> bool:
    """:func:`supersedes` on two ``decided_at`` cells: string order for chipqa's own
    fixed-width UTC times (most rows), parsed times otherwise."""
    if len(new) == len(old) == 27 and new[-1] == old[-1] == "Z" and new[10] == old[10] == "T":
        return new >= old
    t_new, t_old = parse_time(new.strip()), parse_time(old.strip())
    return not (t_new is not None and t_old is not None and t_old > t_new)


def _tail_is_torn(tail: bytes, header: list[str]) -> bool:
    """Whether a last line without a line end is a write cut short by a crash (left out
    by readers, cut off by the next writer) rather than a row (read, and refused loudly
    when it is not a valid one, as with a line end).

    A row is torn only when it cannot be whole: a cut UTF-8 character or quoted cell,
    a chipqa row without all its cells, or a last cell that is the beginning of a
    decision or a time. ``bfua,Block`` is a row (and an error); ``bfua,blo`` is torn."""
    try:
        text = tail.decode("utf-8")
    except UnicodeDecodeError as exc:
        return exc.reason == "unexpected end of data"
    if text.count('"') % 2:
        return True
    cells = next(csv.reader([text]), [])
    lay = _Layout.of(header)
    last = len(cells) - 1
    if lay.time is not None and lay.time < last < len(header) - 1:
        return True  # chipqa writes every cell: a row ending after its time is cut
    if last == len(header) - 1 and (
        _cell(cells, lay.fix_file) or _cell(cells, lay.decision) == FIX
    ):
        source = _cell(cells, lay.at.get("fix_source"))
        return source not in FIX_SOURCES and any(s.startswith(source) for s in FIX_SOURCES)
    decision = _cell(cells, lay.decision).strip()
    if lay.decision is not None and decision not in _VALID_DECISIONS:
        return lay.decision >= last and any(v.startswith(decision) for v in _VALID_DECISIONS)
    when = _cell(cells, lay.time).strip()
    if when and parse_time(when) is None and lay.time == last:
        return set(when) <= _TIME_CHARS
    return False


def _decode(data: bytes, path: Path) -> str:
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise BlocklistError(
            f"blocklist {path} cannot be read ({exc}). Save it as UTF-8 text."
        ) from exc


def _error(path: Path, lineno: int, problem: str) -> BlocklistError:
    return BlocklistError(f"{path}, line {lineno}: {problem}. Fix or delete that line.")


def _check_row(cells: list[str], lay: _Layout, path: Path, lineno: int) -> None:
    """The checks every row passes (chip ids are checked once per chip, in :func:`_make`)."""
    if lay.decision is not None:
        decision = _cell(cells, lay.decision).strip()
        if decision not in _VALID_DECISIONS:
            raise _error(
                path,
                lineno,
                f"decision {decision!r} for chip {cells[0]!r} is not one of "
                f"{', '.join(DECISIONS)} (lower case)",
            )
    else:
        decision = "block"
    fix_file = unescape_cell(_cell(cells, lay.fix_file).strip())
    if fix_file or decision == FIX:
        problem = fix_file_problem(fix_file) if fix_file else "a fix row names no fix_file"
        if problem is not None:
            raise _error(path, lineno, f"{problem} (chip {cells[0]!r})")


def _make(cells: list[str], lay: _Layout, path: Path, first_line: int, end: int) -> Decision:
    """The :class:`Decision` of a row that passed :func:`_check_row` (and ended on the
    reader's line ``end``)."""
    chip_id = cells[0]
    if not (chip_id.isprintable() and chip_id[:1] not in _CHECK_ID):  # else: look closer
        problem = chip_id_problem(chip_id)
        if problem is not None:
            raise _error(path, _first(end, cells, first_line), problem)
    k = len(cells)
    values = [cells[i].strip() if i is not None and i < k else "" for i in lay.values]
    for j, v in enumerate(values):
        if v[:1] == "'" and j in _ESCAPED_VALUES:
            values[j] = unescape_cell(v)
    decision = values.pop(0) if lay.decision is not None else "block"
    if lay.decision is None:
        values.pop(0)
    extra = {name: unescape_cell(_cell(cells, i)) for name, i in lay.extra}
    return Decision(chip_id, decision, *values, extra=extra)


def parse_chunk(
    data: bytes | FileBytes,
    path: Path,
    header: list[str] | None = None,
    first_line: int = 1,
    only: Container[str] | None = None,
) -> Chunk:
    """Parse blocklist bytes that start at a line start.

    Every row is checked, but only each chip's winning row becomes a :class:`Decision`,
    so a file of a million rows costs about a second and little memory.

    Args:
        data: the whole file (``header`` None: its first line is the header) or the bytes
            appended after a line end of a file whose header is ``header``; a
            :class:`FileBytes` reads it from the file as it goes.
        path: named in messages.
        first_line: the line number of the first line of ``data``.
        only: keep the rows of these chips only (a dataset's, for a reader); ``n_rows``
            still counts every row, and ``blocked_outside`` names the other chips whose
            last row in the file is a block.

    Raises:
        BlocklistError: not a blocklist, not UTF-8, not CSV, a header chipqa would
            misread, or a bad row (the message names the line).
    """
    size = len(data)
    end = data.rfind(b"\n") + 1
    if header is None and end == 0:
        end = size  # a header without a line end (or nothing at all)
    tail = bytes(data[end:])
    lines = Lines(data, end, "utf-8-sig" if header is None else "utf-8")
    last: list[str] = []  # the tail, when it is a row (chain takes it in lazily)
    try:
        reader = csv.reader(itertools.chain(lines, last))
        if header is None:
            header = [h.strip() for h in next(reader, [])]
            if header:
                problem = header_problem(header)
                if problem is not None:
                    raise BlocklistError(
                        f"{path} is not a blocklist chipqa can read: {problem}. Fix the "
                        "header or choose another blocklist file; nothing was changed."
                    )
        if tail and not _tail_is_torn(tail, header):
            last.append(_decode(tail, path))
            end = size
        lay = _Layout.of(header)
        latest: dict[str, tuple[list[str], int]] = {}
        outside: set[str] = set()
        n = 0
        t, d_at, f_at = lay.time, lay.decision, lay.fix_file
        quick = _QUICK_DECISIONS
        for cells in reader:
            k = len(cells)
            if not k:
                continue
            n += 1
            if (d_at is not None and (cells[d_at] if d_at < k else "") not in quick) or (
                f_at is not None and f_at < k and cells[f_at]
            ):
                _check_row(
                    cells, lay, path, _first(reader.line_num, cells, first_line)
                )  # look closer
            cid = cells[0]
            if only is not None and cid not in only:
                if d_at is None or cells[d_at] == "block":
                    outside.add(cid)
                else:
                    outside.discard(cid)
                continue
            old = latest.get(cid)
            if old is not None and t is not None:
                new_t = cells[t] if t < k else ""
                old_t = old[0][t] if t < len(old[0]) else ""
                if not _time_wins(new_t, old_t):
                    continue
            latest[cid] = (cells, reader.line_num)
    except csv.Error as exc:
        raise BlocklistError(
            f"{path} is not valid CSV ({exc}). Fix it or choose another file."
        ) from exc
    except UnicodeDecodeError as exc:
        raise BlocklistError(
            f"blocklist {path} cannot be read ({exc}). Save it as UTF-8 text."
        ) from exc
    rows = {cid: _make(cells, lay, path, first_line, end) for cid, (cells, end) in latest.items()}
    return Chunk(rows, n, header or [], end, lines.count, outside)


def parse_blocklist(text: str, path: str | Path) -> dict[str, Decision]:
    """Parse blocklist CSV text: one decision per chip, ``undone`` rows included.

    Raises:
        BlocklistError: naming the line at fault.
    """
    return parse_chunk(text.encode("utf-8"), Path(path)).latest


def read_chunk(
    path: str | Path, *, missing_ok: bool = False, only: Container[str] | None = None
) -> Chunk:
    """Read a blocklist file (see :func:`parse_chunk`; a missing file is an empty one
    with ``missing_ok``)."""
    path = Path(path)
    try:
        with open(path, "rb") as f:
            data = FileBytes(f.fileno(), 0, os.fstat(f.fileno()).st_size)
            return parse_chunk(data, path, only=only)
    except FileNotFoundError as exc:
        if missing_ok:
            return Chunk({}, 0, [], 0, 0)
        raise BlocklistError(
            f"blocklist {path} does not exist. Check the path: without the file no chip "
            "would be left out. To use no blocklist, do not give one."
        ) from exc
    except OSError as exc:
        raise BlocklistError(f"blocklist {path} cannot be read ({exc})") from exc


def read_rows(
    path: str | Path, *, missing_ok: bool = False, only: Container[str] | None = None
) -> dict[str, Decision]:
    """Every chip's latest row, ``undone`` ones included (``only``: of these chips; every
    row is still checked)."""
    return read_chunk(path, missing_ok=missing_ok, only=only).latest


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
