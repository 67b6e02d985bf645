"""Pictures of whole scenes that never read a scene whole: decimated views and pyramids.

Two faces of the same review panel — true colour | Sen2Cor SCL cloud classes | model
mask — for scenes of any size:

* :func:`write_scene_panel` writes a static PNG for reports. Each raster is read once at
  the picture's size: decimated reads of the scene (GDAL takes the overviews of a COG),
  and the mask and the SCL warped onto the same small grid (rasterio ``WarpedVRT``, any
  resolution or CRS).
* :func:`scene_pyramid` gives lazy multiscale arrays (dask) for napari: level ``k`` is
  the scene at ``2**k`` times coarser pixels, cut into chunks that are each read with
  one windowed, decimated read when napari draws them.

A scene without overviews can still be viewed: a decimated read then touches every
block of the file once (memory stays bounded by GDAL's block cache, which is capped
here), which takes seconds for a scene of tens of GB; build overviews (a COG, or
``gdaladdo``) for instant views.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import rasterio
from affine import Affine
from rasterio.enums import Resampling
from rasterio.vrt import WarpedVRT
from rasterio.windows import Window

from chipqa.constants import SCL_NODATA
from chipqa.io.atomic import atomic_open
from chipqa.render import three_panel, true_colour
from chipqa.scene.mask import NODATA_OUT, mask_is_classes, mask_probability
from chipqa.scene.read import Scene, SceneError, open_scene

GDAL_CACHE_MB = 128
"""GDAL's block cache while reading views: what bounds memory on scenes without overviews."""
RGB_BANDS = ("B02", "B03", "B04")
CHUNK = 1024


def _env() -> rasterio.Env:
    return rasterio.Env(GDAL_CACHEMAX=GDAL_CACHE_MB, GDAL_DISABLE_READDIR_ON_OPEN="EMPTY_DIR")


def display_shape(height: int, width: int, max_side: int) -> tuple[int, int]:
    """The scene's shape shrunk (never enlarged) so that its longer side is ``max_side``."""
    f = min(1.0, max_side / max(height, width))
    return max(1, round(height * f)), max(1, round(width * f))


def read_on_grid(
    path: str | Path,
    crs: object,
    transform: Affine,
    shape: tuple[int, int],
    *,
    window: Window | None = None,
    nodata: float = 0,
) -> np.ndarray:
    """Band 1 of a raster on another grid (``crs``, ``transform``, ``shape``), nearest.

    A raster already on that grid's CRS and pixel lattice is read with a decimated
    windowed read (overviews when it has them); anything else goes through a
    ``WarpedVRT``. ``window`` limits the read to part of the target grid. Areas the
    raster does not cover get ``nodata``.
    """
    window = window or Window(0, 0, shape[1], shape[0])
    out_shape = (int(window.height), int(window.width))
    with _env(), rasterio.open(path) as src:
        src_nodata = src.nodata if src.nodata is not None else nodata
        if src.crs == crs and _same_lattice(src.transform, transform):
            # The target window in the source's pixels (a decimated, boundless read).
            x0, y0 = ~src.transform * (transform * (window.col_off, window.row_off))
            x1, y1 = ~src.transform * (
                transform * (window.col_off + window.width, window.row_off + window.height)
            )
            src_win = Window(x0, y0, x1 - x0, y1 - y0)
            data = src.read(
                1,
                window=src_win,
                out_shape=out_shape,
                boundless=True,
                fill_value=src_nodata,
                resampling=Resampling.nearest,
            )
        else:
            with WarpedVRT(
                src,
                crs=crs,
                transform=transform,
                width=shape[1],
                height=shape[0],
                resampling=Resampling.nearest,
                src_nodata=src_nodata,
                nodata=nodata,
            ) as vrt:
                data = vrt.read(1, window=window)
    if src_nodata != nodata:
        data = np.where(data == src_nodata, nodata, data)
    return data


def _same_lattice(a: Affine, b: Affine) -> bool:
    """Both north-up without rotation (then a decimated window read maps one onto the other)."""
    return a.b == a.d == b.b == b.d == 0 and a.e < 0 and b.e < 0


@dataclass
class ScenePanel:
    """What :func:`scene_panel` read: the three rasters on one small grid."""

    rgb: np.ndarray
    valid: np.ndarray
    scl: np.ndarray | None
    prob: np.ndarray | None
    image: np.ndarray


def scene_panel(
    scene: str | Path | Scene,
    *,
    mask: str | Path | None = None,
    scl: str | Path | None = None,
    max_side: int = 900,
    title: str = "",
) -> ScenePanel:
    """true colour | SCL cloud classes | model mask of a whole scene, ``max_side`` px per panel.

    Raises:
        SceneError: a file cannot be read.
    """
    sc = scene if isinstance(scene, Scene) else open_scene(scene)
    h, w = display_shape(sc.height, sc.width, max_side)
    transform = sc.transform * Affine.scale(sc.width / w, sc.height / h)
    with _env():
        bands = sc.select(RGB_BANDS).read(Window(0, 0, sc.width, sc.height), out_shape=(h, w))
    valid = (bands != 0).all(0)
    rgb = true_colour(bands)
    rgb[~valid] = 0
    scl_grid = prob = None
    try:
        if scl is not None:
            scl_grid = read_on_grid(scl, sc.crs, transform, (h, w), nodata=SCL_NODATA)
        if mask is not None:
            prob, mvalid = mask_probability(
                read_on_grid(mask, sc.crs, transform, (h, w), nodata=NODATA_OUT),
                mask_is_classes(mask),
            )
            valid = valid & mvalid
    except rasterio.errors.RasterioIOError as exc:
        raise SceneError(f"cannot read {exc}") from exc
    if not title:
        title = f"{sc.path.name}: {sc.width} x {sc.height} px, shown at 1:{sc.width / w:.0f}"
    image = three_panel(rgb, scl_grid, prob, valid, title=title)
    return ScenePanel(rgb, valid, scl_grid, prob, image)


def write_scene_panel(out: str | Path, scene: str | Path | Scene, **kwargs) -> Path:
    """Write :func:`scene_panel` as a PNG, atomically; ``out`` may not be an input."""
    from PIL import Image

    out = Path(out)
    inputs = [kwargs.get("mask"), kwargs.get("scl")]
    inputs += [p for p, _ in (scene.sources if isinstance(scene, Scene) else [(scene, 1)])]
    for p in inputs:
        if p is not None and Path(p).exists() and Path(p).resolve() == out.resolve():
            raise SceneError(f"--png {out} is one of the inputs; choose another path")
    panel = scene_panel(scene, **kwargs)
    with atomic_open(out, "wb") as f:
        Image.fromarray(panel.image).save(f, format="PNG")
    return out


# ------------------------------------------------------------------- pyramids


def level_shapes(height: int, width: int, smallest: int = 1024) -> list[tuple[int, int]]:
    """Shapes of the pyramid levels: halved until the longer side fits ``smallest``."""
    shapes = [(height, width)]
    while max(shapes[-1]) > smallest:
        h, w = shapes[-1]
        shapes.append((-(-h // 2), -(-w // 2)))
    return shapes


def _lazy(shape: tuple[int, ...], dtype, read: Callable[[Window], np.ndarray], chunk: int = CHUNK):
    """A dask array of ``shape`` whose chunk at rows/cols (r0:r1, c0:c1) is ``read(window)``."""
    import dask.array as da

    chunks = tuple(
        tuple(min(chunk, n - i) for i in range(0, n, chunk)) if k < 2 else (n,)
        for k, n in enumerate(shape)
    )

    def block(block_info=None):
        (r0, r1), (c0, c1) = block_info[None]["array-location"][:2]
        return read(Window(c0, r0, c1 - c0, r1 - r0))

    return da.map_blocks(block, chunks=chunks, dtype=dtype, meta=np.empty((0,) * len(shape), dtype))


def scene_pyramid(
    scene: str | Path | Scene,
    *,
    mask: str | Path | None = None,
    scl: str | Path | None = None,
    smallest: int = 1024,
) -> dict[str, list]:
    """Lazy multiscale arrays of a scene on the scene's grid, for napari.

    Returns:
        ``{"rgb": [(H, W, 3) uint8 …], "scl": [(H, W) uint8 …], "mask": [(H, W) uint8
        …]}`` (the last two only when given), level 0 first; mask values are percent
        (or 0/1 classes), 0 where the mask has no data. Nothing is read until a chunk
        is computed.
    """
    sc = scene if isinstance(scene, Scene) else open_scene(scene)
    rgb_scene = sc.select(RGB_BANDS)
    shapes = level_shapes(sc.height, sc.width, smallest)
    out: dict[str, list] = {"rgb": []}
    if scl is not None:
        out["scl"] = []
    if mask is not None:
        out["mask"] = []
    for k, (h, w) in enumerate(shapes):
        f = 2**k
        transform = sc.transform * Affine.scale(f)

        def rgb(win: Window, f=f, h=h, w=w) -> np.ndarray:
            full = Window(win.col_off * f, win.row_off * f, win.width * f, win.height * f)
            with _env():
                bands = rgb_scene.read(full, out_shape=(int(win.height), int(win.width)))
            img = true_colour(bands)
            img[(bands == 0).any(0)] = 0
            return img

        out["rgb"].append(_lazy((h, w, 3), np.uint8, rgb))
        for key, path, nodata in (("scl", scl, SCL_NODATA), ("mask", mask, NODATA_OUT)):
            if path is None:
                continue

            def other(win, key=key, path=path, nodata=nodata, transform=transform, h=h, w=w):
                data = read_on_grid(path, sc.crs, transform, (h, w), window=win, nodata=nodata)
                if key == "mask":  # no data as 0, as the docstring says
                    data = np.where(data == NODATA_OUT, 0, data).astype(np.uint8)
                return data

            out[key].append(_lazy((h, w), np.uint8, other))
    return out
