"""The label-error detectors: what each one measures, the two backends agreeing, and the
ranking and reasons they give a scores table."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch
from scipy import ndimage as ndi

from chipqa.scoring.ranking import rank_scores
from chipqa.scoring.table import SCORE_COLUMNS, finalize
from chipqa.stats.detectors import batch_detectors, chip_detectors, confidence_bounds
from chipqa.synth.planting import plant_error


def _disk(r):
    y, x = np.ogrid[-r : r + 1, -r : r + 1]
    return x * x + y * y <= r * r


def _scene(size=96, seed=0, clouds=4):
    """A few round clouds: the model's probability (soft edges) and a right label."""
    rng = np.random.default_rng(seed)
    cloud = np.zeros((size, size), bool)
    for _ in range(clouds):
        cy, cx = rng.integers(15, size - 15, 2)
        yy, xx = np.mgrid[0:size, 0:size]
        cloud |= np.hypot(yy - cy, xx - cx) < rng.integers(7, 13)
    soft = ndi.gaussian_filter(cloud.astype(float), 1.5)
    prob = np.clip(soft * 1.02 - 0.01, 0, 1).astype(np.float32)
    return prob, cloud.astype(np.uint8), np.ones(cloud.shape, bool)


def test_a_label_drawn_too_tight_or_too_loose_shows_its_offset_in_pixels():
    prob, label, valid = _scene()
    right = chip_detectors(prob, label, valid, 0.5)
    tight = ndi.binary_erosion(label, np.ones((9, 9)), border_value=1).astype(np.uint8)
    loose = ndi.binary_dilation(label, np.ones((9, 9))).astype(np.uint8)
    assert right["edge_offset"] == pytest.approx(0, abs=0.1)  # sub-pixel
    assert chip_detectors(prob, tight, valid, 0.5)["edge_offset"] == pytest.approx(4, abs=1)
    assert chip_detectors(prob, loose, valid, 0.5)["edge_offset"] == pytest.approx(-4, abs=1)
    assert chip_detectors(prob, tight, valid, 0.5)["edge_gain"] > 0.2


def test_an_erased_or_added_blob_is_a_region_but_a_ragged_edge_is_not():
    prob, label, valid = _scene()
    right = chip_detectors(prob, label, valid, 0.5)
    assert right["missing_region"] == 0 and right["extra_region"] == 0
    # the label's edge 1 px off everywhere: disagreement along every edge, no core
    ragged = ndi.binary_dilation(label, np.ones((3, 3))).astype(np.uint8)
    assert chip_detectors(prob, ragged, valid, 0.5)["extra_region"] == 0
    erased = np.zeros_like(label)  # every cloud gone from the label
    _, hi = confidence_bounds(0.5)
    core = ndi.binary_erosion(prob > hi, np.ones((5, 5)), border_value=1)
    assert core.mean() > 0.02
    assert chip_detectors(prob, erased, valid, 0.5)["missing_region"] == pytest.approx(core.mean())
    added = label.copy()
    added[70:90, 5:25] = 1
    free = (prob[70:90, 5:25] < 0.01).all()
    assert free and chip_detectors(prob, added, valid, 0.5)["extra_region"] > 0.015


def test_a_few_model_pixels_on_a_no_cloud_label_are_not_evidence():
    """IoU of near-empty masks is 0 here, yet the label is right."""
    prob = np.zeros((64, 64), np.float32)
    prob[30:32, 30:32] = 0.9  # 0.1 % of the chip
    det = chip_detectors(prob, np.zeros((64, 64), np.uint8), np.ones((64, 64), bool), 0.5)
    assert det["missing_region"] == 0
    assert det["contradicted_fraction"] < 0.002
    assert np.isnan(det["edge_offset"])  # no edge to compare


def test_confidence_is_measured_from_the_threshold():
    lo, hi = confidence_bounds(0.5)
    assert lo == pytest.approx(0.119, abs=1e-3) and hi == pytest.approx(0.881, abs=1e-3)
    lo, hi = confidence_bounds(0.05)
    assert lo < 0.01 and 0.2 < hi < 0.3


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_the_cpu_kernel_and_the_batched_torch_version_agree(seed):
    rng = np.random.default_rng(seed)
    probs, labels, valids = [], [], []
    for i in range(3):
        prob, label, valid = _scene(64, seed * 10 + i)
        prob = np.clip(prob + 0.2 * rng.standard_normal(prob.shape), 0, 1).astype(np.float32)
        label = label.copy()
        label[rng.random(label.shape) < 0.02] = 255
        valid = valid & (rng.random(valid.shape) > 0.01)
        probs.append(prob), labels.append(label), valids.append(valid)
    batch = batch_detectors(
        torch.from_numpy(np.stack(probs)),
        torch.from_numpy(np.stack(labels)),
        torch.from_numpy(np.stack(valids)),
        0.3,
    )
    for i in range(3):
        one = chip_detectors(probs[i], labels[i], valids[i], 0.3)
        for col, value in one.items():
            assert batch[col][i] == pytest.approx(value, rel=1e-4, abs=1e-6, nan_ok=True), col


def _rows(n_right=30, seed=0):
    """Scored rows of a dataset of right labels and five planted errors."""
    rng = np.random.default_rng(seed)
    rows, wrong = [], {}
    kinds = ("all_cloud", "no_cloud", "blob_erased", "tight", "blob_added")
    for i in range(n_right + len(kinds)):
        prob, label, valid = _scene(96, seed=i)
        cid = f"c{i:02d}"
        if i >= n_right:
            kind = kinds[i - n_right]
            wrong_label, s = None, i
            clouds = 16 if kind == "no_cloud" else 4  # a no-cloud error needs a cloudy chip
            while wrong_label is None:  # a scene that can carry this kind of error
                assert s < i + 5000
                prob, label, valid = _scene(96, seed=s, clouds=clouds)
                wrong_label, s = plant_error(rng, label, kind), s + 100
            if kind == "tight":  # 4 px: the small round clouds here would vanish at 7
                wrong_label = ndi.binary_erosion(label, _disk(4)).astype(np.uint8)
            label = wrong_label
            wrong[cid] = kind
        row = {"chip_id": cid, "error": "", "model": "m", "threshold": 0.5}
        lab = label == 1
        pred = prob >= 0.5
        row.update(
            label_cloud_fraction=lab.mean(),
            pred_cloud_fraction=pred.mean(),
            iou=(lab & pred).sum() / max((lab | pred).sum(), 1),
            mismatch_fraction=(lab != pred).mean(),
            valid_fraction=1.0,
        )
        row.update(chip_detectors(prob, label, valid, 0.5))
        rows.append(row)
    return rows, wrong


def test_every_kind_of_planted_error_ranks_above_every_right_label():
    rows, wrong = _rows()
    table = finalize(rows)
    assert set(table.chip_id[: len(wrong)]) == set(wrong)
    assert list(table.columns[:6]) == SCORE_COLUMNS[:6]


def test_every_chip_says_why_in_words():
    rows, wrong = _rows()
    rows.append({"chip_id": "zz_broken", "error": "cannot read B02.tif", "model": "m"})
    rows.append({"chip_id": "zz_unlabelled", "error": "", "pred_cloud_fraction": 0.2})
    table = finalize(rows).set_index("chip_id")
    assert table.why.str.len().gt(0).all()
    why = table.why
    assert why[[c for c, k in wrong.items() if k == "no_cloud"][0]].startswith("label 0% cloud")
    assert "missing from the label" in why[[c for c, k in wrong.items() if k == "blob_erased"][0]]
    assert "inside the model's cloud edge" in why[[c for c, k in wrong.items() if k == "tight"][0]]
    assert "clear to the model" in why[[c for c, k in wrong.items() if k == "blob_added"][0]]
    assert why["c00"].startswith("nothing unusual")
    assert why["zz_broken"].startswith("unreadable")
    assert why["zz_unlabelled"].startswith("no label")
    assert table.detector[[c for c, k in wrong.items() if k == "all_cloud"][0]] == (
        "all_cloud_contradicted"
    )


def test_the_ranking_follows_the_datasets_own_label_style():
    """In a dataset whose labels are all drawn 3 px generous, a generous label is normal
    and a right-to-the-edge one is what stands out."""
    rows = []
    for i in range(20):
        prob, label, valid = _scene(96, seed=i)
        if i != 7:
            label = ndi.binary_dilation(label, np.ones((7, 7))).astype(np.uint8)
        row = {"chip_id": f"c{i:02d}", "error": "", "label_cloud_fraction": label.mean()}
        row.update(chip_detectors(prob, label, valid, 0.5))
        rows.append(row)
    ranked = rank_scores(pd.DataFrame(rows)).sort_values("outlier_z", ascending=False)
    assert ranked.chip_id.iloc[0] == "c07"
    assert ranked.detector.iloc[0] == "edge_tight"
