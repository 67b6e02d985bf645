"""Plant label errors of every kind into any label, real or generated.

:func:`plant_error` works on a plain label array (0 clear, 1 cloud, 255 no label), so the
benchmark can plant errors into copies of real chips (``bench/real_quality.py``) as well
as generated ones. Gross kinds change much of the chip; subtle ones a few per cent:

* gross: ``all_cloud``, ``no_cloud``, ``swap`` (another chip's label), ``shift`` (the mask
  moved by 8-15 % of the chip), ``half_missing`` (about half of the cloud removed);
* subtle: ``blob_erased`` (a cloud-shaped region of 1.5-6 % of the chip cut out of the
  label's cloud), ``blob_added`` (a cloud-shaped blob of 1.5-6 % drawn on clear ground,
  away from the clouds), ``tight`` / ``loose`` (the whole label drawn 4-7 px inside /
  outside its edge).
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage as ndi

from chipqa.constants import LABEL_NODATA
from chipqa.synth.corruption import _drop_half, _shift

GROSS_KINDS = ("all_cloud", "no_cloud", "swap", "shift", "half_missing")
SUBTLE_KINDS = ("blob_erased", "blob_added", "tight", "loose")
ALL_KINDS = GROSS_KINDS + SUBTLE_KINDS

MIN_CHANGED = {"gross": 0.05, "subtle": 0.01}
"""A planted error changes at least this share of the valid pixels."""


def _disk(r: int) -> np.ndarray:
    y, x = np.ogrid[-r : r + 1, -r : r + 1]
    return x * x + y * y <= r * r


def cloud_blob(rng: np.random.Generator, shape: tuple[int, int], area: float) -> np.ndarray:
    """A cloud-shaped blob of about ``area`` pixels: a disc with a ragged, noisy edge."""
    h, w = shape
    r = max(np.sqrt(area / np.pi), 2.0)
    cy = rng.uniform(min(r, h / 2), max(h - r, h / 2))
    cx = rng.uniform(min(r, w / 2), max(w - r, w / 2))
    yy, xx = np.mgrid[0:h, 0:w]
    dist = np.hypot(yy - cy, xx - cx) / r
    noise = ndi.gaussian_filter(rng.standard_normal(shape), r / 3)
    noise /= noise.std() + 1e-9
    return dist + 0.25 * noise < 1


def _resized(label: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    rows = np.arange(shape[0]) * label.shape[0] // shape[0]
    cols = np.arange(shape[1]) * label.shape[1] // shape[1]
    return label[rows][:, cols]


def _blob_in(rng, shape, area, allowed, tries=30):
    for _ in range(tries):
        m = cloud_blob(rng, shape, area * 1.6) & allowed
        if 0.6 * area <= m.sum() <= 1.6 * area:
            return m
    return None


def plant_error(
    rng: np.random.Generator,
    label: np.ndarray,
    kind: str,
    donors: list[np.ndarray] = (),
) -> np.ndarray | None:
    """A wrong copy of ``label`` of the given ``kind`` (see the module's docstring), or
    None when this label cannot carry that kind as a real error (an all-cloud error on a
    chip already 70 % cloud, a tight label on a chip without cloud, …).

    ``donors`` are other chips' labels for ``swap`` (resized to this chip's shape by
    nearest neighbour when they differ); the first that overlaps this label's cloud by
    less than IoU 0.5 is used. Pixels that are 255 in ``label`` stay 255.
    """
    valid = label != LABEL_NODATA
    cloud = (label == 1) & valid
    n = int(valid.sum())
    if n == 0:
        return None
    frac = cloud.sum() / n
    if kind == "all_cloud":
        out = None if frac > 0.7 else np.ones(label.shape, bool)
    elif kind == "no_cloud":
        out = None if frac < 0.3 else np.zeros(label.shape, bool)
    elif kind == "swap":
        out = None
        for d in donors:
            other = (_resized(d, label.shape) if d.shape != label.shape else d) == 1
            union = (other | cloud)[valid].sum()
            if union and (other & cloud)[valid].sum() / union < 0.5:
                out = other
                break
    elif kind == "shift":
        out = _shift(rng, cloud) if 0.1 <= frac <= 0.9 else None
    elif kind == "half_missing":
        out = _drop_half(rng, cloud) if frac >= 0.1 else None
    elif kind == "blob_erased":
        m = _blob_in(rng, label.shape, rng.uniform(0.015, 0.06) * n, cloud)
        out = None if m is None else cloud & ~m
    elif kind == "blob_added":
        away = valid & ~ndi.binary_dilation(cloud, _disk(6))
        m = _blob_in(rng, label.shape, rng.uniform(0.015, 0.06) * n, away)
        out = None if m is None else cloud | m
    elif kind in ("tight", "loose"):
        r = int(rng.integers(4, 8))
        if kind == "tight":
            out = ndi.binary_erosion(cloud, _disk(r), border_value=1)
        else:
            out = ndi.binary_dilation(cloud, _disk(r))
    else:
        raise ValueError(f"unknown error kind {kind!r}; choose one of {', '.join(ALL_KINDS)}")
    if out is None:
        return None
    wrong = out.astype(np.uint8)
    wrong[~valid] = LABEL_NODATA
    changed = (wrong[valid] != label[valid]).mean()
    if changed < MIN_CHANGED["subtle" if kind in SUBTLE_KINDS else "gross"]:
        return None
    return wrong
