"""Fused CPU kernels (numba) for the label-error detectors of :mod:`chipqa.stats.detectors`.

One chip at a time, in a few passes over its pixels: the masks of confident
disagreement and their cores (a separable 5×5 minimum), the chessboard distance to the
label's edge on both sides (a two-pass chamfer transform), the histograms of that
distance that give the IoU of the label grown or shrunk by every whole pixel, and the
soft label quality centred on the threshold. The torch version in
:mod:`chipqa.stats.detectors` computes the same numbers on a batch on any device; the
tests compare the two.
"""

from __future__ import annotations

import os

import numpy as np
from numba import float32, njit

from chipqa.constants import LABEL_CLOUD, LABEL_NODATA

_JIT = {
    "nogil": True,
    "cache": os.environ.get("CHIPQA_KERNEL_CACHE", "1") != "0",
    "fastmath": True,
    "error_model": "numpy",
}

# Positions in the vector :func:`detector_counts` returns.
D_N, D_LABEL, D_PRED, D_MISS, D_EXTRA, D_MISS_CORE, D_EXTRA_CORE, D_LQ_NUM, D_LQ_DEN = range(9)
D_N_STATS = 9


@njit(**_JIT)
def _core(mask, r):
    """How many pixels have their whole (2r+1)² window in ``mask`` (outside the image
    counts as in it, as a max-pool's padding does). Row by row: a window test along the
    row, then the length of the vertical run of passing rows ending at each row."""
    h, w = mask.shape
    pre = np.zeros(w + 1, np.int32)
    run = np.zeros(w, np.int32)
    ok = np.empty(w, np.uint8)
    count = 0
    for i in range(h + r):
        if i < h:
            for j in range(w):
                pre[j + 1] = pre[j] + mask[i, j]
            for j in range(w):
                lo = j - r if j - r > 0 else 0
                hi = j + r + 1 if j + r + 1 < w else w
                ok[j] = pre[hi] - pre[lo] == hi - lo
            for j in range(w):
                run[j] = run[j] + 1 if ok[j] else 0
        # rows ending at i (or at the last row) decide the pixel r rows above
        i0 = i - r
        if i0 < 0:
            continue
        top = i0 - r if i0 - r > 0 else 0
        bottom = i if i < h else h - 1
        need = bottom - top + 1
        for j in range(w):
            count += run[j] >= need
    return count


@njit(**_JIT)
def _chessboard(source, cap):
    """Chessboard distance of every pixel to the nearest ``source`` pixel, at most ``cap``
    (two-pass chamfer transform with unit weights, which is exact for this metric). Each
    pass takes the row above (or below) in one vectorised sweep, then the left (right)
    neighbour in a scan."""
    h, w = source.shape
    d = np.empty((h, w), np.uint8)
    c = np.uint8(cap)
    one = np.uint8(1)
    for i in range(h):
        for j in range(w):
            d[i, j] = 0 if source[i, j] else c
        if i > 0:
            for j in range(w):
                v = d[i, j]
                u = d[i - 1, j] + one
                v = u if u < v else v
                if j > 0:
                    u = d[i - 1, j - 1] + one
                    v = u if u < v else v
                if j < w - 1:
                    u = d[i - 1, j + 1] + one
                    v = u if u < v else v
                d[i, j] = v
        for j in range(1, w):
            u = d[i, j - 1] + one
            if u < d[i, j]:
                d[i, j] = u
    for i in range(h - 1, -1, -1):
        if i < h - 1:
            for j in range(w):
                v = d[i, j]
                u = d[i + 1, j] + one
                v = u if u < v else v
                if j > 0:
                    u = d[i + 1, j - 1] + one
                    v = u if u < v else v
                if j < w - 1:
                    u = d[i + 1, j + 1] + one
                    v = u if u < v else v
                d[i, j] = v
        for j in range(w - 2, -1, -1):
            u = d[i, j + 1] + one
            if u < d[i, j]:
                d[i, j] = u
    return d


@njit(inline="always", **_JIT)
def _exp_neg32(y):
    # e^y for y in [-16, 0] in float32: degree-6 Taylor polynomial of e^(y/16), then four
    # squarings (relative error < 2e-6), so that the loop calling it vectorises.
    z = y * float32(1.0 / 16.0)
    p = float32(1.0 / 720.0)
    p = p * z + float32(1.0 / 120.0)
    p = p * z + float32(1.0 / 24.0)
    p = p * z + float32(1.0 / 6.0)
    p = p * z + float32(0.5)
    p = p * z + float32(1.0)
    p = p * z + float32(1.0)
    p = p * p
    p = p * p
    p = p * p
    return p * p


@njit(**_JIT)
def detector_counts(prob, label, valid, thr, lo, hi, core_r, max_offset, inv_temp, edge_min):
    """Counts of one chip (see the ``D_*`` positions) and the two edge histograms.

    Returns ``(acc, hist_all, hist_pred)``: the histograms count valid labelled pixels,
    and those the model calls cloud, by their signed chessboard distance to the label's
    edge, ``D + max_offset + 1`` with ``D`` in ``[-max_offset-1, max_offset+1]``; they
    stay empty when label or model calls under ``edge_min`` or over ``1 − edge_min`` of
    the chip cloud (no edge to fit).
    """
    h, w = prob.shape
    acc = np.zeros(D_N_STATS, np.float64)
    nb = 2 * max_offset + 3
    hist_all = np.zeros(nb, np.float64)
    hist_pred = np.zeros(nb, np.float64)
    cloud = np.empty((h, w), np.uint8)
    clear = np.empty((h, w), np.uint8)
    miss = np.empty((h, w), np.uint8)
    extra = np.empty((h, w), np.uint8)
    odds = float32(thr / (1.0 - thr))
    t, lo32, hi32 = float32(thr), float32(lo), float32(hi)
    inv_t = float32(inv_temp)
    for i in range(h):
        # branch-free, so that LLVM vectorises the row
        n = n_lab = n_pred = n_miss = n_extra = 0
        num = den = float32(0.0)
        for j in range(w):
            ok = valid[i, j] & (label[i, j] != LABEL_NODATA)
            c = ok & (label[i, j] == LABEL_CLOUD)
            p = prob[i, j]
            cloud[i, j] = c
            clear[i, j] = not c  # the label's edge is where its cloud ends
            x = c & (p < lo32)
            y = ok & (not c) & (p > hi32)
            extra[i, j] = x
            miss[i, j] = y
            n += ok
            n_lab += c
            n_pred += ok & (p >= t)
            n_miss += y
            n_extra += x
            # self-confidence with the probability re-centred on the threshold
            pc = p / (p + (float32(1.0) - p) * odds + float32(1e-30))
            a = pc if c else float32(1.0) - pc
            e = _exp_neg32(-a * inv_t) if ok else float32(0.0)
            num += a * e
            den += e
        acc[D_N] += n
        acc[D_LABEL] += n_lab
        acc[D_PRED] += n_pred
        acc[D_MISS] += n_miss
        acc[D_EXTRA] += n_extra
        acc[D_LQ_NUM] += num
        acc[D_LQ_DEN] += den
    # a core needs (r+1)² pixels at least (a corner, where outside counts as in)
    least = (core_r + 1) * (core_r + 1)
    acc[D_MISS_CORE] = _core(miss, core_r) if acc[D_MISS] >= least else 0.0
    acc[D_EXTRA_CORE] = _core(extra, core_r) if acc[D_EXTRA] >= least else 0.0
    n = acc[D_N]
    if not (edge_min * n <= acc[D_LABEL] <= (1 - edge_min) * n):
        return acc, hist_all, hist_pred  # no edge to fit (see edge_fit's caller)
    if not (edge_min * n <= acc[D_PRED] <= (1 - edge_min) * n):
        return acc, hist_all, hist_pred
    cap = max_offset + 2
    outside = _chessboard(cloud, cap)
    inside = _chessboard(clear, cap)
    for i in range(h):
        for j in range(w):
            if not valid[i, j] or label[i, j] == LABEL_NODATA:
                continue
            if cloud[i, j]:
                dist = 1 - np.int32(inside[i, j])
                if dist < -max_offset - 1:
                    dist = -max_offset - 1
            else:
                dist = np.int32(outside[i, j])
                if dist > max_offset + 1:
                    dist = max_offset + 1
            b = dist + max_offset + 1
            hist_all[b] += 1.0
            if prob[i, j] >= t:
                hist_pred[b] += 1.0
    return acc, hist_all, hist_pred


def warm_up() -> None:
    """Compile (or load from the cache) the kernel for the arrays scoring passes."""
    prob = np.full((8, 8), 0.5, np.float32)
    label = np.ones((8, 8), np.uint8)
    valid = np.ones((8, 8), bool)
    for writable in (True, False):
        arrays = [a.copy() for a in (prob, label, valid)]
        for a in arrays:
            a.flags.writeable = writable
        detector_counts(*arrays, 0.5, 0.1, 0.9, 2, 10, 10.0, 0.01)
