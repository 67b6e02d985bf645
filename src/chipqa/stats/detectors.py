"""Label-error detectors: per-chip numbers, each aimed at one kind of wrong label.

Every detector compares the label with the model's cloud probability ``p`` at the
scoring threshold ``t``. "Confident" means at least :data:`MARGIN` logit units away from
the threshold: confidently cloud where ``logit(p) > logit(t) + MARGIN``, confidently clear
where ``logit(p) < logit(t) − MARGIN`` (at ``t = 0.05``: above 0.28, below 0.007).
Counting only confident pixels keeps haze and soft cloud margins — where a right label
and the model may well differ — out of the evidence.

* ``contradicted_fraction``: share of the chip where label and model disagree
  confidently (a whole chip contradicted: an all-cloud label on a clear chip).
* ``missing_region`` / ``extra_region``: share of the chip in the *cores* of confident
  disagreement, pixels whose 5×5 neighbourhood (:data:`CORE_RADIUS`) all disagrees the
  same way: cloud the model is sure of and the label misses, or label cloud on ground
  the model is sure is clear. A thin band along a cloud's edge, where labels and models
  always differ a little, has no core; a missing or added cloud blob of any size has.
* ``edge_offset`` (pixels) and ``edge_gain``: the label grown (positive) or shrunk
  (negative) by every whole pixel up to :data:`MAX_OFFSET`, the offset at which it fits
  the model's mask best, and how much IoU that gains. A label drawn too tight all round
  needs to grow; a loose one to shrink. Chessboard distance; empty (NaN) where label or
  model has under 1 % or over 99 % cloud, as such chips have no edge to compare.
* ``centred_quality``: cleanlab's soft label quality (the soft minimum of the pixels'
  self-confidence, temperature 0.1) with each probability first re-centred on the
  threshold, ``p' = sigmoid(logit(p) − logit(t))``, so that "agrees with the label" means
  the same as it does for the mask at ``t``.

None of these is an IoU, so a chip whose label and model both see almost no cloud is
not made suspicious by a few pixels. How the numbers become one ranking, judged
against the dataset's own distribution, is :mod:`chipqa.scoring.ranking`.
"""

from __future__ import annotations

import math

import numpy as np

MARGIN = 2.0
"""Logit units between the threshold and a confident call."""
CORE_RADIUS = 2
"""A core pixel's whole (2r+1)² window disagrees the same way."""
MAX_OFFSET = 10
"""Largest edge offset tried, in pixels."""
TEMPERATURE = 0.1
"""The soft minimum's temperature (cleanlab's default)."""
EDGE_MIN_FRACTION = 0.01
"""Label and model must each call between 1 % and 99 % of the chip cloud for an edge offset."""

DETECTOR_COLUMNS = [
    "contradicted_fraction",
    "missing_region",
    "extra_region",
    "edge_offset",
    "edge_gain",
    "centred_quality",
]
"""The detectors' columns in the scores table."""


def confidence_bounds(threshold: float, margin: float = MARGIN) -> tuple[float, float]:
    """Probabilities below / above which the model is confidently clear / cloud."""
    t = min(max(float(threshold), 1e-6), 1 - 1e-6)
    z = math.log(t / (1 - t))
    return 1 / (1 + math.exp(-(z - margin))), 1 / (1 + math.exp(-(z + margin)))


def edge_fit(hist_all: np.ndarray, hist_pred: np.ndarray) -> tuple[float, float]:
    """``(edge_offset, edge_gain)`` from the two edge histograms of one chip (see
    :func:`chipqa.stats.detector_kernels.detector_counts`): the label grown by ``s``
    pixels holds every pixel at signed distance ≤ ``s``, so the IoU of each offset is a
    ratio of cumulative sums. The best whole offset (ties: the one nearest 0) is refined
    to a fraction of a pixel by the parabola through it and its neighbours."""
    n_all = np.cumsum(np.asarray(hist_all, np.float64))
    n_tp = np.cumsum(np.asarray(hist_pred, np.float64))
    n_pred = n_tp[-1]
    k = (len(n_all) - 3) // 2
    iou = n_tp / np.maximum(n_all + n_pred - n_tp, 1.0)
    offsets = np.arange(-k - 1, k + 2)
    inner = np.arange(1, len(iou) - 1)  # offsets -k … k
    best = iou[inner].max()
    ties = inner[iou[inner] >= best - 1e-12]
    i = int(ties[np.argmin(np.abs(offsets[ties]))])
    s = float(offsets[i])
    left, mid, right = iou[i - 1], iou[i], iou[i + 1]
    curvature = left - 2 * mid + right
    if curvature < 0:
        s += float(np.clip(0.5 * (left - right) / curvature, -0.5, 0.5))
    return s, float(best - iou[k + 1])


def detector_row(acc: np.ndarray, hist_all: np.ndarray, hist_pred: np.ndarray) -> dict:
    """The kernels' counts → the detectors' columns (see :data:`DETECTOR_COLUMNS`)."""
    from chipqa.stats import detector_kernels as k

    n = acc[k.D_N]
    if n <= 0:
        return dict.fromkeys(DETECTOR_COLUMNS, math.nan)
    label_frac, pred_frac = acc[k.D_LABEL] / n, acc[k.D_PRED] / n
    lo, hi = EDGE_MIN_FRACTION, 1 - EDGE_MIN_FRACTION
    if lo <= label_frac <= hi and lo <= pred_frac <= hi:
        offset, gain = edge_fit(hist_all, hist_pred)
    else:
        offset, gain = math.nan, math.nan
    den = acc[k.D_LQ_DEN]
    return {
        "contradicted_fraction": (acc[k.D_MISS] + acc[k.D_EXTRA]) / n,
        "missing_region": acc[k.D_MISS_CORE] / n,
        "extra_region": acc[k.D_EXTRA_CORE] / n,
        "edge_offset": offset,
        "edge_gain": gain,
        "centred_quality": acc[k.D_LQ_NUM] / den if den > 0 else math.nan,
    }


def chip_detectors(
    prob: np.ndarray, label: np.ndarray, valid: np.ndarray, threshold: float
) -> dict:
    """The detectors of one chip on a CPU (numba): ``prob`` ``(H, W)`` float32, ``label``
    uint8 (0, 1, 255), ``valid`` bool."""
    from chipqa.stats import detector_kernels as k

    lo, hi = confidence_bounds(threshold)
    acc, h_all, h_pred = k.detector_counts(
        np.ascontiguousarray(prob, dtype=np.float32),
        np.ascontiguousarray(label),
        np.ascontiguousarray(valid),
        float(threshold),
        lo,
        hi,
        CORE_RADIUS,
        MAX_OFFSET,
        1.0 / TEMPERATURE,
        EDGE_MIN_FRACTION,
    )
    return detector_row(acc, h_all, h_pred)


def batch_detectors(prob, label, valid, threshold: float) -> dict:
    """The detectors of a batch on any device (torch): ``prob`` ``(B, H, W)``, ``label``
    ``(B, H, W)`` uint8, ``valid`` ``(B, H, W)`` bool → one tensor of ``B`` values per
    column. Only the per-chip counts leave the device."""
    import torch
    import torch.nn.functional as F

    from chipqa.constants import LABEL_CLOUD, LABEL_NODATA

    b = prob.shape[0]
    lo, hi = confidence_bounds(threshold)
    t = float(threshold)
    prob = prob.float()
    m = valid & (label != LABEL_NODATA)
    cloud = m & (label == LABEL_CLOUD)
    miss = m & ~cloud & (prob > hi)
    extra = cloud & (prob < lo)
    pred = m & (prob >= t)

    def count(x):
        return x.reshape(b, -1).sum(1).double()

    def core(x):
        # a min-pool: max-pool's padding never wins, so outside the image counts as in
        k = 2 * CORE_RADIUS + 1
        return -F.max_pool2d(-x.float()[:, None], k, 1, CORE_RADIUS)[:, 0] > 0.5

    def reach(source, cap):
        # chessboard distance to ``source``, capped: repeated 3×3 dilations
        d = torch.full(source.shape, cap, dtype=torch.int32, device=source.device)
        d[source] = 0
        cur = source.float()[:, None]
        for s in range(1, cap):
            cur = F.max_pool2d(cur, 3, 1, 1)
            d = torch.where((cur[:, 0] > 0) & (d == cap), s, d)
        return d

    k = MAX_OFFSET
    outside = reach(cloud, k + 2).clamp(max=k + 1)
    inside = (1 - reach(~cloud, k + 2)).clamp(min=-k - 1)
    dist = torch.where(cloud, inside, outside) + (k + 1)
    nb = 2 * k + 3
    index = (torch.arange(b, device=prob.device)[:, None, None] * nb + dist).reshape(-1)

    def hist(mask):
        return torch.bincount(index[mask.reshape(-1)], minlength=b * nb).reshape(b, nb)

    odds = t / (1 - t)
    pc = prob / (prob + (1 - prob) * odds).clamp(min=1e-12)
    a = torch.where(cloud, pc, 1 - pc)
    e = torch.exp(-a / TEMPERATURE) * m
    acc = torch.stack(
        [
            count(m),
            count(cloud),
            count(pred),
            count(miss),
            count(extra),
            count(core(miss)),
            count(core(extra)),
            (a * e).reshape(b, -1).sum(1).double(),
            e.reshape(b, -1).sum(1).double(),
        ],
        1,
    )
    h_all, h_pred = hist(m).cpu().numpy(), hist(pred).cpu().numpy()
    acc = acc.cpu().numpy()
    rows = [detector_row(acc[i], h_all[i], h_pred[i]) for i in range(b)]
    return {c: np.array([r[c] for r in rows]) for c in DETECTOR_COLUMNS}
