"""Does a DN offset fit the chips? A look at a sample of their pixels.

An offset that is a valid number (see :func:`chipqa.predictors.base.dn_offset_problem`)
can still be wrong for a dataset: ``--dn-offset 9999`` on chips whose median DN is 5 153
takes every pixel to a reflectance at or below zero, and every chip scores 0 % or 99 %
cloud. :func:`offset_warning` says so before the work starts.
"""

from __future__ import annotations

import numpy as np

from chipqa.constants import REFLECTANCE_SCALE
from chipqa.data.dataset import ChipDataset
from chipqa.errors import ChipqaError

SAMPLE_CHIPS = 8
"""Chips looked at (spread over the dataset)."""


def offset_warning(dataset: ChipDataset, offset: int, chips: int = SAMPLE_CHIPS) -> str | None:
    """A warning when, with ``offset`` taken off, most valid pixels of a sample of the
    dataset's chips would be at or below zero reflectance (None: they would not, or no
    chip could be read)."""
    if not offset or not len(dataset):
        return None
    picks = np.unique(np.linspace(0, len(dataset) - 1, min(chips, len(dataset))).astype(int))
    values = []
    for i in picks:
        try:
            chip = dataset.read(int(i))
        except ChipqaError:
            continue
        values.append(chip.bands[:, chip.valid].ravel())
    if not values:
        return None
    dn = np.concatenate(values)
    if not dn.size:
        return None
    below = float((dn <= offset).mean())
    if below <= 0.5:
        return None
    return (
        f"warning: with --dn-offset {offset}, {below:.0%} of the pixels of {len(values)} "
        f"chips of {dataset.root} are at or below zero reflectance (their median DN is "
        f"{float(np.median(dn)):.0f}; DN = {REFLECTANCE_SCALE}·reflectance + offset), so "
        "the model sees no light and every score is wrong. Check the offset: 1000 for "
        "Sentinel-2 L2A from January 2022 on, 0 for older products and On Cloud N"
    )
