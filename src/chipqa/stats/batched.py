"""Per-chip statistics of a batch, computed on the batch's device.

Everything here works on whole batches of chips at once (``(B, H, W)`` tensors) and
returns a handful of numbers per chip, so that only those numbers travel back to the
host. Pixels outside ``valid`` (band nodata, label 255) take no part in any statistic.

The numbers follow :mod:`chipqa.stats.definitions` (IoU with an empty union = 1.0,
label quality as cleanlab's soft minimum of self-confidence); the tests check them
against it.
"""

from __future__ import annotations

import torch
from torch import Tensor

from chipqa.constants import (
    DEFAULT_TEMPERATURE,
    DEFAULT_THRESHOLD,
    LABEL_CLOUD,
    SCL_CLOUD,
    SCL_NODATA,
    SCL_SHADOW,
)


def _flat(t: Tensor) -> Tensor:
    return t.flatten(1)  # (B, H·W); also for an empty batch


_BYTE_SUM = 0x0101010101010101


def _count_words(words: Tensor) -> Tensor:
    """Per-row count of set bytes in int64 words holding 8 bool bytes each.

    Multiplying a word by 0x0101…01 adds all its bytes into the top byte (each byte is 0
    or 1, so the sum, at most 8, never carries); the shift reads it out. One multiply
    and one sum per 8 pixels instead of one sum per pixel.
    """
    return ((words * _BYTE_SUM) >> 56).sum(1)


def _packable(*masks: Tensor) -> bool:
    """True when every mask can be viewed as int64 words of 8 pixels, chip by chip."""
    return all(
        m.dtype == torch.bool
        and m.shape[0] > 0
        and m.is_contiguous()
        and m.storage_offset() % 8 == 0
        and m[0].numel() % 8 == 0
        for m in masks
    )


def confusion_counts(pred: Tensor, target: Tensor, valid: Tensor) -> dict[str, Tensor]:
    """Per-chip pixel counts of a binary prediction against a binary target.

    Args:
        pred: ``(B, H, W)`` bool predicted cloud.
        target: ``(B, H, W)`` bool labelled cloud.
        valid: ``(B, H, W)`` bool pixels to count.

    Returns:
        int64 tensors of shape ``(B,)``: ``tp``, ``fp``, ``fn``, ``tn`` and ``n_valid``.
    """
    b = pred.shape[0]
    if _packable(pred, target, valid):
        # Eight pixels per int64 word: bitwise AND and counting on 8× fewer elements.
        v = valid.reshape(b, -1).view(torch.int64)
        p = pred.reshape(b, -1).view(torch.int64) & v
        t = target.reshape(b, -1).view(torch.int64) & v
        tp, n_pred, n_target, n_valid = (_count_words(x) for x in (p & t, p, t, v))
    else:
        p = _flat(pred & valid)
        t = _flat(target & valid)
        n_valid = _flat(valid).sum(1)
        tp = (p & t).sum(1)
        n_pred = p.sum(1)
        n_target = t.sum(1)
    fp = n_pred - tp
    fn = n_target - tp
    tn = n_valid - tp - fp - fn
    return {"tp": tp, "fp": fp, "fn": fn, "tn": tn, "n_valid": n_valid}


def iou_from_counts(tp: Tensor, fp: Tensor, fn: Tensor, n_valid: Tensor | None = None) -> Tensor:
    """IoU per chip; 1.0 for an empty union, NaN where a chip has no valid pixel."""
    union = tp + fp + fn
    iou = torch.where(union > 0, tp.double() / union.clamp(min=1).double(), 1.0)
    if n_valid is not None:
        iou = torch.where(n_valid > 0, iou, float("nan"))
    return iou.float()


def per_chip_iou(pred: Tensor, target: Tensor, valid: Tensor) -> Tensor:
    """IoU of the cloud class for each chip of a batch (see :mod:`chipqa.stats.definitions`)."""
    c = confusion_counts(pred, target, valid)
    return iou_from_counts(c["tp"], c["fp"], c["fn"], c["n_valid"])


def soft_min(values: Tensor, mask: Tensor, temperature: float = DEFAULT_TEMPERATURE) -> Tensor:
    """Soft minimum of ``values`` over ``mask`` for each chip: Σ v·e^(−v/T) / Σ e^(−v/T).

    Values are expected in [0, 1]; the weights stay finite in float32 for any T ≥ 0.02.
    Chips without a masked pixel get NaN.
    """
    v = _flat(values).float()
    m = _flat(mask)
    w = torch.exp(-v / temperature) * m
    den = w.sum(1)
    num = (v * w).sum(1)
    return torch.where(den > 0, num / den.clamp(min=torch.finfo(torch.float32).tiny), float("nan"))


def chip_stats(
    prob: Tensor,
    label: Tensor,
    valid: Tensor,
    *,
    threshold: float = DEFAULT_THRESHOLD,
    temperature: float = DEFAULT_TEMPERATURE,
) -> dict[str, Tensor]:
    """All per-chip statistics chipqa ranks by, for a batch, on the batch's device.

    Args:
        prob: ``(B, H, W)`` predicted cloud probability in [0, 1].
        label: ``(B, H, W)`` uint8 label (0 clear, 1 cloud, other values ignored).
        valid: ``(B, H, W)`` bool valid pixels.
        threshold: probability at or above which a pixel is predicted cloud.
        temperature: of the soft minimum in ``label_quality``.

    Returns:
        float32 tensors of shape ``(B,)``: ``valid_fraction``, ``label_cloud_fraction``,
        ``pred_cloud_fraction``, ``iou``, ``mismatch_fraction`` (share of valid pixels
        where the thresholded prediction and the label differ), ``soft_mismatch`` (mean
        of ``|label − prob|`` over valid pixels) and ``label_quality`` (see
        :mod:`chipqa.stats.definitions`).
    """
    target = label == LABEL_CLOUD
    pred = prob >= threshold
    c = confusion_counts(pred, target, valid)
    n_valid = c["n_valid"]
    n = n_valid.clamp(min=1).float()
    nan = torch.full_like(n, float("nan"))
    has = n_valid > 0

    def frac(x: Tensor) -> Tensor:
        return torch.where(has, x.float() / n, nan)

    prob_f = _flat(prob).float()
    target_f = _flat(target)
    valid_f = _flat(valid)
    # Self-confidence: probability of the labelled class at each pixel.
    agree = torch.where(target_f, prob_f, 1.0 - prob_f)
    soft_mismatch = ((1.0 - agree) * valid_f).sum(1) / n
    hw = valid_f.shape[1]
    return {
        "valid_fraction": n_valid.float() / max(hw, 1),
        "label_cloud_fraction": frac(c["tp"] + c["fn"]),
        "pred_cloud_fraction": frac(c["tp"] + c["fp"]),
        "iou": iou_from_counts(c["tp"], c["fp"], c["fn"], n_valid),
        "mismatch_fraction": frac(c["fp"] + c["fn"]),
        "soft_mismatch": torch.where(has, soft_mismatch, nan),
        "label_quality": soft_min(agree, valid_f, temperature),
    }


def predicted_fraction(prob: Tensor, valid: Tensor, threshold: float = DEFAULT_THRESHOLD) -> Tensor:
    """Share of valid pixels predicted cloud, per chip (for chips without a label)."""
    n_valid = _flat(valid).sum(1)
    n_pred = _flat((prob >= threshold) & valid).sum(1)
    return torch.where(n_valid > 0, n_pred.float() / n_valid.clamp(min=1).float(), float("nan"))


def scl_stats(pred: Tensor, target: Tensor, scl: Tensor, valid: Tensor) -> dict[str, Tensor]:
    """Sen2Cor's Scene Classification Layer as a second opinion, per chip.

    Args:
        pred: ``(B, H, W)`` bool model cloud.
        target: ``(B, H, W)`` bool labelled cloud.
        scl: ``(B, H, W)`` uint8 SCL codes on the chip grid (0 = no data).
        valid: ``(B, H, W)`` bool valid pixels; SCL no-data pixels are left out too.

    Returns:
        ``scl_cloud_fraction``, ``scl_shadow_fraction`` (class 3), ``iou_label_scl`` and
        ``iou_pred_scl`` (float32, ``(B,)``).
    """
    v = valid & (scl != SCL_NODATA)
    cloud = torch.zeros_like(v)
    for code in SCL_CLOUD:
        cloud |= scl == code
    n = _flat(v).sum(1)

    def frac(mask: Tensor) -> Tensor:
        share = _flat(mask & v).sum(1).float() / n.clamp(min=1)
        return torch.where(n > 0, share, float("nan")).float()

    return {
        "scl_cloud_fraction": frac(cloud),
        "scl_shadow_fraction": frac(scl == SCL_SHADOW),
        "iou_label_scl": per_chip_iou(target, cloud, v),
        "iou_pred_scl": per_chip_iou(pred, cloud, v),
    }


def threshold_counts(
    prob: Tensor, label: Tensor, valid: Tensor, thresholds: Tensor
) -> dict[str, Tensor]:
    """Per-chip counts at many probability thresholds at once, for calibrating one.

    Args:
        prob: ``(B, H, W)`` predicted cloud probability.
        label: ``(B, H, W)`` uint8 label (0 clear, 1 cloud, other values ignored).
        valid: ``(B, H, W)`` bool valid pixels.
        thresholds: ``(K,)`` increasing thresholds.

    Returns:
        ``tp`` and ``n_pred`` ``(B, K)`` (labelled-cloud pixels, and all pixels, with
        probability ≥ each threshold) and ``n_target`` ``(B,)``, int64, over valid pixels:
        the IoU at threshold ``k`` is ``tp / (n_pred + n_target − tp)``.
    """
    b, k = prob.shape[0], thresholds.numel()
    v = _flat(valid)
    cloud = _flat(label == LABEL_CLOUD) & v
    # Bin j holds the pixels that reach exactly j thresholds (p ≥ t_0 … t_{j-1}).
    p = _flat(prob).float().contiguous()
    bins = torch.bucketize(p, thresholds.to(prob.device).float().contiguous(), right=True)
    offset = torch.arange(b, device=prob.device)[:, None] * (k + 1)
    idx = (bins + offset)[v]
    hist_all = torch.bincount(idx, minlength=b * (k + 1)).reshape(b, k + 1)
    hist_cloud = torch.bincount((bins + offset)[cloud], minlength=b * (k + 1)).reshape(b, k + 1)
    # Pixels with p ≥ t_k are those in bins k+1 … K: a cumulative sum from the top.
    tp = hist_cloud.flip(1).cumsum(1).flip(1)[:, 1:]
    n_pred = hist_all.flip(1).cumsum(1).flip(1)[:, 1:]
    return {"tp": tp, "n_pred": n_pred, "n_target": cloud.sum(1)}


def shadow_fraction(cloud: Tensor, shadow: Tensor, valid: Tensor) -> Tensor:
    """Share of valid pixels whose most likely class is cloud shadow, per chip, from the
    cloud and shadow probabilities of a three-class model (the rest is clear)."""
    clear = 1.0 - cloud - shadow
    is_shadow = (shadow > cloud) & (shadow > clear) & valid
    n_valid = _flat(valid).sum(1)
    share = _flat(is_shadow).sum(1).float() / n_valid.clamp(min=1).float()
    return torch.where(n_valid > 0, share, float("nan"))
