"""Chips made ready for the screen in background threads: read, predict, render.

:class:`ChipLoader` never makes its caller wait unless asked to: :meth:`ChipLoader.request`
returns a :class:`~concurrent.futures.Future` at once, and a viewer draws the chip when
the future completes. Plain Python (no Qt), so scripts and tests use it directly.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Iterable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np

from chipqa.data import Chip, ChipDataset
from chipqa.errors import ChipReadError
from chipqa.render import (
    false_colour,
    message_card,
    outline,
    side_by_side,
    thumbnail,
    true_colour_stretched,
)
from chipqa.scoring.previews import PreviewStore


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
    """Why the chip cannot be shown (it cannot be read); empty when it can."""
    mosaic: np.ndarray | None = None
    scl: np.ndarray | None = None
    """Sen2Cor SCL codes on the chip's grid, when the chip has an ``SCL.tif``."""
    label_outline: np.ndarray | None = None
    """The label's cloud outline (uint8 0/1, the chip's border counts as outside, so an
    all-cloud label is a frame)."""
    pred_outline: np.ndarray | None = None
    """The same for the model's mask (probability ≥ the threshold), 2 px further in."""


def _inset_outline(mask: np.ndarray) -> np.ndarray:
    """The model's outline 2 px inside its mask's edge, so that it shows beside the
    label's where both run along the chip's border."""
    return (outline(mask, 4) & ~outline(mask, 2)).astype(np.uint8)


def error_view(chip_id: str, error: str) -> ChipView:
    card = message_card(
        f"{chip_id} cannot be shown.\n\n{error}\n\nBlock it (the chip is unreadable) or "
        "fix its files and open the dataset again.",
        512,
        320,
    )
    return ChipView(chip_id, None, None, None, None, None, error=error, mosaic=card)


def _failed(fut: Future) -> bool:
    return fut.done() and (fut.cancelled() or fut.exception() is not None)


class ChipLoader:
    """Reads, predicts and renders chips in background threads, with a small cache.

    :meth:`request` returns a future at once (done already for a prefetched chip);
    :meth:`prefetch` queues the chips the reviewer is likely to see next; :meth:`get`
    waits for a chip (scripts, tests). Thread-safe.

    What is cached: every finished chip, including one that cannot be read (its
    :attr:`ChipView.error` says why; reading it again would fail again). What is not: a
    load that raised, such as the predictor running out of GPU memory. Its future
    carries the exception, and the next :meth:`request` of that chip loads it again.

    The predictor is called by one loader thread at a time (other threads, such as a
    scoring job, may share the predictor object; the loader never compiles or otherwise
    changes it).

    Args:
        dataset: where chips come from.
        predict: ``(4, H, W)`` DNs → ``(H, W)`` probability, or None (no prediction).
        workers: background threads.
        cache_size: chips kept (each 512×512 chip is about 4 MB with its renderings).
        stretch: the true-colour stretch (see :data:`chipqa.render.STRETCHES`).
        threshold: probability at or above which the model's mask is outlined (the
            threshold the chips were scored at).
        previews: probability maps kept from scoring (:mod:`chipqa.scoring.previews`):
            a gallery thumbnail draws the model's outline from the chip's preview when
            there is one, without calling the model.
    """

    def __init__(
        self,
        dataset: ChipDataset,
        predict: Callable[[np.ndarray], np.ndarray] | None,
        *,
        workers: int = 2,
        cache_size: int = 24,
        stretch: str = "fixed",
        threshold: float = 0.5,
        previews: PreviewStore | None = None,
    ):
        self.dataset = dataset
        self.predict = predict
        self.previews = previews
        self.cache_size = cache_size
        self.stretch = stretch
        self.threshold = threshold
        self._thumbs: OrderedDict[tuple[str, int], Future[np.ndarray]] = OrderedDict()
        self.thumb_cache_size = 96
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="chipqa-prefetch")
        self._futures: OrderedDict[str, Future[ChipView]] = OrderedDict()
        self._lock = threading.Lock()
        self._predict_lock = threading.Lock()

    def _read_and_predict(self, chip_id: str):
        chip = self.dataset.read(chip_id)
        prob = None
        if self.predict is not None:
            with self._predict_lock:
                prob = np.asarray(self.predict(chip.bands), dtype=np.float32)
            prob = np.where(chip.valid, prob, 0.0).astype(np.float32)
        return chip, prob

    def _load(self, chip_id: str) -> ChipView:
        try:
            chip, prob = self._read_and_predict(chip_id)
        except (ChipReadError, KeyError) as exc:
            return error_view(chip_id, str(exc))
        tc = true_colour_stretched(chip.bands, chip.valid, self.stretch)
        fc = false_colour(chip.bands)
        label_cloud = chip.label == 1 if chip.label is not None else None
        return ChipView(
            chip_id=chip_id,
            chip=chip,
            true_colour=tc,
            false_colour=fc,
            label=chip.label,
            prob=prob,
            mosaic=side_by_side(tc, fc, chip.label, prob, chip.valid, scl=chip.scl),
            scl=chip.scl,
            label_outline=None if label_cloud is None else outline(label_cloud).astype(np.uint8),
            pred_outline=None if prob is None else _inset_outline(prob >= self.threshold),
        )

    def _thumb(self, chip_id: str, size: int) -> np.ndarray:
        """A gallery picture (see :func:`chipqa.render.thumbnail`); a chip that cannot be
        read gets a card saying why."""
        with self._lock:
            full = self._futures.get(chip_id)
        if full is not None and full.done() and not _failed(full):
            v = full.result()
            if v.chip is not None:
                return thumbnail(v.true_colour, v.label, v.prob, size, threshold=self.threshold)
        prob = None
        if self.previews is not None and chip_id in self.dataset:
            prob = self.previews.get(chip_id, self.dataset[chip_id])
        try:
            if prob is None:
                chip, prob = self._read_and_predict(chip_id)
            else:  # the map kept from scoring: no model call
                chip = self.dataset.read(chip_id)
        except (ChipReadError, KeyError) as exc:
            return message_card(f"{chip_id}: cannot be read. {exc}", size, size)
        tc = true_colour_stretched(chip.bands, chip.valid, self.stretch)
        return thumbnail(tc, chip.label, prob, size, threshold=self.threshold)

    def request_thumbnail(self, chip_id: str, size: int) -> Future[np.ndarray]:
        """A chip's ``(size, size, 3)`` gallery picture as a future, at once (cached; a
        failed one is tried again)."""
        key = (chip_id, int(size))
        with self._lock:
            fut = self._thumbs.get(key)
            if fut is None or _failed(fut):
                fut = self._pool.submit(self._thumb, chip_id, int(size))
                self._thumbs[key] = fut
            self._thumbs.move_to_end(key)
            while len(self._thumbs) > self.thumb_cache_size:
                old_key, old = next(iter(self._thumbs.items()))
                if old is fut:
                    break
                old.cancel()
                del self._thumbs[old_key]
            return fut

    def forget(self, chip_ids: Iterable[str]) -> None:
        """Drop what is loaded of these chips (their label changed: a fix, or its undo);
        the next request reads them again."""
        ids = set(chip_ids)
        with self._lock:
            for cid in ids & set(self._futures):
                self._futures.pop(cid).cancel()
            for key in [k for k in self._thumbs if k[0] in ids]:
                self._thumbs.pop(key).cancel()

    def set_stretch(self, stretch: str) -> None:
        """Draw true colour with another stretch from now on (the cached chips are dropped)."""
        if stretch == self.stretch:
            return
        self.stretch = stretch
        with self._lock:
            for fut in [*self._futures.values(), *self._thumbs.values()]:
                fut.cancel()
            self._futures.clear()
            self._thumbs.clear()

    def _submit(self, chip_id: str, *, retry: bool) -> Future[ChipView]:
        with self._lock:
            fut = self._futures.get(chip_id)
            if fut is None or (retry and _failed(fut)):
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

    def request(self, chip_id: str) -> Future[ChipView]:
        """The chip's view as a future, at once; a load that failed before is tried again.

        The future's result is a :class:`ChipView`; its exception, if any, is what the
        read, the prediction or the rendering raised (the next request retries).
        """
        return self._submit(chip_id, retry=True)

    def get(self, chip_id: str, timeout: float | None = None) -> ChipView:
        """The chip's view; waits for it when it is not loaded yet (not for a GUI thread).

        Raises:
            TimeoutError: not ready within ``timeout`` seconds.
            Exception: whatever the load raised (the next call retries).
        """
        return self.request(chip_id).result(timeout=timeout)

    def prefetch(self, chip_ids: Iterable[str]) -> None:
        """Start loading chips that are not loaded or loading yet (failed ones are left
        for the reviewer's next visit)."""
        for cid in chip_ids:
            self._submit(cid, retry=False)

    def is_ready(self, chip_id: str) -> bool:
        """True when :meth:`request` would return a future that is done already."""
        with self._lock:
            fut = self._futures.get(chip_id)
        return fut is not None and fut.done() and not _failed(fut)

    def close(self) -> None:
        with self._lock:
            for fut in [*self._futures.values(), *self._thumbs.values()]:
                fut.cancel()
            self._futures.clear()
            self._thumbs.clear()
        self._pool.shutdown(wait=False, cancel_futures=True)
