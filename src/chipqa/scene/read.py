"""Reading a scene: a GeoTIFF / Cloud-Optimized GeoTIFF / VRT, or a folder of band files.

A scene file whose bands carry their Sentinel-2 names as descriptions (``B04``, ``B3``,
``red`` …) is read by those names; a file without descriptions is taken to hold the four
bands B02, B03, B04, B08 in that order. A folder holds the four single-band files
``B02.tif … B08.tif``. All bands must share one grid. The scene's nodata value (0 when
none is declared, Sentinel-2 L2A's own) marks pixels without data; :meth:`Scene.read`
hands them on as 0 whatever the file declares.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import rasterio
from rasterio.enums import Resampling
from rasterio.windows import Window

from chipqa.constants import BAND_NODATA, BANDS
from chipqa.errors import ChipqaError

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
        fill = BAND_NODATA if self.nodata is None else self.nodata
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
        if fill != BAND_NODATA:
            np.maximum(out, 1, out=out)  # 0 means nodata to every predictor
        out[:, invalid] = BAND_NODATA
        return out


def _scene_sources(path: Path) -> tuple[list[tuple[Path, int]], tuple[str, ...], bool]:
    """The ``(path, band)`` of each band of a scene file or folder, their names, and
    whether the names were declared by the scene."""
    if path.is_dir():
        sources = [(path / f"{b}.tif", 1) for b in BANDS]
        missing = [p.name for p, _ in sources if not p.is_file()]
        if missing:
            raise SceneError(
                f"scene folder {path} lacks {', '.join(missing)}; "
                f"a scene folder holds {', '.join(b + '.tif' for b in BANDS)}"
            )
        return sources, BANDS, True
    if not path.is_file():
        raise SceneError(f"scene {path} does not exist")
    try:
        with rasterio.open(path) as src:
            count = src.count
            described = [band_name(d) for d in src.descriptions]
    except rasterio.errors.RasterioIOError as exc:
        raise SceneError(f"{path} cannot be read as a raster ({exc})") from exc
    if any(described):
        names = tuple(d or f"band{i + 1}" for i, d in enumerate(described))
        return [(path, i + 1) for i in range(count)], names, True
    if count < len(BANDS):
        raise SceneError(
            f"{path} has {count} band(s); a scene file needs the four bands "
            f"{', '.join(BANDS)} in that order, or band descriptions naming them "
            "(or give a folder of single-band files)"
        )
    return [(path, i + 1) for i in range(len(BANDS))], BANDS, False


def open_scene(path: str | Path) -> Scene:
    """Open a scene file or folder; check that its bands share one grid.

    A file whose bands carry descriptions (``B04``, ``B3``, ``red`` …) is read by those
    names; a file without them is taken to hold B02, B03, B04, B08 in that order.

    Raises:
        SceneError: missing path or band, not a raster, bands on different grids, bands
            that are not integer reflectance.
    """
    sources, names, declared = _scene_sources(Path(path))
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
    (_, (h, w, crs, transform), nodata) = ref
    if nodata is None:
        nodata = float(BAND_NODATA)
    return Scene(sources, h, w, crs, transform, nodata, names, declared)


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
