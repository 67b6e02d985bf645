"""Whole-scene masks: seamless tiling, georeference, COG output, bad input."""

from __future__ import annotations

import numpy as np
import pytest
import rasterio
import torch
from rasterio.transform import from_origin

from chipqa.cli import main
from chipqa.predictors import SpectralBaseline
from chipqa.scene import SceneError, mask_scene, open_scene, scl_statistics
from chipqa.synth import make_chip
from conftest import reproject_file

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
                "--model",
                "baseline",
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
    assert main(["mask", str(folder), "--model", "baseline", "--out", str(tmp_path / "m.tif")]) == 2
    assert not (tmp_path / "m.tif").exists()


def test_a_full_disk_leaves_no_mask_under_the_final_name(tmp_path, monkeypatch):
    scene = _write_scene(tmp_path / "scene.tif", _scene_array(64, 64))

    def full(*a, **k):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr("rasterio.shutil.copy", full)
    with pytest.raises(SceneError, match="No space left"):
        mask_scene(scene, SpectralBaseline(), tmp_path / "m.tif", tile=32, overlap=8)
    assert list(tmp_path.iterdir()) == [tmp_path / "scene.tif"]


def test_a_lower_resolution_mask_averages_blocks_on_the_right_grid(tmp_path):
    arr = _scene_array(230, 301)
    scene = _write_scene(tmp_path / "scene.tif", arr)
    full = mask_scene(scene, SpectralBaseline(), tmp_path / "full.tif", tile=64, overlap=16)
    assert (
        main(
            [
                "mask",
                str(scene),
                "--model",
                "baseline",
                "--out",
                str(tmp_path / "m30.tif"),
                "--resolution",
                "30",
            ]
            + ["--tile", "64", "--overlap", "16", "-q"]
        )
        == 0
    )
    with rasterio.open(full) as src:
        fine = src.read(1).astype(float)
    with rasterio.open(tmp_path / "m30.tif") as src:
        assert (src.height, src.width) == (77, 101)  # ceil(230 / 3), ceil(301 / 3)
        assert src.transform == TRANSFORM * rasterio.Affine.scale(3)
        assert src.crs.to_string() == CRS
        coarse = src.read(1)
    # Each 30 m pixel is the mean of the valid 10 m pixels under it.
    for r, c in [(10, 10), (40, 70), (76, 100), (0, 2), (55, 33)]:
        block = fine[3 * r : 3 * r + 3, 3 * c : 3 * c + 3]
        ok = block != 255
        assert abs(coarse[r, c] - block[ok].mean()) <= 1
    assert (coarse[:, :2] == 255).all()  # the 7 px nodata edge covers two whole blocks
    assert (coarse[:, 2] != 255).all()  # the third holds 2 valid columns of 3
    assert (
        main(
            [
                "mask",
                str(scene),
                "--model",
                "baseline",
                "--out",
                str(tmp_path / "x.tif"),
                "--resolution",
                "25",
            ]
        )
        == 2
    )
    assert not (tmp_path / "x.tif").exists()


def test_the_scenes_own_nodata_value_is_honoured(tmp_path):
    arr = _scene_array(96, 96)
    arr[:, :, :7] = 1000  # valid dark pixels where the other scene has its edge
    arr[:, 50:60, 40:50] = 65535  # nodata of this scene
    scene = tmp_path / "scene.tif"
    with rasterio.open(
        scene, "w", driver="GTiff", height=96, width=96, count=4, dtype="uint16",
        crs=CRS, transform=TRANSFORM, nodata=65535,
    ) as dst:  # fmt: skip
        dst.write(arr)
    out = mask_scene(scene, SpectralBaseline(), tmp_path / "m.tif", tile=64, overlap=16)
    with rasterio.open(out) as src:
        mask = src.read(1)
    assert (mask[50:60, 40:50] == 255).all()
    assert (mask[:, :7] != 255).all() and (mask != 255).sum() == 96 * 96 - 100


def test_negative_values_of_a_signed_scene_are_not_read_as_bright_cloud(tmp_path):
    arr = _scene_array(96, 96).astype(np.int16)
    arr[:, 30:40, 30:40] = -3  # below zero: no reflectance, not 65 533
    scene = tmp_path / "int16.tif"
    with rasterio.open(
        scene, "w", driver="GTiff", height=96, width=96, count=4, dtype="int16",
        crs=CRS, transform=TRANSFORM,
    ) as dst:  # fmt: skip
        dst.write(arr)
    out = mask_scene(scene, SpectralBaseline(), tmp_path / "m.tif", tile=64, overlap=16)
    with rasterio.open(out) as src:
        mask = src.read(1)
    assert (mask[30:40, 30:40] == 255).all()  # no data, not 100 % cloud


def _unet_checkpoint(path, bands):
    from chipqa.predictors import ModelConfig, build_model, save_checkpoint

    torch.manual_seed(0)
    config = ModelConfig(encoder="resnet18", bands=tuple(bands))
    return save_checkpoint(path, build_model(config), config)


@pytest.mark.slow
def test_the_checkpoints_band_order_is_matched_by_name(tmp_path):
    from chipqa.predictors import load_predictor

    ckpt = _unet_checkpoint(tmp_path / "rgbn.ckpt", ("B04", "B03", "B02", "B08"))
    arr = _scene_array(64, 64)
    plain = _write_scene(tmp_path / "plain.tif", arr)  # no descriptions: B02 B03 B04 B08
    shuffled = tmp_path / "shuffled.tif"
    order = ("B08", "B04", "B02", "B03")
    _write_scene(shuffled, arr[[3, 2, 0, 1]])
    with rasterio.open(shuffled, "r+") as dst:
        for i, name in enumerate(order):
            dst.set_band_description(i + 1, name)
    predictor = load_predictor(ckpt, device="cpu")
    masks = []
    for scene in (plain, shuffled):
        out = mask_scene(scene, predictor, tmp_path / f"m_{scene.stem}.tif", tile=64, overlap=0)
        with rasterio.open(out) as src:
            masks.append(src.read(1))
            assert src.tags()["chipqa_bands"] == "B04,B03,B02,B08"
    # The model sees its own order from both files: the masks equal a direct prediction.
    direct = np.rint(predictor.predict_numpy(arr[[2, 1, 0, 3]]) * 100)
    valid = (arr != 0).all(0)
    np.testing.assert_array_equal(masks[0], masks[1])
    assert np.abs(masks[0][valid] - direct[valid]).max() <= 1
    # A scene that lacks one of the model's bands is refused, naming what is missing.
    wrong = _write_scene(tmp_path / "b05.tif", arr)
    with rasterio.open(wrong, "r+") as dst:
        for i, name in enumerate(("B02", "B03", "B04", "B05")):
            dst.set_band_description(i + 1, name)
    with pytest.raises(SceneError, match=r"lacks B08 \(its band descriptions say B02, B03"):
        mask_scene(wrong, predictor, tmp_path / "m.tif")
    assert main(["mask", str(wrong), "--model", str(ckpt), "--out", str(tmp_path / "m.tif")]) == 2
    assert not (tmp_path / "m.tif").exists()


def test_scl_statistics_of_a_generated_scene_and_an_scl_on_another_crs(tmp_path, capsys):
    import json

    from chipqa.synth import write_scene

    scene = write_scene(
        tmp_path / "scene.tif", (256, 384), block=128, scl_path=tmp_path / "SCL.tif"
    )
    out = tmp_path / "mask.tif"
    args = [
        "mask",
        str(scene),
        "--model",
        "baseline",
        "--out",
        str(out),
        "--tile",
        "128",
        "--overlap",
        "16",
    ]
    assert main([*args, "--scl", str(tmp_path / "SCL.tif")]) == 0
    printed = capsys.readouterr().out
    stats = json.loads((tmp_path / "mask.scl.json").read_text())
    assert "IoU mask vs SCL cloud" in printed and "mask.scl.json" in printed
    assert 0.05 < stats["scl_cloud_fraction"] < 0.95
    assert stats["scl_shadow_fraction"] > 0.005  # the generator's SCL has cloud shadow
    assert stats["iou_mask_scl"] > 0.5  # the baseline and the SCL see the same clouds
    assert stats["scl_coverage"] > 0.99
    # The same SCL delivered in the neighbouring UTM zone: the figures barely move.
    reproject_file(tmp_path / "SCL.tif", tmp_path / "SCL_34.tif", "EPSG:32634")
    other = scl_statistics(out, tmp_path / "SCL_34.tif")
    assert other["scl_coverage"] > 0.97
    assert other["iou_mask_scl"] == pytest.approx(stats["iou_mask_scl"], abs=0.03)
    assert other["scl_cloud_fraction"] == pytest.approx(stats["scl_cloud_fraction"], abs=0.02)
    # An SCL of somewhere else is named, and --out may not overwrite the SCL.
    with rasterio.open(tmp_path / "SCL_34.tif") as src:
        profile = src.profile | {"transform": rasterio.Affine.translation(1e5, 0) * src.transform}
        moved = src.read(1)
    with rasterio.open(tmp_path / "elsewhere.tif", "w", **profile) as dst:
        dst.write(moved, 1)
    with pytest.raises(SceneError, match="elsewhere.tif covers none"):
        scl_statistics(out, tmp_path / "elsewhere.tif")
    scl = str(tmp_path / "SCL.tif")
    assert main(["mask", str(scene), "--model", "baseline", "--out", scl, "--scl", scl]) == 2
    assert "would overwrite the SCL" in capsys.readouterr().err
    with rasterio.open(scl) as src:
        assert src.count == 1 and src.dtypes[0] == "uint8"  # still the SCL


def _sparse_scene(path, height, width):
    """A tiled GeoTIFF of a huge nominal size holding data in one corner only (sparse)."""
    with rasterio.open(
        path, "w", driver="GTiff", height=height, width=width, count=4, dtype="uint16",
        crs=CRS, transform=TRANSFORM, nodata=0, tiled=True, blockxsize=1024,
        blockysize=1024, interleave="pixel", sparse_ok=True, BIGTIFF="YES",
    ) as dst:  # fmt: skip
        dst.write(_scene_array(96, 96), window=rasterio.windows.Window(0, 0, 96, 96))
    return path


def test_a_scene_larger_than_memory_is_masked_window_by_window(tmp_path):
    import resource

    # 4 096 × 1 000 000 px of 4 uint16 bands is 32 GB, more than this machine's memory.
    scene = _sparse_scene(tmp_path / "huge.tif", 1_000_000, 4096)
    sc = open_scene(scene)
    assert (sc.height, sc.width) == (1_000_000, 4096)
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024

    def stop_early(done, total):
        assert total == 9 * 2232  # 512 px windows, 64 px overlap
        if done >= 36:  # four strips of tiles: enough to see memory stay flat
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        mask_scene(sc, SpectralBaseline(), tmp_path / "m.tif", batch_size=9, progress=stop_early)
    grown = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024 - before
    assert grown < 400  # MB; the scene is 32 000 MB
    assert sorted(p.name for p in tmp_path.iterdir()) == ["huge.tif"]  # nothing half-written


@pytest.mark.slow
def test_a_disk_that_fills_up_during_the_strip_writes_leaves_nothing(tmp_path):
    # A real write failure, not a patched one: the masking process may write at most
    # 64 kB per file (RLIMIT_FSIZE), so GDAL's own strip writes fail part-way, with EFBIG
    # where a full disk gives ENOSPC.
    import subprocess
    import sys

    rng = np.random.default_rng(2)
    arr = rng.integers(500, 9000, (4, 1024, 1024)).astype(np.uint16)  # noise: compresses badly
    scene = _write_scene(tmp_path / "scene.tif", arr)
    out = tmp_path / "out" / "mask.tif"
    code = f"""
import resource, signal, sys
import numpy as np
from chipqa.predictors import SpectralBaseline
SpectralBaseline().predict_numpy(np.ones((4, 8, 8), np.uint16))  # kernels loaded first
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
resource.setrlimit(resource.RLIMIT_FSIZE, (64 * 1024, 64 * 1024))
from chipqa.cli import main
sys.exit(main(["mask", {str(scene)!r}, "--model", "baseline", "--out", {str(out)!r}, "-q"]))
"""
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert res.returncode != 0
    assert "cannot write the mask" in res.stderr and str(out) in res.stderr
    assert "free space" in res.stderr
    assert "Traceback" not in res.stderr
    assert not out.parent.exists() or list(out.parent.iterdir()) == []


@pytest.mark.slow
@pytest.mark.parametrize("fraction", [0.75, 0.97])
def test_a_disk_that_fills_up_during_the_final_copy_keeps_the_old_mask(tmp_path, fraction):
    # A 1 024² scene masked once, then again under `ulimit -f` (1 024-byte blocks) at a
    # fraction of the mask's size: the write fails part-way through the final COG, with
    # EFBIG where a full disk gives ENOSPC. Near the full size (0.94–1.0 here) the failed
    # writes are the last ones, which GDAL only logs ("_tiffWriteProc: File too large"):
    # the old mask must survive whole, and the command must say it failed.
    import os
    import shlex
    import shutil
    import subprocess
    import sys

    from chipqa.synth import write_scene

    if shutil.which("bash") is None:
        pytest.skip("needs bash for ulimit")
    scene = write_scene(tmp_path / "scene.tif", 1024, seed=0)
    out = tmp_path / "mask.tif"
    assert main(["mask", str(scene), "--model", "baseline", "--out", str(out), "-q"]) == 0
    good = out.read_bytes()
    blocks = int(len(good) * fraction / 1024)
    mask = shlex.join(
        [sys.executable, "-m", "chipqa.cli", "mask", str(scene), "--model", "baseline"]
        + ["--out", str(out)]
    )
    command = f"ulimit -f {blocks}; exec {mask} -q"
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    env["PYTHONDONTWRITEBYTECODE"] = "1"  # no .pyc written under the limit
    res = subprocess.run(["bash", "-c", command], capture_output=True, text=True, env=env)
    assert res.returncode != 0, res.stderr
    assert "cannot write the mask" in res.stderr and "Traceback" not in res.stderr
    assert out.read_bytes() == good  # the old mask, untouched
    with rasterio.open(out) as src:
        src.read(1)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["mask.tif", "scene.tif"]


@pytest.mark.parametrize("layout", ["flat", "oncloudn"])
def test_a_mask_is_never_written_over_a_chips_label_scl_or_bands(tmp_path, capsys, layout):
    from chipqa.data import open_dataset
    from chipqa.synth import generate_dataset

    root = generate_dataset(tmp_path / "data", n_chips=2, size=32, seed=1, layout=layout).root
    chip = open_dataset(root)[0]
    folder = chip.band_paths[0].parent  # a chip folder is a scene folder too
    assert (folder / "SCL.tif").is_file()
    guarded = {
        chip.label_path: "the label of chip",
        folder / "SCL.tif": "the scene's SCL",
        folder / "B03.tif": "the scene's own file",
    }
    before = {p: p.read_bytes() for p in guarded}
    args = ["mask", str(folder), "--model", "baseline", "--tile", "32", "--overlap", "8", "-q"]
    for target, what in guarded.items():
        assert main([*args, "--out", str(target)]) == 2, target
        err = capsys.readouterr().err
        assert f"--out {target} is {what}" in err and "choose another path" in err
    assert {p: p.read_bytes() for p in guarded} == before  # the human label is intact
    assert main([*args, "--out", str(tmp_path / "m.tif")]) == 0  # anywhere else is fine


def test_the_scl_beside_a_scene_file_is_refused_as_out_without_scl_given(tmp_path, capsys):
    scene = _write_scene(tmp_path / "scene.tif", _scene_array(64, 64))
    scl = _write_scene(tmp_path / "SCL.tif", _scene_array(64, 64)[:1].repeat(4, 0))
    good = scl.read_bytes()
    assert main(["mask", str(scene), "--model", "baseline", "--out", str(scl), "-q"]) == 2
    assert "the scene's SCL" in capsys.readouterr().err
    assert scl.read_bytes() == good
