"""Real Sentinel-2 chips (On Cloud N, human labels) shipped with chipqa: the reader on
real files, the pretrained model against the human labels, and the ranking finding
errors planted into real labels."""

from __future__ import annotations

import shutil

import numpy as np
import pytest
import rasterio

from chipqa._sample_data import REAL_CHIPS, ensure_real_sample
from chipqa.data import open_dataset
from chipqa.predictors import load_predictor
from chipqa.scoring import score_dataset
from chipqa.synth.planting import plant_error


def test_the_reader_reads_the_real_chips_as_they_are():
    ds = open_dataset(REAL_CHIPS, cache="off")
    assert [r.chip_id for r in ds] == ["oncloudn_1", "oncloudn_3", "oncloudn_4"]
    for i in range(len(ds)):
        chip = ds.read(i)
        with rasterio.open(REAL_CHIPS / chip.chip_id / "B08.tif") as src:
            nir = src.read(1)
            assert 32601 <= src.crs.to_epsg() <= 32760  # a UTM zone, 10 m pixels
            assert src.res == (10.0, 10.0)
        assert chip.bands.shape == (4, 512, 512) and chip.bands.dtype == np.uint16
        np.testing.assert_array_equal(chip.bands[3], nir)
        assert set(np.unique(chip.label)) == {0, 1}
        assert 0.3 < (chip.label == 1).mean() < 0.8  # partly cloudy, as the README says
        assert chip.valid.all()


@pytest.fixture(scope="module")
def pretrained():
    return load_predictor("pretrained", "cpu")


@pytest.mark.slow
def test_the_pretrained_model_agrees_with_the_human_labels(pretrained):
    """A predictor that reads the bands wrongly (order, scale, offset) fails this."""
    table = score_dataset(open_dataset(REAL_CHIPS, cache="off"), pretrained, threshold="auto")
    assert table.iou.median() >= 0.75
    # On Cloud N's labels are generous: the calibrated threshold is well below 0.5
    assert table.threshold.iloc[0] < 0.5


@pytest.mark.slow
def test_errors_planted_into_real_labels_rank_first_and_say_why(pretrained, tmp_path):
    root = tmp_path / "real"
    rng = np.random.default_rng(0)
    planted = {}
    for chip in sorted(p for p in REAL_CHIPS.iterdir() if p.is_dir()):
        for k in range(3):  # rotations: distinct chips to a model
            dst = root / f"{chip.name}_r{k}"
            dst.mkdir(parents=True)
            for f in chip.glob("*.tif"):
                with rasterio.open(f) as src:
                    profile, data = src.profile, np.rot90(src.read(1), k)
                with rasterio.open(dst / f.name, "w", **profile) as out:
                    out.write(np.ascontiguousarray(data), 1)
    for cid, kind in (("oncloudn_1_r1", "no_cloud"), ("oncloudn_3_r2", "blob_erased")):
        wrong = root / f"{cid}_{kind}"
        shutil.copytree(root / cid, wrong)
        with rasterio.open(wrong / "label.tif", "r+") as dst:
            dst.write(plant_error(rng, dst.read(1), kind), 1)
        planted[wrong.name] = kind
    table = score_dataset(open_dataset(root, cache="off"), pretrained, threshold="auto")
    assert set(table.chip_id[:2]) == set(planted)
    why = dict(zip(table.chip_id, table.why, strict=True))
    assert why["oncloudn_1_r1_no_cloud"].startswith("label 0% cloud, model")
    assert "missing from the label" in why["oncloudn_3_r2_blob_erased"]
    assert all(w.startswith("nothing unusual") for w in table.why[2:])


def test_the_real_sample_holds_the_real_chips_and_two_planted_errors(tmp_path, monkeypatch):
    monkeypatch.setenv("CHIPQA_SAMPLE_DIR", str(tmp_path))
    root = ensure_real_sample()
    ids = sorted(p.name for p in root.iterdir())
    assert ids == [
        "oncloudn_1",
        "oncloudn_1_all_cloud",
        "oncloudn_3",
        "oncloudn_3_blob_erased",
        "oncloudn_4",
    ]
    with rasterio.open(root / "oncloudn_1_all_cloud" / "label.tif") as src:
        assert (src.read(1) == 1).all()
    with (
        rasterio.open(root / "oncloudn_3" / "label.tif") as a,
        rasterio.open(root / "oncloudn_3_blob_erased" / "label.tif") as b,
    ):
        changed = (a.read(1) != b.read(1)).mean()
    assert 0.01 < changed < 0.1
    assert ensure_real_sample() == root  # made once, then reused
