"""Shared fixtures: tiny real GeoTIFF chips written with rasterio."""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile
from pathlib import Path

import numpy as np
import pytest
import rasterio
from rasterio.transform import from_origin

from chipqa.constants import BANDS  # noqa: F401 (tests import it from here)
from chipqa.io import layout as layouts

os.environ.setdefault("OMP_NUM_THREADS", "2")
# chipqa's caches (the onnxruntime copy of the pretrained model) go to a folder of
# this run, not to the user's ~/.cache; child processes (training, the CLI) inherit it.
if "CHIPQA_CACHE_DIR" not in os.environ:
    _cache = tempfile.mkdtemp(prefix="chipqa-test-cache-")
    os.environ["CHIPQA_CACHE_DIR"] = _cache
    atexit.register(shutil.rmtree, _cache, ignore_errors=True)

CRS = "EPSG:32736"
TRANSFORM = from_origin(500_000.0, 9_000_000.0, 10.0, 10.0)


def write_tif(path: Path, array: np.ndarray, *, nodata, crs=CRS, transform=TRANSFORM) -> Path:
    """Write one single-band GeoTIFF like the real chips (uncompressed, not tiled)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with rasterio.open(
        path,
        "w",
        driver="GTiff",
        height=array.shape[0],
        width=array.shape[1],
        count=1,
        dtype=array.dtype,
        crs=crs,
        transform=transform,
        nodata=nodata,
    ) as dst:
        dst.write(array, 1)
    return path


def make_bands(size: int = 32, cloud: np.ndarray | None = None, seed: int = 0) -> np.ndarray:
    """Vegetation-like DNs with bright white cloud where ``cloud`` is True."""
    rng = np.random.default_rng(seed)
    base = np.array([300, 600, 400, 3500], np.float32)[:, None, None]
    bands = base * (1 + 0.05 * rng.standard_normal((4, size, size)))
    if cloud is not None:
        bands[:, cloud] = np.array([8200, 8000, 7900, 7600], np.float32)[:, None]
    return np.clip(bands, 1, 65535).astype(np.uint16)


def write_chip(
    root: Path,
    chip_id: str,
    bands: np.ndarray,
    label: np.ndarray | None,
    layout: str = "oncloudn",
) -> Path:
    """Write one chip in the given layout; returns its band folder."""
    folder = layouts.chip_folder(root, layout, chip_id)
    for path, band in zip(layouts.band_paths(folder), bands, strict=True):
        write_tif(path, band, nodata=0)
    if label is not None:
        lpath = layouts.label_path(root, layout, chip_id)
        write_tif(lpath, label.astype(np.uint8), nodata=255)
    return folder


@pytest.fixture
def tiny_dataset(tmp_path: Path) -> Path:
    """Three hand-made 32 px chips in the On Cloud N layout: clear, half cloud, overcast."""
    root = tmp_path / "ds"
    size = 32
    half = np.zeros((size, size), bool)
    half[:, : size // 2] = True
    for cid, cloud in (
        ("aaaa", np.zeros((size, size), bool)),
        ("bbbb", half),
        ("cccc", np.ones((size, size), bool)),
    ):
        write_chip(root, cid, make_bands(size, cloud), cloud.astype(np.uint8))
    return root


def reproject_file(src_path: Path, dst_path: Path, crs: str) -> Path:
    """Write a single-band raster reprojected into ``crs`` (nearest), as a data provider
    delivering it in another projection would."""
    from rasterio.warp import Resampling, calculate_default_transform, reproject

    with rasterio.open(src_path) as src:
        t, w, h = calculate_default_transform(src.crs, crs, src.width, src.height, *src.bounds)
        moved = np.zeros((h, w), src.dtypes[0])
        reproject(
            src.read(1), moved, src_transform=src.transform, src_crs=src.crs,
            dst_transform=t, dst_crs=crs, resampling=Resampling.nearest,
        )  # fmt: skip
        profile = src.profile | {"crs": crs, "transform": t, "width": w, "height": h}
    with rasterio.open(dst_path, "w", **profile) as dst:
        dst.write(moved, 1)
    return dst_path
