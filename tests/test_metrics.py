"""Per-chip IoU and label-quality conventions, against numpy and smp.metrics."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from chipqa._compat import import_smp
from chipqa.stats.batched import _packable, chip_stats, per_chip_iou, soft_min


def numpy_iou(pred: np.ndarray, target: np.ndarray, valid: np.ndarray) -> float:
    """Plain reference: IoU over valid pixels, 1.0 for an empty union, NaN without pixels."""
    if not valid.any():
        return float("nan")
    p, t = pred[valid], target[valid]
    union = np.logical_or(p, t).sum()
    return 1.0 if union == 0 else np.logical_and(p, t).sum() / union


@pytest.fixture
def batch():
    rng = np.random.default_rng(1)
    b, h, w = 12, 23, 24
    prob = rng.random((b, h, w)).astype(np.float32)
    label = (rng.random((b, h, w)) > 0.5).astype(np.uint8)
    valid = rng.random((b, h, w)) > 0.2
    # Edge cases: empty label and empty prediction (empty union), all-cloud both,
    # label empty but prediction not, a chip without a valid pixel.
    label[0] = 0
    prob[0] = 0.1
    label[1] = 1
    prob[1] = 0.9
    label[2] = 0
    valid[3] = False
    label = np.where(valid, label, 255).astype(np.uint8)
    return prob, label, valid


@pytest.mark.parametrize("width", [24, 21])  # 23×24 packs into int64 words, 23×21 does not
def test_iou_matches_numpy_reference_with_nodata_and_empty_masks(batch, width):
    prob, label, valid = (np.ascontiguousarray(a[..., :width]) for a in batch)
    assert _packable(torch.from_numpy(valid)) == (width == 24)
    got = per_chip_iou(
        torch.from_numpy(prob >= 0.5), torch.from_numpy(label == 1), torch.from_numpy(valid)
    ).numpy()
    want = np.array([numpy_iou(prob[i] >= 0.5, label[i] == 1, valid[i]) for i in range(len(prob))])
    np.testing.assert_allclose(got, want, rtol=1e-6)
    assert got[0] == 1.0  # empty union: perfect agreement
    assert got[2] == 0.0  # clear label, cloudy prediction
    assert np.isnan(got[3])  # nothing to compare


def test_iou_matches_smp_metrics(batch):
    prob, label, valid = batch
    smp = import_smp()
    keep = valid.reshape(len(valid), -1).any(1)  # smp has no notion of a chip without pixels
    # smp's binary mode has no ignore_index: zero both sides on nodata (they become true
    # negatives, which IoU does not count).
    target = torch.from_numpy(np.where(valid, label == 1, 0)[keep].astype(np.int64))[:, None]
    output = torch.from_numpy(np.where(valid, prob, 0.0)[keep])[:, None]
    tp, fp, fn, tn = smp.metrics.get_stats(output, target, mode="binary", threshold=0.5)
    want = smp.metrics.iou_score(tp, fp, fn, tn, reduction="none")[:, 0].numpy()
    stats = chip_stats(torch.from_numpy(prob), torch.from_numpy(label), torch.from_numpy(valid))
    np.testing.assert_allclose(stats["iou"].numpy()[keep], want, rtol=1e-6)


def test_chip_stats_fractions_ignore_nodata():
    label = np.zeros((1, 4, 4), np.uint8)
    label[0, :2] = 1  # 8 cloud pixels
    label[0, 3] = 255  # 4 pixels without label
    valid = label != 255
    prob = np.zeros((1, 4, 4), np.float32)
    prob[0, 0] = 1.0  # 4 predicted cloud pixels, all on labelled cloud
    prob[0, 3] = 1.0  # predicted cloud on nodata: must not count
    s = {
        k: v.item()
        for k, v in chip_stats(
            torch.from_numpy(prob), torch.from_numpy(label), torch.from_numpy(valid)
        ).items()
    }
    assert s["valid_fraction"] == pytest.approx(12 / 16)
    assert s["label_cloud_fraction"] == pytest.approx(8 / 12)
    assert s["pred_cloud_fraction"] == pytest.approx(4 / 12)
    assert s["iou"] == pytest.approx(4 / 8)
    assert s["mismatch_fraction"] == pytest.approx(4 / 12)
    assert s["soft_mismatch"] == pytest.approx(4 / 12)


def test_label_quality_uses_probabilities_and_punishes_confident_disagreement():
    label = np.ones((3, 8, 8), np.uint8)
    valid = np.ones((3, 8, 8), bool)
    prob = np.full((3, 8, 8), 0.95, np.float32)
    prob[1, :2] = 0.4  # uncertain disagreement on a quarter of the chip
    prob[2, :2] = 0.01  # confident disagreement on the same quarter
    q = chip_stats(torch.from_numpy(prob), torch.from_numpy(label), torch.from_numpy(valid))
    quality = q["label_quality"].numpy()
    assert quality[0] == pytest.approx(0.95, abs=1e-4)
    assert quality[0] > quality[1] > quality[2]
    # Same thresholded masks for chips 1 and 2, so only the probabilities tell them apart.
    assert q["iou"][1] == q["iou"][2]


def test_soft_min_approaches_min_at_low_temperature():
    v = torch.tensor([[0.9, 0.8, 0.2, 0.7]])
    m = torch.ones_like(v, dtype=torch.bool)
    assert soft_min(v, m, temperature=0.02).item() == pytest.approx(0.2, abs=1e-3)
    assert soft_min(v, m, temperature=100.0).item() == pytest.approx(v.mean().item(), abs=1e-2)
    assert torch.isnan(soft_min(v, torch.zeros_like(m))).item()


def test_masks_that_cannot_be_viewed_as_words_use_the_plain_path():
    empty = torch.zeros((0, 8, 8), dtype=torch.bool)
    assert not _packable(empty)
    assert per_chip_iou(empty, empty, empty).shape == (0,)
    base = torch.ones((3, 8, 8), dtype=torch.bool)
    shifted = base.view(-1)[1:].view(-1)[: 2 * 64 - 0].reshape(2, 8, 8)  # offset 1 byte
    assert not _packable(shifted)
    assert per_chip_iou(shifted, shifted, shifted).tolist() == [1.0, 1.0]


def _random_chips(seed: int, b: int = 6, size: int = 24):
    g = torch.Generator().manual_seed(seed)
    prob = torch.rand((b, size, size), generator=g) ** 2
    label = (torch.rand((b, size, size), generator=g) < 0.4).to(torch.uint8)
    valid = torch.rand((b, size, size), generator=g) < 0.85
    label[0] = 1  # an all-cloud label
    label[1] = 0  # a no-cloud label, with a prediction of no cloud: empty union
    prob[1] = 0.1
    valid[2] = False  # a chip without a valid pixel
    return prob, label, valid


@pytest.mark.parametrize("seed", [0, 1])
def test_both_backends_compute_the_one_definition(seed):
    """The batched torch statistics and the fused CPU kernels give, chip by chip, the IoU
    and label quality that chipqa.stats.definitions defines."""
    from chipqa.stats import kernels
    from chipqa.stats.definitions import mask_iou
    from chipqa.stats.definitions import soft_min as soft_min_def

    prob, label, valid = _random_chips(seed)
    batched = chip_stats(prob, label, valid, threshold=0.5, temperature=0.1)
    for i in range(prob.shape[0]):
        p, lab, v = prob[i].numpy(), label[i].numpy(), valid[i].numpy()
        want_iou = mask_iou(p >= 0.5, lab == 1, v)
        agree = np.where(lab == 1, p, 1 - p)[v]
        want_q = soft_min_def(agree, 0.1)
        fused = kernels.score_chip_prob(p, lab, v, None, 0.5, 0.1)
        for got in (float(batched["iou"][i]), fused["iou"]):
            assert got == pytest.approx(want_iou, abs=1e-6, nan_ok=True)
        for got in (float(batched["label_quality"][i]), fused["label_quality"]):
            assert got == pytest.approx(want_q, abs=1e-4, nan_ok=True)
    assert float(batched["iou"][1]) == 1.0  # both say no cloud anywhere: full agreement
    assert np.isnan(float(batched["iou"][2]))  # no valid pixel: no IoU
