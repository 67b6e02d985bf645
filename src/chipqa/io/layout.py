"""The two dataset layouts chipqa reads and writes, as path rules.

* **On Cloud N** (the layout of the Sentinel-2 Cloud Cover Detection challenge, also
  read by torchgeo's ``CloudCoverDetection``)::

      ROOT/train_features/<chip_id>/B02.tif B03.tif B04.tif B08.tif [SCL.tif]
      ROOT/train_labels/<chip_id>.tif
      ROOT/train_metadata.csv          (optional: chip_id, location, datetime, cloudpath)

* **flat**::

      ROOT/<chip_id>/B02.tif B03.tif B04.tif B08.tif label.tif [SCL.tif]

The dataset reader (:mod:`chipqa.data`) lists chips with these rules and the synthetic
generator (:mod:`chipqa.synth`) writes with them, so the two can never disagree.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from chipqa.constants import BANDS, SCL_NAME
from chipqa.errors import DatasetError

ONCLOUDN = "oncloudn"
FLAT = "flat"
LAYOUTS = (ONCLOUDN, FLAT)

FEATURES_DIR = "train_features"
LABELS_DIR = "train_labels"
METADATA_NAME = "train_metadata.csv"
FLAT_LABEL_NAME = "label.tif"

LAYOUT_HELP = (
    "chipqa reads two layouts: On Cloud N (ROOT/train_features/<chip_id>/B02.tif … B08.tif, "
    "ROOT/train_labels/<chip_id>.tif, optional ROOT/train_metadata.csv) or flat "
    "(ROOT/<chip_id>/B02.tif … B08.tif and ROOT/<chip_id>/label.tif). "
    "`chipqa synth FOLDER` writes an example."
)

_CHIP_ID = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]*$")


def is_safe_chip_id(chip_id: str) -> bool:
    """True when ``chip_id`` is a plain name that cannot point outside the dataset folder."""
    return bool(_CHIP_ID.match(chip_id)) and ".." not in chip_id


def check_layout(layout: str) -> str:
    if layout not in LAYOUTS:
        raise ValueError(f"layout must be one of {', '.join(LAYOUTS)}, not {layout!r}")
    return layout


def chip_folder(root: Path, layout: str, chip_id: str) -> Path:
    """The folder holding a chip's band files."""
    root = Path(root)
    return root / FEATURES_DIR / chip_id if check_layout(layout) == ONCLOUDN else root / chip_id


def band_paths(folder: Path) -> tuple[Path, ...]:
    """A chip's band files in :data:`~chipqa.constants.BANDS` order."""
    return tuple(Path(folder) / f"{b}.tif" for b in BANDS)


def label_path(root: Path, layout: str, chip_id: str) -> Path:
    """Where a chip's label file is (whether or not it exists)."""
    root = Path(root)
    if check_layout(layout) == ONCLOUDN:
        return root / LABELS_DIR / f"{chip_id}.tif"
    return root / chip_id / FLAT_LABEL_NAME


def scl_path(folder: Path) -> Path:
    """Where a chip's optional Sen2Cor SCL is: beside its bands."""
    return Path(folder) / SCL_NAME


def metadata_path(root: Path) -> Path:
    """The On Cloud N metadata CSV of a dataset."""
    return Path(root) / METADATA_NAME


def subdirs(root: Path) -> list[Path]:
    """Visible sub-folders of ``root``, sorted."""
    with os.scandir(root) as it:
        return sorted(Path(e.path) for e in it if e.is_dir() and not e.name.startswith("."))


def file_names(folder: Path) -> set[str]:
    """Names of the files in ``folder`` (empty when it cannot be listed)."""
    try:
        with os.scandir(folder) as it:
            return {e.name for e in it if e.is_file()}
    except OSError:
        return set()


def is_flat_chip_folder(names: set[str]) -> bool:
    """True when a folder's file names make it a flat-layout chip."""
    return FLAT_LABEL_NAME in names or any(f"{b}.tif" in names for b in BANDS)


def detect_layout(root: str | Path) -> str:
    """Return ``"oncloudn"`` or ``"flat"`` for a dataset folder.

    Raises:
        DatasetError: the folder does not exist, is empty or holds neither layout.
    """
    root = Path(root)
    if not root.exists():
        raise DatasetError(f"dataset folder {root} does not exist. {LAYOUT_HELP}")
    if not root.is_dir():
        raise DatasetError(f"{root} is a file, not a dataset folder. {LAYOUT_HELP}")
    if (root / FEATURES_DIR).is_dir():
        return ONCLOUDN
    dirs = subdirs(root)
    if not dirs and not any(True for _ in os.scandir(root)):
        raise DatasetError(f"dataset folder {root} is empty. {LAYOUT_HELP}")
    for sub in dirs:
        if is_flat_chip_folder(file_names(sub)):
            return FLAT
    raise DatasetError(f"{root} holds no chips in a layout chipqa knows. {LAYOUT_HELP}")
