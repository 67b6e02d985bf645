"""Sen2Cor's Scene Classification Layer as a second opinion on each label."""

from __future__ import annotations

import numpy as np
import pytest
import rasterio
from rasterio.transform import from_origin

from chipqa.data import open_dataset
from chipqa.errors import ChipReadError
from chipqa.predictors import SpectralBaseline
from chipqa.scoring import score_dataset
from chipqa.synth import make_chip, make_scl
from conftest import CRS, make_bands, write_chip, write_tif


def test_synthetic_scl_is_a_degraded_20m_copy_of_the_truth():
    rng = np.random.default_rng(1)
    chip = make_chip(rng, "x", 128, sky="partial", land_cover="vegetation")
    scl = make_scl(rng, chip)
    assert scl.shape == (64, 64)
    cloud = np.isin(scl, (8, 9, 10))
    truth = chip.label[::2, ::2] == 1
    iou = (cloud & truth).sum() / (cloud | truth).sum()
    assert 0.4 < iou < 0.99  # close to the truth, but not the truth
    assert set(np.unique(scl)) <= {0, 3, 4, 8, 9, 10}
    # Cloud shadow (3) where the chip's surface was darkened by the displaced cloud,
    # eroded at its edges like the clouds.
    shadow = scl == 3
    strong = chip.shadow[::2, ::2] > 0.3
    assert shadow.sum() > 20
    assert strong[shadow].mean() > 0.9 and shadow[strong & ~cloud].mean() < 0.99
    bands = chip.bands[:, ::2, ::2].astype(float)
    assert bands[3][shadow].mean() < 0.8 * bands[3][~shadow & ~cloud].mean()  # darker NIR


def test_overcast_and_clear_chips_get_no_shadow():
    for sky in ("overcast", "clear"):
        chip = make_chip(np.random.default_rng(2), "x", 64, sky=sky)
        assert not (make_scl(np.random.default_rng(0), chip) == 3).any()


def _chip_with_scl(root, cid, cloud, label, scl_cloud, scl_crs=CRS, scl_res=20.0):
    folder = write_chip(root, cid, make_bands(32, cloud), label.astype(np.uint8))
    scl = np.where(scl_cloud[::2, ::2], 9, 4).astype(np.uint8)
    t = from_origin(500_000.0, 9_000_000.0, scl_res, scl_res)
    write_tif(folder / "SCL.tif", scl, nodata=0, crs=scl_crs, transform=t)


def test_a_label_that_scl_also_contradicts_ranks_higher(tmp_path):
    clear = np.zeros((32, 32), bool)
    full = np.ones((32, 32), bool)
    # Same wrong all-cloud label on two clear chips; SCL agrees with the image on one
    # chip and (wrongly) with the label on the other.
    _chip_with_scl(tmp_path, "both_disagree", clear, full, scl_cloud=clear)
    _chip_with_scl(tmp_path, "scl_agrees", clear, full, scl_cloud=full)
    df = score_dataset(open_dataset(tmp_path), SpectralBaseline()).set_index("chip_id")
    assert df.loc["both_disagree", "iou_label_scl"] == 0.0
    assert df.loc["scl_agrees", "iou_label_scl"] == 1.0
    assert df.loc["both_disagree", "iou_pred_scl"] == 1.0  # model and SCL: both clear
    assert df.loc["both_disagree", "suspicion"] > df.loc["scl_agrees", "suspicion"]
    assert "scl_disagrees" in df.loc["both_disagree", "flags"]
    assert df.loc["both_disagree", "scl_cloud_fraction"] == 0.0


def test_scl_on_another_crs_is_reprojected_and_a_broken_one_is_named(tmp_path):
    half = np.zeros((32, 32), bool)
    half[:, :16] = True
    folder = write_chip(tmp_path, "utm35", make_bands(32, half), half.astype(np.uint8))
    # The SCL delivered in another CRS (Web Mercator), as a user may have it.
    from rasterio.warp import calculate_default_transform, reproject

    src_t = from_origin(500_000.0, 9_000_000.0, 20.0, 20.0)
    scl = np.where(half[::2, ::2], 9, 4).astype(np.uint8)
    bounds = rasterio.transform.array_bounds(16, 16, src_t)
    dst_t, w, h = calculate_default_transform(CRS, "EPSG:3857", 16, 16, *bounds)
    out = np.zeros((h, w), np.uint8)
    reproject(
        scl,
        out,
        src_transform=src_t,
        src_crs=CRS,
        dst_transform=dst_t,
        dst_crs="EPSG:3857",
        resampling=rasterio.warp.Resampling.nearest,
    )
    write_tif(folder / "SCL.tif", out, nodata=0, crs="EPSG:3857", transform=dst_t)
    chip = open_dataset(tmp_path).read("utm35")
    agree = (np.isin(chip.scl, (8, 9, 10)) == half)[chip.scl != 0].mean()
    assert agree > 0.9
    (folder / "SCL.tif").write_bytes(b"junk")
    with pytest.raises(ChipReadError, match="SCL.tif"):
        open_dataset(tmp_path).read("utm35")
