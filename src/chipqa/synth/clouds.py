"""Clouds, cirrus and their shadows; the hand-drawn true label; nodata swath edges.

Steps 2, 3 and 5 of the physical model (see :mod:`chipqa.synth`): thick cloud opacity
``1 - exp(-tau)`` from a fractal optical depth, the cloud-top reflectance lit by the
chip's sun, the opacity displaced away from the sun as the shadow, optional streaky
cirrus, and the label an annotator would draw (cloud where the opacity exceeds
:data:`LABEL_OPACITY`, smoothed).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy import ndimage as ndi

from chipqa.synth.noise import _F32, _Canvas, _grid, _sigmoid

#: Opacity above which an annotator calls a pixel cloud.
LABEL_OPACITY = 0.35


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
