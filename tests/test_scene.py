"""Whole-scene masks: seamless tiling, georeference, COG output, bad input."""

from __future__ import annotations

import numpy as np
import pytest
import rasterio
import torch
from rasterio.transform import from_origin

from chipqa.cli import main
from chipqa.models import SpectralBaseline
from chipqa.scene import SceneError, mask_scene, open_scene
from chipqa.synth import make_chip

CRS = "EPSG:32633"
TRANSFORM = from_origin(300_000.0, 5_000_000.0, 10.0, 10.0)


def _scene_array(h: int, w: int) -> np.ndarray:
    """A scene made of synthetic chips side by side (partly cloudy, with a nodata edge)."""
    rng = np.random.default_rng(0)
    out = np.zeros((4, h, w), np.uint16)
    for y in range(0, h, 96):
        for x in range(0, w, 96):
            chip = make_chip(rng, "s", 96, sky="partial")
            hh, ww = min(96, h - y), min(96, w - x)
            out[:, y : y + hh, x : x + ww] = chip.bands[:, :hh, :ww]
    out[:, :, :7] = 0  # swath edge
    return out


def _write_scene(path, arr, crs=CRS, transform=TRANSFORM):
    with rasterio.open(
        path,
        "w",
        driver="GTiff",
        height=arr.shape[1],
        width=arr.shape[2],
        count=4,
        dtype="uint16",
        crs=crs,
        transform=transform,
        nodata=0,
    ) as dst:
        dst.write(arr)
    return path


def test_tiled_mask_has_no_seams_and_keeps_the_georeference(tmp_path):
    arr = _scene_array(230, 301)
    scene = _write_scene(tmp_path / "scene.tif", arr)
    out = mask_scene(scene, SpectralBaseline(), tmp_path / "mask.tif", tile=64, overlap=16)
    whole = SpectralBaseline().predict_proba(torch.from_numpy(arr[None]))[0].numpy()
    with rasterio.open(out) as src:
        assert src.crs.to_string() == CRS and src.transform == TRANSFORM
        assert src.profile["tiled"] and src.compression.name.lower() == "deflate"
        assert src.overviews(1)  # Cloud-Optimized: overviews inside
        assert src.nodata == 255
        mask = src.read(1)
    valid = (arr != 0).all(0)
    assert (mask[~valid] == 255).all()
    # Tile borders fall every 48 px: the blended mosaic matches a whole-image prediction
    # to the percent everywhere (the baseline only looks 2 px around each pixel).
    diff = np.abs(mask[valid].astype(int) - np.rint(whole[valid] * 100).astype(int))
    assert diff.max() <= 1
    assert 5 < mask[valid].mean() < 95  # real clouds and real clear sky


def test_a_folder_of_band_files_and_classes(tmp_path):
    arr = _scene_array(100, 120)
    folder = tmp_path / "scene"
    folder.mkdir()
    for i, b in enumerate(("B02", "B03", "B04", "B08")):
        with rasterio.open(
            folder / f"{b}.tif",
            "w",
            driver="GTiff",
            height=100,
            width=120,
            count=1,
            dtype="uint16",
            crs=CRS,
            transform=TRANSFORM,
            nodata=0,
        ) as d:
            d.write(arr[i], 1)
    assert (
        main(
            [
                "mask",
                str(folder),
                "--out",
                str(tmp_path / "m.tif"),
                "--classes",
                "--tile",
                "64",
                "--overlap",
                "8",
                "-q",
            ]
        )
        == 0
    )
    with rasterio.open(tmp_path / "m.tif") as src:
        assert set(np.unique(src.read(1))) <= {0, 1, 255}


def test_bad_scenes_and_outputs_are_refused_with_nothing_written(tmp_path):
    arr = _scene_array(64, 64)
    scene = _write_scene(tmp_path / "scene.tif", arr)
    with pytest.raises(SceneError, match="scene's own file"):
        mask_scene(scene, SpectralBaseline(), scene)
    folder = tmp_path / "mixed"
    folder.mkdir()
    for i, b in enumerate(("B02", "B03", "B04", "B08")):
        t = TRANSFORM if b != "B08" else from_origin(300_000.0, 5_000_000.0, 20.0, 20.0)
        with rasterio.open(
            folder / f"{b}.tif",
            "w",
            driver="GTiff",
            height=64,
            width=64,
            count=1,
            dtype="uint16",
            crs=CRS,
            transform=t,
            nodata=0,
        ) as d:
            d.write(arr[i], 1)
    with pytest.raises(SceneError, match="B08.tif is not on the grid of B02.tif"):
        open_scene(folder)
    with pytest.raises(SceneError, match="does not exist"):
        open_scene(tmp_path / "nowhere.tif")
    assert main(["mask", str(folder), "--out", str(tmp_path / "m.tif")]) == 2
    assert not (tmp_path / "m.tif").exists()


def test_a_full_disk_leaves_no_mask_under_the_final_name(tmp_path, monkeypatch):
    scene = _write_scene(tmp_path / "scene.tif", _scene_array(64, 64))

    def full(*a, **k):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr("rasterio.shutil.copy", full)
    with pytest.raises(SceneError, match="No space left"):
        mask_scene(scene, SpectralBaseline(), tmp_path / "m.tif", tile=32, overlap=8)
    assert list(tmp_path.iterdir()) == [tmp_path / "scene.tif"]
