"""Fused CPU kernels (numba) for the spectral baseline and the per-chip statistics.

On a CPU, scoring a chip with the baseline is a handful of arithmetic operations per
pixel; written as a chain of torch operations it makes some thirty passes over
megabyte-sized temporaries and costs more than reading the chip's TIFFs. These kernels
do the same arithmetic in one pass over each chip, vectorised by LLVM (AVX2 where the
CPU has it), and release the GIL, so that reading threads can score the chips they
read (see :func:`chipqa.scoring.pipeline.iter_scores`).

They compute the same numbers as :meth:`chipqa.predictors.baseline.SpectralBaseline.predict_proba`
and :func:`chipqa.stats.batched.chip_stats` / :func:`chipqa.stats.batched.scl_stats` (the tests
compare them), with two differences of rounding: the logistic uses a rational
approximation of tanh (absolute error < 3e-7) and the soft minimum's weights a
polynomial exponential (relative error < 1e-5); sums are accumulated in float64.

Notes for maintainers: every kernel is compiled with ``error_model="numpy"``; with
Python's error model a division makes numba test for zero at every pixel, which stops
LLVM from vectorising the loop. Python's ``min``/``max`` also stop it, hence the
conditional expressions.
"""

from __future__ import annotations

import os

import numpy as np
from numba import float32, float64, njit

from chipqa.constants import LABEL_CLOUD, SCL_CLOUD, SCL_NODATA, SCL_SHADOW
from chipqa.stats.definitions import iou_from_counts

# Module constants are compile-time constants to numba; the SCL test below is written
# for three cloud classes.
_SCL_C1, _SCL_C2, _SCL_C3 = SCL_CLOUD

CACHE = os.environ.get("CHIPQA_KERNEL_CACHE", "1") != "0"
"""Whether compiled kernels are cached on disk (beside the package, else in numba's user
cache). ``CHIPQA_KERNEL_CACHE=0`` turns it off; :func:`chipqa.stats.backend.cpu_kernels` does
so by itself when caching fails (a read-only install without a writable home, a full
disk)."""

MIN_TEMPERATURE = 1 / 64
"""The soft minimum's smallest temperature: its weights e^(−a/T) are computed for
a/T ≤ 64 (:func:`_exp_neg`)."""

_JIT = {"nogil": True, "cache": CACHE, "fastmath": True, "error_model": "numpy"}

# Positions in the statistics vector returned by the kernels.
I_N_VALID, I_TP, I_N_PRED, I_N_TARGET, I_SOFT_MISMATCH, I_SOFTMIN_NUM, I_SOFTMIN_DEN = range(7)
I_SCL_N, I_SCL_CLOUD, I_SCL_SHADOW, I_SCL_TP_LABEL, I_SCL_N_LABEL, I_SCL_TP_PRED, I_SCL_N_PRED = (
    range(7, 14)
)
I_N_STATS = 14


@njit(inline="always", **_JIT)
def _tanh(x):
    # Rational approximation of tanh on float32 (odd degree 13 over even degree 6),
    # clamped where tanh is ±1 to float32 precision. Absolute error < 3e-7.
    lim = float32(7.90531110763549805)
    x = x if x < lim else lim
    x = x if x > -lim else -lim
    x2 = x * x
    p = float32(-2.76076847742355e-16)
    p = p * x2 + float32(2.00018790482477e-13)
    p = p * x2 + float32(-8.60467152213735e-11)
    p = p * x2 + float32(5.12229709037114e-08)
    p = p * x2 + float32(1.48572235717979e-05)
    p = p * x2 + float32(6.37261928875436e-04)
    p = p * x2 + float32(4.89352455891786e-03)
    q = float32(1.19825839466702e-06)
    q = q * x2 + float32(1.18534705686654e-04)
    q = q * x2 + float32(2.26843463243900e-03)
    q = q * x2 + float32(4.89352518554385e-03)
    return p * x / q


@njit(inline="always", **_JIT)
def _exp_neg(y):
    # e^y for y in [-64, 0] in float64: a degree-9 Taylor polynomial of e^(y/64), then
    # six squarings. Relative error < 1e-5 over the range; no table, no bit tricks, so
    # the loop that calls it vectorises.
    z = y * (1.0 / 64.0)
    p = 1.0 / 362880.0
    p = p * z + 1.0 / 40320.0
    p = p * z + 1.0 / 5040.0
    p = p * z + 1.0 / 720.0
    p = p * z + 1.0 / 120.0
    p = p * z + 1.0 / 24.0
    p = p * z + 1.0 / 6.0
    p = p * z + 0.5
    p = p * z + 1.0
    p = p * z + 1.0
    p = p * p
    p = p * p
    p = p * p
    p = p * p
    p = p * p
    return p * p


@njit(**_JIT)
def _logistic_rows(bands, c, out):
    """Unsmoothed baseline probability of one chip ``(4, H, W)`` into ``out`` ``(H, W)``."""
    # The logistic model of SpectralBaseline.predict_proba, in DN (see there).
    third = float32(1.0 / 3.0)
    half = float32(0.5)
    ten = float32(10.0)
    four = float32(4.0)
    one = float32(1.0)
    c0 = float32(c[0])
    k_vis = float32(c[1] * 1e-4)
    c2 = float32(c[2])
    k_blue = float32(c[3] * 1e-4)
    k_red = float32(-0.5 * c[3] * 1e-4)
    c4 = float32(c[4])
    c5 = float32(c[5])
    for i in range(bands.shape[1]):
        b_, g_, r_, n_, o_ = bands[0, i], bands[1, i], bands[2, i], bands[3, i], out[i]
        for j in range(o_.shape[0]):
            b = float32(b_[j])
            g = float32(g_[j])
            r = float32(r_[j])
            n = float32(n_[j])
            vis = (b + g + r) * third
            inv = one / (vis if vis > ten else ten)
            lg = (abs(b - vis) + abs(g - vis) + abs(r - vis)) * inv * c2
            lg += vis * k_vis + b * k_blue + r * k_red + c0
            q = n * inv
            lg += c4 * abs((q if q < four else four) - one)
            s = n + r
            lg += c5 * ((n - r) / (s if s > ten else ten))
            o_[j] = half + half * _tanh(half * lg)


@njit(**_JIT)
def _vertical_box(src, i, k, acc):
    """Mean over rows ``i - k//2 … i + k//2`` (clipped to the chip) of ``src`` into ``acc``."""
    h = k // 2
    lo = i - h if i - h > 0 else 0
    hi = i + h + 1 if i + h + 1 < src.shape[0] else src.shape[0]
    w = acc.shape[0]
    first = src[lo]
    for j in range(w):
        acc[j] = first[j]
    for ii in range(lo + 1, hi):
        row = src[ii]
        for j in range(w):
            acc[j] += row[j]
    inv = float32(1.0) / float32(hi - lo)
    for j in range(w):
        acc[j] *= inv


@njit(**_JIT)
def _horizontal_box(src, k, inv_count, out):
    """Mean over columns ``j - k//2 … j + k//2`` (clipped), clamped to [0, 1]."""
    h = k // 2
    w = src.shape[0]
    for j in range(w):
        out[j] = src[j]
    for d in range(-h, h + 1):
        if d == 0:
            continue
        lo = -d if d < 0 else 0
        hi = w - d if d > 0 else w
        for j in range(lo, hi):
            out[j] += src[j + d]
    for j in range(w):
        v = out[j] * inv_count[j]
        v = v if v > float32(0.0) else float32(0.0)
        out[j] = v if v < float32(1.0) else float32(1.0)


@njit(**_JIT)
def _column_counts(w, k):
    inv = np.empty(w, np.float32)
    h = k // 2
    for j in range(w):
        lo = j - h if j - h > 0 else 0
        hi = j + h + 1 if j + h + 1 < w else w
        inv[j] = float32(1.0) / float32(hi - lo)
    return inv


@njit(**_JIT)
def _smooth_row(raw, i, k, acc, inv_count, out):
    _vertical_box(raw, i, k, acc)
    _horizontal_box(acc, k, inv_count, out)


@njit(**_JIT)
def _smoothing(k, shape):
    return k > 1 and shape[0] >= k and shape[1] >= k


@njit(**_JIT)
def baseline_proba(bands, c, k, out):
    """SpectralBaseline probability of one chip ``(4, H, W)`` into ``out`` ``(H, W)`` float32:
    the logistic model, then the ``k``×``k`` mean (edges: mean of the pixels inside)."""
    h, w = out.shape
    if not _smoothing(k, out.shape):
        _logistic_rows(bands, c, out)
        for i in range(h):
            for j in range(w):
                v = out[i, j]
                out[i, j] = v if v < float32(1.0) else float32(1.0)
        return
    raw = np.empty((h, w), np.float32)
    _logistic_rows(bands, c, raw)
    acc = np.empty(w, np.float32)
    inv_count = _column_counts(w, k)
    if k == 5:  # the baseline's window: a constant lets LLVM unroll the five taps
        for i in range(h):
            _smooth_row(raw, i, 5, acc, inv_count, out[i])
    else:
        for i in range(h):
            _smooth_row(raw, i, k, acc, inv_count, out[i])


# The row functions below are written without branches (bitwise & on booleans, selects
# instead of ifs) so that LLVM vectorises them; a chip's row is 512 pixels, which stays
# in the L1 cache between them.


@njit(**_JIT)
def _row_counts(prob, valid, thr, acc):
    n_valid = 0
    n_pred = 0
    for j in range(prob.shape[0]):
        v = valid[j]
        n_valid += v
        n_pred += v & (prob[j] >= thr)
    acc[I_N_VALID] += n_valid
    acc[I_N_PRED] += n_pred


@njit(**_JIT)
def _row_label(prob, label, valid, thr, inv_t, acc):
    tp = 0
    n_target = 0
    soft = 0.0
    num = 0.0
    den = 0.0
    for j in range(prob.shape[0]):
        v = valid[j]
        p = float64(prob[j])
        t = v & (label[j] == LABEL_CLOUD)
        n_target += t
        tp += t & (prob[j] >= thr)
        a = p if t else 1.0 - p  # self-confidence: probability of the labelled class
        vf = 1.0 if v else 0.0
        wgt = _exp_neg(-a * inv_t) * vf
        soft += (1.0 - a) * vf
        num += a * wgt
        den += wgt
    acc[I_TP] += tp
    acc[I_N_TARGET] += n_target
    acc[I_SOFT_MISMATCH] += soft
    acc[I_SOFTMIN_NUM] += num
    acc[I_SOFTMIN_DEN] += den


@njit(**_JIT)
def _row_scl(prob, label, valid, scl, thr, acc):
    n = 0
    cloud = 0
    shadow = 0
    tp_l = 0
    n_l = 0
    tp_p = 0
    n_p = 0
    for j in range(prob.shape[0]):
        code = scl[j]
        v = valid[j] & (code != SCL_NODATA)
        c = v & ((code == _SCL_C1) | (code == _SCL_C2) | (code == _SCL_C3))
        t = v & (label[j] == LABEL_CLOUD)
        p = v & (prob[j] >= thr)
        n += v
        cloud += c
        shadow += v & (code == SCL_SHADOW)
        tp_l += t & c
        n_l += t
        tp_p += p & c
        n_p += p
    acc[I_SCL_N] += n
    acc[I_SCL_CLOUD] += cloud
    acc[I_SCL_SHADOW] += shadow
    acc[I_SCL_TP_LABEL] += tp_l
    acc[I_SCL_N_LABEL] += n_l
    acc[I_SCL_TP_PRED] += tp_p
    acc[I_SCL_N_PRED] += n_p


@njit(**_JIT)
def _row_stats(prob, label, valid, scl, has_label, has_scl, thr, inv_t, acc):
    """Add one row's pixel counts and sums to ``acc`` (see the I_* positions)."""
    _row_counts(prob, valid, thr, acc)
    if has_label:
        _row_label(prob, label, valid, thr, inv_t, acc)
        if has_scl:
            _row_scl(prob, label, valid, scl, thr, acc)


@njit(**_JIT)
def prob_stats(prob, label, valid, scl, has_label, has_scl, thr, temperature):
    """Counts and sums of one chip's probability ``(H, W)`` against its label and SCL."""
    acc = np.zeros(I_N_STATS, np.float64)
    inv_t = 1.0 / temperature
    t = float32(thr)
    for i in range(prob.shape[0]):
        _row_stats(prob[i], label[i], valid[i], scl[i], has_label, has_scl, t, inv_t, acc)
    return acc


@njit(**_JIT)
def baseline_stats(bands, c, k, label, valid, scl, has_label, has_scl, thr, temperature):
    """:func:`baseline_proba` and :func:`prob_stats` fused, row by row: the probability
    of a row is counted while it is still in the cache and never stored whole."""
    h, w = valid.shape
    acc = np.zeros(I_N_STATS, np.float64)
    inv_t = 1.0 / temperature
    t = float32(thr)
    raw = np.empty((h, w), np.float32)
    _logistic_rows(bands, c, raw)
    smooth = _smoothing(k, (h, w))
    row = np.empty(w, np.float32)
    acc_row = np.empty(w, np.float32)
    inv_count = _column_counts(w, k)
    for i in range(h):
        if smooth and k == 5:  # the baseline's window: a constant lets LLVM unroll it
            _smooth_row(raw, i, 5, acc_row, inv_count, row)
        elif smooth:
            _smooth_row(raw, i, k, acc_row, inv_count, row)
        else:
            for j in range(w):
                v = raw[i, j]
                row[j] = v if v < float32(1.0) else float32(1.0)
        _row_stats(row, label[i], valid[i], scl[i], has_label, has_scl, t, inv_t, acc)
    return acc


def _frac(x: float, n: float) -> float:
    return x / n if n > 0 else float("nan")


def _iou(tp: float, n_a: float, n_b: float, n: float) -> float:
    """IoU of masks A and B from |A ∩ B|, |A|, |B| and the valid pixel count."""
    return iou_from_counts(tp, n_a - tp, n_b - tp, n)


def stats_row(acc: np.ndarray, n_pixels: int, has_label: bool, has_scl: bool) -> dict:
    """The kernels' counts → the statistics :func:`chipqa.scoring.pipeline.score_batch` reports."""
    n = acc[I_N_VALID]
    row = {
        "valid_fraction": n / n_pixels if n_pixels else float("nan"),
        "pred_cloud_fraction": _frac(acc[I_N_PRED], n),
    }
    if not has_label:
        return row
    tp, n_pred, n_target = acc[I_TP], acc[I_N_PRED], acc[I_N_TARGET]
    den = acc[I_SOFTMIN_DEN]
    row.update(
        label_cloud_fraction=_frac(n_target, n),
        iou=_iou(tp, n_pred, n_target, n),
        mismatch_fraction=_frac(n_pred + n_target - 2 * tp, n),
        soft_mismatch=_frac(acc[I_SOFT_MISMATCH], n),
        label_quality=acc[I_SOFTMIN_NUM] / den if den > 0 else float("nan"),
    )
    if has_scl:
        ns, cloud = acc[I_SCL_N], acc[I_SCL_CLOUD]
        row.update(
            scl_cloud_fraction=_frac(cloud, ns),
            scl_shadow_fraction=_frac(acc[I_SCL_SHADOW], ns),
            iou_label_scl=_iou(acc[I_SCL_TP_LABEL], acc[I_SCL_N_LABEL], cloud, ns),
            iou_pred_scl=_iou(acc[I_SCL_TP_PRED], acc[I_SCL_N_PRED], cloud, ns),
        )
    return row


def _or_dummy(a: np.ndarray | None, h: int) -> np.ndarray:
    # A stand-in of the right type and row count that the kernels never index into.
    return np.zeros((h, 1), np.uint8) if a is None else np.ascontiguousarray(a)


def _check_temperature(temperature: float) -> None:
    if not temperature >= MIN_TEMPERATURE:
        raise ValueError(
            f"temperature {temperature} is below {MIN_TEMPERATURE:.4f}, the smallest the "
            "soft minimum supports; chipqa uses 0.1"
        )


def warm_up() -> None:
    """Compile (or load from the cache) every kernel for the arrays scoring passes: chips
    read from TIFFs (writable) and from the chip cache (read-only views)."""
    bands = np.ones((4, 8, 8), np.uint16)
    label = np.ones((8, 8), np.uint8)
    valid = np.ones((8, 8), bool)
    prob = np.ones((8, 8), np.float32)
    c = np.zeros(6)
    out = np.empty((8, 8), np.float32)
    baseline_proba(bands, c, 5, out)
    for writable in (True, False):
        arrays = [a.copy() for a in (bands, label, valid, label)]
        for a in arrays:
            a.flags.writeable = writable
        b, lab, v, scl = arrays
        baseline_stats(b, c, 5, lab, v, scl, True, True, 0.5, 0.1)
        prob_stats(prob, lab, v, scl, True, True, 0.5, 0.1)


def score_chip_baseline(
    bands: np.ndarray,
    coefficients: np.ndarray,
    smooth: int,
    label: np.ndarray | None,
    valid: np.ndarray,
    scl: np.ndarray | None,
    threshold: float,
    temperature: float,
) -> dict:
    """One chip scored by the spectral baseline: its statistics, without its probability."""
    _check_temperature(temperature)
    h, w = valid.shape
    acc = baseline_stats(
        np.ascontiguousarray(bands),
        coefficients,
        smooth,
        _or_dummy(label, h),
        np.ascontiguousarray(valid),
        _or_dummy(scl, h),
        label is not None,
        scl is not None and label is not None,
        threshold,
        temperature,
    )
    return stats_row(acc, h * w, label is not None, scl is not None and label is not None)


def score_chip_prob(
    prob: np.ndarray,
    label: np.ndarray | None,
    valid: np.ndarray,
    scl: np.ndarray | None,
    threshold: float,
    temperature: float,
) -> dict:
    """The statistics of one chip's probability ``(H, W)`` float32."""
    _check_temperature(temperature)
    h, w = valid.shape
    acc = prob_stats(
        np.ascontiguousarray(prob, dtype=np.float32),
        _or_dummy(label, h),
        np.ascontiguousarray(valid),
        _or_dummy(scl, h),
        label is not None,
        scl is not None and label is not None,
        threshold,
        temperature,
    )
    return stats_row(acc, h * w, label is not None, scl is not None and label is not None)
