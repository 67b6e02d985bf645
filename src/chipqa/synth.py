"""Synthetic Sentinel-2-like chips with planted label errors.

This module is chipqa's demo data, napari sample data, test fixture and benchmark
input. It makes four-band (B02 blue, B03 green, B04 red, B08 near-infrared)
surface-reflectance chips that look like Sentinel-2 L2A chips of the On Cloud N
dataset, their true cloud masks, and, on request, wrong masks of the kinds human
annotators really produce.

Physical model
--------------
Every chip is built in reflectance units (0..1) and written as ``round(R * 10 000)``
in uint16, clipped to 1..65 535 on valid pixels; 0 is reserved for nodata.

1. **Surface.** A dominant land cover is mixed with up to three others. Their
   layout comes from seeded power-law ("fractal", spectrum ~ 1/f^beta) random
   fields made with the FFT on a grid larger than the chip (so nothing wraps
   around); lakes and coasts sit in the low ground of a fractal terrain model,
   rivers meander across, crop regions snap to whole field parcels, snow gives
   way to soil and forest below a snow line. Each cover has its own spectrum (a
   few end-members of typical L2A reflectance, jittered per chip) and texture:
   canopy density and crown grain for vegetation; rotated rectangular parcels with
   sharp edges, margins, crop rows and green, ripening, stubble or ploughed states
   for crops; soil end-members, sparse vegetation and tree-lined dry river beds
   for bare soil; a very smooth, slightly turbid surface with brighter shallows
   for water; irregular street blocks of houses (grey, dark or tiled roofs and
   gardens), industry (bright roofs), parks and lots for urban areas; bright snow
   with rock outcrops on steep slopes for snow. The terrain model shades the land
   with the chip's sun (direct light times the cosine of the incidence angle plus
   a band-dependent diffuse part, bluer in the shade): strong relief for snow,
   some for soil and vegetation, little elsewhere, none on water. A 0.5-pixel
   Gaussian blur stands in for the instrument's point-spread function.
2. **Cloud shadows.** The thick-cloud opacity field, computed on a grid larger
   than the chip, is displaced away from the sun by 5-18 % of the chip size and
   slightly blurred; it darkens the surface by ``1 - k_b * alpha_shifted`` with
   ``k_b`` about 0.5 (blue, which still receives blue skylight) to 0.7 (NIR).
   Shadows are not cloud in the label.
3. **Clouds.** Thick cloud opacity is ``1 - exp(-tau)`` with an optical depth
   ``tau`` growing linearly with a fractal field above a threshold, so edges are
   soft and fractal and cores saturate. The cloud top is bright and nearly
   spectrally flat (visible 0.6-1.2, blue slightly highest, NIR equal or a little
   lower), brighter where the cloud is thicker, and shaded by the same sun as a
   relief made of the cloud field, which gives the lumpy texture of cloud tops.
   Pixels mix as ``R = R_surface * (1 - alpha) + R_cloud * alpha``. Some partly
   cloudy chips also get streaky thin cirrus/haze of opacity at most 0.3, blended
   the same way on top.
4. **Skies.** ``overcast`` (about 40 % of a dataset): thick cloud everywhere,
   opacity at least 0.7 and mostly above 0.9, textured white or grey; ``clear``
   (about 10 %): no cloud at all; ``partial`` (about 50 %): a labelled cloud
   fraction between about 5 % and 90 %. The soft fringes and cirrus leave some
   thin, unlabelled cloud (opacity 0.05-0.35) on partly cloudy chips: a median of
   about 5 % of the chip, more where there is cirrus.
5. **True label.** Cloud where the combined opacity exceeds 0.35 (what an
   annotator would call cloud), then smoothed the way a person draws: slightly
   rounded outlines, no specks or pinholes smaller than about 0.04 % of the chip.
   Overcast chips are labelled all cloud and clear chips all clear. Nodata pixels
   (a straight swath edge covering 10-40 % of the chip in some chips) are 0 in
   every band and 255 in the label.
6. **Sensor.** Gaussian noise of standard deviation ``0.0015 + 0.004 R``.

Limits
------
The spectra are plausible averages, not a radiative-transfer simulation: there is
no atmosphere model beyond a small blue offset and the cirrus, no adjacency effect, no BRDF, no
sun glint, no band-to-band misregistration, no parallax between the cloud and its
shadow other than a single shift, and the Sen2Cor SCL (:func:`make_scl`) is a
degraded copy of the truth, not Sen2Cor's algorithm. Clouds are a single
layer (plus optional cirrus). Land-cover textures are statistical, so a trained
eye will tell them from real scenes; they are meant to be good enough for a cloud
detector, a label-quality ranking and a demo to behave as on real chips, and in
particular to contain the classic look-alikes (bright snow, bright roofs, dark
water and shadows).

Planted label errors
--------------------
:func:`generate_dataset` writes a wrong label for a fraction ``error_rate`` of the
chips and keeps every true label in a truth folder outside the dataset. The kinds
(:data:`ERROR_KINDS`) and their shares are ``all_cloud`` 35 %, ``no_cloud`` 35 %,
``shift``, ``swap`` and ``half_missing`` 10 % each; each is planted only on chips
where it is a real error (at least 5 % of the valid pixels change). Everything is
exactly reproducible from the seed: each chip draws from its own
:class:`numpy.random.SeedSequence` child stream.
"""

from __future__ import annotations

import contextlib
import csv
import datetime as _dt
import functools
import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from affine import Affine
from scipy import fft as _fft
from scipy import ndimage as ndi

__all__ = [
    "BANDS",
    "ERROR_KINDS",
    "LAND_COVERS",
    "SKIES",
    "SynthChip",
    "SynthResult",
    "corrupt_label",
    "generate_dataset",
    "make_chip",
    "make_scl",
    "write_scene",
]

BANDS = ("B02", "B03", "B04", "B08")  # blue, green, red, NIR
LAND_COVERS = ("vegetation", "crops", "bare_soil", "water", "urban", "snow")
SKIES = ("overcast", "clear", "partial")
ERROR_KINDS = ("all_cloud", "no_cloud", "shift", "swap", "half_missing")

#: Share of each sky in a generated dataset (the real On Cloud N proportions).
SKY_SHARES = {"overcast": 0.40, "clear": 0.10, "partial": 0.50}
#: Share of each kind among the planted errors.
ERROR_SHARES = {
    "all_cloud": 0.35,
    "no_cloud": 0.35,
    "shift": 0.10,
    "swap": 0.10,
    "half_missing": 0.10,
}
#: Share of each dominant land cover.
LAND_COVER_SHARES = {
    "vegetation": 0.27,
    "crops": 0.22,
    "bare_soil": 0.15,
    "water": 0.10,
    "urban": 0.13,
    "snow": 0.13,
}
#: Opacity above which an annotator calls a pixel cloud.
LABEL_OPACITY = 0.35
#: A planted error must change at least this fraction of the valid pixels.
MIN_CHANGED = 0.05

_F32 = np.float32
_NODATA_LABEL = 255
_MIN_SIZE = 16


# --------------------------------------------------------------------------- data


@dataclass
class SynthChip:
    """One synthetic chip and the truth that made it.

    Attributes:
        chip_id: short lowercase identifier, e.g. ``"adwp"``.
        bands: ``(4, H, W)`` uint16 surface reflectance x 10 000 in :data:`BANDS`
            order; 0 marks nodata (in all four bands at once).
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
        return self.label != _NODATA_LABEL

    @property
    def cloud_fraction(self) -> float:
        """Fraction of valid pixels labelled cloud in the true label (0 when none are valid)."""
        return _cloud_fraction(self.label)


@dataclass
class SynthResult:
    """Where :func:`generate_dataset` put things.

    Attributes:
        root: the dataset folder.
        truth_dir: the folder with the truth, outside the dataset.
        truth_csv: ``truth_dir / "planted_errors.csv"``.
        chip_ids: the chip ids in the order they were generated.
    """

    root: Path
    truth_dir: Path
    truth_csv: Path
    chip_ids: list[str]


# ------------------------------------------------------------------- locations

# name, EPSG code of its UTM zone, approximate easting and northing, latitude, longitude
_LOCATIONS: tuple[tuple[str, int, int, int, float, float], ...] = (
    ("Nairobi, Kenya", 32737, 257000, 9857000, -1.29, 36.82),
    ("Lusaka, Zambia", 32735, 642000, 8298000, -15.39, 28.32),
    ("Harare, Zimbabwe", 32736, 293000, 8028000, -17.83, 31.05),
    ("Kinshasa, DR Congo", 32733, 534000, 9522000, -4.32, 15.31),
    ("Jinja, Uganda", 32636, 522000, 49000, 0.44, 33.20),
    ("Cape Town, South Africa", 32734, 261000, 6244000, -33.92, 18.42),
    ("Lima, Peru", 32718, 278000, 8667000, -12.05, -77.04),
    ("Cusco, Peru", 32719, 178000, 8502000, -13.53, -71.97),
    ("Manaus, Brazil", 32720, 831000, 9655000, -3.12, -60.02),
    ("Mendoza, Argentina", 32719, 516000, 6361000, -32.89, -68.83),
    ("Perth, Australia", 32750, 392000, 6465000, -31.95, 115.86),
    ("Canberra, Australia", 32755, 694000, 6094000, -35.28, 149.13),
    ("Alice Springs, Australia", 32753, 386000, 7379000, -23.70, 133.88),
    ("Addis Ababa, Ethiopia", 32637, 471000, 998000, 9.03, 38.74),
    ("Kilimanjaro, Tanzania", 32737, 317000, 9661000, -3.07, 37.35),
    ("Maseru, Lesotho", 32735, 547000, 6758000, -29.31, 27.48),
)
# dominant land covers a chip near each place may have
_LOCATION_COVERS: dict[str, tuple[str, ...]] = {
    "Nairobi, Kenya": ("vegetation", "crops", "urban", "bare_soil"),
    "Lusaka, Zambia": ("crops", "vegetation", "urban", "bare_soil"),
    "Harare, Zimbabwe": ("crops", "vegetation", "urban", "water"),
    "Kinshasa, DR Congo": ("vegetation", "water", "urban"),
    "Jinja, Uganda": ("water", "vegetation", "crops", "urban"),
    "Cape Town, South Africa": ("urban", "vegetation", "water", "crops", "bare_soil"),
    "Lima, Peru": ("urban", "bare_soil", "water"),
    "Cusco, Peru": ("snow", "bare_soil", "vegetation", "crops"),
    "Manaus, Brazil": ("vegetation", "water", "urban"),
    "Mendoza, Argentina": ("snow", "bare_soil", "crops", "urban"),
    "Perth, Australia": ("crops", "urban", "water", "bare_soil", "vegetation"),
    "Canberra, Australia": ("vegetation", "crops", "urban", "snow"),
    "Alice Springs, Australia": ("bare_soil", "vegetation"),
    "Addis Ababa, Ethiopia": ("crops", "urban", "vegetation"),
    "Kilimanjaro, Tanzania": ("snow", "vegetation", "crops"),
    "Maseru, Lesotho": ("snow", "bare_soil", "crops", "urban"),
}
_DATE0 = _dt.datetime(2018, 1, 1, tzinfo=_dt.timezone.utc)
_N_DAYS = (_dt.datetime(2021, 1, 1, tzinfo=_dt.timezone.utc) - _DATE0).days


def _place(
    rng: np.random.Generator, land_cover: str, size: int
) -> tuple[str, str, Affine, str, float]:
    """Pick a location, CRS, transform, datetime and sun azimuth for a chip."""
    options = [loc for loc in _LOCATIONS if land_cover in _LOCATION_COVERS[loc[0]]]
    name, epsg, east, north, lat, lon = options[int(rng.integers(len(options)))]
    x0 = east + 10.0 * int(rng.integers(-1500, 1500))
    y0 = north + 10.0 * int(rng.integers(-1500, 1500)) + 10.0 * size / 2
    transform = Affine(10.0, 0.0, x0, 0.0, -10.0, y0)
    while True:
        day = _DATE0 + _dt.timedelta(days=int(rng.integers(_N_DAYS)))
        # seasonal snow away from the tropics lies in the southern winter
        if land_cover != "snow" or lat > -20 or day.month in (6, 7, 8, 9):
            break
    hours = (10.5 - lon / 15.0 + rng.normal(0.0, 0.25)) % 24.0
    when = day + _dt.timedelta(seconds=int(hours * 3600))
    # Sentinel-2 passes at about 10:30 local time: the sun stands to the north-east
    # in the southern hemisphere, to the south-east in the northern one.
    if lat < -5:
        azimuth = rng.uniform(25.0, 75.0)
    elif lat > 5:
        azimuth = rng.uniform(105.0, 155.0)
    else:
        azimuth = rng.uniform(40.0, 140.0)
    return name, f"EPSG:{epsg}", transform, when.strftime("%Y-%m-%dT%H:%M:%SZ"), float(azimuth)


# ----------------------------------------------------------------------- noise


def _block_rows(n: int, k: int) -> np.ndarray:
    """Row indices of the rfft2 frequencies with ``|fy| <= k / n``."""
    return np.r_[0 : k + 1, n - k : n]


def _normalise(amp: np.ndarray, n: int) -> np.ndarray:
    """Scale an rfft2 amplitude block so that the field has unit expected variance."""
    w = np.full(amp.shape[1], 2.0)
    w[0] = 0.5  # irfft keeps only the Hermitian part of the first and last columns
    if amp.shape[1] == n // 2 + 1 and n % 2 == 0:
        w[-1] = 0.5
    var = 2.0 * float((amp.astype(np.float64) ** 2 * w).sum()) / float(n) ** 4
    return (amp / np.sqrt(var)).astype(_F32) if var > 0 else amp


def _spectrum(n: int, beta: float, k: int | None, stretch: float, angle: float) -> np.ndarray:
    fy = np.fft.fftfreq(n).astype(_F32)
    fx = np.fft.rfftfreq(n).astype(_F32)
    if k is not None:
        fy = fy[_block_rows(n, k)]
        fx = fx[: k + 1]
    fy = fy[:, None]
    fx = fx[None, :]
    if stretch == 1.0:
        f2 = fy * fy + fx * fx
    else:
        c, s = math.cos(angle), math.sin(angle)
        f2 = (_F32(stretch) * (fx * c + fy * s)) ** 2 + ((-fx * s + fy * c) / _F32(stretch)) ** 2
    amp = (f2 + _F32(0.25 / (n * n))) ** _F32(-beta / 4.0)
    amp[0, 0] = 0.0
    return _normalise(amp, n)


@functools.lru_cache(maxsize=64)
def _amplitude(n: int, beta: float, k: int | None) -> np.ndarray:
    """Isotropic amplitude spectrum ``~ f^(-beta/2)`` (zero mean, unit variance), cached."""
    amp = _spectrum(n, beta, k, 1.0, 0.0)
    amp.flags.writeable = False
    return amp


def _powerlaw(
    rng: np.random.Generator,
    n: int,
    beta: float,
    *,
    stretch: float = 1.0,
    angle: float = 0.0,
    fmax: float | None = None,
) -> np.ndarray:
    """A seeded ``n x n`` Gaussian random field with power spectrum ``~ f^-beta``.

    Spectral synthesis: complex Gaussian noise shaped by the amplitude spectrum, then
    an inverse real FFT. The field is periodic over the grid.

    Args:
        rng: random generator.
        n: side in pixels.
        beta: spectral exponent; 1-2 is grainy texture, 3 cloud-like, 4 smooth terrain.
        stretch: anisotropy (>1 elongates features along ``angle``).
        angle: direction of elongation in radians.
        fmax: drop frequencies above this (cycles per pixel, per axis); smooth fields
            lose almost nothing and need far fewer random numbers.

    Returns:
        float32 field with zero mean and unit expected variance.
    """
    beta = round(float(beta), 1)  # a coarse grid of exponents keeps the spectrum cache small
    k = None
    if fmax is not None:
        k = max(2, int(math.ceil(fmax * n)))
        if 2 * k + 1 >= n or k + 1 >= n // 2 + 1:
            k = None
    if stretch == 1.0:
        amp = _amplitude(n, beta, k)
    else:
        amp = _spectrum(n, beta, k, float(stretch), float(angle))
    # zero-mean, unit-variance uniform coefficients: cheaper than Gaussian ones, and the
    # field, a sum over many of them, is Gaussian all the same
    shape = amp.shape
    noise = rng.random((2,) + shape, dtype=_F32)
    noise -= _F32(0.5)
    noise *= _F32(math.sqrt(12.0))
    block = np.empty(shape, np.complex64)
    block.real = noise[0]
    block.imag = noise[1]
    block *= amp
    if k is None:
        spec = block
    else:
        spec = np.zeros((n, n // 2 + 1), np.complex64)
        spec[: k + 1, : k + 1] = block[: k + 1]
        spec[n - k :, : k + 1] = block[k + 1 :]
    return _fft.irfft2(spec, s=(n, n), workers=1).astype(_F32, copy=False)


def _standardize(x: np.ndarray) -> np.ndarray:
    """Zero mean, unit standard deviation (a constant becomes zeros)."""
    x = x - x.mean()
    sd = x.std()
    return (x / sd).astype(_F32) if sd > 0 else x.astype(_F32)


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return (1.0 / (1.0 + np.exp(-x))).astype(_F32)


@functools.lru_cache(maxsize=16)
def _grid(n: int) -> tuple[np.ndarray, np.ndarray]:
    """Row and column coordinates of an ``n x n`` chip (read-only float32)."""
    yy, xx = np.mgrid[0:n, 0:n].astype(_F32)
    yy.flags.writeable = False
    xx.flags.writeable = False
    return yy, xx


class _Canvas:
    """Random fields for one chip: cropped from a larger grid so they do not wrap."""

    def __init__(
        self, rng: np.random.Generator, size: int, sun_azimuth: float, sun_elevation: float
    ):
        self.rng = rng
        self.size = size
        self.pad = int(_fft.next_fast_len(size + 2 * max(4, math.ceil(0.25 * size)), real=True))
        self.margin = (self.pad - size) // 2
        az = math.radians(sun_azimuth)
        el = math.radians(sun_elevation)
        # unit vector towards the sun in image axes (x = column/east, y = row/south, z = up)
        self.sun = (math.cos(el) * math.sin(az), -math.cos(el) * math.cos(az), math.sin(el))
        self.azimuth = az

    def crop(self, field: np.ndarray) -> np.ndarray:
        m, n = self.margin, self.size
        return field[m : m + n, m : m + n]

    def big(self, beta: float, **kw: float) -> np.ndarray:
        """A power-law field on the padded grid."""
        return _powerlaw(self.rng, self.pad, beta, **kw)

    def smooth(self, beta: float, **kw: float) -> np.ndarray:
        """A standardized, non-periodic power-law field of chip size (for beta > 2).

        Frequencies above 1/4 (beta >= 3) or 3/8 cycles per pixel are left out: they
        hold a negligible share of such a field's variance.
        """
        kw.setdefault("fmax", 0.25 if beta >= 3.0 else 0.375)
        return _standardize(self.crop(self.big(beta, **kw)))

    def tex(self, beta: float) -> np.ndarray:
        """A fine-grained standardized texture of chip size (periodic, beta <= 2.5)."""
        return _powerlaw(self.rng, self.size, beta)

    def shade(self, height: np.ndarray, slope: float, diffuse: np.ndarray | float) -> np.ndarray:
        """Illumination factor of a relief (1 on flat ground).

        Args:
            height: relief, any scale (rescaled so its RMS slope is ``slope``).
            slope: RMS slope (rise over run) of the relief.
            diffuse: share of diffuse light (scalar, or per band of shape (4,)).

        Returns:
            ``(H, W)`` when ``diffuse`` is scalar, else ``(4, H, W)``.
        """
        gy, gx = np.gradient(height)
        rms = float(np.sqrt(np.mean(gx * gx + gy * gy)))
        k = slope / rms if rms > 0 else 0.0
        gx = gx * k
        gy = gy * k
        sx, sy, sz = self.sun
        cos_i = (-gx * sx - gy * sy + sz) / np.sqrt(gx * gx + gy * gy + 1.0)
        direct = np.clip(cos_i, 0.0, None) / sz
        d = np.asarray(diffuse, dtype=_F32)
        if d.ndim == 0:
            return ((1.0 - d) * direct + d).astype(_F32)
        return ((1.0 - d)[:, None, None] * direct[None] + d[:, None, None]).astype(_F32)


def _river(cv: _Canvas, width: float) -> np.ndarray:
    """A single meandering river of about ``width`` pixels crossing the chip.

    Returns:
        distance from the centre line in units of the half-width (< 1 inside the river).
    """
    r = cv.rng
    n = cv.size
    yy, xx = _grid(n)
    theta = r.uniform(0.0, math.pi)
    c, s = _F32(math.cos(theta)), _F32(math.sin(theta))
    h = _F32(n / 2.0)
    u = (xx - h) * c + (yy - h) * s
    v = -(xx - h) * s + (yy - h) * c
    length = int(1.5 * n) + 4
    freq = np.fft.rfftfreq(length)
    amp = np.zeros_like(freq)
    amp[1:] = freq[1:] ** -2.0
    coef = (r.standard_normal(amp.size) + 1j * r.standard_normal(amp.size)) * amp
    path = np.fft.irfft(coef, length)
    path = (path - path.mean()) / (path.std() + 1e-12)
    path = path * n * r.uniform(0.04, 0.12) + r.uniform(-0.3, 0.3) * n
    t = np.arange(length, dtype=np.float64) - length / 2.0
    centre = np.interp(u, t, path).astype(_F32)
    slope = np.interp(u, t, np.gradient(path)).astype(_F32)
    # distance across the channel, corrected for the meander's local direction
    dist = np.abs(v - centre) / np.sqrt(1.0 + slope * slope)
    wide = _F32(width / 2.0) * (1.0 + 0.25 * np.sin(u * _F32(r.uniform(0.02, 0.08))))
    return dist / wide


def _jitter(
    rng: np.random.Generator,
    spectrum: tuple[float, ...],
    band_sd: float = 0.035,
    gain_sd: float = 0.06,
) -> np.ndarray:
    """A spectrum with per-chip variation: a common gain and small per-band changes."""
    s = np.asarray(spectrum, _F32)
    s = (
        s
        * np.exp(rng.normal(0.0, band_sd, 4)).astype(_F32)
        * _F32(math.exp(rng.normal(0.0, gain_sd)))
    )
    return s.astype(_F32)


def _mix(a: np.ndarray, b: np.ndarray, w: np.ndarray) -> np.ndarray:
    """``a * (1 - w) + b * w`` for spectra ``a, b`` of shape (4,) and weights (H, W)."""
    return a[:, None, None] + (b - a)[:, None, None] * w[None]


# ------------------------------------------------------------------ land cover


def _render_vegetation(cv: _Canvas) -> tuple[np.ndarray, None]:
    """Forest, woodland, grassland or shrub: green, NIR-bright, canopy texture."""
    r = cv.rng
    forest = _jitter(r, (0.026, 0.046, 0.028, 0.32))
    grass = _jitter(r, (0.040, 0.076, 0.048, 0.42))
    dry = _jitter(r, (0.062, 0.088, 0.098, 0.28))
    dryness = r.beta(1.3, 4.0)
    open_land = grass * (1 - dryness) + dry * dryness
    density = _sigmoid(2.2 * cv.smooth(r.uniform(2.6, 3.4)) + r.normal(0.4, 0.9))
    refl = _mix(open_land, forest, density)
    canopy = 1.0 + 0.045 * cv.tex(2.0) + (0.03 + 0.04 * density) * cv.tex(0.8)
    return refl * canopy[None], None


def _parcels(
    cv: _Canvas, mean_width: float, mean_length: float, theta: float | None = None
) -> tuple[np.ndarray, np.ndarray, int]:
    """Rectangular parcels on a rotated grid: strips cut into pieces of random lengths.

    Args:
        cv: the chip's canvas.
        mean_width: mean strip width in pixels.
        mean_length: mean parcel length along a strip in pixels.
        theta: grid orientation in radians (None to draw one).

    Returns:
        parcel id per pixel, the along-row coordinate, and the number of parcels.
    """
    r = cv.rng
    yy, xx = _grid(cv.size)
    if theta is None:
        theta = r.normal(0.0, 0.08) if r.random() < 0.5 else r.uniform(0.0, math.pi / 2)
    c, s = math.cos(theta), math.sin(theta)
    u = xx * c + yy * s
    v = -xx * s + yy * c
    u0, u1, v0, v1 = float(u.min()), float(u.max()), float(v.min()), float(v.max())

    def cuts(lo: float, hi: float, mean: float) -> np.ndarray:
        out = [lo - r.uniform(0.0, mean)]
        while out[-1] <= hi:
            out.append(out[-1] + max(3.0, r.gamma(3.0, mean / 3.0)))
        return np.asarray(out[1:], _F32)

    ucuts = cuts(u0, u1, mean_width)
    strip = np.searchsorted(ucuts, u)
    pid = np.empty(u.shape, np.int32)
    offset = 0
    for k in range(len(ucuts)):
        sel = strip == k
        if not sel.any():
            continue
        vcuts = cuts(v0, v1, mean_length)
        pid[sel] = offset + np.searchsorted(vcuts, v[sel])
        offset += len(vcuts) + 1
    # renumber densely
    _, pid = np.unique(pid, return_inverse=True)
    pid = pid.reshape(u.shape).astype(np.int32)
    return pid, v if r.random() < 0.5 else u, int(pid.max()) + 1


def _render_crops(cv: _Canvas) -> tuple[np.ndarray, np.ndarray]:
    """Field parcels with sharp edges: green, ripening, stubble or ploughed."""
    r = cv.rng
    width = r.uniform(14.0, 45.0)
    pid, along, n = _parcels(cv, width, width * r.uniform(1.0, 2.5))
    green = _jitter(r, (0.030, 0.068, 0.034, 0.46))
    stubble = _jitter(r, (0.095, 0.125, 0.155, 0.25))
    ploughed = _jitter(r, (0.058, 0.078, 0.098, 0.15))
    state = r.random(n)
    green_share = r.uniform(0.25, 0.65)
    g = np.where(
        state < green_share,
        r.uniform(0.75, 1.0, n),
        np.where(state < green_share + 0.2, r.uniform(0.25, 0.7, n), r.uniform(0.0, 0.12, n)),
    ).astype(_F32)
    wet = r.random(n).astype(_F32)
    soil = stubble[None, :] * (1 - wet[:, None]) + ploughed[None, :] * wet[:, None]
    table = soil * (1 - g[:, None]) + green[None, :] * g[:, None]
    table *= np.exp(r.normal(0.0, 0.07, (n, 1))).astype(_F32)
    table *= np.exp(r.normal(0.0, 0.03, (n, 4))).astype(_F32)
    refl = np.stack([table[:, b][pid] for b in range(4)])
    # crop rows and within-field variation
    period = r.uniform(2.2, 4.5)
    rows = np.sin(along * _F32(2 * math.pi / period)) * _F32(r.uniform(0.0, 0.03))
    texture = 1.0 + 0.04 * cv.smooth(2.6) + 0.025 * cv.tex(1.5) + rows
    refl *= texture[None]
    # field margins: tracks or hedges on some parcel boundaries
    if r.random() < 0.7:
        edge = np.zeros(pid.shape, bool)
        edge[:, 1:] |= pid[:, 1:] != pid[:, :-1]
        edge[1:, :] |= pid[1:, :] != pid[:-1, :]
        margin = (
            _jitter(r, (0.045, 0.07, 0.06, 0.30))
            if r.random() < 0.5
            else _jitter(r, (0.11, 0.13, 0.15, 0.22))
        )
        refl[:, edge] = refl[:, edge] * 0.4 + margin[:, None] * 0.6
    return refl.astype(_F32), pid


_SOILS = (
    (0.100, 0.140, 0.190, 0.270),  # typical
    (0.085, 0.120, 0.190, 0.285),  # red, iron-rich
    (0.170, 0.225, 0.285, 0.345),  # pale, sandy
    (0.060, 0.080, 0.100, 0.160),  # dark, moist or organic
    (0.125, 0.150, 0.175, 0.220),  # grey rock / gravel
)


def _render_bare_soil(cv: _Canvas) -> tuple[np.ndarray, None]:
    """Bare soil, sand and rock with a little sparse vegetation."""
    r = cv.rng
    first = 0 if r.random() < 0.55 else int(r.integers(1, len(_SOILS)))
    second = int(r.integers(len(_SOILS)))
    a = _jitter(r, _SOILS[first])
    b = _jitter(r, _SOILS[second])
    w = _sigmoid(1.8 * cv.smooth(r.uniform(2.6, 3.4)) + r.normal(-0.8, 0.6))
    refl = _mix(a, b, w)
    sparse = np.clip(0.15 * cv.smooth(2.4) + r.uniform(-0.1, 0.15), 0.0, 0.6)
    veg = _jitter(r, (0.04, 0.07, 0.05, 0.33))
    refl = refl * (1 - sparse[None]) + veg[:, None, None] * sparse[None]
    texture = 1.0 + 0.06 * cv.smooth(2.2) + 0.03 * cv.tex(1.3)
    refl = refl * texture[None]
    # dry river beds lined with trees
    sand = _jitter(r, _SOILS[2])
    for _ in range(int(r.choice(3, p=(0.45, 0.4, 0.15)))):
        dist = _river(cv, r.uniform(4.0, 14.0))
        trees = np.clip(1.6 * (1.0 - dist), 0.0, 1.0) * _F32(r.uniform(0.4, 0.8))
        trees *= np.clip(0.7 + 0.5 * cv.tex(1.5), 0.0, 1.0)
        refl = refl * (1.0 - trees[None]) + veg[:, None, None] * trees[None]
        bed = dist < 0.2
        refl[:, bed] = refl[:, bed] * 0.5 + sand[:, None] * 0.5
    return refl, None


def _render_water(cv: _Canvas) -> tuple[np.ndarray, None]:
    """Open water: dark, NIR near zero, very smooth, some turbidity."""
    r = cv.rng
    base = np.array((0.060, 0.050, 0.030, r.uniform(0.010, 0.020)), _F32)
    base *= _F32(r.uniform(0.75, 1.15))
    turbid = np.array((0.008, 0.025, 0.028, 0.004), _F32) * _F32(r.uniform(0.0, 1.2))
    t = np.clip(0.5 + 0.35 * cv.smooth(4.0), 0.0, 1.0)
    refl = base[:, None, None] + turbid[:, None, None] * t[None]
    refl *= (1.0 + 0.008 * cv.tex(2.0))[None]
    return refl.astype(_F32), None


def _render_urban(cv: _Canvas) -> tuple[np.ndarray, None]:
    """Built-up area: streets around blocks of houses, industry, parks and lots."""
    r = cv.rng
    yy, xx = _grid(cv.size)
    theta = r.normal(0.0, 0.1) if r.random() < 0.4 else r.uniform(0.0, math.pi / 2)
    c, s = math.cos(theta), math.sin(theta)
    u = xx * c + yy * s + _F32(r.uniform(0, 100))
    v = -xx * s + yy * c + _F32(r.uniform(0, 100))

    def cells(du: float, dv: float) -> np.ndarray:
        """A uniform random value per rotated cell of size du x dv."""
        iu = np.floor(u / _F32(du)).astype(np.int64)
        iv = np.floor(v / _F32(dv)).astype(np.int64)
        table = r.random((257, 263), dtype=_F32)
        return table[iu % 257, iv % 263]

    # street blocks: irregular rectangles; streets on their edges
    pid, _, nblocks = _parcels(cv, r.uniform(8.0, 18.0), r.uniform(10.0, 26.0), theta=theta)
    block = r.random(nblocks, dtype=_F32)[pid]
    block2 = r.random(nblocks, dtype=_F32)[pid]
    street = np.zeros(pid.shape, bool)
    street[:, 1:] |= pid[:, 1:] != pid[:, :-1]
    street[1:, :] |= pid[1:, :] != pid[:-1, :]
    house = r.uniform(1.6, 3.2)
    small = cells(house, house * r.uniform(1.0, 1.8))
    small2 = cells(house, house * r.uniform(1.0, 1.8))
    big = cells(r.uniform(4.0, 9.0), r.uniform(4.0, 9.0))
    density = _sigmoid(1.8 * cv.smooth(3.2) + r.normal(0.5, 0.6))

    red = r.uniform(0.0, 0.3) if r.random() < 0.6 else 0.0
    palette = {
        "grey": _jitter(r, (0.115, 0.125, 0.135, 0.160)),
        "bright": _jitter(r, (0.190, 0.205, 0.220, 0.245)),
        "white": _jitter(r, (0.260, 0.275, 0.285, 0.300)),
        "red": _jitter(r, (0.075, 0.085, 0.140, 0.185)),
        "dark": _jitter(r, (0.075, 0.080, 0.085, 0.105)),
        "asphalt": _jitter(r, (0.060, 0.064, 0.068, 0.085)),
        "garden": _jitter(r, (0.042, 0.068, 0.052, 0.290)),
        "lot": _jitter(r, (0.110, 0.135, 0.165, 0.220)),
        "street": _jitter(r, (0.080, 0.086, 0.092, 0.130)),
    }
    names = list(palette)
    code = {k: i for i, k in enumerate(names)}

    # block types: park, industry, bare lot, housing
    p_park = 0.04 + 0.22 * (1.0 - density)
    p_ind = p_park + 0.06 + 0.14 * density
    p_lot = p_ind + 0.04
    # housing: roofs and gardens in small cells
    p_green = 0.12 + 0.4 * (1.0 - density)
    roof = np.where(
        small2 < red,
        code["red"],
        np.where(
            small2 < red + 0.5 * (1 - red),
            code["grey"],
            np.where(small2 < 0.92, code["dark"], code["bright"]),
        ),
    )
    housing = np.where(
        small < p_green, code["garden"], np.where(small < p_green + 0.06, code["asphalt"], roof)
    )
    industry = np.where(
        big < 0.35,
        code["white"],
        np.where(big < 0.6, code["bright"], np.where(big < 0.85, code["grey"], code["asphalt"])),
    )
    idx = np.where(
        block < p_park,
        code["garden"],
        np.where(block < p_ind, industry, np.where(block < p_lot, code["lot"], housing)),
    )
    idx = np.where(street, code["street"], idx)
    table = np.stack([palette[k] for k in names])
    refl = np.stack([table[:, b][idx] for b in range(4)])
    refl *= (0.9 + 0.2 * block2)[None]
    refl *= (1.0 + 0.05 * cv.tex(1.0))[None]
    return refl.astype(_F32), None


def _render_snow(cv: _Canvas) -> tuple[np.ndarray, None]:
    """Snow and firn: very bright, NIR lower; rock outcrops added by the terrain step."""
    r = cv.rng
    snow = np.array((0.85, 0.84, 0.80, r.uniform(0.65, 0.72)), _F32)
    snow *= np.exp(r.normal(0.0, 0.015, 4)).astype(_F32) * _F32(r.uniform(0.9, 1.04))
    refl = snow[:, None, None] * (1.0 + 0.02 * cv.tex(1.8) + 0.02 * cv.smooth(2.8))[None]
    return refl.astype(_F32), None


_RENDER = {
    "vegetation": _render_vegetation,
    "crops": _render_crops,
    "bare_soil": _render_bare_soil,
    "water": _render_water,
    "urban": _render_urban,
    "snow": _render_snow,
}

_NEIGHBOURS = {
    "vegetation": (("crops", 3), ("water", 2), ("bare_soil", 2), ("urban", 1)),
    "crops": (("vegetation", 3), ("urban", 1), ("water", 1), ("bare_soil", 1)),
    "bare_soil": (("vegetation", 3), ("crops", 1), ("water", 1), ("urban", 1)),
    "water": (("vegetation", 3), ("crops", 1), ("urban", 1), ("bare_soil", 1)),
    "urban": (("vegetation", 3), ("crops", 1), ("water", 1), ("bare_soil", 1)),
    "snow": (("bare_soil", 3), ("vegetation", 2)),
}
# diffuse share of the light per band (skylight is blue)
_DIFFUSE = np.array((0.32, 0.22, 0.16, 0.10), _F32)


def _surface(cv: _Canvas, dominant: str) -> np.ndarray:
    """Surface reflectance ``(4, H, W)`` of a chip whose dominant cover is ``dominant``."""
    r = cv.rng
    n = cv.size
    terrain = cv.smooth(r.uniform(3.3, 4.0))
    if dominant == "snow":
        slope = r.uniform(0.35, 0.9)
    elif dominant == "bare_soil":
        slope = r.uniform(0.0, 0.35)
    elif dominant in ("vegetation",):
        slope = r.uniform(0.0, 0.3)
    else:
        slope = r.uniform(0.0, 0.08)

    # which covers, and how much of the chip each takes
    names = [c for c, _ in _NEIGHBOURS[dominant]]
    weights = np.array([w for _, w in _NEIGHBOURS[dominant]], float)
    k = int(r.choice(4, p=(0.2, 0.4, 0.3, 0.1)))
    k = min(k, len(names))
    chosen = (
        list(r.choice(len(names), size=k, replace=False, p=weights / weights.sum())) if k else []
    )
    total = r.uniform(0.05, 0.45)
    shares = r.dirichlet(np.ones(max(k, 1)) * 2.0) * total

    refl, _ = _RENDER[dominant](cv)
    covers = [dominant]  # the covers placed so far
    cover = np.zeros((n, n), np.int8)  # index into ``covers`` per pixel
    for j, i in enumerate(chosen):
        name = names[i]
        other, other_pid = _RENDER[name](cv)
        if name == "water":
            if r.random() < 0.35:  # a river
                mask = _river(cv, r.uniform(2.0, 10.0)) < 1.0
                if mask.any():
                    refl[:, mask] = other[:, mask]
                    covers.append(name)
                    cover[mask] = len(covers) - 1
                continue
            # lakes and coasts in the low ground
            f = -terrain + 0.6 * cv.smooth(3.4)
        elif dominant in ("water", "snow"):
            # land on the high ground of a water chip; soil and forest below the snow line
            sign = 1.0 if dominant == "water" else -1.0
            f = sign * terrain + 0.45 * cv.smooth(3.2)
        else:
            f = cv.smooth(r.uniform(2.8, 3.6))
        if name == "crops" and other_pid is not None:
            # crop regions follow whole parcels, clipped where they reach far out
            count = np.bincount(other_pid.ravel())
            mean = np.bincount(other_pid.ravel(), weights=f.ravel()) / np.maximum(count, 1)
            snapped = mean[other_pid].astype(_F32)
            mask = (snapped > np.quantile(snapped, 1.0 - shares[j])) & (
                f > np.quantile(f, 1.0 - min(1.0, 2.0 * shares[j]))
            )
        else:
            mask = f > np.quantile(f, 1.0 - shares[j])
        if not mask.any():
            continue
        refl[:, mask] = other[:, mask]
        covers.append(name)
        cover[mask] = len(covers) - 1

    water = np.isin(cover, [i for i, name in enumerate(covers) if name == "water"])
    snow = np.isin(cover, [i for i, name in enumerate(covers) if name == "snow"])

    # rock outcrops in the snow on steep or ridged ground
    if snow.any():
        gy, gx = np.gradient(terrain)
        steep = _standardize(np.hypot(gx, gy)) + 0.8 * cv.smooth(2.6)
        rock_share = r.uniform(0.03, 0.3)
        rock = snow & (steep > np.quantile(steep[snow], 1.0 - rock_share))
        rock_spec = _jitter(r, (0.075, 0.090, 0.105, 0.150))
        dirt = np.clip(0.5 + 0.5 * cv.tex(2.0), 0.0, 1.0)
        refl[:, rock] = rock_spec[:, None] * (0.7 + 0.6 * dirt[rock])[None]
        # thin snow over rock around outcrops
        near = ndi.gaussian_filter(rock.astype(_F32), 1.2) * snow
        refl *= 1.0 - 0.5 * near[None]

    # brighter, greener shallows near shores
    if water.any() and not water.all():
        shore = ndi.gaussian_filter((~water).astype(_F32), max(1.0, n / 128.0))
        shallow = shore * water
        refl += np.array((0.02, 0.03, 0.02, 0.01), _F32)[:, None, None] * shallow[None]

    # terrain shading of the land
    if slope > 0.01:
        light = cv.shade(terrain, slope, _DIFFUSE)
        refl = np.where(water[None], refl, refl * light)

    # residual haze / adjacency in the blue after atmospheric correction
    refl[0] += _F32(abs(r.normal(0.0, 0.003)))
    # the instrument's point-spread function
    refl = ndi.gaussian_filter(refl, sigma=(0.0, 0.5, 0.5), mode="nearest")
    return refl.astype(_F32)


# ---------------------------------------------------------------------- clouds


@dataclass
class _Clouds:
    alpha: np.ndarray  # thick cloud opacity (H, W)
    haze: np.ndarray  # cirrus / haze opacity (H, W)
    shadow: np.ndarray  # displaced opacity (H, W)
    reflect: np.ndarray  # cloud reflectance (4, H, W)
    haze_reflect: np.ndarray  # haze reflectance (4,)


def _clouds(cv: _Canvas, sky: str, cloud_fraction: float) -> _Clouds:
    """Cloud opacity, shadow and reflectance fields for a sky."""
    r = cv.rng
    n = cv.size
    zero = np.zeros((n, n), _F32)
    if sky == "clear":
        return _Clouds(zero, zero, zero, np.zeros((4, n, n), _F32), np.zeros(4, _F32))

    beta = r.uniform(3.0, 3.8)
    kw = {}
    if r.random() < 0.25:
        kw = {"stretch": float(r.uniform(1.3, 2.2)), "angle": float(r.uniform(0, math.pi))}
    # a smooth body plus fractal detail that frays the edges
    f = cv.big(beta, **kw)
    f += _F32(r.uniform(0.1, 0.3)) * cv.big(r.uniform(2.2, 2.8))
    crop = cv.crop(f)
    if sky == "overcast":
        gain = r.uniform(1.5, 4.0)
        floor = r.uniform(1.2, 4.0)  # optical depth at the thinnest point
        t0 = float(crop.min()) - floor / gain
    else:
        gain = r.uniform(1.5, 5.0)
        t_label = float(np.quantile(crop, 1.0 - cloud_fraction))
        t0 = t_label + math.log(1.0 - LABEL_OPACITY) / gain
    tau_big = np.maximum(f - _F32(t0), 0.0) * _F32(gain)
    alpha_big = 1.0 - np.exp(-tau_big)
    alpha = cv.crop(alpha_big).astype(_F32)
    tau = cv.crop(tau_big)

    # cloud top: bright, nearly flat spectrum, thicker is brighter, lumpy relief lit by the sun
    if sky == "overcast":
        bright = r.uniform(0.45, 0.75) if r.random() < 0.3 else r.uniform(0.7, 1.15)
        relief = r.uniform(0.15, 0.6)
        blur = n / r.uniform(25.0, 90.0)
    else:
        bright = r.uniform(0.6, 1.2)
        if r.random() < 0.12:
            bright *= r.uniform(1.05, 1.25)
        relief = r.uniform(0.3, 0.9)
        blur = n / r.uniform(50.0, 140.0)
    spec = np.array((1.0, 0.985, 0.965, r.uniform(0.9, 1.0)), _F32) * _F32(bright)
    top = ndi.gaussian_filter(crop, max(1.0, blur), mode="nearest", truncate=3.0)
    light = cv.shade(top, relief, r.uniform(0.4, 0.65))
    thick = 1.0 - np.exp(-tau / _F32(r.uniform(2.0, 5.0)))
    broad = 1.0 + _F32(r.uniform(0.03, 0.15)) * cv.smooth(3.6)
    texture = (0.72 + 0.28 * thick) * light * broad * (1.0 + 0.012 * cv.tex(1.5))
    reflect = spec[:, None, None] * texture[None]

    # shadow: the opacity displaced away from the sun
    shadow = zero
    if sky == "partial":
        length = n * r.uniform(0.05, 0.18)
        dc = -length * math.sin(cv.azimuth)
        dr = length * math.cos(cv.azimuth)
        m = cv.margin
        r0 = int(round(m - dr))
        c0 = int(round(m - dc))
        shadow = alpha_big[r0 : r0 + n, c0 : c0 + n]
        shadow = ndi.gaussian_filter(shadow, max(0.8, n / 256.0), mode="nearest").astype(_F32)

    # thin cirrus / haze on some partly cloudy chips
    haze = zero
    haze_reflect = np.zeros(4, _F32)
    if sky == "partial" and r.random() < 0.3:
        streaks = cv.smooth(
            r.uniform(3.2, 3.8),
            stretch=float(r.uniform(1.5, 2.5)),
            angle=float(r.uniform(0, math.pi)),
        )
        amount = r.uniform(0.08, 0.3)
        haze = (amount * np.clip(_sigmoid(2.0 * streaks + r.normal(0.0, 0.8)), 0.0, 1.0)).astype(
            _F32
        )
        haze_reflect = np.array((0.36, 0.34, 0.32, 0.29), _F32) * _F32(r.uniform(0.8, 1.25))

    return _Clouds(alpha, haze, shadow, reflect.astype(_F32), haze_reflect)


def _draw_label(opacity: np.ndarray) -> np.ndarray:
    """Cloud where opacity > :data:`LABEL_OPACITY`, smoothed like a hand-drawn mask."""
    n = opacity.shape[0]
    mask = opacity > LABEL_OPACITY
    if not mask.any() or mask.all():
        return mask.astype(np.uint8)
    soft = ndi.gaussian_filter(mask.astype(_F32), max(0.7, n / 200.0), mode="nearest")
    mask = soft > 0.5
    min_area = max(2, int(0.0004 * n * n))
    for value in (True, False):  # drop specks, then fill pinholes
        target = mask if value else ~mask
        lab, count = ndi.label(target)
        if count:
            sizes = np.bincount(lab.ravel())
            small = sizes < min_area
            small[0] = False
            mask = np.where(small[lab], not value, mask)
    return mask.astype(np.uint8)


def _swath_edge(rng: np.random.Generator, n: int, fraction: float) -> np.ndarray:
    """Boolean nodata mask beyond a straight swath edge covering ``fraction`` of the chip."""
    yy, xx = _grid(n)
    if rng.random() < 0.6:  # a near north-south orbit edge
        theta = rng.normal(0.0, 0.25) + (0.0 if rng.random() < 0.5 else math.pi)
    else:
        theta = rng.uniform(0.0, 2 * math.pi)
    d = xx * _F32(math.cos(theta)) + yy * _F32(math.sin(theta))
    return d > np.quantile(d, 1.0 - fraction)


# ------------------------------------------------------------------------ chips


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
        bands[:, nodata] = 0
        label[nodata] = _NODATA_LABEL

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


# ---------------------------------------------------------------- label errors


def _cloud_fraction(label: np.ndarray) -> float:
    valid = label != _NODATA_LABEL
    nv = int(valid.sum())
    return float((label[valid] == 1).sum()) / nv if nv else 0.0


def _changed_fraction(wrong: np.ndarray, truth: np.ndarray) -> float:
    valid = truth != _NODATA_LABEL
    nv = int(valid.sum())
    return float((wrong[valid] != truth[valid]).sum()) / nv if nv else 0.0


def _iou(a: np.ndarray, b: np.ndarray, valid: np.ndarray) -> float:
    """IoU of the cloud (value 1) of two labels over ``valid`` (1 when both are empty)."""
    ca = (a == 1) & valid
    cb = (b == 1) & valid
    union = int((ca | cb).sum())
    return float((ca & cb).sum()) / union if union else 1.0


def _shift(rng: np.random.Generator, cloud: np.ndarray) -> np.ndarray:
    """Shift a binary mask by 8-15 % of its size, repeating the edge it uncovers."""
    h, w = cloud.shape
    angle = rng.uniform(0.0, 2 * math.pi)
    dist = rng.uniform(0.08, 0.15) * max(h, w)
    dr = int(round(dist * math.sin(angle)))
    dc = int(round(dist * math.cos(angle)))
    if dr == 0 and dc == 0:
        dc = 1
    rows = np.clip(np.arange(h) - dr, 0, h - 1)
    cols = np.clip(np.arange(w) - dc, 0, w - 1)
    return cloud[rows][:, cols]


def _drop_half(rng: np.random.Generator, cloud: np.ndarray) -> np.ndarray:
    """Remove about half of the cloud: whole components first, then a cut of the largest."""
    from skimage.measure import label as cc_label

    lab, count = cc_label(cloud, connectivity=2, return_num=True)
    if count == 0:
        return cloud.copy()
    sizes = np.bincount(lab.ravel())[1:]
    total = int(sizes.sum())
    goal = total * rng.uniform(0.42, 0.58)
    lo, hi = 0.38 * total, 0.62 * total
    drop = np.zeros(count + 1, bool)
    removed = 0
    for i in rng.permutation(count):
        if removed >= lo:
            break
        if removed + sizes[i] <= hi:
            drop[i + 1] = True
            removed += int(sizes[i])
    out = cloud & ~drop[lab]
    if removed < lo:
        # cut the largest remaining component along a random straight line
        left = np.where(drop[1:], -1, sizes)
        big = int(np.argmax(left)) + 1
        rr, cc = np.nonzero(lab == big)
        theta = rng.uniform(0.0, 2 * math.pi)
        proj = rr * math.sin(theta) + cc * math.cos(theta)
        need = int(min(len(rr), max(1, round(goal - removed))))
        order = np.argsort(proj, kind="stable")[:need]
        out[rr[order], cc[order]] = False
    return out


def corrupt_label(
    rng: np.random.Generator,
    chip: SynthChip,
    kind: str,
    other_label: np.ndarray | None = None,
) -> np.ndarray:
    """Return a wrong label of the given kind.

    The wrong label is uint8 with the chip's shape, and 255 is kept where the true
    label is 255. The corruption is applied mechanically; it is up to the caller to choose a chip
    on which it is a real error (as :func:`generate_dataset` does): ``all_cloud`` on
    clear or partly cloudy chips, ``no_cloud`` on cloudy ones, ``shift`` and
    ``half_missing`` on partly cloudy ones, ``swap`` with a label that disagrees.

    Args:
        rng: random generator (used by ``shift`` and ``half_missing``).
        chip: the chip whose true label is corrupted.
        kind: one of :data:`ERROR_KINDS`:
            ``all_cloud`` everything cloud; ``no_cloud`` everything clear;
            ``shift`` the mask moved by 8-15 % of the chip size in a random
            direction, the uncovered edge filled by repeating the mask's edge;
            ``swap`` ``other_label`` (another chip's label; its 255 become 0);
            ``half_missing`` about half of the cloud area removed by dropping
            whole connected components, or cutting the largest one.
        other_label: the label to swap in, required for ``swap``.

    Returns:
        The wrong label: 0/1 on valid pixels, 255 where the true label is 255.

    Raises:
        ValueError: on an unknown kind, or a missing or misshapen ``other_label``.
    """
    truth = chip.label
    valid = truth != _NODATA_LABEL
    cloud = truth == 1
    if kind == "all_cloud":
        out = np.ones(truth.shape, np.uint8)
    elif kind == "no_cloud":
        out = np.zeros(truth.shape, np.uint8)
    elif kind == "shift":
        out = _shift(rng, cloud).astype(np.uint8)
    elif kind == "swap":
        if other_label is None:
            raise ValueError("kind 'swap' needs other_label (another chip's label)")
        other = np.asarray(other_label)
        if other.shape != truth.shape:
            raise ValueError(f"other_label has shape {other.shape}, the chip's label {truth.shape}")
        out = (other == 1).astype(np.uint8)
    elif kind == "half_missing":
        out = _drop_half(rng, cloud).astype(np.uint8)
    else:
        raise ValueError(f"unknown error kind {kind!r}; choose one of {', '.join(ERROR_KINDS)}")
    out[~valid] = _NODATA_LABEL
    return out


def _is_real_error(chip: SynthChip, kind: str, wrong: np.ndarray) -> bool:
    """Whether ``wrong`` is a meaningful error of ``kind`` for this chip."""
    truth = chip.label
    if _changed_fraction(wrong, truth) < MIN_CHANGED:
        return False
    cf = chip.cloud_fraction
    if kind == "all_cloud":
        return chip.sky != "overcast" and cf < 0.7
    if kind == "no_cloud":
        return chip.sky == "overcast" or cf > 0.3
    if kind == "shift":
        return chip.sky == "partial" and 0.1 <= cf <= 0.9
    if kind == "half_missing":
        return chip.sky == "partial" and cf >= 0.1
    if kind == "swap":
        return _iou(wrong, truth, truth != _NODATA_LABEL) < 0.5
    return False


# ---------------------------------------------------------------------- dataset

_COMPATIBLE = {
    "all_cloud": ("clear", "partial"),
    "no_cloud": ("overcast", "partial"),
    "shift": ("partial",),
    "half_missing": ("partial",),
    "swap": SKIES,
}
# preferred sky for the common mistakes (a 100 % label on a clear chip, and the reverse)
_PREFERRED = {"all_cloud": "clear", "no_cloud": "overcast"}
# partial-sky cloud-fraction range that makes each kind a clear error
_CF_RANGE = {
    None: (0.05, 0.9),
    "all_cloud": (0.05, 0.55),
    "no_cloud": (0.4, 0.9),
    "shift": (0.2, 0.75),
    "half_missing": (0.2, 0.8),
    "swap": (0.05, 0.9),
}
# ids that CSV readers turn into missing values or booleans
_BAD_IDS = frozenset({"null", "none", "true"})


def _allocate(rng: np.random.Generator, n: int, shares: dict[str, float]) -> list[str]:
    """``n`` items split by ``shares`` (largest remainder), shuffled."""
    keys = list(shares)
    p = np.array([shares[k] for k in keys], float)
    raw = p / p.sum() * n
    counts = np.floor(raw).astype(int)
    rest = n - counts.sum()
    order = np.argsort(-(raw - counts), kind="stable")
    counts[order[:rest]] += 1
    items = [k for k, c in zip(keys, counts, strict=True) for _ in range(c)]
    return [items[i] for i in rng.permutation(len(items))]


def _chip_ids(rng: np.random.Generator, n: int) -> list[str]:
    """``n`` unique four-letter lowercase ids."""
    letters = np.array(list("abcdefghijklmnopqrstuvwxyz"))
    space = 26**4
    if n > space - len(_BAD_IDS):
        raise ValueError(
            f"at most {space - len(_BAD_IDS)} chips can have four-letter ids, asked for {n}"
        )
    ids: list[str] = []
    seen: set[str] = set()
    while len(ids) < n:
        for code in rng.choice(space, size=min(space, n - len(ids) + 8), replace=False):
            digits = [(int(code) // 26**k) % 26 for k in (3, 2, 1, 0)]
            cid = "".join(letters[digits])
            if cid in seen or cid in _BAD_IDS:
                continue
            seen.add(cid)
            ids.append(cid)
            if len(ids) == n:
                break
    return ids


def _plan_errors(rng: np.random.Generator, skies: list[str], n_err: int) -> list[str | None]:
    """Assign an error kind to ``n_err`` chips whose sky makes the kind a real error."""
    kinds: list[str | None] = [None] * len(skies)
    if n_err == 0:
        return kinds
    wanted = _allocate(rng, n_err, ERROR_SHARES)
    # the most constrained kinds first
    wanted.sort(key=lambda k: len(_COMPATIBLE[k]))
    fallbacks = ("swap", "all_cloud", "no_cloud", "shift", "half_missing")
    for kind in wanted:
        for k in (kind,) + fallbacks:
            pool = [
                i
                for i, s in enumerate(skies)
                if kinds[i] is None
                and s in _COMPATIBLE[k]
                and not (k == "swap" and i == 0 and len(skies) > 1)
            ]
            if pool:
                w = np.array([2.0 if skies[i] == _PREFERRED.get(k) else 1.0 for i in pool])
                kinds[pool[int(rng.choice(len(pool), p=w / w.sum()))]] = k
                break
    return kinds


def _plan_donors(
    rng: np.random.Generator, skies: list[str], kinds: list[str | None]
) -> dict[int, list[int]]:
    """For each swap chip, earlier chips whose labels likely disagree with its own."""
    donors: dict[int, list[int]] = {}
    for i, kind in enumerate(kinds):
        if kind != "swap" or i == 0:
            continue
        good = [j for j in range(i) if skies[j] != skies[i] or skies[i] == "partial"]
        if not good:
            good = list(range(i))
        pick = rng.choice(len(good), size=min(4, len(good)), replace=False)
        donors[i] = [good[int(p)] for p in pick]
    return donors


def _write_tif(path: Path, data: np.ndarray, crs: object, transform: Affine, nodata: int) -> None:
    import rasterio

    with rasterio.open(
        path,
        "w",
        driver="GTiff",
        height=data.shape[0],
        width=data.shape[1],
        count=1,
        dtype=data.dtype.name,
        nodata=nodata,
        crs=crs,
        transform=transform,
    ) as dst:
        dst.write(data, 1)


@functools.lru_cache(maxsize=64)
def _crs(text: str) -> object:
    from rasterio.crs import CRS

    return CRS.from_string(text)


def _empty_or_new(path: Path, what: str) -> None:
    if path.exists():
        if not path.is_dir():
            raise FileExistsError(
                f"{what} {path} exists and is not a folder; choose an empty folder"
            )
        if any(path.iterdir()):
            raise FileExistsError(
                f"{what} {path} is not empty; "
                "choose an empty (or new) folder for the synthetic dataset"
            )


SCL_CLASSES = {
    "no_data": 0,
    "cloud_shadow": 3,
    "vegetation": 4,
    "not_vegetated": 5,
    "water": 6,
    "cloud_medium": 8,
    "cloud_high": 9,
    "thin_cirrus": 10,
    "snow": 11,
}
"""Sen2Cor Scene Classification codes that :func:`make_scl` writes."""
_SCL_SURFACE = {"vegetation": 4, "crops": 4, "bare_soil": 5, "urban": 5, "water": 6, "snow": 11}


#: Shadow strength above which :func:`make_scl` calls a pixel cloud shadow.
SCL_SHADOW_STRENGTH = 0.3


def _degrade_edges(rng: np.random.Generator, mask: np.ndarray) -> np.ndarray:
    """Erode a mask by 1-2 px and flip 30 % of the pixels along its new edge."""
    if not mask.any() or mask.all():
        return mask
    # border_value=1: Sen2Cor does not erode clouds where the image ends
    mask = ndi.binary_erosion(mask, iterations=int(rng.integers(1, 3)), border_value=1)
    edge = mask ^ ndi.binary_dilation(mask)
    return mask ^ (edge & (rng.random(edge.shape) < 0.3))


def _half(field: np.ndarray, h2: int, w2: int, how: str) -> np.ndarray:
    h, w = field.shape
    f = np.pad(field, ((0, 2 * h2 - h), (0, 2 * w2 - w)), mode="edge").reshape(h2, 2, w2, 2)
    return f.mean((1, 3)) if how == "mean" else f.any((1, 3))


def make_scl(rng: np.random.Generator, chip: SynthChip) -> np.ndarray:
    """A plausible Sen2Cor Scene Classification Layer at 20 m (half the chip's resolution).

    Built from the chip's true cloud opacity and shadow, degraded the way Sen2Cor is
    known to err: cloud and shadow edges eroded (it misses their boundaries), a few
    boundary pixels flipped, thin cloud called cirrus. Codes: 9 high / 8 medium
    probability cloud, 10 thin cirrus, 3 cloud shadow (where the shadow strength
    exceeds :data:`SCL_SHADOW_STRENGTH` outside the clouds), the dominant surface class
    elsewhere (4 vegetation, 5 not vegetated, 6 water, 11 snow), 0 where the chip has
    no data.
    """
    h, w = chip.opacity.shape
    h2, w2 = (h + 1) // 2, (w + 1) // 2
    op = _half(chip.opacity, h2, w2, "mean")
    valid = _half(chip.label != _NODATA_LABEL, h2, w2, "any")
    scl = np.full((h2, w2), _SCL_SURFACE.get(chip.land_cover, 5), np.uint8)
    cloud = _degrade_edges(rng, op > LABEL_OPACITY)
    if chip.shadow is not None:
        shadow = _degrade_edges(rng, _half(chip.shadow, h2, w2, "mean") > SCL_SHADOW_STRENGTH)
        scl[shadow & (op <= 0.15)] = SCL_CLASSES["cloud_shadow"]
    scl[(op > 0.15) & ~cloud] = SCL_CLASSES["thin_cirrus"]
    scl[cloud] = SCL_CLASSES["cloud_medium"]
    scl[cloud & (op > 0.65)] = SCL_CLASSES["cloud_high"]
    scl[~valid] = SCL_CLASSES["no_data"]
    return scl


#: Where :func:`write_scene` puts a generated scene: UTM 33N, 10 m pixels.
SCENE_CRS = "EPSG:32633"
SCENE_ORIGIN = (300_000.0, 5_000_000.0)


def write_scene(
    path: str | Path,
    size: int | tuple[int, int],
    *,
    seed: int = 0,
    block: int = 512,
    scl_path: str | Path | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> Path:
    """Write a synthetic four-band scene GeoTIFF and, optionally, its 20 m SCL.

    The scene is partly cloudy synthetic chips of ``block`` pixels side by side, written
    one block at a time (memory holds one block whatever the scene's size): a tiled,
    uint16 GeoTIFF with nodata 0 and band descriptions B02, B03, B04, B08, on UTM 33N
    with 10 m pixels. ``scl_path`` gets the matching Sen2Cor-like SCL at 20 m
    (:func:`make_scl` of each block, from its own random stream).

    Args:
        path: the scene file to write.
        size: side in pixels, or ``(height, width)``.
        seed: random seed; the scene is reproducible from it.
        block: side of the chips it is made of (even, at least 16).
        scl_path: where to write the SCL, or None.
        progress: called as ``progress(done, total)`` after each block.

    Returns:
        ``path``.
    """
    import rasterio
    from rasterio.windows import Window

    h, w = (size, size) if isinstance(size, int) else size
    if block % 2 or block < _MIN_SIZE:
        raise ValueError(f"block must be even and at least {_MIN_SIZE}, got {block}")
    transform = Affine(10.0, 0.0, SCENE_ORIGIN[0], 0.0, -10.0, SCENE_ORIGIN[1])
    common = {"driver": "GTiff", "crs": _crs(SCENE_CRS), "tiled": True, "nodata": 0}
    blocks = [(y, x) for y in range(0, h, block) for x in range(0, w, block)]
    rng = np.random.default_rng(seed)
    with contextlib.ExitStack() as stack:
        dst = stack.enter_context(
            rasterio.open(
                path,
                "w",
                height=h,
                width=w,
                count=4,
                dtype="uint16",
                transform=transform,
                blockxsize=256,
                blockysize=256,
                **common,
            )
        )
        for i, name in enumerate(BANDS):
            dst.set_band_description(i + 1, name)
        scl_dst = None
        if scl_path is not None:
            scl_dst = stack.enter_context(
                rasterio.open(
                    scl_path,
                    "w",
                    height=(h + 1) // 2,
                    width=(w + 1) // 2,
                    count=1,
                    dtype="uint8",
                    transform=transform * Affine.scale(2.0),
                    blockxsize=256,
                    blockysize=256,
                    **common,
                )
            )
        for k, (y, x) in enumerate(blocks):
            chip = _make_chip(rng, "s", block, sky="partial")
            bh, bw = min(block, h - y), min(block, w - x)
            dst.write(chip.bands[:, :bh, :bw], window=Window(x, y, bw, bh))
            if scl_dst is not None:
                scl = make_scl(np.random.default_rng([seed, k, 20]), chip)
                sh, sw = (bh + 1) // 2, (bw + 1) // 2
                scl_dst.write(scl[:sh, :sw], 1, window=Window(x // 2, y // 2, sw, sh))
            if progress is not None:
                progress(k + 1, len(blocks))
    return Path(path)


def generate_dataset(
    out: str | Path,
    n_chips: int = 200,
    size: int = 256,
    *,
    error_rate: float = 0.15,
    seed: int = 0,
    layout: str = "oncloudn",
    truth_dir: str | Path | None = None,
    nodata_rate: float = 0.05,
    progress: Callable[[int, int], None] | None = None,
    with_scl: bool = True,
) -> SynthResult:
    """Write a synthetic chip dataset with planted label errors, and its truth.

    Skies and dominant land covers are split in fixed shares (overcast 40 %, clear
    10 %, partial 50 %); ``round(error_rate * n_chips)`` chips get a wrong label,
    35 % ``all_cloud``, 35 % ``no_cloud`` and 10 % each ``shift``, ``swap`` and
    ``half_missing``, each on a chip where it changes at least 5 % of the valid
    pixels. The result is byte-for-byte reproducible from ``seed``. Chips are made
    and written one at a time.

    Layouts:
        ``oncloudn``: ``out/train_features/<id>/B0?.tif``, ``out/train_labels/<id>.tif``
        and ``out/train_metadata.csv`` (chip_id, location, datetime, cloudpath).
        ``flat``: ``out/<id>/B0?.tif`` and ``out/<id>/label.tif``.

    Every file is a single-band, uncompressed, untiled GeoTIFF on the chip's UTM grid:
    bands uint16 with nodata 0, labels uint8 with nodata 255.

    The truth folder (default ``<out>-truth`` next to ``out``) gets
    ``planted_errors.csv`` (chip_id, corrupted, error_kind, sky, land_cover,
    true_cloud_fraction, label_cloud_fraction, changed_fraction, has_nodata; the
    fractions over valid pixels) and ``true_labels/<id>.tif`` for every chip.

    Args:
        out: dataset folder; created, and must be empty if it exists.
        n_chips: number of chips.
        size: chip side in pixels (at least 16).
        error_rate: share of chips with a planted wrong label, 0..1.
        seed: random seed.
        layout: ``"oncloudn"`` or ``"flat"``.
        truth_dir: where to put the truth; must be outside ``out``.
        nodata_rate: probability that a chip has a nodata swath edge (10-40 % of it).
        progress: called as ``progress(done, total)`` after each chip.
        with_scl: also write a Sen2Cor-like ``SCL.tif`` (20 m) beside each chip's bands
            (see :func:`make_scl`).

    Returns:
        Where everything went and the chip ids.

    Raises:
        FileExistsError: ``out`` or ``truth_dir`` exists and is not empty.
        ValueError: on a bad layout, rate, size or count, or a truth folder inside ``out``.
    """
    import rasterio

    if layout not in ("oncloudn", "flat"):
        raise ValueError(f"unknown layout {layout!r}; choose 'oncloudn' or 'flat'")
    if not 0.0 <= error_rate <= 1.0:
        raise ValueError(f"error_rate must be between 0 and 1, got {error_rate}")
    if not 0.0 <= nodata_rate <= 1.0:
        raise ValueError(f"nodata_rate must be between 0 and 1, got {nodata_rate}")
    n_chips = int(n_chips)
    if n_chips < 1:
        raise ValueError(f"n_chips must be at least 1, got {n_chips}")
    size = int(size)
    if size < _MIN_SIZE:
        raise ValueError(f"size must be at least {_MIN_SIZE} pixels, got {size}")

    root = Path(out).expanduser().absolute()
    truth = (
        Path(truth_dir).expanduser().absolute()
        if truth_dir is not None
        else root.with_name(root.name + "-truth")
    )
    if truth == root or root in truth.parents:
        raise ValueError(f"the truth folder {truth} must be outside the dataset folder {root}")
    if truth in root.parents:
        raise ValueError(f"the dataset folder {root} must not be inside the truth folder {truth}")
    _empty_or_new(root, "output folder")
    _empty_or_new(truth, "truth folder")

    # the plan: ids, skies, covers, nodata, error kinds, swap donors
    plan_seq, chip_seq = np.random.SeedSequence(seed).spawn(2)
    plan = np.random.default_rng(plan_seq)
    chip_seeds = chip_seq.spawn(n_chips)
    ids = _chip_ids(plan, n_chips)
    skies = _allocate(plan, n_chips, SKY_SHARES)
    covers = _allocate(plan, n_chips, LAND_COVER_SHARES)
    nodata = [
        float(plan.uniform(0.1, 0.4)) if plan.random() < nodata_rate else 0.0
        for _ in range(n_chips)
    ]
    kinds = _plan_errors(plan, skies, int(round(error_rate * n_chips)))
    donors = _plan_donors(plan, skies, kinds)
    # true labels of donor chips are kept in memory until their last swap chip is made
    last_use = {j: i for i in sorted(donors) for j in donors[i]}
    kept: dict[int, np.ndarray] = {}

    root.mkdir(parents=True, exist_ok=True)
    (truth / "true_labels").mkdir(parents=True, exist_ok=True)
    if layout == "oncloudn":
        (root / "train_features").mkdir(exist_ok=True)
        (root / "train_labels").mkdir(exist_ok=True)

    meta_rows: list[dict[str, str]] = []
    truth_rows: list[dict[str, str]] = []
    with rasterio.Env(GDAL_DISABLE_READDIR_ON_OPEN="EMPTY_DIR"):
        for i, cid in enumerate(ids):
            rng = np.random.default_rng(chip_seeds[i])
            kind = kinds[i]
            chip = wrong = None
            for _attempt in range(8):
                chip = _make_chip(
                    rng,
                    cid,
                    size,
                    sky=skies[i],
                    land_cover=covers[i],
                    nodata_fraction=nodata[i],
                    cloud_fraction=_CF_RANGE[kind],
                )
                if kind is None:
                    break
                wrong = _plant(
                    rng, chip, kind, [kept[j] for j in donors.get(i, []) if j in kept], size
                )
                if wrong is not None:
                    break
            assert chip is not None
            if kind is not None and wrong is None:
                kind = None  # could not make a real error of this kind (very small chips)
            written = wrong if wrong is not None else chip.label
            if i in last_use:
                kept[i] = chip.label.copy()
            for j in [j for j, last in last_use.items() if last == i]:
                kept.pop(j, None)

            crs = _crs(chip.crs)
            if layout == "oncloudn":
                fdir = root / "train_features" / cid
                label_path = root / "train_labels" / f"{cid}.tif"
            else:
                fdir = root / cid
                label_path = fdir / "label.tif"
            fdir.mkdir(parents=True, exist_ok=True)
            for b, name in enumerate(BANDS):
                _write_tif(fdir / f"{name}.tif", chip.bands[b], crs, chip.transform, 0)
            _write_tif(label_path, written, crs, chip.transform, _NODATA_LABEL)
            if with_scl:  # own random stream: the chips are the same with or without SCL
                scl = make_scl(np.random.default_rng([seed, i, 20]), chip)
                scl_transform = chip.transform * Affine.scale(2.0)
                _write_tif(fdir / "SCL.tif", scl, crs, scl_transform, 0)
            _write_tif(
                truth / "true_labels" / f"{cid}.tif", chip.label, crs, chip.transform, _NODATA_LABEL
            )

            meta_rows.append(
                {
                    "chip_id": cid,
                    "location": chip.location,
                    "datetime": chip.datetime,
                    "cloudpath": f"az://./train_features/{cid}",
                }
            )
            truth_rows.append(
                {
                    "chip_id": cid,
                    "corrupted": str(kind is not None),
                    "error_kind": kind or "",
                    "sky": chip.sky,
                    "land_cover": chip.land_cover,
                    "true_cloud_fraction": f"{chip.cloud_fraction:.6f}",
                    "label_cloud_fraction": f"{_cloud_fraction(written):.6f}",
                    "changed_fraction": f"{_changed_fraction(written, chip.label):.6f}",
                    "has_nodata": str(bool((chip.label == _NODATA_LABEL).any())),
                }
            )
            del chip, wrong, written
            if progress is not None:
                progress(i + 1, n_chips)

    if layout == "oncloudn":
        _write_csv(root / "train_metadata.csv", meta_rows)
    truth_csv = truth / "planted_errors.csv"
    _write_csv(truth_csv, truth_rows)
    return SynthResult(root=root, truth_dir=truth, truth_csv=truth_csv, chip_ids=ids)


def _plant(
    rng: np.random.Generator, chip: SynthChip, kind: str, donors: list[np.ndarray], size: int
) -> np.ndarray | None:
    """A real error of ``kind`` on ``chip``, or None when this chip cannot carry one."""
    if kind == "swap":

        def candidates() -> Iterator[np.ndarray]:
            yield from donors
            # labels of other (unwritten) chips when no dataset chip disagrees enough
            for sky in ("partial", "partial", "overcast" if chip.cloud_fraction < 0.5 else "clear"):
                yield _make_chip(rng, "swap", size, sky=sky).label

        for other in candidates():
            wrong = corrupt_label(rng, chip, "swap", other)
            if _is_real_error(chip, kind, wrong):
                return wrong
        return None
    tries = 4 if kind in ("shift", "half_missing") else 1
    for _ in range(tries):
        wrong = corrupt_label(rng, chip, kind)
        if _is_real_error(chip, kind, wrong):
            return wrong
    return None


def _write_csv(path: Path, rows: list[dict[str, str]]) -> None:
    if not rows:
        return
    with open(path, "w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
