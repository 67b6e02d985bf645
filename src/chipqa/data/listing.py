"""List the chips of a dataset folder (no chip file is opened)."""

from __future__ import annotations

import os
from pathlib import Path

import pandas as pd

from chipqa.data.records import ChipRecord
from chipqa.errors import DatasetError
from chipqa.io import layout as L


def _read_metadata(path: Path) -> pd.DataFrame:
    try:
        meta = pd.read_csv(path, dtype=str, keep_default_na=False)
    except Exception as exc:  # pandas raises many types for a broken CSV
        raise DatasetError(
            f"metadata file {path} cannot be read as CSV ({exc}). Fix it, or move it away "
            "to list the chips from the folders alone."
        ) from exc
    if "chip_id" not in meta.columns:
        raise DatasetError(
            f"metadata file {path} has no 'chip_id' column (columns: {', '.join(meta.columns)}). "
            "Add one, or move the file away to list the chips from the folders alone."
        )
    return meta


def list_oncloudn(root: Path) -> list[ChipRecord]:
    features = root / L.FEATURES_DIR
    labels_dir = root / L.LABELS_DIR
    folders = {p.name for p in L.subdirs(features)}
    label_names = L.file_names(labels_dir) if labels_dir.is_dir() else set()
    meta_rows: dict[str, dict[str, str]] = {}
    meta_path = L.metadata_path(root)
    if meta_path.is_file():
        meta = _read_metadata(meta_path)
        extra_cols = [c for c in meta.columns if c not in ("chip_id", "cloudpath")]
        for row in meta.itertuples(index=False):
            d = row._asdict()
            meta_rows[str(d["chip_id"])] = {c: str(d[c]) for c in extra_cols}

    records = []
    for chip_id in sorted(folders | set(meta_rows)):
        folder = features / chip_id
        in_folders = chip_id in folders
        problem = L.chip_id_problem(chip_id, f"folder {features}" if in_folders else str(meta_path))
        if not L.is_safe_chip_id(chip_id):
            folder = features
        elif problem is None and not in_folders:
            problem = (
                f"{meta_path.name} lists this chip but there is no folder {folder}; "
                "restore the chip's band files or delete its row from the metadata file"
            )
        label_name = f"{chip_id}.tif"
        label_path = labels_dir / label_name if label_name in label_names else None
        records.append(
            ChipRecord(
                chip_id=chip_id,
                folder=folder,
                band_paths=L.band_paths(folder),
                label_path=label_path if problem is None else None,
                metadata=meta_rows.get(chip_id, {}),
                problem=problem,
            )
        )
    return records


def list_flat(root: Path) -> list[ChipRecord]:
    records = []
    for folder in L.subdirs(root):
        names = L.file_names(folder)
        if not L.is_flat_chip_folder(names):
            continue  # not a chip folder (a cache, a models folder, …)
        label_path = folder / L.FLAT_LABEL_NAME if L.FLAT_LABEL_NAME in names else None
        problem = L.chip_id_problem(folder.name, f"folder {root}")
        records.append(
            ChipRecord(
                folder.name,
                folder,
                L.band_paths(folder),
                label_path if problem is None else None,
                problem=problem,
            )
        )
    return records


def find_chip(root: str | Path, chip_id: str) -> ChipRecord:
    """The record of one chip, found by the layout's path rules without listing the
    dataset (its own label: no fix applied; no metadata).

    Raises:
        DatasetError: ``root`` is not a dataset, or holds no chip ``chip_id`` (the
            message names the folder looked for).
    """
    root = Path(root).expanduser()
    layout = L.detect_layout(root)
    problem = L.chip_id_problem(chip_id, "the chip id given")
    if problem is not None:
        raise DatasetError(f"no chip {chip_id!r} in {root}: {problem}")
    folder = L.chip_folder(root, layout, chip_id)
    names = L.file_names(folder)
    found = folder.is_dir() if layout == L.ONCLOUDN else L.is_flat_chip_folder(names)
    if not found:
        raise DatasetError(
            f"no chip {chip_id!r} in {root} ({layout} layout): there is no chip folder "
            f"{folder}. Check the chip id (exactly as the folder is named)"
        )
    label = L.label_path(root, layout, chip_id)
    return ChipRecord(
        chip_id, folder, L.band_paths(folder), label if os.path.lexists(label) else None
    )
