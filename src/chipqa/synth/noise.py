"""Seeded random fields and the per-chip canvas every renderer draws on.

Power-law ("fractal", spectrum ~ 1/f^beta) Gaussian random fields are made by spectral
synthesis with the FFT; :class:`_Canvas` crops them from a grid larger than the chip so
that nothing wraps around, and shades reliefs with the chip's sun. :func:`_jitter` and
:func:`_mix` handle the four-band spectra (B02, B03, B04, B08) of the land covers.
"""

from __future__ import annotations

import functools
import math

import numpy as np
from scipy import fft as _fft

_F32 = np.float32


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
