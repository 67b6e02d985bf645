"""A Sen2Cor-like Scene Classification Layer (SCL) for a synthetic chip.

Not Sen2Cor's algorithm: a degraded copy of the chip's true cloud opacity and shadow at
20 m, wrong the way Sen2Cor is known to be wrong (eroded cloud and shadow edges, a few
flipped boundary pixels, thin cloud called cirrus). Codes are
:data:`chipqa.constants.SCL_CLASSES`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
from scipy import ndimage as ndi

from chipqa.constants import LABEL_NODATA, SCL_CLASSES, SCL_NODATA, SCL_SHADOW
from chipqa.synth.clouds import LABEL_OPACITY

if TYPE_CHECKING:
    from chipqa.synth.chip import SynthChip

# SCL class of each dominant land cover's surface
_SCL_SURFACE = {
    "vegetation": SCL_CLASSES["vegetation"],
    "crops": SCL_CLASSES["vegetation"],
    "bare_soil": SCL_CLASSES["not_vegetated"],
    "urban": SCL_CLASSES["not_vegetated"],
    "water": SCL_CLASSES["water"],
    "snow": SCL_CLASSES["snow"],
}

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
    valid = _half(chip.label != LABEL_NODATA, h2, w2, "any")
    scl = np.full(
        (h2, w2), _SCL_SURFACE.get(chip.land_cover, SCL_CLASSES["not_vegetated"]), np.uint8
    )
    cloud = _degrade_edges(rng, op > LABEL_OPACITY)
    if chip.shadow is not None:
        shadow = _degrade_edges(rng, _half(chip.shadow, h2, w2, "mean") > SCL_SHADOW_STRENGTH)
        scl[shadow & (op <= 0.15)] = SCL_SHADOW
    scl[(op > 0.15) & ~cloud] = SCL_CLASSES["thin_cirrus"]
    scl[cloud] = SCL_CLASSES["cloud_medium"]
    scl[cloud & (op > 0.65)] = SCL_CLASSES["cloud_high"]
    scl[~valid] = SCL_NODATA
    return scl
