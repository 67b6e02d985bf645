"""Reading a blocklist CSV (the rules are in :mod:`chipqa.blocklist.csvformat` and
``labels/README.md``): every row checked, one :class:`Decision` per chip, a torn last
row told from a row typed without a line end, a large file streamed."""

from __future__ import annotations

import csv
import gc
import itertools
import os
from collections.abc import Container, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from chipqa.blocklist.cells import chip_id_problem, parse_time
from chipqa.blocklist.csvformat import (
    COLUMNS,
    DECISIONS,
    ESCAPED_COLUMNS,
    FIX,
    FIX_SOURCES,
    UNDONE,
    BlocklistError,
    Decision,
    fix_belongs_to,
    fix_file_problem,
    header_problem,
)
from chipqa.io.chunked import FileBytes, Lines
from chipqa.io.spreadsheet import unescape_cell

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
        if problem is None and not fix_belongs_to(cells[0], fix_file):
            problem = (
                f"fix file {fix_file!r} is not a fix of this chip (its fix files are named "
                f"{cells[0]}.<time>.tif); name one of them or undo the fix"
            )
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


class _Rows:
    """The rows of ``lines`` as ``csv.reader`` gives them, about twice as fast: a line
    without quotes or a stray carriage return is split on its commas; others (a quoted
    cell, which may span lines) go through ``csv.reader``. ``line_num``: lines read."""

    def __init__(self, lines: Iterable[str]):
        self.lines, self.line_num = lines, 0

    def __iter__(self) -> Iterator[list[str]]:
        pending: list[str] = []
        odd = False  # inside a quoted cell that goes on on the next line
        for line in self.lines:
            self.line_num += 1
            if pending or '"' in line or "\r" in line[:-2]:
                pending.append(line)
                odd ^= line.count('"') % 2 == 1
                if not odd:
                    yield from csv.reader(pending)
                    pending = []
                continue
            line = line.rstrip("\r\n")
            yield line.split(",") if line else []
        if pending:
            yield from csv.reader(pending)


class _Skip:
    """Rows of other chips that :func:`parse_chunk` passes over without the CSV reader:
    a line without quotes (outside a quoted cell) whose chip is not wanted and whose
    decision needs no closer look. Counts them, and notes which chips they block."""

    def __init__(self, only: Container[str], decision: int, outside: set[str] | None):
        self.only, self.at, self.outside, self.rows = only, decision, outside, 0

    def lines(self, lines: Iterable[str]) -> Iterator[str]:
        only, at, quick, outside = self.only, self.at, _QUICK_DECISIONS, self.outside
        quoted = False  # inside a quoted cell that spans lines
        for line in lines:
            if '"' in line:
                quoted ^= line.count('"') % 2 == 1
            elif not quoted:
                parts = line.split(",", at + 1)
                if parts[0] not in only and len(parts) > at:
                    decision = parts[at] if len(parts) > at + 1 else parts[at].rstrip("\r\n")
                    if decision in quick:
                        self.rows += 1
                        if outside is not None:
                            if decision == "block":
                                outside.add(parts[0])
                            else:
                                outside.discard(parts[0])
                        continue
            yield line


def parse_chunk(
    data: bytes | FileBytes,
    path: Path,
    header: list[str] | None = None,
    first_line: int = 1,
    only: Container[str] | None = None,
    outside: bool = False,
    *,
    fast: bool = True,
) -> Chunk:
    """Parse blocklist bytes that start at a line start.

    Every row's decision is checked, but only each chip's winning row becomes a
    :class:`Decision`, so a file of a million rows costs about a second and little memory.

    Args:
        data: the whole file (``header`` None: its first line is the header) or the bytes
            appended after a line end of a file whose header is ``header``; a
            :class:`FileBytes` reads it from the file as it goes.
        path: named in messages.
        first_line: the line number of the first line of ``data``.
        only: keep the rows of these chips only (a dataset's, for a reader); ``n_rows``
            still counts every row. Rows of other chips are passed over as cheaply as
            can be (their decision is still checked; a problem found anywhere is
            reported with its line, as without ``only``).
        outside: with ``only``, fill ``blocked_outside`` with the other chips whose
            last row in the file is a block.
        fast: pass rows over (see ``only``); False when looking for a problem's line.

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
    given = header
    skip: _Skip | None = None
    collecting = gc.isenabled()
    gc.disable()  # millions of lists and strings, no cycles: the collector would rescan them
    try:
        rest = itertools.chain(lines, last)
        if header is None:
            header = [h.strip() for h in next(csv.reader(rest), [])]
            first_line += 1
            if header:
                problem = header_problem(header)
                if problem is not None:
                    raise BlocklistError(
                        f"{path} is not a chipqa blocklist: {problem}. Fix the "
                        "header or choose another blocklist file; nothing was changed."
                    )
        if tail and not _tail_is_torn(tail, header):
            last.append(_decode(tail, path))
            end = size
        lay = _Layout.of(header)
        latest: dict[str, tuple[list[str], int]] = {}
        blocked_outside: set[str] = set()
        if fast and only is not None and lay.decision is not None:
            skip = _Skip(only, lay.decision, blocked_outside if outside else None)
            rest = skip.lines(rest)
        reader = _Rows(rest)
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
                if outside and (d_at is None or cells[d_at] == "block"):
                    blocked_outside.add(cid)
                elif outside:
                    blocked_outside.discard(cid)
                continue
            old = latest.get(cid)
            if old is not None and t is not None:
                new_t = cells[t] if t < k else ""
                old_t = old[0][t] if t < len(old[0]) else ""
                if not (  # chipqa's own times in order (most rows), else the full rule
                    new_t >= old_t
                    and len(new_t) == len(old_t) == 27
                    and new_t[-1] == old_t[-1] == "Z"
                ) and not _time_wins(new_t, old_t):
                    continue
            latest[cid] = (cells, reader.line_num)
        rows = {cid: _make(cells, lay, path, first_line, ln) for cid, (cells, ln) in latest.items()}
    except csv.Error as exc:
        if skip is not None:  # the line numbers skipped rows leave out: read it again
            return parse_chunk(
                data, path, given, first_line - (given is None), only, outside, fast=False
            )
        raise BlocklistError(
            f"{path} is not valid CSV ({exc}). Fix it or choose another file."
        ) from exc
    except UnicodeDecodeError as exc:
        raise BlocklistError(
            f"blocklist {path} cannot be read ({exc}). Save it as UTF-8 text."
        ) from exc
    except BlocklistError:
        if skip is not None:
            return parse_chunk(
                data, path, given, first_line - (given is None), only, outside, fast=False
            )
        raise
    finally:
        if collecting:
            gc.enable()
    if skip is not None:
        n += skip.rows
    return Chunk(rows, n, header or [], end, lines.count, blocked_outside)


def parse_blocklist(text: str, path: str | Path) -> dict[str, Decision]:
    """Parse blocklist CSV text: one decision per chip, ``undone`` rows included.

    Raises:
        BlocklistError: naming the line at fault.
    """
    return parse_chunk(text.encode("utf-8"), Path(path)).latest


def read_chunk(
    path: str | Path,
    *,
    missing_ok: bool = False,
    only: Container[str] | None = None,
    outside: bool = False,
) -> Chunk:
    """Read a blocklist file (see :func:`parse_chunk`; a missing file is an empty one
    with ``missing_ok``)."""
    path = Path(path)
    try:
        with open(path, "rb") as f:
            data = FileBytes(f.fileno(), 0, os.fstat(f.fileno()).st_size)
            return parse_chunk(data, path, only=only, outside=outside)
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
