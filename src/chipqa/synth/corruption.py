"""Planted label errors: the kinds human annotators really produce, and when one is real.

:func:`corrupt_label` applies a kind mechanically; :func:`_is_real_error` says whether
the result is a meaningful error on that chip (at least :data:`MIN_CHANGED` of the
valid pixels change, and the chip's sky suits the kind); :func:`_plant` tries until it
is, as :func:`~chipqa.synth.generate_dataset` needs.
"""

from __future__ import annotations

import math
from collections.abc import Iterator

import numpy as np

from chipqa.constants import LABEL_NODATA
from chipqa.stats.definitions import mask_iou
from chipqa.synth.chip import SynthChip, _make_chip

ERROR_KINDS = ("all_cloud", "no_cloud", "shift", "swap", "half_missing")

#: Share of each kind among the planted errors.
ERROR_SHARES = {
    "all_cloud": 0.35,
    "no_cloud": 0.35,
    "shift": 0.10,
    "swap": 0.10,
    "half_missing": 0.10,
}
#: A planted error must change at least this fraction of the valid pixels.
MIN_CHANGED = 0.05


def _changed_fraction(wrong: np.ndarray, truth: np.ndarray) -> float:
    valid = truth != LABEL_NODATA
    nv = int(valid.sum())
    return float((wrong[valid] != truth[valid]).sum()) / nv if nv else 0.0


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
    label is 255. The corruption is applied mechanically; it is up to the caller to
    choose a chip on which it is a real error (as :func:`~chipqa.synth.generate_dataset`
    does): ``all_cloud`` on clear or partly cloudy chips, ``no_cloud`` on cloudy ones,
    ``shift`` and ``half_missing`` on partly cloudy ones, ``swap`` with a label that
    disagrees.

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
    valid = truth != LABEL_NODATA
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
    out[~valid] = LABEL_NODATA
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
        # (No valid pixel would give NaN, but such a chip has returned above.)
        return mask_iou(wrong == 1, truth == 1, truth != LABEL_NODATA) < 0.5
    return False


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
