"""Score every chip of a dataset: read, predict, count, in batches on the predictor's device.

A predictor makes a cloud probability map for each chip; the per-chip statistics
(:mod:`chipqa.stats`) turn label, prediction and valid mask into a few numbers per chip
on the predictor's device (the GPU when there is one); :func:`chipqa.scoring.table.finalize`
derives flags and the suspicion that ranks the table.
"""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable, Generator, Iterable, Iterator
from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch

from chipqa.constants import DEFAULT_TEMPERATURE, DEFAULT_THRESHOLD, LABEL_CLOUD
from chipqa.data import Chip, ChipDataset, ChipRecord, read_ahead
from chipqa.errors import ChipqaError, ChipReadError
from chipqa.predictors import Predictor, to_device
from chipqa.scoring.batching import chip_batches, default_batch_size, default_workers
from chipqa.scoring.calibrate import Calibration, iter_calibration
from chipqa.scoring.previews import PreviewStore, preview_maps
from chipqa.scoring.table import finalize
from chipqa.stats import (
    chip_stats,
    cpu_kernels,
    predicted_fraction,
    scl_stats,
    shadow_fraction,
)
from chipqa.stats.detectors import batch_detectors, chip_detectors


@dataclass
class ScoreProgress:
    """Progress of a scoring run, passed to callbacks after each batch."""

    done: int
    total: int
    errors: int


def _base_row(rec: ChipRecord, model: str, threshold: float) -> dict:
    row = {
        "chip_id": rec.chip_id,
        "model": model,
        "threshold": threshold,
        "label_source": getattr(rec, "label_source", "original"),
        "error": "",
    }
    row.update(rec.metadata)
    return row


def score_batch(
    predictor: Predictor,
    chips: list[Chip],
    *,
    threshold: float = DEFAULT_THRESHOLD,
    previews: PreviewStore | None = None,
) -> list[dict]:
    """Predict and compute the statistics of one batch of same-shape chips.

    On a GPU the statistics are computed there, on the whole batch, and only a few
    numbers per chip come back; on a CPU the fused kernels count each chip in one pass.
    With ``previews``, a small copy of each chip's probability map is kept there for
    the gallery (see :mod:`chipqa.scoring.previews`).
    """
    device = predictor.device
    bands = to_device(np.stack([c.bands for c in chips]), device)
    valid = to_device(np.stack([c.valid for c in chips]), device)
    kernels = cpu_kernels() if device.type == "cpu" else None
    with torch.inference_mode():
        maps = predictor.predict_maps(bands)
        prob = maps["cloud"]
        shadow = maps.get("shadow")
        if previews is not None:
            previews.put_many([c.chip_id for c in chips], preview_maps(prob, valid))
        if shadow is not None:
            shadow = shadow_fraction(prob, shadow, valid).cpu().numpy()
        if kernels is not None:
            p = prob.float().numpy()
            rows = []
            for i, c in enumerate(chips):
                row = kernels.score_chip_prob(
                    p[i], c.label, c.valid, c.scl, threshold, DEFAULT_TEMPERATURE
                )
                if c.label is not None:
                    row.update(chip_detectors(p[i], c.label, c.valid, threshold))
                rows.append(row)
        else:
            rows = _batch_stats_on_device(prob, chips, valid, threshold)
    for i, (row, chip) in enumerate(zip(rows, chips, strict=True)):
        row["height"], row["width"] = chip.shape
        if shadow is not None:
            row["pred_shadow_fraction"] = float(shadow[i])
    return rows


def _batch_stats_on_device(prob, chips: list[Chip], valid, threshold: float) -> list[dict]:
    device = prob.device
    detectors: dict[str, np.ndarray] = {}  # already on the host, in float64
    if chips[0].label is not None:
        label = torch.from_numpy(np.stack([c.label for c in chips])).to(device, non_blocking=True)
        stats = chip_stats(prob, label, valid, threshold=threshold)
        detectors = batch_detectors(prob, label, valid, threshold)
        if chips[0].scl is not None:
            scl = torch.from_numpy(np.stack([c.scl for c in chips])).to(device)
            stats.update(scl_stats(prob >= threshold, label == LABEL_CLOUD, scl, valid))
    else:
        stats = {
            "pred_cloud_fraction": predicted_fraction(prob, valid, threshold),
            "valid_fraction": valid.reshape(len(chips), -1).float().mean(1),
        }
    host = {k: v.float().cpu().numpy() for k, v in stats.items()} | detectors
    return [{k: float(v[i]) for k, v in host.items()} for i in range(len(chips))]


def iter_scores(
    dataset: ChipDataset,
    predictor: Predictor,
    *,
    chip_ids: Iterable[str] | None = None,
    batch_size: int | None = None,
    workers: int | None = None,
    threshold: float | str = DEFAULT_THRESHOLD,
    on_calibrated: Callable[[Calibration], None] | None = None,
    previews: PreviewStore | None = None,
) -> Iterator[list[dict]]:
    """Score chips batch by batch, yielding the rows of each batch as they are done.

    ``threshold="auto"`` first calibrates the threshold to the dataset's labels (see
    :mod:`chipqa.scoring.calibrate`), yielding empty lists while it does, and passes the
    :class:`~chipqa.scoring.calibrate.Calibration` to ``on_calibrated``; every row says
    the threshold it was scored at.

    Reading runs in ``workers`` threads ahead of the predictor (default: see
    :func:`default_workers`); at most a few batches of chips are held in memory whatever
    the dataset's size. A predictor with a :meth:`~chipqa.predictors.Predictor.chip_scorer`
    scores each chip in the thread that read it and the chip is dropped at once; others
    get batches of ``batch_size`` chips. Unreadable chips yield a row with ``error`` set
    and the run goes on. Suitable for a GUI worker (one yield per batch: a natural place
    to report progress and to cancel).

    Chips are read through the dataset (:meth:`ChipDataset.read_record`: from its cache
    when it has one); ``chip_ids`` scores only those chips, in that order. ``previews``
    keeps a small copy of each chip's probability map for the gallery (predictors that
    score chip by chip, such as the baseline, are fast enough to predict again and keep
    none).
    """
    if not isinstance(dataset, ChipDataset):
        raise TypeError(
            "score a dataset opened with chipqa.data.open_dataset (its chips are read "
            "through its cache); pass chip_ids= to score only some of its chips"
        )
    read = dataset.read_record
    records = list(dataset) if chip_ids is None else dataset.subset(chip_ids)
    if threshold == "auto":
        steps = iter_calibration(
            dataset, predictor, chip_ids=[r.chip_id for r in records], batch_size=batch_size
        )
        calibration = yield from _empty_rows_while(steps)
        threshold = calibration.threshold
        if on_calibrated is not None:
            on_calibrated(calibration)
    threshold = float(threshold)
    scorer = predictor.chip_scorer(threshold, DEFAULT_TEMPERATURE)
    if batch_size is None:
        batch_size = default_batch_size(predictor)
    if workers is None:
        workers = default_workers(scorer is not None)
    depth = max(2 * batch_size, workers * 2)
    if scorer is not None:
        # The scorer only looks at the pixels: no copy out of a cache's memory map.
        read = functools.partial(dataset.read_record, copy=False)
        yield from _iter_chip_scores(
            records, read, scorer, predictor.name, threshold, workers, depth, batch_size
        )
        return
    chips = read_ahead(records, read, workers=workers, depth=depth)
    for batch, failed in chip_batches(chips, batch_size):
        rows = []
        for rec, err in failed:
            row = _base_row(rec, predictor.name, threshold)
            row["error"] = str(err)
            rows.append(row)
        if batch:
            stats = score_batch(
                predictor, [c for _, c in batch], threshold=threshold, previews=previews
            )
            for (rec, _), st in zip(batch, stats, strict=True):
                row = _base_row(rec, predictor.name, threshold)
                row.update(st)
                rows.append(row)
        yield rows


def _empty_rows_while(steps: Generator[int, None, Calibration]):
    """Run ``steps`` to its end, yielding an empty list of rows after each of its steps;
    returns what it returns."""
    while True:
        try:
            next(steps)
        except StopIteration as stop:
            return stop.value
        yield []


@dataclass
class _ScorerFailure:
    exc: Exception


def _iter_chip_scores(
    records: list[ChipRecord],
    read: Callable[[ChipRecord], Chip],
    scorer: Callable[[Chip], dict],
    model: str,
    threshold: float,
    workers: int,
    depth: int,
    batch_size: int,
) -> Iterator[list[dict]]:
    def read_and_score(rec: ChipRecord) -> dict | _ScorerFailure:
        chip = read(rec)
        try:
            stats = scorer(chip)
        except Exception as exc:  # the scorer's fault, not the chip's: see below
            return _ScorerFailure(exc)
        stats["height"], stats["width"] = chip.shape
        return stats

    rows: list[dict] = []
    for rec, result in read_ahead(records, read_and_score, workers=workers, depth=depth):
        if isinstance(result, _ScorerFailure):
            # Reporting it against every chip would look like a broken dataset.
            raise ChipqaError(
                f"scoring failed on chip {rec.chip_id!r} with {model} "
                f"({type(result.exc).__name__}: {result.exc}); the chip itself was read "
                "fine. Please report this with the chip's files"
            ) from result.exc
        row = _base_row(rec, model, threshold)
        if isinstance(result, ChipReadError):
            row["error"] = str(result)
        else:
            row.update(result)
        rows.append(row)
        if len(rows) >= batch_size:
            yield rows
            rows = []
    if rows:
        yield rows


def score_dataset(
    dataset: ChipDataset,
    predictor: Predictor,
    *,
    chip_ids: Iterable[str] | None = None,
    batch_size: int | None = None,
    workers: int | None = None,
    threshold: float | str = DEFAULT_THRESHOLD,
    progress: bool | Callable[[ScoreProgress], None] | None = None,
    should_stop: Callable[[], bool] | None = None,
    previews: PreviewStore | None = None,
) -> pd.DataFrame:
    """Score a dataset and return the ranked table (see :func:`~chipqa.scoring.table.finalize`).

    Args:
        dataset: the chips, read through the dataset's reader (its cache when it has one).
        chip_ids: score only these chips (default: all).
        predictor: where the cloud probabilities come from (already on its device).
        batch_size: chips per predictor call (None: :func:`default_batch_size`).
        workers: reading threads (0: read in the calling thread; None: see
            :func:`default_workers`).
        threshold: probability at or above which a pixel counts as cloud, or ``"auto"``:
            calibrated to the dataset's labels first (see :mod:`chipqa.scoring.calibrate`;
            the :class:`~chipqa.scoring.calibrate.Calibration` is in the table's
            ``attrs["calibration"]`` and every row's ``threshold`` column).
        progress: ``True`` for a terminal progress bar (only shown when stderr is a
            terminal), or a callback receiving :class:`ScoreProgress` after each batch.
        should_stop: polled after each batch; when it returns True the run stops and the
            chips scored so far are returned.
        previews: where to keep small probability maps for the gallery (see
            :mod:`chipqa.scoring.previews`), or None.
    """
    if chip_ids is not None:
        chip_ids = list(chip_ids)
    total = len(dataset) if chip_ids is None else len(chip_ids)
    bar = None
    callback = progress if callable(progress) else None
    if progress is True:
        from tqdm.auto import tqdm

        bar = tqdm(total=total, unit="chip", desc="scoring", disable=not sys.stderr.isatty())
    rows: list[dict] = []
    errors = 0
    calibrated: list[Calibration] = []
    try:
        for batch_rows in iter_scores(
            dataset,
            predictor,
            chip_ids=chip_ids,
            batch_size=batch_size,
            workers=workers,
            threshold=threshold,
            on_calibrated=calibrated.append,
            previews=previews,
        ):
            rows.extend(batch_rows)
            errors += sum(1 for r in batch_rows if r.get("error"))
            if bar is not None:
                bar.update(len(batch_rows))
            if callback is not None:
                callback(ScoreProgress(len(rows), total, errors))
            if should_stop is not None and should_stop():
                break
    finally:
        if bar is not None:
            bar.close()
    table = finalize(rows)
    if calibrated:
        table.attrs["calibration"] = calibrated[0]
    return table
