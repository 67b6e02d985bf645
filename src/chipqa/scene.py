"""Cloud masks for whole scenes of any size: tiled inference with blended overlaps.

A scene is a four-band GeoTIFF / Cloud-Optimized GeoTIFF / VRT (bands in B02, B03, B04,
B08 order) or a folder of the four single-band files ``B02.tif … B08.tif``.
:func:`mask_scene` slides a window of ``tile`` pixels over it with ``overlap`` pixels
shared between neighbours, predicts batches of windows, and blends the overlaps with
weights that fall to almost zero at each window's border, so no seam shows where
windows meet. It reads and writes strip by strip: memory holds two strips of
``tile`` rows of the scene's width, whatever the scene's height.

The output is a tiled, DEFLATE-compressed Cloud-Optimized GeoTIFF with overviews, on
the input's CRS and transform: uint8 cloud probability in percent (0–100), or classes
(0 clear, 1 cloud) with ``classes=True``; 255 where the scene has no data. It is
written to a temporary file beside the target and renamed into place at the end, so a
failed run (a full disk, a cancel) never leaves a half-written file under the final
name.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import rasterio
import torch
from rasterio.windows import Window

from chipqa.dataset import BANDS
from chipqa.errors import ChipqaError
from chipqa.models import Predictor

NODATA_OUT = 255


class SceneError(ChipqaError):
    """A scene cannot be read or its mask cannot be written."""


@dataclass
class Scene:
    """The band files of a scene (one entry per band: path and band index in it)."""

    sources: list[tuple[Path, int]]
    height: int
    width: int
    crs: object
    transform: object
    nodata: float | None

    def read(self, window: Window) -> np.ndarray:
        """``(4, h, w)`` uint16 DNs of a window (areas outside the scene are nodata 0)."""
        out = np.zeros((len(self.sources), int(window.height), int(window.width)), np.uint16)
        for i, (path, band) in enumerate(self.sources):
            with rasterio.open(path) as src:
                out[i] = src.read(band, window=window, boundless=True, fill_value=0)
        return out


def open_scene(path: str | Path) -> Scene:
    """Open a scene file or folder; check that its four bands share one grid.

    Raises:
        SceneError: missing path or band, not a raster, bands on different grids.
    """
    path = Path(path)
    if path.is_dir():
        sources = [(path / f"{b}.tif", 1) for b in BANDS]
        missing = [str(p) for p, _ in sources if not p.is_file()]
        if missing:
            raise SceneError(
                f"scene folder {path} lacks {', '.join(Path(m).name for m in missing)}; "
                f"a scene folder holds {', '.join(b + '.tif' for b in BANDS)}"
            )
    elif path.is_file():
        try:
            with rasterio.open(path) as src:
                count = src.count
        except rasterio.errors.RasterioIOError as exc:
            raise SceneError(f"{path} cannot be read as a raster ({exc})") from exc
        if count < len(BANDS):
            raise SceneError(
                f"{path} has {count} band(s); a scene file needs the four bands "
                f"{', '.join(BANDS)} in that order (or give a folder of single-band files)"
            )
        sources = [(path, i + 1) for i in range(len(BANDS))]
    else:
        raise SceneError(f"scene {path} does not exist")
    ref = None
    for p, _ in sources:
        try:
            with rasterio.open(p) as src:
                grid = (src.height, src.width, src.crs, src.transform)
                nodata = src.nodata
        except rasterio.errors.RasterioIOError as exc:
            raise SceneError(f"{p} cannot be read as a raster ({exc})") from exc
        if ref is None:
            ref = (p, grid, nodata)
        elif grid != ref[1]:
            raise SceneError(
                f"{p} is not on the grid of {ref[0].name} (size, CRS or transform differ): "
                "all bands of a scene must share one grid; resample them first"
            )
    (p0, (h, w, crs, transform), nodata) = ref
    return Scene(sources, h, w, crs, transform, nodata)


def blend_weights(tile: int, overlap: int) -> np.ndarray:
    """``(tile, tile)`` weights: 1 inside, a cosine ramp to ~0 over ``overlap`` at the edges."""
    ramp = np.ones(tile, np.float32)
    if overlap > 0:
        x = (np.arange(overlap, dtype=np.float32) + 0.5) / overlap
        edge = 0.5 - 0.5 * np.cos(np.pi * x)
        ramp[:overlap] = edge
        ramp[-overlap:] = edge[::-1]
    return np.outer(ramp, ramp)


def _starts(length: int, tile: int, step: int) -> list[int]:
    if length <= tile:
        return [0]
    starts = list(range(0, length - tile, step))
    starts.append(length - tile)
    return sorted(set(starts))


def mask_scene(
    scene: str | Path | Scene,
    predictor: Predictor,
    out: str | Path,
    *,
    tile: int = 512,
    overlap: int = 64,
    batch_size: int = 4,
    classes: bool = False,
    threshold: float = 0.5,
    progress: Callable[[int, int], None] | None = None,
) -> Path:
    """Write the cloud mask of a scene as a Cloud-Optimized GeoTIFF (see the module doc).

    Raises:
        SceneError: bad scene, ``out`` is one of the scene's own files, or the output
            cannot be written (nothing is left under ``out`` then).
    """
    sc = scene if isinstance(scene, Scene) else open_scene(scene)
    out = Path(out)
    if overlap * 2 >= tile:
        raise ValueError(f"overlap ({overlap}) must be less than half the tile ({tile})")
    for p, _ in sc.sources:
        if out.resolve() == p.resolve():
            raise SceneError(f"--out {out} is the scene's own file {p}; choose another path")
    step = tile - overlap
    rows, cols = _starts(sc.height, tile, step), _starts(sc.width, tile, step)
    weights = blend_weights(tile, overlap)
    total = len(rows) * len(cols)
    out.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{out.name}.", suffix=".tif", dir=out.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    cog_tmp = tmp.with_suffix(".cog.tif")
    profile = {
        "driver": "GTiff",
        "height": sc.height,
        "width": sc.width,
        "count": 1,
        "dtype": "uint8",
        "crs": sc.crs,
        "transform": sc.transform,
        "nodata": NODATA_OUT,
        "tiled": True,
        "blockxsize": 256,
        "blockysize": 256,
        "compress": "deflate",
    }
    done = 0
    try:
        with rasterio.open(tmp, "w", **profile) as dst:
            strip_h = min(tile, sc.height)
            acc = np.zeros((strip_h + step, sc.width), np.float32)
            wsum = np.zeros_like(acc)
            valid = np.zeros((strip_h + step, sc.width), bool)
            base = 0  # scene row of acc[0]
            for ri, y in enumerate(rows):
                windows = [Window(x, y, tile, tile) for x in cols]
                for k in range(0, len(windows), batch_size):
                    batch = windows[k : k + batch_size]
                    bands = np.stack([sc.read(w) for w in batch])
                    with torch.inference_mode():
                        prob = (
                            predictor.predict_proba(torch.from_numpy(bands).to(predictor.device))
                            .float()
                            .cpu()
                            .numpy()
                        )
                    for w, b, p in zip(batch, bands, prob, strict=True):
                        h = min(tile, sc.height - y)
                        wd = min(tile, sc.width - int(w.col_off))
                        r0, c0 = y - base, int(w.col_off)
                        acc[r0 : r0 + h, c0 : c0 + wd] += (p * weights)[:h, :wd]
                        wsum[r0 : r0 + h, c0 : c0 + wd] += weights[:h, :wd]
                        valid[r0 : r0 + h, c0 : c0 + wd] |= (b[:, :h, :wd] != 0).all(0)
                        done += 1
                    if progress:
                        progress(done, total)
                # Rows no later tile will touch are final: write them, keep the rest.
                final_to = rows[ri + 1] if ri + 1 < len(rows) else sc.height
                n_final = final_to - base
                prob = acc[:n_final] / np.maximum(wsum[:n_final], 1e-12)
                if classes:
                    data = (prob >= threshold).astype(np.uint8)
                else:
                    data = np.clip(np.rint(prob * 100), 0, 100).astype(np.uint8)
                data[~valid[:n_final]] = NODATA_OUT
                dst.write(data, 1, window=Window(0, base, sc.width, n_final))
                keep = acc.shape[0] - n_final
                for buf in (acc, wsum):
                    buf[:keep] = buf[n_final:].copy()
                    buf[keep:] = 0
                valid[:keep] = valid[n_final:].copy()
                valid[keep:] = False
                base = final_to
            dst.update_tags(
                chipqa_model=predictor.name,
                chipqa_values="cloud classes 0/1" if classes else "cloud probability %",
            )
        from rasterio.shutil import copy as rio_copy

        rio_copy(
            tmp,
            cog_tmp,
            driver="COG",
            compress="DEFLATE",
            overview_resampling="nearest" if classes else "average",
            blocksize=256,
        )
        os.replace(cog_tmp, out)
    except OSError as exc:
        raise SceneError(
            f"cannot write the mask {out} ({exc}); nothing was left under that name"
        ) from exc
    except rasterio.errors.RasterioIOError as exc:
        raise SceneError(
            f"cannot write the mask {out} ({exc}); nothing was left under that name"
        ) from exc
    finally:
        for p in (tmp, cog_tmp):
            with contextlib.suppress(FileNotFoundError):
                p.unlink()
    return out
