"""The review loop without a screen: ordering, navigation, decisions, undo.

:class:`ReviewSession` is plain Python (no Qt), so the whole triage logic is tested
without a viewer and a script can drive a review too. It is *evented*: it announces
what changed through `psygnal <https://psygnal.readthedocs.io>`_ signals, and a viewer
subscribes to them instead of refreshing itself after every call::

    session.current_changed.connect(lambda chip_id: print("now at", chip_id))
    session.decided.connect(lambda chip_id, decision: print(chip_id, decision))

Signals are emitted in the thread that called the method (the GUI thread in napari).
"""

from __future__ import annotations

import math
import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager

import numpy as np
import pandas as pd
from psygnal import Signal

from chipqa.blocklist.csvformat import Decision
from chipqa.blocklist.store import BlocklistStore

INFO_COLUMNS = (
    "flags",
    "suspicion",
    "why",
    "detector",
    "iou",
    "label_cloud_fraction",
    "pred_cloud_fraction",
    "model",
)

FLAG_REASONS = (
    ("all_cloud_label", "all_cloud_wrong"),
    ("no_cloud_label", "no_cloud_wrong"),
    ("cloud_missing_from_label", "clouds_missing"),
    ("unreadable", "wrong_chip"),
)
"""A block's default reason from the chip's flags, first match wins (else ``other``)."""


def default_reason(flags: object, detector: object = None) -> str:
    """The block reason a chip's scores suggest: first the detector its ``why`` names
    (:data:`chipqa.scoring.ranking.DETECTOR_REASONS`: a missing cloud region →
    ``clouds_missing``, a contradicted all-cloud label → ``all_cloud_wrong``, …), else its
    flags (an all-cloud label → ``all_cloud_wrong``, …), else ``other``."""
    from chipqa.scoring.ranking import DETECTOR_REASONS

    reason = DETECTOR_REASONS.get(str(detector or ""))
    if reason:
        return reason
    words = set(str(flags or "").split(";"))
    for flag, reason in FLAG_REASONS:
        if flag in words:
            return reason
    return "other"


class ReviewSession:
    """A ranked list of chips, a cursor in it, and the decisions made on them.

    Args:
        scores: the scores table (see :mod:`chipqa.scoring`), any order.
        store: where decisions go (written at once).
        auto_advance: after a decision, move to the next chip of the ordering.

    The *ordering* is the scores table sorted by ``sort_by`` and narrowed by the
    filters (a flag word; only chips without a decision yet). Reopening a store that
    already holds decisions resumes at the first undecided chip.

    Signals:
        current_changed(chip_id): the chip under the cursor is another one (``None``
            when no chip is listed). Setting :attr:`position` emits it too.
        decided(chip_id, decision): a decision was written to the store.
        undone(chip_id): the last decision was taken back.
        order_changed(): the ordering (sort, filters, the listed chips) changed.
    """

    current_changed = Signal(object)
    decided = Signal(str, str)
    undone = Signal(str)
    order_changed = Signal()

    def __init__(self, scores: pd.DataFrame, store: BlocklistStore, *, auto_advance: bool = True):
        self.scores = scores.reset_index(drop=True)
        self._rows = {cid: i for i, cid in enumerate(self.scores["chip_id"].astype(str))}
        self._records = self.scores.to_dict("records")  # row() is on the key-press path
        self._store = store
        self.auto_advance = auto_advance
        self.sort_by = "suspicion"
        self.ascending = False
        self.flag: str | None = None
        self.undecided_only = False
        self.order: list[str] = []
        self._position = 0
        self._decided_times: list[float] = []  # this session's decisions, for the rate
        self._apply()
        self._position = self._first_undecided_from(0) or 0

    @contextmanager
    def _announcing(self) -> Iterator[None]:
        """Emit ``order_changed`` / ``current_changed`` for what the block changed."""
        order, current = list(self.order), self.current
        yield
        if self.order != order:
            self.order_changed.emit()
        if self.current != current:
            self.current_changed.emit(self.current)

    # -- the store ---------------------------------------------------------------
    @property
    def store(self) -> BlocklistStore:
        return self._store

    @store.setter
    def store(self, store: BlocklistStore) -> None:
        """Send decisions to another blocklist (the ordering follows its decisions)."""
        current = self.current
        self._store = store
        self._apply(current)
        self.order_changed.emit()  # the decision column changed even if the order did not
        if self.current != current:
            self.current_changed.emit(self.current)

    # -- ordering ----------------------------------------------------------------
    def _apply(self, keep: str | None = None) -> None:
        df = self.scores
        mask = np.ones(len(df), bool)
        if self.flag:
            mask &= df["flags"].fillna("").str.split(";").apply(lambda f: self.flag in f).to_numpy()
        if self.undecided_only:
            mask &= ~df["chip_id"].isin(list(self.store.decisions)).to_numpy()
        view = df[mask]
        if self.sort_by in view.columns:
            view = view.sort_values(
                self.sort_by, ascending=self.ascending, kind="mergesort", na_position="last"
            )
        self.order = view["chip_id"].astype(str).tolist()
        if keep is not None and keep in self.order:
            self._position = self.order.index(keep)
        else:
            self._position = min(self._position, max(len(self.order) - 1, 0))

    def set_view(
        self,
        *,
        sort_by: str | None = None,
        ascending: bool | None = None,
        flag: str | None | type[Ellipsis] = ...,
        undecided_only: bool | None = None,
    ) -> None:
        """Change the ordering. A new sort keeps the current chip current (when it is
        still listed); a new filter starts at the top of the filtered list."""
        with self._announcing():
            refilter = (flag is not ... and (flag or None) != self.flag) or (
                undecided_only is not None and undecided_only != self.undecided_only
            )
            keep = None if refilter else self.current
            if refilter:
                self._position = 0
            if sort_by is not None:
                self.sort_by = sort_by
            if ascending is not None:
                self.ascending = ascending
            if flag is not ...:
                self.flag = flag or None
            if undecided_only is not None:
                self.undecided_only = undecided_only
            self._apply(keep)

    @property
    def flags_present(self) -> list[str]:
        words: set[str] = set()
        for f in self.scores["flags"].fillna(""):
            words.update(w for w in str(f).split(";") if w)
        return sorted(words)

    # -- cursor ------------------------------------------------------------------
    @property
    def position(self) -> int:
        """Index of the current chip in :attr:`order`."""
        return self._position

    @position.setter
    def position(self, value: int) -> None:
        with self._announcing():
            self._position = int(value)

    @property
    def current(self) -> str | None:
        if not self.order:
            return None
        return self.order[self._position]

    def row(self, chip_id: str) -> dict:
        return self._records[self._rows[chip_id]]

    def update_row(self, chip_id: str, values: dict) -> None:
        """Change some of a chip's numbers (its label was fixed: its label share and
        IoU are the fixed label's now). The ordering is left as it is."""
        i = self._rows[chip_id]
        self._records[i].update(values)
        for key, value in values.items():
            if key in self.scores.columns:
                self.scores.at[i, key] = value

    def goto(self, chip_id: str) -> str | None:
        with self._announcing():
            if chip_id in self.order:
                self._position = self.order.index(chip_id)
            elif chip_id in self._rows:  # filtered out: show everything again
                self.flag, self.undecided_only = None, False
                self._apply(chip_id)
        return self.current

    def next(self) -> str | None:
        if self.order:
            self.position = min(self._position + 1, len(self.order) - 1)
        return self.current

    def previous(self) -> str | None:
        if self.order:
            self.position = max(self._position - 1, 0)
        return self.current

    def _first_undecided_from(self, start: int) -> int | None:
        n = len(self.order)
        for k in range(n):
            i = (start + k) % n
            if self.order[i] not in self.store:
                return i
        return None

    def next_undecided(self) -> str | None:
        """Jump to the next chip without a decision (wrapping round); None when all are done."""
        if not self.order:
            return None
        i = self._first_undecided_from(self._position + 1)
        if i is None:
            return None
        self.position = i
        return self.current

    def upcoming(self, n: int) -> list[str]:
        """The chips after (and just before) the current one: what to prefetch."""
        if not self.order:
            return []
        after = self.order[self._position + 1 : self._position + 1 + n]
        before = self.order[max(self._position - 1, 0) : self._position]
        return after + before

    # -- decisions ---------------------------------------------------------------
    def info(self, chip_id: str) -> dict:
        row = self.row(chip_id)
        return {k: row.get(k, "") for k in INFO_COLUMNS}

    def decide(self, decision: str, reason: str = "") -> Decision | None:
        """Decide on the current chip, write it, and move on (when auto-advancing).

        Raises:
            BlocklistError: the blocklist cannot be written (nothing changes then).
        """
        cid = self.current
        if cid is None:
            return None
        return self.record(
            cid, decision, lambda: self.store.decide(cid, decision, reason, info=self.info(cid))
        )

    def record(
        self, chip_id: str, decision: str, write: Callable[[], Decision], *, advance: bool = True
    ) -> Decision:
        """Record the decision ``write()`` writes on ``chip_id`` (a label fix writes its
        file and its row), as :meth:`decide` does: counted in the rate, announced, the
        chip leaves an "undecided only" list, and the cursor moves on from it (when
        auto-advancing and ``advance``).

        Raises:
            BlocklistError: ``write`` failed (nothing changes then).
        """
        with self._announcing():
            d = write()
            self._decided_times.append(time.monotonic())
            self.decided.emit(chip_id, decision)
            if self.undecided_only:
                self._apply()  # the chip leaves the list; the cursor now points at the next one
            elif advance and self.auto_advance and self.order and self.current == chip_id:
                self._position = min(self._position + 1, len(self.order) - 1)
        return d

    def decide_chips(
        self, items: Sequence[tuple[str, str, str]], *, rule: str = ""
    ) -> list[Decision]:
        """Decide on several chips at once — ``(chip_id, decision, reason)`` each — in one
        write to the blocklist, undone as one step (a gallery page, a bulk rule). The
        cursor stays where it is.

        Raises:
            BlocklistError: the blocklist cannot be written (nothing is recorded then).
        """
        if not items:
            return []
        with self._announcing():
            current = self.current
            full = [(cid, d, r, self.info(cid)) for cid, d, r in items]
            done = self.store.decide_many(full, rule=rule)
            self._decided_times.extend([time.monotonic()] * len(items))
            for cid, d, _ in items:
                self.decided.emit(cid, d)
            if self.undecided_only:
                self._apply()
                if current in self.order:
                    self._position = self.order.index(current)
            self.order_changed.emit()
        return done

    def undo(self) -> str | None:
        """Take back the last decision and go back to its chip."""
        with self._announcing():
            res = self.store.undo()  # a group (a page, a bulk rule) comes back as a list
            cid = (res[0] if res else None) if isinstance(res, (list, tuple)) else res
            if cid is not None:
                self._apply()
                if cid in self.order:
                    self._position = self.order.index(cid)
                elif cid in self._rows:
                    self.flag, self.undecided_only = None, False
                    self._apply(cid)
                self.undone.emit(cid)
        return cid

    def progress(self) -> tuple[int, int]:
        """(chips decided, chips in the scores table)."""
        decided = sum(1 for c in self._rows if c in self.store)
        return decided, len(self._rows)

    def tally(self) -> dict[str, Counter]:
        """Decisions on this table's chips by decision, and blocks by reason:
        ``{"decision": Counter(keep=…, block=…), "reason": Counter(all_cloud_wrong=…)}``."""
        by_decision: Counter = Counter()
        by_reason: Counter = Counter()
        for cid in self._rows:
            d = self.store.get(cid)
            if d is None:
                continue
            by_decision[d.decision] += 1
            if d.decision == "block":
                by_reason[d.reason or "(none)"] += 1
        return {"decision": by_decision, "reason": by_reason}

    def rate(self, window: float = 600.0) -> float | None:
        """Chips decided per minute in this session over the last ``window`` seconds
        (None before two decisions)."""
        t = self._decided_times
        if len(t) < 2:
            return None
        now = time.monotonic()
        recent = [x for x in t if now - x <= window] or t[-2:]
        span = max(now - recent[0], 1.0)
        return 60.0 * len(recent) / span

    def page(self, index: int, size: int) -> list[str]:
        """The chips of page ``index`` (``size`` chips a page) of the ordering."""
        return self.order[index * size : (index + 1) * size]

    def page_count(self, size: int) -> int:
        return max(1, -(-len(self.order) // size))


def as_number(value: object) -> float | None:
    """A table cell as a number; None for empty, NaN or text."""
    try:
        f = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return None
    return None if math.isnan(f) else f


def score_text(value: object) -> str:
    """A 0–1 score with enough decimals that a value below 1 never reads ``1.000``:
    0.4213 → '0.421', 0.99962 → '0.9996', 1.0 → '1.000'; NaN/empty → ''."""
    f = as_number(value)
    if f is None:
        return ""
    for digits in range(3, 7):
        text = f"{f:.{digits}f}"
        if f >= 1.0 or float(text) < 1.0:
            return text
    return text


def fraction_text(value: object) -> str:
    """0.4213 → '42%'; NaN/empty → '–'."""
    f = as_number(value)
    return "–" if f is None else f"{f:.0%}"
