"""The records chipqa passes around: where a chip's files are, and its pixels."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from chipqa.constants import BANDS  # noqa: F401  (named in the docstrings below)


class DataWarning(UserWarning):
    """Something about a dataset's files that chipqa worked around but that should be
    fixed (a label's wrong nodata tag, a damaged chip cache); the message says how."""


@dataclass(frozen=True)
class ChipRecord:
    """Where the files of one chip are; nothing is opened until the chip is read.

    Attributes:
        chip_id: the chip's name.
        folder: the folder holding its band files.
        band_paths: one path per band, in :data:`BANDS` order.
        label_path: the label file, or ``None`` for an unlabelled chip.
        metadata: extra columns from the dataset's metadata CSV (location, datetime, …).
        problem: set when the listing already shows the chip cannot be read (for example
            a metadata row naming a chip whose folder does not exist).
        label_source: ``"original"`` (the dataset's own label) or ``"fixed"``: a
            reviewer's label fix stands for it, and ``label_path`` is the fix file in
            ``<dataset>_chipqa_fixes`` (see :func:`~chipqa.data.open_dataset`).
        original_label_path: the dataset's own label file of a fixed chip (None for an
            original one: ``label_path`` is that file).
    """

    chip_id: str
    folder: Path
    band_paths: tuple[Path, ...]
    label_path: Path | None
    metadata: Mapping[str, str] = field(default_factory=dict)
    problem: str | None = None
    label_source: str = "original"
    original_label_path: Path | None = None

    @property
    def fixed(self) -> bool:
        """True when a label fix stands for the dataset's label."""
        return self.label_source == "fixed"

    def original(self) -> ChipRecord:
        """The record with the dataset's own label (itself when it is not fixed)."""
        if not self.fixed:
            return self
        return replace(
            self, label_path=self.original_label_path, label_source="original",
            original_label_path=None,
        )  # fmt: skip

    def with_fix(self, fix_path: Path) -> ChipRecord:
        """The record with ``fix_path`` standing for its label."""
        base = self.original()
        return replace(
            base, label_path=Path(fix_path), label_source="fixed",
            original_label_path=base.label_path,
        )  # fmt: skip


@dataclass
class Chip:
    """The pixels of one chip.

    Attributes:
        chip_id: the chip's name.
        bands: ``(4, H, W)`` uint16 reflectance x 10 000 in :data:`BANDS` order.
        label: ``(H, W)`` uint8 label (0 clear, 1 cloud, 255 no label) or ``None``.
            Pixels where a band is nodata are set to 255 too.
        valid: ``(H, W)`` bool: every band has data and (when there is a label) the
            label is 0 or 1. Every statistic is computed over these pixels only.
        crs: the chip's coordinate reference system (WKT or EPSG string).
        transform: the affine transform of its grid.
    """

    chip_id: str
    bands: np.ndarray
    label: np.ndarray | None
    valid: np.ndarray
    crs: str | None = None
    transform: tuple[float, ...] | None = None
    scl: np.ndarray | None = None
    """Sen2Cor Scene Classification Layer on the chip's grid (from ``SCL.tif`` beside the
    bands, resampled by nearest neighbour), or None."""

    @property
    def shape(self) -> tuple[int, int]:
        return int(self.bands.shape[1]), int(self.bands.shape[2])
