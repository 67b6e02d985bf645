"""The review loop without a screen: ordering, navigation, decisions, undo, prefetch.

The napari widget is a thin face on :class:`ReviewSession` and :class:`ChipLoader`; both
are plain Python so that the whole triage logic is tested without a viewer, and a
script can drive a review too.
"""

from __future__ import annotations

import math
import threading
from collections import OrderedDict
from collections.abc import Callable, Iterable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np
import pandas as pd

from chipqa.data import Chip, ChipDataset
from chipqa.errors import ChipReadError
from chipqa.render import false_colour, side_by_side, true_colour
from chipqa.review.blocklist import BlocklistStore, Decision

INFO_COLUMNS = ("flags", "suspicion", "iou", "label_cloud_fraction", "pred_cloud_fraction", "model")


class ReviewSession:
    """A ranked list of chips, a cursor in it, and the decisions made on them.

    Args:
        scores: the scores table (see :mod:`chipqa.scoring`), any order.
        store: where decisions go (written at once).
        auto_advance: after a decision, move to the next chip of the ordering.

    The *ordering* is the scores table sorted by ``sort_by`` and narrowed by the
    filters (a flag word; only chips without a decision yet). Reopening a store that
    already holds decisions resumes at the first undecided chip.
    """

    def __init__(self, scores: pd.DataFrame, store: BlocklistStore, *, auto_advance: bool = True):
        self.scores = scores.reset_index(drop=True)
        self._rows = {cid: i for i, cid in enumerate(self.scores["chip_id"].astype(str))}
        self._records = self.scores.to_dict("records")  # row() is on the key-press path
        self.store = store
        self.auto_advance = auto_advance
        self.sort_by = "suspicion"
        self.ascending = False
        self.flag: str | None = None
        self.undecided_only = False
        self.order: list[str] = []
        self.position = 0
        self._apply()
        self.position = self._first_undecided_from(0) or 0

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
            self.position = self.order.index(keep)
        else:
            self.position = min(self.position, max(len(self.order) - 1, 0))

    def set_view(
        self,
        *,
        sort_by: str | None = None,
        ascending: bool | None = None,
        flag: str | None | type[Ellipsis] = ...,
        undecided_only: bool | None = None,
    ) -> None:
        """Change the ordering; the current chip stays current when it is still listed."""
        keep = self.current
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
    def current(self) -> str | None:
        if not self.order:
            return None
        return self.order[self.position]

    def row(self, chip_id: str) -> dict:
        return self._records[self._rows[chip_id]]

    def goto(self, chip_id: str) -> str | None:
        if chip_id in self.order:
            self.position = self.order.index(chip_id)
        elif chip_id in self._rows:  # filtered out: show everything again
            self.flag, self.undecided_only = None, False
            self._apply(chip_id)
        return self.current

    def next(self) -> str | None:
        if self.order:
            self.position = min(self.position + 1, len(self.order) - 1)
        return self.current

    def previous(self) -> str | None:
        if self.order:
            self.position = max(self.position - 1, 0)
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
        i = self._first_undecided_from(self.position + 1)
        if i is None:
            return None
        self.position = i
        return self.current

    def upcoming(self, n: int) -> list[str]:
        """The chips after (and just before) the current one: what to prefetch."""
        if not self.order:
            return []
        after = self.order[self.position + 1 : self.position + 1 + n]
        before = self.order[max(self.position - 1, 0) : self.position]
        return after + before

    # -- decisions ---------------------------------------------------------------
    def info(self, chip_id: str) -> dict:
        row = self.row(chip_id)
        return {k: row.get(k, "") for k in INFO_COLUMNS}

    def decide(self, decision: str, reason: str = "") -> Decision | None:
        """Decide on the current chip, write it, and move on (when auto-advancing)."""
        cid = self.current
        if cid is None:
            return None
        d = self.store.decide(cid, decision, reason, info=self.info(cid))
        if self.undecided_only:
            self._apply()  # the chip leaves the list; the cursor now points at the next one
        elif self.auto_advance:
            self.next()
        return d

    def undo(self) -> str | None:
        """Take back the last decision and go back to its chip."""
        cid = self.store.undo()
        if cid is not None:
            self._apply()
            self.goto(cid)
        return cid

    def progress(self) -> tuple[int, int]:
        """(chips decided, chips in the scores table)."""
        decided = sum(1 for c in self._rows if c in self.store)
        return decided, len(self._rows)


@dataclass
class ChipView:
    """Everything the viewer shows for one chip, ready to hand to layers."""

    chip_id: str
    chip: Chip | None
    true_colour: np.ndarray | None
    false_colour: np.ndarray | None
    label: np.ndarray | None
    prob: np.ndarray | None
    error: str = ""
    mosaic: np.ndarray | None = None
    scl: np.ndarray | None = None
    """Sen2Cor SCL codes on the chip's grid, when the chip has an ``SCL.tif``."""


class ChipLoader:
    """Reads, predicts and renders chips in background threads, with a small cache.

    ``get`` returns at once for a chip that was prefetched; ``prefetch`` queues the
    chips the reviewer is likely to see next. Thread-safe.

    Args:
        dataset: where chips come from.
        predict: ``(4, H, W)`` DNs → ``(H, W)`` probability, or None (no prediction).
        workers: background threads.
        cache_size: chips kept (each 512×512 chip is about 4 MB with its renderings).
    """

    def __init__(
        self,
        dataset: ChipDataset,
        predict: Callable[[np.ndarray], np.ndarray] | None,
        *,
        workers: int = 2,
        cache_size: int = 24,
    ):
        self.dataset = dataset
        self.predict = predict
        self.cache_size = cache_size
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="chipqa-prefetch")
        self._futures: OrderedDict[str, Future[ChipView]] = OrderedDict()
        self._lock = threading.Lock()

    def _load(self, chip_id: str) -> ChipView:
        try:
            chip = self.dataset.read(chip_id)
        except ChipReadError as exc:
            return ChipView(chip_id, None, None, None, None, None, error=str(exc))
        except KeyError as exc:
            return ChipView(chip_id, None, None, None, None, None, error=str(exc))
        prob = None
        if self.predict is not None:
            prob = np.asarray(self.predict(chip.bands), dtype=np.float32)
            prob = np.where(chip.valid, prob, 0.0).astype(np.float32)
        tc, fc = true_colour(chip.bands), false_colour(chip.bands)
        return ChipView(
            chip_id=chip_id,
            chip=chip,
            true_colour=tc,
            false_colour=fc,
            label=chip.label,
            prob=prob,
            mosaic=side_by_side(tc, fc, chip.label, prob, chip.valid, scl=chip.scl),
            scl=chip.scl,
        )

    def _submit(self, chip_id: str) -> Future[ChipView]:
        with self._lock:
            fut = self._futures.get(chip_id)
            if fut is None:
                fut = self._pool.submit(self._load, chip_id)
                self._futures[chip_id] = fut
            self._futures.move_to_end(chip_id)
            while len(self._futures) > self.cache_size:
                old_id, old = next(iter(self._futures.items()))
                if old is fut:
                    break
                old.cancel()
                del self._futures[old_id]
            return fut

    def get(self, chip_id: str, timeout: float | None = None) -> ChipView:
        """The chip's view; waits for it when it is not loaded yet."""
        return self._submit(chip_id).result(timeout=timeout)

    def prefetch(self, chip_ids: Iterable[str]) -> None:
        for cid in chip_ids:
            self._submit(cid)

    def is_ready(self, chip_id: str) -> bool:
        with self._lock:
            fut = self._futures.get(chip_id)
        return fut is not None and fut.done()

    def close(self) -> None:
        with self._lock:
            for fut in self._futures.values():
                fut.cancel()
            self._futures.clear()
        self._pool.shutdown(wait=False, cancel_futures=True)


def fraction_text(value: object) -> str:
    """0.4213 → '42%'; NaN/empty → '–'."""
    try:
        f = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return "–"
    return "–" if math.isnan(f) else f"{f:.0%}"
