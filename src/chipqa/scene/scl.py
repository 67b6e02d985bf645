"""A scene's chipqa mask against its Sen2Cor Scene Classification Layer (SCL).

:func:`scl_statistics` compares a mask with an SCL of any resolution or CRS, strip by
strip, so that neither raster is ever held whole; :func:`write_scl_statistics` writes
the figures beside the mask (:func:`stats_path_for`).
"""

from __future__ import annotations

import contextlib
import json
from pathlib import Path

import numpy as np
import rasterio
from rasterio.enums import Resampling
from rasterio.vrt import WarpedVRT
from rasterio.windows import Window

from chipqa.constants import DEFAULT_THRESHOLD, SCL_CLOUD, SCL_NODATA, SCL_SHADOW
from chipqa.io.atomic import atomic_open
from chipqa.scene.mask import NODATA_OUT, mask_cloud, mask_is_classes
from chipqa.scene.read import SceneError
from chipqa.stats.definitions import iou_from_counts

_COUNTS = ("n", "mask_valid", "scl_cloud", "shadow", "cloud", "inter")


def _scl_on_mask_grid(stack: contextlib.ExitStack, msrc, ssrc):
    """The SCL as read on the mask's grid: itself when it is on that grid, else warped
    (nearest neighbour onto a finer or equal grid, the most frequent class onto a
    coarser one)."""
    if ssrc.crs == msrc.crs and ssrc.transform == msrc.transform and ssrc.shape == msrc.shape:
        return ssrc
    coarser = abs(msrc.transform.a) > abs(ssrc.transform.a) * 1.01 and ssrc.crs == msrc.crs
    return stack.enter_context(
        WarpedVRT(
            ssrc,
            crs=msrc.crs,
            transform=msrc.transform,
            width=msrc.width,
            height=msrc.height,
            resampling=Resampling.mode if coarser else Resampling.nearest,
            src_nodata=SCL_NODATA if ssrc.nodata is None else ssrc.nodata,
            nodata=SCL_NODATA,
        )
    )


def scl_statistics(
    mask: str | Path,
    scl: str | Path,
    *,
    threshold: float = DEFAULT_THRESHOLD,
    rows_per_read: int = 512,
) -> dict:
    """Compare a chipqa mask with a Sen2Cor SCL over the whole scene, window by window.

    The SCL may have any resolution and CRS: it is warped onto the mask's grid one strip
    of ``rows_per_read`` rows at a time (rasterio ``WarpedVRT``, nearest neighbour onto a
    finer or equal grid, the most frequent class onto a coarser one), so neither raster
    is ever held whole. Pixels where the mask is nodata or the SCL is 0 (no data) are
    left out.

    Returns:
        ``scl_cloud_fraction`` (classes 8, 9, 10), ``scl_shadow_fraction`` (class 3),
        ``mask_cloud_fraction``, ``iou_mask_scl`` (IoU of the mask's cloud and the SCL
        cloud classes; 1.0 when both are empty), ``pixels_compared``, ``scl_coverage``
        (share of the mask's valid pixels the SCL covers) and the two paths.

    Raises:
        SceneError: a file cannot be read, or the SCL does not overlap the mask.
    """
    mask, scl = Path(mask), Path(scl)
    counts = dict.fromkeys(_COUNTS, 0)
    try:
        classes = mask_is_classes(mask)
        with (
            rasterio.open(mask) as msrc,
            rasterio.open(scl) as ssrc,
            contextlib.ExitStack() as stack,
        ):
            view = _scl_on_mask_grid(stack, msrc, ssrc)
            for y in range(0, msrc.height, rows_per_read):
                win = Window(0, y, msrc.width, min(rows_per_read, msrc.height - y))
                m = msrc.read(1, window=win)
                s = view.read(1, window=win)
                mv = m != NODATA_OUT
                v = mv & (s != SCL_NODATA)
                cloud = mask_cloud(m, classes, threshold) & v
                scl_cloud = np.isin(s, SCL_CLOUD) & v
                counts["mask_valid"] += int(mv.sum())
                counts["n"] += int(v.sum())
                counts["scl_cloud"] += int(scl_cloud.sum())
                counts["shadow"] += int(((s == SCL_SHADOW) & v).sum())
                counts["cloud"] += int(cloud.sum())
                counts["inter"] += int((cloud & scl_cloud).sum())
    except rasterio.errors.RasterioIOError as exc:
        raise SceneError(f"cannot compare {mask} with the SCL {scl} ({exc})") from exc
    n = counts["n"]
    if n == 0:
        raise SceneError(
            f"the SCL {scl} covers none of the valid pixels of {mask}: is it the SCL of "
            "this scene (same place, and a CRS that says where it lies)?"
        )
    inter, cloud, scl_cloud = counts["inter"], counts["cloud"], counts["scl_cloud"]
    return {
        "scl_cloud_fraction": scl_cloud / n,
        "scl_shadow_fraction": counts["shadow"] / n,
        "mask_cloud_fraction": cloud / n,
        "iou_mask_scl": iou_from_counts(inter, cloud - inter, scl_cloud - inter),
        "pixels_compared": n,
        "scl_coverage": n / max(counts["mask_valid"], 1),
        "mask": str(mask),
        "scl": str(scl),
    }


def stats_path_for(mask: str | Path) -> Path:
    """Where :func:`write_scl_statistics` puts the statistics of a mask: ``<mask>.scl.json``."""
    mask = Path(mask)
    return mask.with_name(mask.stem + ".scl.json")


def write_scl_statistics(stats: dict, path: str | Path) -> Path:
    """Write the statistics as JSON, atomically."""
    with atomic_open(path, "w", encoding="utf-8") as f:
        json.dump(stats, f, indent=1)
        f.write("\n")
    return Path(path)
