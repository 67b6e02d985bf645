"""The blocklist: a reviewer's decisions on chips, on disk after every decision.

The file format is documented in ``labels/README.md`` and read by
:mod:`chipqa.blocklist.csvformat`: a CSV with ``chip_id`` first, then the decision
(``keep``, ``block``, ``unsure``, ``fix``), the reason, the flags and numbers that were
on screen, the model that produced them, who decided and when, the rule of a bulk
decision, and for a label fix its file and source.

Each decision appends one row to the file and fsyncs it before :meth:`BlocklistStore.decide`
returns, so a decision costs the same whether the file holds a hundred rows or ten
thousand; :meth:`BlocklistStore.decide_many` appends a whole group of rows (a gallery
page, every chip of a filter) in one write, and one undo takes the group back. The
later ``decided_at`` wins, so the file always reads as the current decisions; a row cut
short by a crash is left out by readers and removed by the next writer. The file is
created, and rewritten without its superseded rows ("compacted"), atomically (temporary
file in the same folder, flush, fsync, rename), so it is always whole.

A label **fix** (:meth:`BlocklistStore.fix`) writes the corrected label as a GeoTIFF into
``<dataset>_chipqa_fixes/`` (see :mod:`chipqa.review.fixes`), then records a ``fix``
row naming it. The chip keeps that label while later rows carry the fix on (``keep``,
``block`` and ``unsure`` do); an undo back past the fix restores the earlier label. Fix
files are never overwritten or deleted.

Several processes may hold the same blocklist open (two napari windows, a script): each
write takes an exclusive lock on a ``.lock`` file beside the CSV, reads the rows another
process appended since this one last looked, merges them in (per chip, the later
decision wins) and only then appends. Nothing another process decided is silently
dropped; :attr:`BlocklistStore.merged_from_elsewhere` counts what was merged in. A
blocklist path that is a symbolic link is written through to its target.
"""

from __future__ import annotations

import getpass
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from chipqa.blocklist.cells import (
    chip_id_problem,
    clean_text,
    fmt_number,
    now_utc,
    parse_time,
    time_after,
)
from chipqa.blocklist.csvformat import (
    DECISIONS,
    FIX,
    FIX_SOURCES,
    NUMBER_COLUMNS,
    UNDONE,
    BlocklistError,
    Decision,
    fix_belongs_to,
    fix_file_problem,
    fix_in_effect,
    refuse_control,
)
from chipqa.blocklist.csvwrite import render
from chipqa.blocklist.diskfile import BlocklistFile
from chipqa.io.atomic import atomic_write_text
from chipqa.io.paths import BLOCKLIST_NAME, side_paths

if TYPE_CHECKING:
    import numpy as np

__all__ = ["REASONS", "BlocklistStore", "default_path", "default_reviewer"]

REASONS = ("all_cloud_wrong", "no_cloud_wrong", "shifted", "wrong_chip", "clouds_missing", "other")
"""Reasons offered for a block; free text is accepted too."""

Item = tuple[str, str, str, "Mapping[str, object] | None"]
"""One decision of :meth:`BlocklistStore.decide_many`: (chip_id, decision, reason, info)."""


def default_reviewer() -> str:
    """The operating-system user (``CHIPQA_REVIEWER`` overrides it)."""
    env = os.environ.get("CHIPQA_REVIEWER")
    if env:
        return env
    try:
        return getpass.getuser()
    except Exception:  # no user database entry (containers)
        return "unknown"


def default_path(dataset_root: str | Path) -> Path:
    """Where a dataset's blocklist goes by default: beside the dataset folder."""
    return side_paths(dataset_root).blocklist


@dataclass
class _Undo:
    """One undo step: each chip of a decision (or of a group) and its state before."""

    items: list[tuple[str, Decision | None]]


def _carry_fix(new: Decision, previous: Decision | None) -> None:
    """A keep, block or unsure keeps the label fix the chip has (see the module docstring)."""
    fix_file = fix_in_effect(previous)
    if fix_file and not new.fix_file:
        new.fix_file, new.fix_source = fix_file, previous.fix_source  # type: ignore[union-attr]


@dataclass
class BlocklistStore(BlocklistFile):
    """Decisions of one review session, kept in step with a CSV on disk.

    Args:
        path: the CSV (a symbolic link is followed: its target is written). Its folder
            must exist and be writable; the file is created on the first decision.
        reviewer: written into each decision (default: :func:`default_reviewer`).
        dataset_root: the dataset the decisions are about; label fixes go into its
            ``<dataset>_chipqa_fixes`` folder. Default: the dataset this blocklist is
            the default blocklist of (``<dataset>_chipqa_blocklist.csv``).

    Raises:
        BlocklistError: the existing file is not a blocklist (the message names the
            line), or the folder cannot be written.
    """

    reviewer: str = field(default_factory=default_reviewer)
    dataset_root: Path | None = None
    _mine: dict[str, Decision] = field(default_factory=dict, init=False, repr=False)
    _undo: list[_Undo] = field(default_factory=list, init=False, repr=False)
    last_undone: list[str] = field(default_factory=list, init=False, repr=False)
    """The chips the last :meth:`undo` took back (several for a group)."""
    last_undo_skipped: list[str] = field(default_factory=list, init=False, repr=False)
    """Chips of the last undone group left as they were: another window decided on them."""

    @property
    def decisions(self) -> dict[str, Decision]:
        """Current decisions by chip id (undone ones left out)."""
        return {k: d for k, d in self._rows.items() if d.decision != UNDONE}

    # -- reading -------------------------------------------------------------
    def __len__(self) -> int:
        return len(self.decisions)

    def __contains__(self, chip_id: object) -> bool:
        return self.get(chip_id) is not None  # type: ignore[arg-type]

    def get(self, chip_id: str) -> Decision | None:
        return self.current(chip_id)

    def counts(self) -> dict[str, int]:
        c = dict.fromkeys(DECISIONS, 0)
        for d in self.decisions.values():
            c[d.decision] += 1
        return c

    def fixed(self) -> dict[str, str]:
        """Chips whose label is a fix now, with the fix file's name (see :meth:`fix_path`)."""
        return {k: f for k, d in self._rows.items() if (f := fix_in_effect(d))}

    @property
    def can_undo(self) -> bool:
        return bool(self._undo)

    # -- the dataset and its fixes -----------------------------------------------
    def dataset_folder(self) -> Path:
        """The dataset these decisions are about (see ``dataset_root``).

        Raises:
            BlocklistError: not given, and this is not a dataset's default blocklist.
        """
        if self.dataset_root is not None:
            return Path(self.dataset_root).expanduser()
        suffix = f"_{BLOCKLIST_NAME}"
        if self.path.name.endswith(suffix):
            root = self.path.parent / self.path.name[: -len(suffix)]
            if root.is_dir():
                return root
        raise BlocklistError(
            f"blocklist {self.path} is not the default blocklist of a dataset "
            f"(<dataset>_{BLOCKLIST_NAME} beside it), so it is not known where label fixes "
            "go; open it with BlocklistStore(path, dataset_root=DATASET) or use the "
            "dataset's default blocklist"
        )

    def fix_path(self, chip_id: str) -> Path | None:
        """The file of the chip's label fix in effect, or None."""
        fix_file = fix_in_effect(self._rows.get(chip_id))
        return side_paths(self.dataset_folder()).fixes / fix_file if fix_file else None

    # -- writing -------------------------------------------------------------
    def _commit(
        self, plan: Callable[[], Sequence[Decision]], *, carry_fix: bool = False
    ) -> list[tuple[Decision, Decision | None]]:
        """Under one lock: take in other processes' rows, ask ``plan`` (which may refuse,
        seeing what is now known) for the new rows (fresh objects, their time not set
        yet), stamp each with the time and write them all in one go. Stamping inside the
        lock keeps ``decided_at`` in the order the rows reach the file, which is what
        merging by time relies on; a clock that went back still gets a time after the
        chip's previous row. ``carry_fix``: each row keeps the chip's fix in effect.

        Returns each new row with the chip's decision it replaced (None: undecided), as
        the file held it at that moment: what an undo restores."""
        with self._locked():
            self._sync()
            rows = plan()
            now = now_utc()
            t_now = parse_time(now)
            pending: dict[str, Decision] = {}
            made: list[tuple[Decision, Decision | None]] = []
            for new in rows:
                cid = new.chip_id
                previous = pending.get(cid) or self._rows.get(cid)
                new.decided_at = now
                if previous is not None:
                    last = parse_time(previous.decided_at)
                    if last is not None and t_now <= last:  # type: ignore[operator]
                        new.decided_at = time_after(previous.decided_at)
                    if carry_fix:
                        _carry_fix(new, previous)
                    if previous.extra and not new.extra:  # a user's own columns stay
                        new.extra = dict(previous.extra)
                pending[cid] = new
                before = None if previous is None or previous.decision == UNDONE else previous
                made.append((new, before))
            if made:
                self._write_rows([d for d, _ in made])
            for d, _ in made:
                self._mine[d.chip_id] = d
        return made

    def _fields(
        self,
        chip_id: str,
        decision: str,
        reason: str,
        info: Mapping[str, object] | None,
        reviewer: str | None = None,
        rule: str = "",
    ) -> Decision:
        """A new row (its time not set yet), checked before anything is written."""
        if decision not in DECISIONS or decision == FIX:
            choices = ", ".join(d for d in DECISIONS if d != FIX)
            hint = " (a fix is recorded with BlocklistStore.fix)" if decision == FIX else ""
            raise ValueError(f"decision must be one of {choices}, not {decision!r}{hint}")
        problem = chip_id_problem(chip_id)
        if problem is not None:
            raise BlocklistError(
                f"{problem}. Rename the chip (its folder or label file); no decision was recorded."
            )
        info = info or {}
        return Decision(
            chip_id,
            decision,
            reason=refuse_control("reason", str(reason or "").strip()),
            flags=clean_text(info.get("flags", "")),
            model=clean_text(info.get("model", "")),
            reviewer=reviewer if reviewer is not None else self._reviewer(),
            rule=rule,
            **{c: fmt_number(info.get(c)) for c in NUMBER_COLUMNS},
        )

    def _reviewer(self) -> str:
        return refuse_control("reviewer name", str(self.reviewer or "").strip())

    def _remember(self, made: list[tuple[Decision, Decision | None]]) -> None:
        """One undo step for rows written together (each chip's state before the first)."""
        before: dict[str, Decision | None] = {}
        for d, b in made:
            before.setdefault(d.chip_id, b)
        self._undo.append(_Undo(list(before.items())))

    # -- decisions -----------------------------------------------------------
    def decide(
        self,
        chip_id: str,
        decision: str,
        reason: str = "",
        *,
        info: Mapping[str, object] | None = None,
        rule: str = "",
    ) -> Decision:
        """Record a decision and write it to the file before returning.

        Args:
            chip_id: the chip, exactly as the dataset names it.
            decision: ``keep``, ``block`` or ``unsure``.
            reason: why (see :data:`REASONS`; free text allowed).
            info: what was on screen: ``flags``, ``suspicion``, ``iou``,
                ``label_cloud_fraction``, ``pred_cloud_fraction``, ``model``.
            rule: the rule of a bulk decision (free text), if any.

        Raises:
            BlocklistError: the file cannot be written, or the chip id, reason or
                reviewer cannot go into a blocklist (a control character, or a chip id
                starting like a spreadsheet formula); nothing is recorded then.
        """
        return self.decide_many([(chip_id, decision, reason, info)], rule=rule)[0]

    def decide_many(self, items: Sequence[Item], *, rule: str = "") -> list[Decision]:
        """Record several decisions in one write (under one lock, one append and one
        fsync): a gallery page, or every chip of a filter. One :meth:`undo` takes the
        whole group back.

        Args:
            items: ``(chip_id, decision, reason, info)`` tuples, as for :meth:`decide`.
            rule: what chose the chips (``"flag=label_no_cloud"``), written in each row.

        Returns:
            The rows written, in the order of ``items``.

        Raises:
            BlocklistError, ValueError: as :meth:`decide`, for any item; every item is
                checked first, so nothing is recorded then.
        """
        rule = refuse_control("rule", str(rule or "").strip())
        reviewer = self._reviewer()
        rows = [self._fields(*item, reviewer, rule) for item in items]
        if not rows:
            return []
        made = self._commit(lambda: rows, carry_fix=True)
        self._remember(made)
        return [d for d, _ in made]

    def fix(
        self,
        chip_id: str,
        label: np.ndarray,
        *,
        source: str,
        model: str = "",
        info: Mapping[str, object] | None = None,
        reason: str = "",
    ) -> Decision:
        """Correct a chip's label: write ``label`` as a GeoTIFF into the dataset's fixes
        folder (atomically, with the original label's grid and profile) and record a
        ``fix`` decision naming it. :meth:`undo` restores the decision before (the fix
        file stays on disk). See :func:`chipqa.review.fixes.record_fix`.

        Args:
            label: ``(H, W)`` 0 clear, 1 cloud, 255 no label, on the chip's grid.
            source: ``model`` (a model's mask), ``painted`` or ``file``.
            model: the model whose mask it is (or whose scores were on screen).

        Raises:
            BlocklistError: the chip is unknown, the label does not fit it, or a file
                cannot be written (nothing is recorded then).
        """
        from chipqa.review.fixes import record_fix

        return record_fix(
            self, self.dataset_folder(), chip_id, label,
            source=source, model=model, info=info, reason=reason,
        )  # fmt: skip

    def decide_fix(
        self,
        chip_id: str,
        fix_file: str,
        *,
        source: str,
        model: str = "",
        info: Mapping[str, object] | None = None,
        reason: str = "",
    ) -> Decision:
        """Record a ``fix`` row for a fix file already written into the fixes folder
        (:meth:`fix` writes the file and calls this)."""
        if source not in FIX_SOURCES:
            raise ValueError(f"source must be one of {', '.join(FIX_SOURCES)}, not {source!r}")
        problem = fix_file_problem(fix_file)
        if problem is None and not fix_belongs_to(chip_id, fix_file):
            problem = f"fix file {fix_file!r} is not a fix of chip {chip_id!r}"
        if problem is not None:
            raise BlocklistError(f"{problem}; no fix was recorded for chip {chip_id!r}")
        row = self._fields(chip_id, "keep", reason, info)
        row.decision, row.fix_file, row.fix_source = FIX, fix_file, source
        if model:
            row.model = clean_text(model)
        made = self._commit(lambda: [row])
        self._remember(made)
        return made[0][0]

    def undo(self) -> str | None:
        """Take back the last decision (or group of decisions) of this session; returns
        its (first) chip id, or None. :attr:`last_undone` lists every chip taken back.

        The earlier state is written again as a new row (the previous decision, or an
        ``undone`` row), so other windows on the same file take the undo in too. A chip
        another window decided on after this one is left as it is (its decision is
        kept); in a group, the others are still taken back and :attr:`last_undo_skipped`
        names those left.

        Raises:
            BlocklistError: the file cannot be written, or another window decided on
                every chip of the step after this one did (nothing is undone).
        """
        if not self._undo:
            return None
        u = self._undo[-1]
        todo: list[tuple[str, Decision | None]] = []
        skipped: list[str] = []

        def restored(cid: str, before: Decision | None) -> Decision:
            if before is None:
                return Decision(cid, UNDONE, reviewer=self.reviewer)
            return before.copy()

        def plan() -> list[Decision]:
            todo.clear()
            skipped.clear()
            for cid, before in u.items:
                if self._rows.get(cid) == self._mine.get(cid):
                    todo.append((cid, before))
                else:
                    skipped.append(cid)
            if not todo:
                self._undo.pop()
                current = self._rows.get(skipped[0])
                who = current.reviewer if current is not None else "someone"
                what = f"chip {skipped[0]!r}" if len(skipped) == 1 else "every chip of that group"
                raise BlocklistError(
                    f"{what} was decided again by {who} in another window after your "
                    "decision; their decision is kept and nothing was undone"
                )
            return [restored(cid, before) for cid, before in todo]

        self._commit(plan)
        self._undo.pop()
        self.last_undone = [cid for cid, _ in todo]
        self.last_undo_skipped = list(skipped)
        return self.last_undone[0]

    def export(self, path: str | Path, *, blocked_only: bool = True) -> Path:
        """Write the final blocklist for training (blocked chips only by default).

        Text cells are escaped for spreadsheets (see ``labels/README.md``); a symbolic
        link at ``path`` is written through to its target."""
        path = Path(path)
        with self._locked():
            self._sync()
            self._compact_if_worth_it()
        try:
            atomic_write_text(
                os.path.realpath(path), render(self.decisions, "block" if blocked_only else None)
            )
        except OSError as exc:
            raise BlocklistError(f"cannot write {path} ({exc.strerror or exc})") from exc
        return path
