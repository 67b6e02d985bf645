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

Reading the file is :mod:`chipqa.blocklist.csvread`, writing it
:mod:`chipqa.blocklist.csvwrite`; all three are plain I/O (no review logic), so that the
dataset reader can apply the label fixes a blocklist records;
:mod:`chipqa.blocklist.store` keeps the file.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable
from dataclasses import dataclass, field

from chipqa.blocklist.cells import control_character, parse_time
from chipqa.errors import ChipqaError

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


def fix_belongs_to(chip_id: str, name: str) -> bool:
    """Whether ``name`` is the name of one of ``chip_id``'s fix files (see
    :func:`chipqa.review.fixes.fix_file_name`): ``<chip_id>.<stamp>.tif``, the stamp
    without a dot, so that a row can never name another chip's fix (``a.b.<stamp>.tif``
    is chip ``a.b``'s)."""
    stem = name[len(chip_id) + 1 : -len(".tif")]
    return (
        name.startswith(f"{chip_id}.") and name.endswith(".tif") and bool(stem) and "." not in stem
    )


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


_KNOWN = frozenset(COLUMNS)


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
