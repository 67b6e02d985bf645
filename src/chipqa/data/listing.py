"""List the chips of a dataset folder (no chip file is opened)."""

from __future__ import annotations

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
