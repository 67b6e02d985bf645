"""``--threshold auto``: the threshold learnt from how a dataset's labels draw clouds."""

from __future__ import annotations

import numpy as np
import pytest
import rasterio
import torch

from chipqa.cli.main import main
from chipqa.data import open_dataset
from chipqa.predictors import SpectralBaseline
from chipqa.scoring import read_scores, score_dataset
from chipqa.scoring.calibrate import CANDIDATES, choose_threshold
from chipqa.stats.batched import threshold_counts
from chipqa.synth import generate_dataset


def _relabel(root, style: float, wrong: int = 3):
    """Redraw every label of a generated dataset as an annotator with a given style
    would: cloud where the baseline's probability is at least ``style`` (generous
    annotators take in thin margins: a low ``style``), except ``wrong`` chips whose
    label is set to all cloud (the errors chipqa is there to find)."""
    ds = open_dataset(root, cache="off")
    model = SpectralBaseline()
    relabelled = 0
    for rec in ds:
        chip = ds.read_record(rec)
        prob = model.predict_numpy(chip.bands)
        label = (prob >= style).astype(np.uint8)
        if relabelled < wrong and 0.2 < label.mean() < 0.8:
            label[:] = 1
            relabelled += 1
        label[~chip.valid] = 255
        with rasterio.open(rec.label_path, "r+") as dst:
            dst.write(label, 1)
    return relabelled


@pytest.fixture(scope="module")
def generated(tmp_path_factory):
    base = tmp_path_factory.mktemp("cal")
    return generate_dataset(base / "data", n_chips=24, size=48, error_rate=0.0, seed=11).root


@pytest.mark.parametrize("style", [0.25, 0.75])
def test_auto_threshold_follows_the_labels_style(generated, tmp_path, style):
    import shutil

    root = tmp_path / "data"
    shutil.copytree(generated, root)
    assert _relabel(root, style) == 3
    table = score_dataset(open_dataset(root, cache="off"), SpectralBaseline(), threshold="auto")
    cal = table.attrs["calibration"]
    assert abs(cal.threshold - style) <= 0.05, cal.describe()
    assert cal.median_iou >= cal.median_iou_default
    assert cal.median_iou > 0.95  # the right labels agree with the model at that threshold
    assert (table["threshold"] == cal.threshold).all()
    # The wrong labels still rank first at the learnt threshold.
    assert set(table["chip_id"].head(3)) == set(
        table.loc[table["label_cloud_fraction"] == 1.0, "chip_id"].head(3)
    )


def test_a_fixed_threshold_is_kept_and_recorded(generated):
    table = score_dataset(open_dataset(generated, cache="off"), SpectralBaseline(), threshold=0.4)
    assert "calibration" not in table.attrs
    assert (table["threshold"] == 0.4).all()


def test_threshold_counts_match_counting_at_each_threshold():
    rng = np.random.default_rng(0)
    prob = torch.from_numpy(rng.random((3, 20, 20), dtype=np.float32))
    label = torch.from_numpy(rng.integers(0, 2, (3, 20, 20), dtype=np.uint8))
    label[2, :5] = 255
    valid = torch.ones(3, 20, 20, dtype=torch.bool)
    valid[1, :, :4] = False
    t = torch.tensor(CANDIDATES)
    c = threshold_counts(prob, label, valid, t)
    for k, thr in enumerate(CANDIDATES):
        pred = (prob >= thr) & valid
        cloud = (label == 1) & valid
        assert c["tp"][:, k].tolist() == (pred & cloud).sum((1, 2)).tolist()
        assert c["n_pred"][:, k].tolist() == pred.sum((1, 2)).tolist()
    assert c["n_target"].tolist() == ((label == 1) & valid).sum((1, 2)).tolist()


def test_chips_without_cloud_anywhere_do_not_decide_and_none_gives_the_default():
    k = len(CANDIDATES)
    cal = choose_threshold(np.zeros((4, k)), np.zeros((4, k)), np.zeros(4))
    assert cal.threshold == 0.5 and cal.chips == 0
    assert "no labelled chip" in cal.describe()


def test_cli_prints_and_stores_the_chosen_threshold(generated, tmp_path, capsys):
    out = tmp_path / "scores.csv"
    rc = main(["score", str(generated), "--model", "baseline", "--out", str(out), "-q"])
    assert rc == 0
    table = read_scores(out)
    chosen = float(table["threshold"].iloc[0])
    assert chosen in CANDIDATES and (table["threshold"] == chosen).all()
    rc = main(["score", str(generated), "--model", "baseline", "--out", str(out)])
    assert f"threshold auto: {chosen:.2f}" in capsys.readouterr().out
