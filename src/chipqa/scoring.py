"""Score every chip of a dataset and rank the suspicious labels first.

A predictor makes a cloud probability map for each chip; :func:`~chipqa.metrics.chip_stats`
turns label, prediction and valid mask into a few numbers per chip on the predictor's
device (the GPU when there is one); flags in words and one ``suspicion`` number are
derived from those numbers on the host.

The scores table (see :data:`SCORE_COLUMNS`) is a stable contract: one row per chip,
``chip_id`` first, numbers as floats, flags as words separated by ``;``, and a chip that
could not be read keeps its row with the reason in ``error``.
"""

from __future__ import annotations

import functools
import math
import os
import sys
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from chipqa._io import atomic_open
from chipqa.dataset import Chip, ChipDataset, ChipRecord, read_chip
from chipqa.errors import ChipqaError, ChipReadError
from chipqa.metrics import (
    DEFAULT_TEMPERATURE,
    DEFAULT_THRESHOLD,
    chip_stats,
    predicted_fraction,
    scl_stats,
)
from chipqa.models import Predictor, cpu_kernels, to_device

STAT_COLUMNS = [
    "iou",
    "label_cloud_fraction",
    "pred_cloud_fraction",
    "mismatch_fraction",
    "soft_mismatch",
    "label_quality",
    "valid_fraction",
    "scl_cloud_fraction",
    "scl_shadow_fraction",
    "iou_label_scl",
    "iou_pred_scl",
]
"""The per-chip statistics (see :func:`chipqa.metrics.chip_stats` and
:func:`chipqa.metrics.scl_stats`; the SCL ones are empty for chips without an SCL)."""

SCORE_COLUMNS = [
    "chip_id",
    "rank",
    "suspicion",
    *STAT_COLUMNS,
    "flags",
    "error",
    "model",
    "height",
    "width",
]
"""Columns of the scores table, in order; metadata columns (location, datetime) follow."""


# Thresholds behind the flags (fractions of a chip's valid pixels).
ALL_CLOUD_MIN = 0.995
NO_CLOUD_MAX = 0.005
LOW_IOU = 0.5
FRACTION_GAP = 0.25
CONTRADICTION_MIN = 0.3

FLAG_DESCRIPTIONS = {
    "all_cloud_label": f"the label calls ≥ {ALL_CLOUD_MIN:.1%} of the chip cloud",
    "no_cloud_label": f"the label calls ≤ {NO_CLOUD_MAX:.1%} of the chip cloud",
    "label_contradicted": (
        "an all-cloud or no-cloud label that the image contradicts on "
        f"≥ {CONTRADICTION_MIN:.0%} of the chip"
    ),
    "low_iou": f"IoU of label and prediction < {LOW_IOU}",
    "cloud_missing_from_label": f"the model sees ≥ {FRACTION_GAP:.0%} more of the chip as cloud",
    "extra_cloud_in_label": f"the label has ≥ {FRACTION_GAP:.0%} more of the chip as cloud",
    "partial_nodata": "part of the chip has no data (band nodata or label 255)",
    "scl_disagrees": f"IoU of the label with Sen2Cor's SCL cloud classes < {LOW_IOU}",
    "no_label": "the chip has no label file: predicted, not scored",
    "unreadable": "the chip could not be read: see the error column",
}
"""Every flag word chipqa writes, with what it means."""


@dataclass
class ScoreProgress:
    """Progress of a scoring run, passed to callbacks after each batch."""

    done: int
    total: int
    errors: int


def suspicion_score(
    soft_mismatch: np.ndarray, label_quality: np.ndarray, iou_label_scl: np.ndarray | None = None
) -> np.ndarray:
    """One number per chip to rank by, in [0, 1]: higher means the label is more likely wrong.

    ``suspicion = ((1 − label_quality) + soft_mismatch) / 2``: the mean of two views of
    the same disagreement between the label and the model's probabilities.

    * ``1 − label_quality`` (cleanlab's soft-minimum self-confidence) is high as soon as
      *some* pixels are confidently contradicted, however few: it catches labels whose
      clouds are in the wrong place (shifted, another chip's label, clouds missing).
    * ``soft_mismatch`` (mean ``|label − probability|``) says *how much* of the chip is
      contradicted, so labels wrong over the whole chip (an all-cloud label on a clear
      chip, a no-cloud label on an overcast one) rank above local disagreements such
      as cloud edges drawn differently.

    On chipqa's synthetic benchmark this combination ranked planted errors better than
    either part alone, IoU, or the thresholded mismatch (see the README).

    Where the chip has a Sen2Cor SCL, it is a second opinion: ``suspicion = 0.75 · s +
    0.25 · (1 − IoU(label, SCL clouds))``, so a label that disagrees with both the model
    and SCL ranks above one that disagrees with the model alone.
    """
    s = np.clip(((1.0 - label_quality) + soft_mismatch) / 2.0, 0.0, 1.0)
    if iou_label_scl is not None:
        second = np.asarray(iou_label_scl, dtype=float)
        s = np.where(np.isnan(second), s, 0.75 * s + 0.25 * (1.0 - second))
    return s


def flags_for(row: dict) -> list[str]:
    """Flag words for one scored row (see :data:`FLAG_DESCRIPTIONS`)."""
    if row.get("error"):
        return ["unreadable"]
    flags = []
    lab = row.get("label_cloud_fraction")
    pred = row.get("pred_cloud_fraction")
    if lab is None or (isinstance(lab, float) and math.isnan(lab)):
        flags.append("no_label")
    else:
        constant = False
        if lab >= ALL_CLOUD_MIN:
            flags.append("all_cloud_label")
            constant = True
        elif lab <= NO_CLOUD_MAX:
            flags.append("no_cloud_label")
            constant = True
        if constant and row["mismatch_fraction"] >= CONTRADICTION_MIN:
            flags.append("label_contradicted")
        if row["iou"] < LOW_IOU:
            flags.append("low_iou")
        scl_iou = row.get("iou_label_scl")
        if scl_iou is not None and not math.isnan(scl_iou) and scl_iou < LOW_IOU:
            flags.append("scl_disagrees")
        if pred - lab >= FRACTION_GAP:
            flags.append("cloud_missing_from_label")
        elif lab - pred >= FRACTION_GAP:
            flags.append("extra_cloud_in_label")
    if row.get("valid_fraction", 1.0) < 0.999:
        flags.append("partial_nodata")
    return flags


def _read_ahead(
    records: list[ChipRecord],
    workers: int,
    depth: int,
    read: Callable[[ChipRecord], Any] = read_chip,
) -> Iterator[tuple[ChipRecord, Any]]:
    """Read chips in a thread pool, at most ``depth`` ahead, yielding them in order
    (``read``'s result, or the :class:`ChipReadError` it raised)."""

    def load(rec: ChipRecord) -> Any:
        try:
            return read(rec)
        except ChipReadError as exc:
            return exc
        except Exception as exc:  # an unexpected failure is still this chip's alone
            return ChipReadError(rec.chip_id, rec.folder, f"unexpected {type(exc).__name__}: {exc}")

    if workers <= 0:
        for rec in records:
            yield rec, load(rec)
        return
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="chipqa-read") as pool:
        pending: deque[tuple[ChipRecord, Future]] = deque()
        it = iter(records)
        try:
            for rec in it:
                pending.append((rec, pool.submit(load, rec)))
                if len(pending) >= depth:
                    r, fut = pending.popleft()
                    yield r, fut.result()
            while pending:
                r, fut = pending.popleft()
                yield r, fut.result()
        finally:
            for _, fut in pending:
                fut.cancel()


def _batches(
    chips: Iterable[tuple[ChipRecord, Chip | ChipReadError]], batch_size: int
) -> Iterator[tuple[list[tuple[ChipRecord, Chip]], list[tuple[ChipRecord, ChipReadError]]]]:
    """Group readable chips of one shape (and labelled-ness) into batches."""
    batch: list[tuple[ChipRecord, Chip]] = []
    failed: list[tuple[ChipRecord, ChipReadError]] = []
    key = None
    for rec, chip in chips:
        if isinstance(chip, ChipReadError):
            failed.append((rec, chip))
            continue
        k = (chip.shape, chip.label is not None, chip.scl is not None)
        if batch and (k != key or len(batch) >= batch_size):
            yield batch, failed
            batch, failed = [], []
        key = k
        batch.append((rec, chip))
    if batch or failed:
        yield batch, failed


def _base_row(rec: ChipRecord, model: str) -> dict:
    row = {"chip_id": rec.chip_id, "model": model, "error": ""}
    row.update(rec.metadata)
    return row


def score_batch(
    predictor: Predictor, chips: list[Chip], *, threshold: float = DEFAULT_THRESHOLD
) -> list[dict]:
    """Predict and compute the statistics of one batch of same-shape chips.

    On a GPU the statistics are computed there, on the whole batch, and only a few
    numbers per chip come back; on a CPU the fused kernels count each chip in one pass.
    """
    device = predictor.device
    bands = to_device(np.stack([c.bands for c in chips]), device)
    valid = to_device(np.stack([c.valid for c in chips]), device)
    kernels = cpu_kernels() if device.type == "cpu" else None
    with torch.inference_mode():
        prob = predictor.predict_proba(bands)
        if kernels is not None:
            p = prob.float().numpy()
            rows = [
                kernels.score_chip_prob(
                    p[i], c.label, c.valid, c.scl, threshold, DEFAULT_TEMPERATURE
                )
                for i, c in enumerate(chips)
            ]
        else:
            rows = _batch_stats_on_device(prob, chips, valid, threshold)
    for row, chip in zip(rows, chips, strict=True):
        row["height"], row["width"] = chip.shape
    return rows


def _batch_stats_on_device(prob, chips: list[Chip], valid, threshold: float) -> list[dict]:
    device = prob.device
    if chips[0].label is not None:
        label = torch.from_numpy(np.stack([c.label for c in chips])).to(device, non_blocking=True)
        stats = chip_stats(prob, label, valid, threshold=threshold)
        if chips[0].scl is not None:
            scl = torch.from_numpy(np.stack([c.scl for c in chips])).to(device)
            stats.update(scl_stats(prob >= threshold, label == 1, scl, valid))
    else:
        stats = {
            "pred_cloud_fraction": predicted_fraction(prob, valid, threshold),
            "valid_fraction": valid.reshape(len(chips), -1).float().mean(1),
        }
    host = {k: v.float().cpu().numpy() for k, v in stats.items()}
    return [{k: float(v[i]) for k, v in host.items()} for i in range(len(chips))]


def default_batch_size(predictor: Predictor) -> int:
    """Chips per predictor call: large on a GPU (its throughput grows with the batch up to
    well past 64 chips of 512²), small elsewhere (a CPU gains nothing from batching)."""
    return 64 if predictor.device.type == "cuda" else 8


def default_workers(chip_scorer: bool) -> int:
    """Reading threads: every core when they also score (the CPU baseline), else two
    (the predictor's own threads or the GPU do the computing)."""
    if not chip_scorer:
        return 2
    try:
        cores = len(os.sched_getaffinity(0))  # the cores this process may use
    except AttributeError:  # not on Linux
        cores = os.cpu_count() or 2
    return max(2, min(16, cores))


def iter_scores(
    dataset: ChipDataset | Iterable[ChipRecord],
    predictor: Predictor,
    *,
    batch_size: int | None = None,
    workers: int | None = None,
    threshold: float = DEFAULT_THRESHOLD,
) -> Iterator[list[dict]]:
    """Score chips batch by batch, yielding the rows of each batch as they are done.

    Reading runs in ``workers`` threads ahead of the predictor (default: see
    :func:`default_workers`); at most a few batches of chips are held in memory whatever
    the dataset's size. A predictor with a :meth:`~chipqa.models.Predictor.chip_scorer`
    scores each chip in the thread that read it and the chip is dropped at once; others
    get batches of ``batch_size`` chips. Unreadable chips yield a row with ``error`` set
    and the run goes on. Suitable for a GUI worker (one yield per batch: a natural place
    to report progress and to cancel).
    """
    read = dataset.read_record if isinstance(dataset, ChipDataset) else read_chip
    records = list(dataset)
    scorer = predictor.chip_scorer(threshold, DEFAULT_TEMPERATURE)
    if batch_size is None:
        batch_size = default_batch_size(predictor)
    if workers is None:
        workers = default_workers(scorer is not None)
    depth = max(2 * batch_size, workers * 2)
    if scorer is not None:
        if isinstance(dataset, ChipDataset):  # the scorer only looks: no copy from a cache
            read = functools.partial(dataset.read_record, copy=False)
        yield from _iter_chip_scores(
            records, read, scorer, predictor.name, workers, depth, batch_size
        )
        return
    for batch, failed in _batches(_read_ahead(records, workers, depth, read), batch_size):
        rows = []
        for rec, err in failed:
            row = _base_row(rec, predictor.name)
            row["error"] = str(err)
            rows.append(row)
        if batch:
            stats = score_batch(predictor, [c for _, c in batch], threshold=threshold)
            for (rec, _), st in zip(batch, stats, strict=True):
                row = _base_row(rec, predictor.name)
                row.update(st)
                rows.append(row)
        yield rows


@dataclass
class _ScorerFailure:
    exc: Exception


def _iter_chip_scores(
    records: list[ChipRecord],
    read: Callable[[ChipRecord], Chip],
    scorer: Callable[[Chip], dict],
    model: str,
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
    for rec, result in _read_ahead(records, workers, depth, read_and_score):
        if isinstance(result, _ScorerFailure):
            # Reporting it against every chip would look like a broken dataset.
            raise ChipqaError(
                f"scoring failed on chip {rec.chip_id!r} with {model} "
                f"({type(result.exc).__name__}: {result.exc}); the chip itself was read "
                "fine. Please report this with the chip's files"
            ) from result.exc
        row = _base_row(rec, model)
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


def finalize(rows: list[dict]) -> pd.DataFrame:
    """Rows → the ranked scores table: flags, suspicion, rank; most suspicious first.

    Labelled chips come first by decreasing suspicion, then unlabelled chips, then
    chips that could not be read.
    """
    df = pd.DataFrame(rows, columns=None if rows else SCORE_COLUMNS)
    for col in SCORE_COLUMNS:
        if col not in df.columns:
            df[col] = np.nan if col in STAT_COLUMNS + ["suspicion", "height", "width"] else ""
    for col in STAT_COLUMNS:
        df[col] = df[col].astype(float)
    df["error"] = df["error"].fillna("").astype(str)
    df["suspicion"] = suspicion_score(
        df["soft_mismatch"].to_numpy(),
        df["label_quality"].to_numpy(),
        df["iou_label_scl"].to_numpy(),
    )
    df["flags"] = [";".join(flags_for(r)) for r in df.to_dict("records")]
    group = np.where(df["error"] != "", 2, np.where(df["suspicion"].isna(), 1, 0))
    df = df.assign(_group=group).sort_values(
        ["_group", "suspicion", "chip_id"], ascending=[True, False, True], kind="mergesort"
    )
    df = df.drop(columns="_group").reset_index(drop=True)
    df["rank"] = np.arange(1, len(df) + 1)
    extra = [c for c in df.columns if c not in SCORE_COLUMNS]
    return df[SCORE_COLUMNS + extra]


def score_dataset(
    dataset: ChipDataset | Iterable[ChipRecord],
    predictor: Predictor,
    *,
    batch_size: int | None = None,
    workers: int | None = None,
    threshold: float = DEFAULT_THRESHOLD,
    progress: bool | Callable[[ScoreProgress], None] | None = None,
    should_stop: Callable[[], bool] | None = None,
) -> pd.DataFrame:
    """Score a whole dataset and return the ranked table (see :func:`finalize`).

    Args:
        dataset: chips to score.
        predictor: where the cloud probabilities come from (already on its device).
        batch_size: chips per predictor call (None: :func:`default_batch_size`).
        workers: reading threads (0: read in the calling thread; None: see
            :func:`default_workers`).
        threshold: probability at or above which a pixel counts as cloud.
        progress: ``True`` for a terminal progress bar (only shown when stderr is a
            terminal), or a callback receiving :class:`ScoreProgress` after each batch.
        should_stop: polled after each batch; when it returns True the run stops and the
            chips scored so far are returned.
    """
    if not isinstance(dataset, ChipDataset):
        dataset = list(dataset)
    total = len(dataset)
    bar = None
    callback = progress if callable(progress) else None
    if progress is True:
        from tqdm.auto import tqdm

        bar = tqdm(total=total, unit="chip", desc="scoring", disable=not sys.stderr.isatty())
    rows: list[dict] = []
    errors = 0
    try:
        for batch_rows in iter_scores(
            dataset, predictor, batch_size=batch_size, workers=workers, threshold=threshold
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
    return finalize(rows)


def atomic_write_csv(df: pd.DataFrame, path: str | Path) -> Path:
    """Write a table as CSV atomically: temporary file, fsync, rename over ``path``."""
    path = Path(path)
    with atomic_open(path, "w", newline="", encoding="utf-8") as f:
        df.to_csv(f, index=False, float_format="%.6g")
    return path


def read_scores(path: str | Path) -> pd.DataFrame:
    """Read a scores CSV written by chipqa (``flags`` and ``error`` come back as strings)."""
    path = Path(path)
    try:
        df = pd.read_csv(
            path,
            dtype={"chip_id": str, "flags": str, "error": str, "model": str},
            keep_default_na=False,
            na_values={c: [""] for c in STAT_COLUMNS + ["suspicion"]},
        )
    except (OSError, pd.errors.ParserError, pd.errors.EmptyDataError) as exc:
        raise ChipqaError(
            f"scores file {path} cannot be read ({exc}); re-run `chipqa score`"
        ) from exc
    missing = [c for c in ("chip_id", "suspicion") if c not in df.columns]
    if missing:
        raise ChipqaError(
            f"{path} is not a chipqa scores table (no column {', '.join(missing)}); "
            "re-run `chipqa score`"
        )
    return df
