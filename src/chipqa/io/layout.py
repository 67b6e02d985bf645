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
from pathlib import Path

from chipqa.constants import BANDS, SCL_NAME
from chipqa.errors import DatasetError
from chipqa.io.spreadsheet import control_characters, needs_escape

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


def is_safe_chip_id(chip_id: str) -> bool:
    """True when ``chip_id`` names one folder inside the dataset folder: not empty, not
    ``.`` or ``..``, no path separator and no control character. Spaces, unicode letters
    and dots inside a name are fine (they point nowhere else)."""
    if chip_id in ("", ".", "..") or any(sep and sep in chip_id for sep in (os.sep, os.altsep)):
        return False
    return not control_characters(chip_id)


def chip_id_problem(chip_id: str, source: str) -> str | None:
    """Why ``chip_id`` (a folder name, or a metadata row when ``source`` names the
    metadata file) cannot be a chip id, or None when it can.

    A chip id must name one folder of the dataset and must be kept exactly in every
    table chipqa writes: one that a spreadsheet would read as a formula (``=``, ``+``,
    ``-``, ``@``, tab, CR at its start) would have to be changed in those tables, so it
    is refused as well.
    """
    bad = control_characters(chip_id)
    if bad:
        return (
            f"chip id {chip_id!r} from {source} holds control characters "
            f"({', '.join(bad)}); rename the chip without them"
        )
    if not is_safe_chip_id(chip_id):
        return (
            f"chip id {chip_id!r} in {source} is not a plain name and would point outside "
            "the dataset folder; fix or delete it"
        )
    if needs_escape(chip_id):
        return (
            f"chip id {chip_id!r} from {source} starts with {chip_id[0]!r}, which "
            "spreadsheets read as a formula; chipqa keeps chip ids exactly as written in "
            "its tables, so rename the chip (its folder and label file)"
        )
    return None


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
    """Visible sub-folders of ``root``, sorted (with links to folders, and looping links)."""
    with os.scandir(root) as it:
        return sorted(Path(e.path) for e in it if not e.name.startswith(".") and _is_dir(e))


def _is_dir(entry: os.DirEntry) -> bool:
    """A folder, or a symbolic link that cannot be followed (a loop): reading the chip
    then says what is wrong with it instead of it vanishing from the listing."""
    try:
        return entry.is_dir()
    except OSError:
        return entry.is_symlink()


def file_names(folder: Path) -> set[str]:
    """Names of the files in ``folder`` (empty when it cannot be listed). A symbolic link
    counts even when its target is missing or a loop, so that reading the chip says so
    instead of the file being taken for absent."""
    try:
        with os.scandir(folder) as it:
            return {e.name for e in it if _is_file_or_link(e)}
    except OSError:
        return set()


def _is_file_or_link(entry: os.DirEntry) -> bool:
    try:
        return entry.is_file() or (entry.is_symlink() and not entry.is_dir())
    except OSError:  # a symbolic link loop
        return entry.is_symlink()


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
