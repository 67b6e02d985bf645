"""Pictures of whole scenes: the three-panel PNG and the lazy pyramids, never a whole read."""

from __future__ import annotations

import resource

import numpy as np
import pytest
import rasterio
from PIL import Image
from rasterio.transform import from_origin
from rasterio.windows import Window

from chipqa.cli import main
from chipqa.render import NODATA_COLOUR, PRED_COLOUR, SCL_COLOURS, true_colour
from chipqa.scene import SceneError, level_shapes, open_scene, scene_panel, scene_pyramid
from chipqa.synth import write_scene
from conftest import reproject_file


@pytest.fixture(scope="module")
def scene_dir(tmp_path_factory):
    d = tmp_path_factory.mktemp("sceneview")
    write_scene(d / "scene.tif", (256, 384), block=128, seed=1, scl_path=d / "SCL.tif")
    args = [
        "mask",
        str(d / "scene.tif"),
        "--model",
        "baseline",
        "--out",
        str(d / "mask.tif"),
        "--tile",
        "128",
    ]
    assert main([*args, "--overlap", "16", "-q"]) == 0
    return d


def _rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def test_the_png_shows_true_colour_scl_classes_and_the_mask(scene_dir, tmp_path):
    d = scene_dir
    out = tmp_path / "panel.png"
    args = ["view", str(d / "scene.tif"), "--mask", str(d / "mask.tif")]
    assert main([*args, "--scl", str(d / "SCL.tif"), "--png", str(out), "--max-side", "192"]) == 0
    img = np.asarray(Image.open(out).convert("RGB")).astype(int)
    panel = scene_panel(d / "scene.tif", mask=d / "mask.tif", scl=d / "SCL.tif", max_side=192)
    np.testing.assert_array_equal(img, panel.image)
    h, w = panel.rgb.shape[:2]
    assert (h, w) == (128, 192) and img.shape[1] == 3 * w + 16
    top = 28 + 20  # title line and panel titles
    scl_px = img[top : top + h, w + 8 : 2 * w + 8]
    high = panel.scl == 9
    assert high.sum() > 100
    red = np.array(SCL_COLOURS[9])
    assert np.abs(scl_px[high] - red).max(axis=1).mean() < 80
    mask_px = img[top : top + h, 2 * (w + 8) : 3 * w + 16]
    cloudy = panel.prob > 0.9
    assert mask_px[cloudy, 0].mean() > 180 and mask_px[cloudy, 2].mean() > 130  # magenta
    assert mask_px[panel.prob < 0.05, 2].mean() < 80
    # The panel's true colour is the scene's, decimated.
    with rasterio.open(d / "scene.tif") as src:
        bands = src.read(out_shape=(4, h, w), resampling=rasterio.enums.Resampling.nearest)
    np.testing.assert_array_equal(panel.rgb, true_colour(bands))
    # The legend wraps in a narrow picture: every swatch is drawn below the panels.
    footer = img[top + h :]
    for colour in [*SCL_COLOURS.values(), PRED_COLOUR, NODATA_COLOUR]:
        assert (footer == np.array(colour)).all(-1).any(), colour


def test_an_scl_on_another_crs_lands_on_the_same_pixels(scene_dir, tmp_path):
    reproject_file(scene_dir / "SCL.tif", tmp_path / "SCL_3857.tif", "EPSG:3857")
    a = scene_panel(scene_dir / "scene.tif", scl=scene_dir / "SCL.tif", max_side=192).scl
    b = scene_panel(scene_dir / "scene.tif", scl=tmp_path / "SCL_3857.tif", max_side=192).scl
    assert (a == b).mean() > 0.9
    assert (b == 0).mean() < 0.02  # it covers the scene


def test_the_pyramid_is_lazy_and_each_level_is_the_decimated_scene(scene_dir):
    pyr = scene_pyramid(scene_dir / "scene.tif", mask=scene_dir / "mask.tif", smallest=100)
    assert [a.shape[:2] for a in pyr["rgb"]] == level_shapes(256, 384, 100)
    assert [a.shape[:2] for a in pyr["rgb"]] == [(256, 384), (128, 192), (64, 96)]
    with rasterio.open(scene_dir / "scene.tif") as src:
        full = src.read()
        level1 = src.read(out_shape=(4, 128, 192), resampling=rasterio.enums.Resampling.nearest)
    np.testing.assert_array_equal(
        pyr["rgb"][0][:50, 100:180].compute(), true_colour(full)[:50, 100:180]
    )
    np.testing.assert_array_equal(pyr["rgb"][1].compute(), true_colour(level1))
    with rasterio.open(scene_dir / "mask.tif") as src:
        np.testing.assert_array_equal(
            pyr["mask"][0][10:20, 30:40].compute(), src.read(1)[10:20, 30:40]
        )


@pytest.mark.slow
def test_a_scene_larger_than_memory_is_viewed_without_reading_it_whole(tmp_path):
    # 60 000 × 60 000 px of 4 uint16 bands: 28.8 GB, more than this machine's memory.
    path = tmp_path / "huge.tif"
    with rasterio.open(
        path, "w", driver="GTiff", height=60_000, width=60_000, count=4, dtype="uint16",
        crs="EPSG:32633", transform=from_origin(300_000, 5_000_000, 10, 10), nodata=0,
        tiled=True, blockxsize=1024, blockysize=1024, interleave="pixel", sparse_ok=True,
        BIGTIFF="YES",
    ) as dst:  # fmt: skip
        dst.write(np.full((4, 3000, 3000), 2500, np.uint16), window=Window(0, 0, 3000, 3000))
    before = _rss_mb()
    panel = scene_panel(path, max_side=300)
    assert _rss_mb() - before < 400  # MB
    assert panel.valid[:14, :14].all() and not panel.valid[20:, 20:].any()  # data in one corner
    # A chunk of the finest level reads only its window.
    pyr = scene_pyramid(open_scene(path))
    assert pyr["rgb"][0].shape == (60_000, 60_000, 3) and len(pyr["rgb"]) == 7
    assert (pyr["rgb"][0][2048:2100, 2048:2100].compute() > 0).all()
    assert _rss_mb() - before < 400
    # --png may not overwrite an input.
    assert main(["view", str(path), "--png", str(path)]) == 2
    with pytest.raises(SceneError, match="one of the inputs"):
        from chipqa.scene import write_scene_panel

        write_scene_panel(path, path)


def test_viewing_a_large_scene_without_overviews_says_how_to_build_them(tmp_path, capsys):
    from chipqa.cli.view import hint_overviews

    path = tmp_path / "long.tif"
    profile = dict(
        driver="GTiff", height=64, width=4200, count=4, dtype="uint16", crs="EPSG:32633",
        transform=from_origin(300_000, 5_000_000, 10, 10), nodata=0, tiled=True,
        blockxsize=64, blockysize=64,
    )  # fmt: skip
    with rasterio.open(path, "w", **profile) as dst:
        dst.write(np.full((4, 64, 4200), 1000, np.uint16))
    hint_overviews(open_scene(path))
    assert f"gdaladdo -r average {path}" in capsys.readouterr().err
    with rasterio.open(path, "r+") as dst:
        dst.build_overviews([2, 4, 8])
    hint_overviews(open_scene(path))
    assert capsys.readouterr().err == ""
