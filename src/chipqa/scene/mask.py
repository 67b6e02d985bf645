"""Cloud masks for whole scenes of any size: tiled inference with blended overlaps.

:func:`mask_scene` slides a window of ``tile`` pixels over a scene with ``overlap``
pixels shared between neighbours, predicts batches of windows, and blends the overlaps
with weights that fall to almost zero at each window's border, so no seam shows where
windows meet. It reads and writes strip by strip: memory holds two strips of ``tile``
rows of the scene's width, whatever the scene's height.

The output is a tiled, DEFLATE-compressed Cloud-Optimized GeoTIFF with overviews, on
the input's CRS and transform: uint8 cloud probability in percent (0–100), or classes
(0 clear, 1 cloud) with ``classes=True``; :data:`NODATA_OUT` (255) where the scene has
no data. It is built in a temporary folder beside the target and written under the
final name atomically at the end (:mod:`chipqa.io.atomic`), so a failed run (a full
disk, a cancel) never leaves a half-written file under that name. ``scale`` writes
coarser pixels (block means of the probability).
"""

from __future__ import annotations

import os
import re
import tempfile
from collections.abc import Callable
from pathlib import Path

import numpy as np
import rasterio
import rasterio.shutil
import torch
from affine import Affine
from rasterio._err import CPLE_BaseError
from rasterio.windows import Window

from chipqa.constants import BANDS, DEFAULT_THRESHOLD, LABEL_CLOUD, LABEL_NODATA, SCL_NAME
from chipqa.data.tiff import check_written
from chipqa.io.atomic import atomic_replace
from chipqa.io.layout import FEATURES_DIR, FLAT_LABEL_NAME, LABELS_DIR
from chipqa.predictors import Predictor, to_device
from chipqa.scene.read import Scene, SceneError, open_scene

NODATA_OUT = LABEL_NODATA
"""Value of a mask pixel where the scene has no data (as in a label without value)."""


def model_bands(predictor: Predictor) -> tuple[str, ...]:
    """The band order a predictor expects (a checkpoint's ``bands``; B02 B03 B04 B08 else)."""
    config = getattr(predictor, "config", None)
    return tuple(getattr(config, "bands", BANDS))


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


# ------------------------------------------------------------ reading masks back


def _tags_say_classes(tags: dict) -> bool:
    return "classes" in tags.get("chipqa_values", "")


def mask_is_classes(path: str | Path) -> bool:
    """Whether a chipqa mask holds 0/1 classes (``--classes``) rather than percent."""
    with rasterio.open(path) as src:
        return _tags_say_classes(src.tags())


def mask_probability(values: np.ndarray, classes: bool) -> tuple[np.ndarray, np.ndarray]:
    """A chipqa mask's uint8 values → ``(probability 0..1, valid)``."""
    valid = values != NODATA_OUT
    prob = np.where(valid, values, 0).astype(np.float32)
    if not classes:
        prob /= 100.0
    return prob, valid


def mask_cloud(values: np.ndarray, classes: bool, threshold: float) -> np.ndarray:
    """Where a chipqa mask's uint8 values say cloud (probability at or above ``threshold``).

    A percent mask holds each probability rounded to a whole percent, so the threshold
    is rounded the same way: at 0.55 a pixel written as 55 is cloud (comparing with
    ``0.55 * 100``, which is 55.000000000000007, would call it clear)."""
    if classes:
        return values == LABEL_CLOUD
    return values >= int(np.rint(threshold * 100))


# ------------------------------------------------------------ what a mask may not overwrite

_BAND_FILE = re.compile(r"^[Bb]\d{1,2}[Aa]?\.tiff?$")


def input_rasters(sc: Scene) -> list[tuple[Path, str]]:
    """The existing files a mask of ``sc`` must never overwrite, each with what it is.

    The scene's own files; beside them, every band file (``B05.tif`` …), the SCL
    (``SCL.tif``) and a chip's label (``label.tif``, the flat layout); and when the scene
    is a chip folder of an On Cloud N dataset (``ROOT/train_features/<chip_id>``), that
    chip's label ``ROOT/train_labels/<chip_id>.tif``.
    """
    found: dict[Path, str] = {p: "the scene's own file" for p, _ in sc.sources}
    for folder in dict.fromkeys(p.parent for p, _ in sc.sources):
        for f in sorted(folder.glob("*")) if folder.is_dir() else []:
            if _BAND_FILE.match(f.name):
                found.setdefault(f, "a band file of the scene")
        found.setdefault(folder / SCL_NAME, "the scene's SCL")
        found.setdefault(folder / FLAT_LABEL_NAME, f"the label of chip {folder.name}")
        if folder.parent.name == FEATURES_DIR:
            label = folder.parent.parent / LABELS_DIR / f"{folder.name}.tif"
            found.setdefault(label, f"the label of chip {folder.name}")
    return [(p, what) for p, what in found.items() if p.exists()]


def _same_file(a: Path, b: Path) -> bool:
    if a.resolve() == b.resolve():
        return True
    try:
        return os.path.samefile(a, b)
    except OSError:  # ``a`` does not exist yet
        return False


def check_output(sc: Scene, out: str | Path) -> None:
    """Refuse an ``out`` that is one of the scene's input rasters (see :func:`input_rasters`).

    Raises:
        SceneError: naming the file and what it is.
    """
    out = Path(out)
    for p, what in input_rasters(sc):
        if _same_file(out, p):
            raise SceneError(
                f"--out {out} is {what} ({p}): a mask written there would destroy it; "
                "choose another path"
            )


# ------------------------------------------------------------ writing masks


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


def _predict(predictor: Predictor, bands: np.ndarray) -> np.ndarray:
    """Cloud probability of a batch of windows, as float32 NumPy."""
    with torch.inference_mode():
        prob = predictor.predict_proba(to_device(bands, predictor.device))
    return prob.float().cpu().numpy()


def _write_strips(
    sc: Scene,
    predictor: Predictor,
    writer: _BlockWriter,
    *,
    tile: int,
    overlap: int,
    batch_size: int,
    progress: Callable[[int, int], None] | None,
) -> None:
    """Predict the scene tile row by tile row, blend the overlaps and push final rows."""
    step = tile - overlap
    rows, cols = _starts(sc.height, tile, step), _starts(sc.width, tile, step)
    weights = blend_weights(tile, overlap)
    total = len(rows) * len(cols)
    strip_h = min(tile, sc.height)
    acc = np.zeros((strip_h + step, sc.width), np.float32)
    wsum = np.zeros_like(acc)
    valid = np.zeros((strip_h + step, sc.width), bool)
    base = 0  # scene row of acc[0]
    done = 0
    for ri, y in enumerate(rows):
        windows = [Window(x, y, tile, tile) for x in cols]
        for k in range(0, len(windows), batch_size):
            batch = windows[k : k + batch_size]
            bands = np.stack([sc.read(w) for w in batch])
            prob = _predict(predictor, bands)
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


def mask_scene(
    scene: str | Path | Scene,
    predictor: Predictor,
    out: str | Path,
    *,
    tile: int = 512,
    overlap: int = 64,
    batch_size: int = 4,
    classes: bool = False,
    threshold: float = DEFAULT_THRESHOLD,
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
            scene's input rasters (:func:`check_output`), or the output cannot be
            written (nothing is left under ``out`` then).
    """
    sc = scene if isinstance(scene, Scene) else open_scene(scene)
    out = Path(out)
    if overlap * 2 >= tile:
        raise ValueError(f"overlap ({overlap}) must be less than half the tile ({tile})")
    if scale < 1:
        raise ValueError(f"scale must be a positive whole number, got {scale}")
    check_output(sc, out)
    sc = sc.select(model_bands(predictor))
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
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(prefix=f".{out.name}.", dir=out.parent) as work:
            strips, cog = Path(work) / "strips.tif", Path(work) / "cog.tif"
            with rasterio.open(strips, "w", **profile) as dst:
                writer = _BlockWriter(dst, sc.width, scale, classes, threshold)
                _write_strips(
                    sc,
                    predictor,
                    writer,
                    tile=tile,
                    overlap=overlap,
                    batch_size=batch_size,
                    progress=progress,
                )
                dst.update_tags(
                    chipqa_model=predictor.name,
                    chipqa_values="cloud classes 0/1" if classes else "cloud probability %",
                    chipqa_bands=",".join(sc.band_names),
                    chipqa_scale=str(scale),
                )
            check_written(strips)
            rasterio.shutil.copy(
                strips,
                cog,
                driver="COG",
                compress="DEFLATE",
                overview_resampling="nearest" if classes else "average",
                blocksize=256,
            )
            strips.unlink()
            check_written(cog)  # a disk that filled during the copy: keep the old mask
            atomic_replace(cog, out)
    except (OSError, rasterio.errors.RasterioError, CPLE_BaseError) as exc:
        raise SceneError(
            f"cannot write the mask {out} ({exc}); nothing was left under that name. "
            f"Check that {out.parent} has free space and is writable, or choose another --out"
        ) from exc
    return out
