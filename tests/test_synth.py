"""The synthetic generator's invariants: what the demo, the tests and the benchmarks rely on."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import rasterio

from chipqa.data import open_dataset
from chipqa.synth import ERROR_KINDS, MIN_CHANGED, corrupt_label, generate_dataset, make_chip


@pytest.fixture(scope="module")
def synth(tmp_path_factory):
    root = tmp_path_factory.mktemp("synth") / "data"
    return generate_dataset(root, n_chips=60, size=32, error_rate=0.3, seed=5, nodata_rate=0.2)


def test_files_look_like_real_on_cloud_n_chips(synth):
    cid = synth.chip_ids[0]
    with rasterio.open(synth.root / "train_features" / cid / "B08.tif") as src:
        assert (src.count, src.dtypes[0], src.nodata, src.res) == (1, "uint16", 0, (10.0, 10.0))
        assert src.crs.to_epsg() // 100 in (326, 327)  # a UTM zone
        assert src.compression is None and src.profile["tiled"] is False
    with rasterio.open(synth.root / "train_labels" / f"{cid}.tif") as src:
        assert (src.dtypes[0], src.nodata) == ("uint8", 255)
    meta = pd.read_csv(synth.root / "train_metadata.csv")
    assert list(meta.columns) == ["chip_id", "location", "datetime", "cloudpath"]
    assert sorted(meta["chip_id"]) == sorted(synth.chip_ids)
    # The truth stays outside the dataset folder.
    assert not synth.truth_dir.is_relative_to(synth.root)


def test_the_planted_errors_are_real_errors_and_the_rest_is_clean(synth):
    truth = pd.read_csv(synth.truth_csv, keep_default_na=False)
    ds = open_dataset(synth.root)
    bad = truth[truth["corrupted"].astype(str) == "True"]
    assert len(bad) == round(0.3 * 60)
    assert set(bad["error_kind"]) <= set(ERROR_KINDS)
    assert {"all_cloud", "no_cloud"} <= set(bad["error_kind"])
    for row in truth.itertuples():
        chip = ds.read(row.chip_id)
        with rasterio.open(synth.truth_dir / "true_labels" / f"{row.chip_id}.tif") as src:
            true = src.read(1)
        assert ((true == 255) == ~chip.valid).all()  # nodata agrees everywhere
        changed = (chip.label != true)[chip.valid].mean()
        if row.corrupted == "True" or row.corrupted is True:
            assert changed >= MIN_CHANGED
            assert changed == pytest.approx(row.changed_fraction, abs=1e-5)
        else:
            assert changed == 0
        if row.error_kind == "all_cloud":
            assert (chip.label[chip.valid] == 1).all() and row.true_cloud_fraction < 0.9
        if row.error_kind == "no_cloud":
            assert (chip.label[chip.valid] == 0).all() and row.true_cloud_fraction > 0.2


def test_sky_shares_and_nodata(synth):
    truth = pd.read_csv(synth.truth_csv, keep_default_na=False)
    shares = truth["sky"].value_counts(normalize=True)
    assert shares["overcast"] == pytest.approx(0.4, abs=0.05)
    assert shares["clear"] == pytest.approx(0.1, abs=0.05)
    assert truth["has_nodata"].astype(str).eq("True").sum() >= 6


def test_same_seed_same_bytes_other_seed_other_chips(tmp_path):
    a = generate_dataset(tmp_path / "a", n_chips=4, size=32, seed=9)
    b = generate_dataset(tmp_path / "b", n_chips=4, size=32, seed=9)
    c = generate_dataset(tmp_path / "c", n_chips=4, size=32, seed=10)
    assert a.chip_ids == b.chip_ids != c.chip_ids
    for cid in a.chip_ids:
        for f in ("B02.tif", "B08.tif"):
            pa = (tmp_path / "a" / "train_features" / cid / f).read_bytes()
            pb = (tmp_path / "b" / "train_features" / cid / f).read_bytes()
            assert pa == pb


def test_flat_layout(tmp_path):
    res = generate_dataset(tmp_path / "flat", n_chips=3, size=32, layout="flat", seed=1)
    ds = open_dataset(res.root)
    assert ds.layout == "flat" and ds.n_labelled == 3


def test_chips_have_the_spectra_of_their_sky_and_cover():
    rng = np.random.default_rng(0)
    overcast = make_chip(rng, "ovc", 64, sky="overcast", land_cover="vegetation")
    clear_veg = make_chip(rng, "veg", 64, sky="clear", land_cover="vegetation")
    snow = make_chip(rng, "snw", 64, sky="clear", land_cover="snow")
    water = make_chip(rng, "wat", 64, sky="clear", land_cover="water")
    assert (overcast.label == 1).all() and (clear_veg.label == 0).all()
    assert overcast.bands[:3].mean() > 5000  # bright cloud tops
    assert clear_veg.bands[3].mean() > 3 * clear_veg.bands[2].mean()  # NIR ≫ red over vegetation
    assert snow.bands[:3].mean() > 3000 and snow.bands[3].mean() < snow.bands[0].mean()
    assert water.bands[3].mean() < 1500
    partial = make_chip(rng, "par", 64, sky="partial")
    assert 0.02 < partial.label.mean() < 0.95


@pytest.mark.parametrize("kind", ERROR_KINDS)
def test_each_kind_of_corruption(kind):
    rng = np.random.default_rng(3)
    chip = make_chip(rng, "x", 64, sky="partial", land_cover="crops", nodata_fraction=0.2)
    other = make_chip(rng, "y", 64, sky="overcast").label if kind == "swap" else None
    wrong = corrupt_label(rng, chip, kind, other)
    assert wrong.dtype == np.uint8 and wrong.shape == chip.label.shape
    assert ((wrong == 255) == (chip.label == 255)).all()
    valid = chip.label != 255
    if kind == "all_cloud":
        assert (wrong[valid] == 1).all()
    elif kind == "no_cloud":
        assert (wrong[valid] == 0).all()
    elif kind == "half_missing":
        assert 0.3 < wrong[valid].sum() / chip.label[valid].sum() < 0.75
    else:
        assert (wrong[valid] != chip.label[valid]).mean() > 0


def test_a_folder_with_files_is_never_overwritten(tmp_path):
    (tmp_path / "keep.txt").write_text("x")
    with pytest.raises(FileExistsError, match="empty"):
        generate_dataset(tmp_path, n_chips=2, size=32)
    assert (tmp_path / "keep.txt").read_text() == "x"


def test_the_scl_does_not_change_the_chips(tmp_path):
    generate_dataset(tmp_path / "a", n_chips=6, size=32, seed=4, with_scl=True)
    generate_dataset(tmp_path / "b", n_chips=6, size=32, seed=4, with_scl=False)
    files = sorted(p.relative_to(tmp_path / "b") for p in (tmp_path / "b").rglob("*.tif"))
    assert len(files) == 6 * 5
    for f in files:
        assert (tmp_path / "a" / f).read_bytes() == (tmp_path / "b" / f).read_bytes()
    assert len(list((tmp_path / "a").rglob("SCL.tif"))) == 6


def test_a_generated_scene_and_its_scl(tmp_path):
    from chipqa.scene import open_scene
    from chipqa.synth import write_scene

    scene = write_scene(
        tmp_path / "s.tif", (200, 300), block=64, seed=2, scl_path=tmp_path / "c.tif"
    )
    again = write_scene(tmp_path / "t.tif", (200, 300), block=64, seed=2)
    sc = open_scene(scene)
    assert sc.declared and sc.band_names == ("B02", "B03", "B04", "B08")
    with (
        rasterio.open(scene) as a,
        rasterio.open(again) as b,
        rasterio.open(tmp_path / "c.tif") as c,
    ):
        bands = a.read()
        np.testing.assert_array_equal(bands, b.read())
        assert c.shape == (100, 150) and c.crs == a.crs
        assert c.transform.a == 2 * a.transform.a and c.bounds == a.bounds
        scl = c.read(1)
    assert {3, 8, 9}.issubset(set(np.unique(scl)))
    # The SCL's clouds lie over the scene's bright pixels.
    bright = bands[:3, ::2, ::2].mean(0) > 5000
    cloud = np.isin(scl, (8, 9))
    assert (bright & cloud).sum() / (bright | cloud).sum() > 0.5
