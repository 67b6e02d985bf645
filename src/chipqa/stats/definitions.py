"""The definitions behind every per-chip statistic, written once in plain Python.

The batched torch code (:mod:`chipqa.stats.batched`) and the fused CPU kernels
(:mod:`chipqa.stats.kernels`) compute the same numbers faster; the tests check both
against these.

* **IoU** of the cloud class over valid pixels, ``tp / (tp + fp + fn)``. When the union
  is empty (label and prediction both say "no cloud anywhere") the two agree perfectly
  and the IoU is **1.0**, as ``smp.metrics.iou_score``'s ``zero_division=1.0``. A chip
  with no valid pixel has no IoU (NaN).
* **Label quality** follows cleanlab's score for segmentation: the per-pixel
  *self-confidence* (the predicted probability of the class the label gives that pixel)
  pooled over the chip with a soft minimum, ``Σ a·e^(−a/T) / Σ e^(−a/T)`` with
  temperature ``T``. 1 is perfect agreement, 0 total contradiction.
"""

from __future__ import annotations

import math

import numpy as np


def iou_from_counts(tp: float, fp: float, fn: float, n_valid: float | None = None) -> float:
    """IoU from pixel counts: 1.0 for an empty union, NaN when ``n_valid`` is 0."""
    if n_valid is not None and n_valid <= 0:
        return math.nan
    union = tp + fp + fn
    return float(tp / union) if union > 0 else 1.0


def mask_iou(pred: np.ndarray, target: np.ndarray, valid: np.ndarray | None = None) -> float:
    """IoU of two boolean masks over ``valid`` pixels (all pixels when None)."""
    pred = np.asarray(pred, bool)
    target = np.asarray(target, bool)
    if valid is not None:
        valid = np.asarray(valid, bool)
        pred, target = pred & valid, target & valid
        n_valid = int(valid.sum())
    else:
        n_valid = pred.size
    tp = int((pred & target).sum())
    fp = int(pred.sum()) - tp
    fn = int(target.sum()) - tp
    return iou_from_counts(tp, fp, fn, n_valid)


def soft_min(values: np.ndarray, temperature: float) -> float:
    """Soft minimum ``Σ v·e^(−v/T) / Σ e^(−v/T)`` of values in [0, 1]; NaN when empty."""
    v = np.asarray(values, np.float64).ravel()
    if v.size == 0:
        return math.nan
    w = np.exp(-(v - v.min()) / temperature)  # shifted: the ratio is unchanged
    return float((v * w).sum() / w.sum())
