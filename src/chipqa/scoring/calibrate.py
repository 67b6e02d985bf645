"""Calibrate the probability threshold to the dataset's label style (``--threshold auto``).

Datasets draw clouds differently: On Cloud N's labels are generous (they take in the
thin margins a 0.5-probability mask leaves out), others are tight. Most labels of a
dataset are right, so the threshold at which the model's masks agree best with the
labels is the dataset's own notion of "cloud". :func:`calibrate_threshold` predicts a
random sample of labelled chips once, counts each chip's agreement at every candidate
threshold (:func:`chipqa.stats.batched.threshold_counts`) and picks the threshold with
the highest median per-chip IoU. A median, not a mean, so that the wrong labels being
looked for do not pull the threshold towards themselves.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import numpy as np
import torch

from chipqa.constants import DEFAULT_THRESHOLD, LABEL_NODATA
from chipqa.data import ChipDataset, read_ahead
from chipqa.predictors import Predictor, to_device
from chipqa.scoring.batching import chip_batches, default_batch_size
from chipqa.stats import threshold_counts

CANDIDATES = tuple(round(0.05 * i, 2) for i in range(1, 20))
"""Thresholds tried: 0.05, 0.10, … 0.95."""

SAMPLE = 128
"""Labelled chips predicted for the calibration (a random sample of larger datasets)."""


@dataclass
class Calibration:
    """The outcome of :func:`calibrate_threshold`.

    Attributes:
        threshold: the chosen threshold (:data:`DEFAULT_THRESHOLD` when no chip could
            inform the choice).
        median_iou: median per-chip IoU of labels and predictions at ``threshold``.
        median_iou_default: the same at :data:`DEFAULT_THRESHOLD`, for comparison.
        chips: how many chips informed the choice (labelled, readable, with cloud in
            the label or the prediction at some threshold).
        curve: median IoU at each of :data:`CANDIDATES`.
    """

    threshold: float
    median_iou: float
    median_iou_default: float
    chips: int
    curve: dict[float, float] = field(default_factory=dict)
    uniform: int = 0
    """Chips whose label is all cloud or all clear (they cannot place a threshold)."""

    def describe(self) -> str:
        """One line for a terminal or a status bar."""
        if not self.chips and self.uniform:
            return (
                f"threshold auto: each of the {self.uniform} labelled chips sampled is "
                f"labelled all cloud or all clear, so the labels cannot tell one threshold "
                f"from another; using {DEFAULT_THRESHOLD}. Give --threshold to choose one"
            )
        if not self.chips:
            return (
                f"threshold auto: no labelled chip with cloud to calibrate on; "
                f"using {DEFAULT_THRESHOLD}"
            )
        return (
            f"threshold auto: {self.threshold:.2f} (median IoU of labels and predictions "
            f"{self.median_iou:.3f} over {self.chips} labelled chips; "
            f"{self.median_iou_default:.3f} at {DEFAULT_THRESHOLD})"
        )


def choose_threshold(
    tp: np.ndarray,
    n_pred: np.ndarray,
    n_target: np.ndarray,
    candidates=CANDIDATES,
    n_labelled: np.ndarray | None = None,
) -> Calibration:
    """The candidate threshold with the highest median per-chip IoU.

    Args:
        tp, n_pred: ``(N, K)`` counts per chip at each candidate (see
            :func:`~chipqa.stats.batched.threshold_counts`).
        n_target: ``(N,)`` labelled-cloud pixels per chip.
        n_labelled: ``(N,)`` valid labelled pixels per chip, if known.

    Chips whose label and prediction are empty at every threshold say nothing about the
    threshold and are left out. When every chip's label is all cloud or all clear
    (``n_labelled`` given), the labels cannot place a threshold either (all cloud
    favours the lowest one whatever the model does): :data:`DEFAULT_THRESHOLD` is kept
    and :attr:`Calibration.uniform` says why. Ties go to the candidate nearest
    :data:`DEFAULT_THRESHOLD`.
    """
    tp, n_pred = np.asarray(tp, float), np.asarray(n_pred, float)
    n_target = np.asarray(n_target, float)[:, None]
    if n_labelled is not None and len(n_target):
        labelled = np.asarray(n_labelled, float)[:, None]
        uniform = (n_target == 0) | (n_target >= labelled)
        if uniform.all():
            return Calibration(DEFAULT_THRESHOLD, math.nan, math.nan, 0, uniform=len(n_target))
    union = n_pred + n_target - tp
    informative = union.max(axis=1) > 0 if len(union) else np.zeros(0, bool)
    iou = np.divide(tp, union, out=np.ones_like(tp), where=union > 0)[informative]
    candidates = [float(c) for c in candidates]
    default_k = int(np.argmin([abs(c - DEFAULT_THRESHOLD) for c in candidates]))
    if not len(iou):
        return Calibration(DEFAULT_THRESHOLD, math.nan, math.nan, 0)
    medians = np.median(iou, axis=0)
    best = medians.max()
    near = [k for k in range(len(candidates)) if medians[k] >= best - 1e-9]
    k = min(near, key=lambda i: abs(candidates[i] - DEFAULT_THRESHOLD))
    return Calibration(
        threshold=candidates[k],
        median_iou=float(medians[k]),
        median_iou_default=float(medians[default_k]),
        chips=int(informative.sum()),
        curve=dict(zip(candidates, (float(m) for m in medians), strict=True)),
    )


def iter_calibration(
    dataset: ChipDataset,
    predictor: Predictor,
    *,
    chip_ids: list[str] | None = None,
    sample: int = SAMPLE,
    seed: int = 0,
    batch_size: int | None = None,
    workers: int = 2,
) -> Iterator[int]:
    """:func:`calibrate_threshold` step by step: yields the chips predicted so far after
    each batch (a place to show progress and to cancel) and returns the
    :class:`Calibration` (``calibration = yield from iter_calibration(...)``)."""
    records = list(dataset) if chip_ids is None else dataset.subset(chip_ids)
    labelled = [r for r in records if r.label_path is not None]
    if len(labelled) > sample:
        labelled = random.Random(seed).sample(labelled, sample)
    batch_size = batch_size or default_batch_size(predictor)
    device = predictor.device
    thresholds = torch.tensor(CANDIDATES, dtype=torch.float32, device=device)
    tp, n_pred, n_target, n_labelled = [], [], [], []
    done = 0
    chips = read_ahead(labelled, dataset.read_record, workers=workers, depth=2 * batch_size)
    for batch, failed in chip_batches(chips, batch_size):
        done += len(failed)
        batch = [(r, c) for r, c in batch if c.label is not None]
        if batch:
            bands = to_device(np.stack([c.bands for _, c in batch]), device)
            valid = to_device(np.stack([c.valid for _, c in batch]), device)
            label = to_device(np.stack([c.label for _, c in batch]), device)
            with torch.inference_mode():
                prob = predictor.predict_proba(bands)
                counts = threshold_counts(prob, label, valid, thresholds)
            tp.append(counts["tp"].cpu().numpy())
            n_pred.append(counts["n_pred"].cpu().numpy())
            n_target.append(counts["n_target"].cpu().numpy())
            n_labelled.extend(int((c.valid & (c.label != LABEL_NODATA)).sum()) for _, c in batch)
            done += len(batch)
        yield done
    k = len(CANDIDATES)
    return choose_threshold(
        np.concatenate(tp) if tp else np.zeros((0, k)),
        np.concatenate(n_pred) if n_pred else np.zeros((0, k)),
        np.concatenate(n_target) if n_target else np.zeros(0),
        n_labelled=np.asarray(n_labelled, float),
    )


def calibrate_threshold(
    dataset: ChipDataset,
    predictor: Predictor,
    *,
    chip_ids: list[str] | None = None,
    sample: int = SAMPLE,
    seed: int = 0,
    batch_size: int | None = None,
    workers: int = 2,
    should_stop: Callable[[], bool] | None = None,
) -> Calibration | None:
    """Pick the threshold that best matches how this dataset's labels draw clouds.

    Predicts up to ``sample`` labelled chips (a seeded random sample, so a rerun picks
    the same threshold) and returns the :class:`Calibration`; None when ``should_stop``
    stopped it first. Unreadable chips are skipped (scoring reports them).
    """
    steps = iter_calibration(
        dataset,
        predictor,
        chip_ids=chip_ids,
        sample=sample,
        seed=seed,
        batch_size=batch_size,
        workers=workers,
    )
    while True:
        try:
            next(steps)
        except StopIteration as stop:
            return stop.value
        if should_stop is not None and should_stop():
            steps.close()
            return None
