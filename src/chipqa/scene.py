"""Cloud masks for whole scenes of any size: tiled inference with blended overlaps.

A scene is a GeoTIFF / Cloud-Optimized GeoTIFF / VRT whose bands carry their Sentinel-2
names as descriptions (or, without descriptions, four bands in B02, B03, B04, B08 order),
or a folder of the four single-band files ``B02.tif … B08.tif``. The bands are handed to
the predictor in the order its checkpoint names; the scene's nodata value (0 when none is
declared) marks pixels without data.
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
name. ``scale`` writes coarser pixels (block means of the probability).
:func:`scl_statistics` compares a mask with a Sen2Cor SCL of any resolution or CRS,
window by window.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import rasterio
import torch
from affine import Affine
from rasterio._err import CPLE_BaseError
from rasterio.enums import Resampling
from rasterio.vrt import WarpedVRT
from rasterio.windows import Window

from chipqa.constants import BANDS, SCL_CLOUD, SCL_SHADOW
from chipqa.errors import ChipqaError
from chipqa.io.atomic import atomic_open
from chipqa.predictors import Predictor, to_device

NODATA_OUT = 255
_COMMON_NAMES = {"blue": "B02", "green": "B03", "red": "B04", "nir": "B08"}


class SceneError(ChipqaError):
    """A scene cannot be read or its mask cannot be written."""


def band_name(text: str | None) -> str | None:
    """A band description as a Sentinel-2 band name: ``"B4"``, ``"b04 (red)"`` → ``"B04"``.

    Common names (blue, green, red, nir) map to B02, B03, B04, B08; anything else that
    is not a band name gives None.
    """
    if not text:
        return None
    t = text.strip()
    m = re.match(r"^[Bb]0*(\d{1,2})([Aa]?)\b", t)
    if m:
        return f"B{int(m.group(1)):02d}{m.group(2).upper()}"
    return _COMMON_NAMES.get(t.lower())


@dataclass
class Scene:
    """The band files of a scene (one entry per band: path and band index in it).

    Attributes:
        sources: ``(path, band index)`` of each band, in :attr:`band_names` order.
        band_names: the Sentinel-2 name of each band (``"B02"`` …).
        declared: True when the names come from the file (band descriptions or file
            names); False when the scene says nothing and B02, B03, B04, B08 is assumed.
        nodata: the bands' nodata value (0 when the file declares none, Sentinel-2
            L2A's own NO_DATA value).
    """

    sources: list[tuple[Path, int]]
    height: int
    width: int
    crs: object
    transform: object
    nodata: float | None
    band_names: tuple[str, ...] = BANDS
    declared: bool = False

    @property
    def path(self) -> Path:
        """The scene's file, or its folder for a folder of band files."""
        paths = {p for p, _ in self.sources}
        return self.sources[0][0] if len(paths) == 1 else self.sources[0][0].parent

    def select(self, bands: tuple[str, ...] | list[str]) -> Scene:
        """The same scene with its bands in the order ``bands`` (a model's order).

        Raises:
            SceneError: the scene has no band of one of these names.
        """
        bands = tuple(bands)
        if tuple(self.band_names[: len(bands)]) == bands and len(self.sources) == len(bands):
            return self
        missing = [b for b in bands if b not in self.band_names]
        if missing:
            how = (
                "its band descriptions say"
                if self.declared
                else "without band descriptions it is read as"
            )
            raise SceneError(
                f"the model needs the bands {', '.join(bands)} but the scene {self.path} "
                f"lacks {', '.join(missing)} ({how} {', '.join(self.band_names)}). "
                "Give a scene with these bands, or set its band descriptions to their "
                "Sentinel-2 names (e.g. gdal_edit.py -mo, or rasterio's set_band_description)"
            )
        order = [self.band_names.index(b) for b in bands]
        return replace(self, sources=[self.sources[i] for i in order], band_names=bands)

    def read(self, window: Window, out_shape: tuple[int, int] | None = None) -> np.ndarray:
        """``(bands, h, w)`` uint16 DNs of a window, nodata as 0 whatever the file declares.

        Areas outside the scene are nodata. ``out_shape`` reads the window decimated
        (nearest, from the file's overviews when it has them).
        """
        shape = out_shape or (int(window.height), int(window.width))
        out = np.zeros((len(self.sources), *shape), np.uint16)
        fill = 0 if self.nodata is None else self.nodata
        invalid = np.zeros(shape, bool)
        inside = (
            window.col_off >= 0
            and window.row_off >= 0
            and window.col_off + window.width <= self.width
            and window.row_off + window.height <= self.height
        )
        for i, (path, band) in enumerate(self.sources):
            with rasterio.open(path) as src:
                data = src.read(
                    band,
                    window=window,
                    boundless=not inside,  # a boundless read goes through a VRT: slower
                    fill_value=fill,
                    out_shape=shape,
                    resampling=Resampling.nearest,
                )
            invalid |= data == fill
            if data.dtype != np.uint16:
                # Signed or wider DNs (int16 surface reflectance may dip below 0): clip
                # into uint16 instead of letting -3 wrap round to a cloud-bright 65 533.
                data = np.clip(data, 0, 65535)
            out[i] = data
        if fill != 0:
            np.maximum(out, 1, out=out)  # 0 means nodata to every predictor
        out[:, invalid] = 0
        return out


def open_scene(path: str | Path) -> Scene:
    """Open a scene file or folder; check that its bands share one grid.

    A file whose bands carry descriptions (``B04``, ``B3``, ``red`` …) is read by those
    names; a file without them is taken to hold B02, B03, B04, B08 in that order.

    Raises:
        SceneError: missing path or band, not a raster, bands on different grids, bands
            that are not integer reflectance.
    """
    path = Path(path)
    declared = True
    if path.is_dir():
        names = BANDS
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
                described = [band_name(d) for d in src.descriptions]
        except rasterio.errors.RasterioIOError as exc:
            raise SceneError(f"{path} cannot be read as a raster ({exc})") from exc
        if any(described):
            names = tuple(d or f"band{i + 1}" for i, d in enumerate(described))
            sources = [(path, i + 1) for i in range(count)]
        else:
            if count < len(BANDS):
                raise SceneError(
                    f"{path} has {count} band(s); a scene file needs the four bands "
                    f"{', '.join(BANDS)} in that order, or band descriptions naming them "
                    "(or give a folder of single-band files)"
                )
            names, declared = BANDS, False
            sources = [(path, i + 1) for i in range(len(BANDS))]
    else:
        raise SceneError(f"scene {path} does not exist")
    ref = None
    for p, band in sources:
        try:
            with rasterio.open(p) as src:
                grid = (src.height, src.width, src.crs, src.transform)
                nodata = src.nodata
                dtype = np.dtype(src.dtypes[band - 1])
        except rasterio.errors.RasterioIOError as exc:
            raise SceneError(f"{p} cannot be read as a raster ({exc})") from exc
        if dtype.kind not in "ui" or dtype.itemsize > 2:
            raise SceneError(
                f"{p} holds {dtype.name} values; chipqa reads integer reflectance × 10 000 "
                "(uint16, as Sentinel-2 L2A ships it): convert the scene first"
            )
        if ref is None:
            ref = (p, grid, nodata)
        elif grid != ref[1]:
            raise SceneError(
                f"{p} is not on the grid of {ref[0].name} (size, CRS or transform differ): "
                "all bands of a scene must share one grid; resample them first"
            )
    (p0, (h, w, crs, transform), nodata) = ref
    if nodata is None:
        nodata = 0.0
    return Scene(sources, h, w, crs, transform, nodata, names, declared)


def model_bands(predictor: Predictor) -> tuple[str, ...]:
    """The band order a predictor expects (a checkpoint's ``bands``; B02 B03 B04 B08 else)."""
    config = getattr(predictor, "config", None)
    return tuple(getattr(config, "bands", BANDS))


def scale_for_resolution(scene: Scene, resolution: float) -> int:
    """The whole factor that turns the scene's pixels into ``resolution``-sized ones.

    Raises:
        SceneError: ``resolution`` is not a whole multiple of the scene's pixel size.
    """
    px = abs(scene.transform.a)
    factor = resolution / px
    n = int(round(factor))
    if n < 1 or abs(factor - n) > 1e-6 or abs(abs(scene.transform.e) * n - resolution) > 1e-6 * n:
        raise SceneError(
            f"--resolution {resolution:g} is not a whole multiple of the scene's "
            f"{px:g} × {abs(scene.transform.e):g} pixels; choose e.g. {px * max(n, 1):g} or "
            f"{px * (max(n, 1) + 1):g}, or use --scale N"
        )
    return n


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


class _BlockWriter:
    """Writes final probability rows to the mask, averaged over ``scale`` × ``scale`` blocks.

    Rows arrive in strips of any height; rows that do not yet fill a whole block row
    wait for the next strip. A block's value is the mean probability of its valid
    pixels; a block with none is nodata.
    """

    def __init__(self, dst, width: int, scale: int, classes: bool, threshold: float):
        self.dst, self.width, self.scale = dst, width, scale
        self.classes, self.threshold = classes, threshold
        self.out_row = 0
        self.prob: np.ndarray | None = None
        self.valid: np.ndarray | None = None

    def push(self, prob: np.ndarray, valid: np.ndarray, last: bool = False) -> None:
        if self.prob is not None:
            prob = np.concatenate([self.prob, prob])
            valid = np.concatenate([self.valid, valid])
        n = prob.shape[0] if last else prob.shape[0] // self.scale * self.scale
        if n:
            self._write(prob[:n], valid[:n])
        self.prob, self.valid = (
            (prob[n:].copy(), valid[n:].copy()) if n < len(prob) else (None,) * 2
        )

    def _write(self, prob: np.ndarray, valid: np.ndarray) -> None:
        n = self.scale
        if n > 1:
            h, w = prob.shape
            oh, ow = -(-h // n), -(-w // n)
            pad = ((0, oh * n - h), (0, ow * n - w))
            p = np.pad(np.where(valid, prob, 0.0), pad).reshape(oh, n, ow, n).sum((1, 3))
            count = np.pad(valid, pad).reshape(oh, n, ow, n).sum((1, 3))
            prob, valid = p / np.maximum(count, 1), count > 0
        if self.classes:
            data = (prob >= self.threshold).astype(np.uint8)
        else:
            data = np.clip(np.rint(prob * 100), 0, 100).astype(np.uint8)
        data[~valid] = NODATA_OUT
        self.dst.write(data, 1, window=Window(0, self.out_row, data.shape[1], data.shape[0]))
        self.out_row += data.shape[0]


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
    scale: int = 1,
    progress: Callable[[int, int], None] | None = None,
) -> Path:
    """Write the cloud mask of a scene as a Cloud-Optimized GeoTIFF (see the module doc).

    The scene's bands are handed to the predictor in the order it was trained on
    (:func:`model_bands`), matched by name. ``scale`` > 1 writes a mask of
    ``scale`` × ``scale`` times larger pixels (each the mean probability of the valid
    pixels under it) on the same CRS and origin.

    Raises:
        SceneError: bad scene, a scene without the model's bands, ``out`` is one of the
            scene's own files, or the output cannot be written (nothing is left under
            ``out`` then).
    """
    sc = scene if isinstance(scene, Scene) else open_scene(scene)
    out = Path(out)
    if overlap * 2 >= tile:
        raise ValueError(f"overlap ({overlap}) must be less than half the tile ({tile})")
    if scale < 1:
        raise ValueError(f"scale must be a positive whole number, got {scale}")
    for p, _ in sc.sources:
        if out.resolve() == p.resolve():
            raise SceneError(f"--out {out} is the scene's own file {p}; choose another path")
    sc = sc.select(model_bands(predictor))
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
        "height": -(-sc.height // scale),
        "width": -(-sc.width // scale),
        "count": 1,
        "dtype": "uint8",
        "crs": sc.crs,
        "transform": sc.transform * Affine.scale(scale),
        "nodata": NODATA_OUT,
        "tiled": True,
        "blockxsize": 256,
        "blockysize": 256,
        "compress": "deflate",
    }
    done = 0
    try:
        with rasterio.open(tmp, "w", **profile) as dst:
            writer = _BlockWriter(dst, sc.width, scale, classes, threshold)
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
                            predictor.predict_proba(to_device(bands, predictor.device))
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
                writer.push(prob, valid[:n_final].copy(), last=ri + 1 == len(rows))
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
                chipqa_bands=",".join(sc.band_names),
                chipqa_scale=str(scale),
            )
        _check_written(tmp)
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
            f"cannot write the mask {out} ({exc}); nothing was left under that name. "
            f"Check that {out.parent} has free space and is writable, or choose another --out"
        ) from exc
    except (rasterio.errors.RasterioError, CPLE_BaseError) as exc:
        raise SceneError(
            f"cannot write the mask {out} ({exc}); nothing was left under that name. "
            f"Check that {out.parent} has free space and is writable, or choose another --out"
        ) from exc
    finally:
        for p in (tmp, cog_tmp):
            with contextlib.suppress(FileNotFoundError):
                p.unlink()
    return out


def _check_written(path: Path) -> None:
    """Raise OSError unless every block of a just-closed GeoTIFF reached the disk.

    GDAL writes blocks when its cache flushes, and a write that fails then (a full disk)
    is only logged; the file still opens, with the lost blocks read as empty. A tiled
    GeoTIFF written without SPARSE_OK has every block on disk, so a missing one means a
    failed write.
    """
    with rasterio.open(path) as src:
        bh, bw = src.block_shapes[0]
        for i in range(-(-src.height // bh)):
            for j in range(-(-src.width // bw)):
                if not src.block_size(1, i, j):
                    raise OSError(f"block {i},{j} of the mask was not written (is the disk full?)")


def _cloud_from_mask(values: np.ndarray, classes: bool, threshold: float) -> np.ndarray:
    return values == 1 if classes else values >= threshold * 100


def scl_statistics(
    mask: str | Path,
    scl: str | Path,
    *,
    threshold: float = 0.5,
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
        cloud classes; 1.0 when both are empty, None when no pixel is compared),
        ``pixels_compared``, ``scl_coverage`` (share of the mask's valid pixels the SCL
        covers) and the two paths.

    Raises:
        SceneError: a file cannot be read, or the SCL does not overlap the mask.
    """
    mask, scl = Path(mask), Path(scl)
    counts = dict.fromkeys(("n", "mask_valid", "scl_cloud", "shadow", "cloud", "inter"), 0)
    union = 0
    try:
        with rasterio.open(mask) as msrc, rasterio.open(scl) as ssrc:
            classes = "classes" in msrc.tags().get("chipqa_values", "")
            same = (
                ssrc.crs == msrc.crs
                and ssrc.transform == msrc.transform
                and ssrc.shape == msrc.shape
            )
            coarser = abs(msrc.transform.a) > abs(ssrc.transform.a) * 1.01 and ssrc.crs == msrc.crs
            with contextlib.ExitStack() as stack:
                if same:
                    view = ssrc
                else:
                    view = stack.enter_context(
                        WarpedVRT(
                            ssrc,
                            crs=msrc.crs,
                            transform=msrc.transform,
                            width=msrc.width,
                            height=msrc.height,
                            resampling=Resampling.mode if coarser else Resampling.nearest,
                            src_nodata=0 if ssrc.nodata is None else ssrc.nodata,
                            nodata=0,
                        )
                    )
                for y in range(0, msrc.height, rows_per_read):
                    win = Window(0, y, msrc.width, min(rows_per_read, msrc.height - y))
                    m = msrc.read(1, window=win)
                    s = view.read(1, window=win)
                    mv = m != NODATA_OUT
                    v = mv & (s != 0)
                    cloud = _cloud_from_mask(m, classes, threshold) & v
                    scl_cloud = np.isin(s, SCL_CLOUD) & v
                    counts["mask_valid"] += int(mv.sum())
                    counts["n"] += int(v.sum())
                    counts["scl_cloud"] += int(scl_cloud.sum())
                    counts["shadow"] += int(((s == SCL_SHADOW) & v).sum())
                    counts["cloud"] += int(cloud.sum())
                    counts["inter"] += int((cloud & scl_cloud).sum())
                    union += int((cloud | scl_cloud).sum())
    except rasterio.errors.RasterioIOError as exc:
        raise SceneError(f"cannot compare {mask} with the SCL {scl} ({exc})") from exc
    n = counts["n"]
    if n == 0:
        raise SceneError(
            f"the SCL {scl} covers none of the valid pixels of {mask}: is it the SCL of "
            "this scene (same place, and a CRS that says where it lies)?"
        )
    return {
        "scl_cloud_fraction": counts["scl_cloud"] / n,
        "scl_shadow_fraction": counts["shadow"] / n,
        "mask_cloud_fraction": counts["cloud"] / n,
        "iou_mask_scl": counts["inter"] / union if union else 1.0,
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
