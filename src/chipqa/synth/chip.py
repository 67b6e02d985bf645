"""One synthetic chip: :func:`make_chip` and the :class:`SynthChip` it returns.

A chip is a pure function of its random generator's state: place and sun
(:mod:`~chipqa.synth.places`), surface (:mod:`~chipqa.synth.surfaces`), clouds and
shadows (:mod:`~chipqa.synth.clouds`), sensor noise, then the optional nodata swath
edge. See :mod:`chipqa.synth` for the physical model.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from affine import Affine

from chipqa.constants import BAND_NODATA, LABEL_NODATA
from chipqa.synth.clouds import _clouds, _draw_label, _swath_edge
from chipqa.synth.noise import _F32, _Canvas
from chipqa.synth.places import _place
from chipqa.synth.surfaces import _surface

LAND_COVERS = ("vegetation", "crops", "bare_soil", "water", "urban", "snow")
SKIES = ("overcast", "clear", "partial")

#: Share of each sky in a generated dataset (the real On Cloud N proportions).
SKY_SHARES = {"overcast": 0.40, "clear": 0.10, "partial": 0.50}
#: Share of each dominant land cover.
LAND_COVER_SHARES = {
    "vegetation": 0.27,
    "crops": 0.22,
    "bare_soil": 0.15,
    "water": 0.10,
    "urban": 0.13,
    "snow": 0.13,
}

_MIN_SIZE = 16


@dataclass
class SynthChip:
    """One synthetic chip and the truth that made it.

    Attributes:
        chip_id: short lowercase identifier, e.g. ``"adwp"``.
        bands: ``(4, H, W)`` uint16 surface reflectance x 10 000 in
            :data:`~chipqa.constants.BANDS` order; 0 marks nodata (in all four bands
            at once).
        label: ``(H, W)`` uint8 true label: 0 clear, 1 cloud, 255 no label (exactly
            where the bands are nodata).
        opacity: ``(H, W)`` float32 combined cloud opacity 0..1 that made the image
            (left as computed under nodata).
        land_cover: the dominant land cover, one of :data:`LAND_COVERS`.
        sky: one of :data:`SKIES`.
        crs: the chip's UTM CRS, e.g. ``"EPSG:32736"``.
        transform: north-up affine transform with 10 m pixels.
        location: a place name.
        datetime: acquisition time, ISO 8601 UTC (``"2019-04-17T08:21:44Z"``).
    """

    chip_id: str
    bands: np.ndarray
    label: np.ndarray
    opacity: np.ndarray
    land_cover: str
    sky: str
    crs: str
    transform: Affine
    location: str
    datetime: str
    shadow: np.ndarray | None = None
    """``(H, W)`` float32 cloud-shadow strength 0..1 (the displaced cloud opacity that
    darkened the surface), or None when unknown."""

    @property
    def valid(self) -> np.ndarray:
        """Boolean ``(H, W)`` mask of pixels with data."""
        return self.label != LABEL_NODATA

    @property
    def cloud_fraction(self) -> float:
        """Fraction of valid pixels labelled cloud in the true label (0 when none are valid)."""
        return _cloud_fraction(self.label)


def _cloud_fraction(label: np.ndarray) -> float:
    valid = label != LABEL_NODATA
    nv = int(valid.sum())
    return float((label[valid] == 1).sum()) / nv if nv else 0.0


def _check_choice(value: str | None, options: tuple[str, ...], what: str) -> None:
    if value is not None and value not in options:
        raise ValueError(f"unknown {what} {value!r}; choose one of {', '.join(options)}")


def _pick(rng: np.random.Generator, shares: dict[str, float]) -> str:
    keys = list(shares)
    p = np.array([shares[k] for k in keys], float)
    return keys[int(rng.choice(len(keys), p=p / p.sum()))]


def make_chip(
    rng: np.random.Generator,
    chip_id: str,
    size: int = 256,
    *,
    sky: str | None = None,
    land_cover: str | None = None,
    nodata_fraction: float = 0.0,
) -> SynthChip:
    """Make one synthetic Sentinel-2-like chip and its true label.

    Args:
        rng: random generator; the chip is a pure function of its state.
        chip_id: the id to give the chip.
        size: side in pixels (at least 16).
        sky: one of :data:`SKIES`, or None to draw one (overcast 40 %, clear 10 %,
            partial 50 %). A partial sky draws a cloud fraction of 5-90 %.
        land_cover: dominant land cover (:data:`LAND_COVERS`), or None to draw one.
        nodata_fraction: share of the chip beyond a swath edge (0 for none, < 0.95).

    Returns:
        The chip.

    Raises:
        ValueError: on an unknown sky or land cover, a size below 16 or a nodata
            fraction outside [0, 0.95).
    """
    return _make_chip(
        rng, chip_id, size, sky=sky, land_cover=land_cover, nodata_fraction=nodata_fraction
    )


def _make_chip(
    rng: np.random.Generator,
    chip_id: str,
    size: int = 256,
    *,
    sky: str | None = None,
    land_cover: str | None = None,
    nodata_fraction: float = 0.0,
    cloud_fraction: tuple[float, float] = (0.05, 0.9),
) -> SynthChip:
    """:func:`make_chip` with the range of the partial-sky cloud fraction."""
    _check_choice(sky, SKIES, "sky")
    _check_choice(land_cover, LAND_COVERS, "land cover")
    size = int(size)
    if size < _MIN_SIZE:
        raise ValueError(f"size must be at least {_MIN_SIZE} pixels, got {size}")
    if not 0.0 <= nodata_fraction < 0.95:
        raise ValueError(f"nodata_fraction must be in [0, 0.95), got {nodata_fraction}")
    if sky is None:
        sky = _pick(rng, SKY_SHARES)
    if land_cover is None:
        land_cover = _pick(rng, LAND_COVER_SHARES)
    cf = float(rng.uniform(*cloud_fraction))

    location, crs, transform, when, azimuth = _place(rng, land_cover, size)
    cv = _Canvas(rng, size, azimuth, rng.uniform(35.0, 70.0))
    surface = _surface(cv, land_cover)
    cl = _clouds(cv, sky, cf)

    k_shadow = np.array((0.52, 0.60, 0.65, 0.72), _F32) * _F32(rng.uniform(0.85, 1.1))
    refl = surface * (1.0 - k_shadow[:, None, None] * cl.shadow[None])
    a = cl.alpha[None]
    refl = refl * (1.0 - a) + cl.reflect * a
    h = cl.haze[None]
    refl = refl * (1.0 - h) + cl.haze_reflect[:, None, None] * h
    refl += (0.0015 + 0.004 * refl) * rng.standard_normal(refl.shape, dtype=_F32)
    bands = np.clip(np.rint(refl * 10000.0), 1, 65535).astype(np.uint16)

    opacity = (1.0 - (1.0 - cl.alpha) * (1.0 - cl.haze)).astype(_F32)
    if sky == "overcast":
        label = np.ones((size, size), np.uint8)
    elif sky == "clear":
        label = np.zeros((size, size), np.uint8)
    else:
        label = _draw_label(opacity)

    if nodata_fraction > 0:
        nodata = _swath_edge(rng, size, nodata_fraction)
        bands[:, nodata] = BAND_NODATA
        label[nodata] = LABEL_NODATA

    return SynthChip(
        chip_id=chip_id,
        bands=bands,
        label=label,
        opacity=opacity,
        land_cover=land_cover,
        sky=sky,
        crs=crs,
        transform=transform,
        location=location,
        datetime=when,
        shadow=cl.shadow,
    )
