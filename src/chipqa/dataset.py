"""Find and read the chips of a cloud-mask dataset.

Two layouts are recognised:

* **On Cloud N** (the layout of the Sentinel-2 Cloud Cover Detection challenge, also
  read by torchgeo's ``CloudCoverDetection``)::

      ROOT/train_features/<chip_id>/B02.tif B03.tif B04.tif B08.tif
      ROOT/train_labels/<chip_id>.tif
      ROOT/train_metadata.csv          (optional: chip_id, location, datetime, cloudpath)

* **flat**::

      ROOT/<chip_id>/B02.tif B03.tif B04.tif B08.tif label.tif

Each band is a single-band GeoTIFF (uint16 surface reflectance x 10 000, nodata 0); the
label is a single-band uint8 GeoTIFF on the same grid with 0 = clear, 1 = cloud and
255 = no label. A chip without a label is still a chip: it can be predicted, not
scored against a label.

Listing a dataset is cheap (a few directory listings, no file is opened); the files of a
chip are read only when :func:`read_chip` is called. Everything that can be wrong with
one chip is reported as a :class:`~chipqa.errors.ChipReadError` naming the chip and the
file, so that callers can go on with the other chips.
"""

from __future__ import annotations

import os
import re
import warnings
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import rasterio
from rasterio.errors import NotGeoreferencedWarning, RasterioError

from chipqa.errors import ChipReadError, DatasetError

BANDS: tuple[str, ...] = ("B02", "B03", "B04", "B08")
"""Band names in the order chipqa stacks them: blue, green, red, near-infrared."""

BAND_NODATA = 0
LABEL_NODATA = 255
LABEL_VALUES = (0, 1, LABEL_NODATA)

LAYOUT_ONCLOUDN = "oncloudn"
LAYOUT_FLAT = "flat"

_FEATURES = "train_features"
_LABELS = "train_labels"
_METADATA = "train_metadata.csv"
_FLAT_LABEL = "label.tif"
SCL_NAME = "SCL.tif"
_CHIP_ID = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]*$")
_GDAL_ENV = {"GDAL_DISABLE_READDIR_ON_OPEN": "EMPTY_DIR"}
# Resampling an SCL onto a chip grid in a worker thread makes rasterio warn about its
# in-memory destination even though both transforms are given; the pixels are right
# (tests compare them), so the warning would only confuse users.
warnings.filterwarnings(
    "ignore",
    message="Dataset has no geotransform",
    category=NotGeoreferencedWarning,
    module="rasterio.warp",
)

LAYOUT_HELP = (
    "chipqa reads two layouts: On Cloud N (ROOT/train_features/<chip_id>/B02.tif … B08.tif, "
    "ROOT/train_labels/<chip_id>.tif, optional ROOT/train_metadata.csv) or flat "
    "(ROOT/<chip_id>/B02.tif … B08.tif and ROOT/<chip_id>/label.tif). "
    "`chipqa synth FOLDER` writes an example."
)


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
    """

    chip_id: str
    folder: Path
    band_paths: tuple[Path, ...]
    label_path: Path | None
    metadata: Mapping[str, str] = field(default_factory=dict)
    problem: str | None = None


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


class ChipDataset:
    """A listed dataset: its chip records in a stable order, nothing read yet.

    Use :func:`open_dataset` to make one.
    """

    def __init__(self, root: Path, layout: str, records: list[ChipRecord]):
        self.root = root
        self.layout = layout
        self.records = records
        self._by_id = {r.chip_id: r for r in records}
        self.cache = None
        """A :class:`chipqa.cache.ChipCache` to read from first (see :meth:`use_cache`)."""

    def use_cache(self, cache=None) -> bool:
        """Read chips from a cache when it holds them (default: the dataset's own
        ``<dataset>_cache`` if one was built); returns whether a cache is in use."""
        if cache is None:
            from chipqa.cache import ChipCache

            cache = ChipCache.open(self.root)
        self.cache = cache
        return cache is not None

    def read_record(self, record: ChipRecord, *, copy: bool = True) -> Chip:
        """Read one chip, from the cache when it holds an up-to-date copy (``copy=False``:
        read-only views of the cache's memory map, see :meth:`ChipCache.read`)."""
        if self.cache is not None:
            chip = self.cache.read(record, copy=copy)
            if chip is not None:
                return chip
        return read_chip(record)

    def __len__(self) -> int:
        return len(self.records)

    def __iter__(self) -> Iterator[ChipRecord]:
        return iter(self.records)

    def __getitem__(self, key: int | str) -> ChipRecord:
        if isinstance(key, str):
            try:
                return self._by_id[key]
            except KeyError:
                raise KeyError(f"no chip {key!r} in {self.root}") from None
        return self.records[key]

    def __contains__(self, chip_id: object) -> bool:
        return chip_id in self._by_id

    @property
    def chip_ids(self) -> list[str]:
        return [r.chip_id for r in self.records]

    @property
    def n_labelled(self) -> int:
        return sum(r.label_path is not None for r in self.records)

    def read(self, key: int | str) -> Chip:
        """Read one chip (see :func:`read_chip`; from the cache when one is in use)."""
        return self.read_record(self[key])

    def __repr__(self) -> str:
        return f"ChipDataset({str(self.root)!r}, layout={self.layout!r}, chips={len(self)})"


def is_safe_chip_id(chip_id: str) -> bool:
    """True when ``chip_id`` is a plain name that cannot point outside the dataset folder."""
    return bool(_CHIP_ID.match(chip_id)) and ".." not in chip_id


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
    if (root / _FEATURES).is_dir():
        return LAYOUT_ONCLOUDN
    subdirs = _subdirs(root)
    if not subdirs and not any(True for _ in os.scandir(root)):
        raise DatasetError(f"dataset folder {root} is empty. {LAYOUT_HELP}")
    for sub in subdirs:
        names = _file_names(sub)
        if _FLAT_LABEL in names or any(f"{b}.tif" in names for b in BANDS):
            return LAYOUT_FLAT
    raise DatasetError(f"{root} holds no chips in a layout chipqa knows. {LAYOUT_HELP}")


def open_dataset(root: str | Path) -> ChipDataset:
    """List the chips of a dataset folder in either layout (no chip file is opened).

    Chips are sorted by id. Problems that the listing itself reveals (a metadata row for
    a chip that does not exist, a chip id that would escape the folder) do not stop the
    listing: the chip keeps a record with ``problem`` set, so that a scoring run reports
    it in the chip's row.

    Raises:
        DatasetError: the folder is not a dataset at all.
    """
    root = Path(root).expanduser()
    layout = detect_layout(root)
    if layout == LAYOUT_ONCLOUDN:
        records = _list_oncloudn(root)
    else:
        records = _list_flat(root)
    if not records:
        raise DatasetError(f"dataset folder {root} ({layout} layout) holds no chips. {LAYOUT_HELP}")
    return ChipDataset(root, layout, records)


def _subdirs(root: Path) -> list[Path]:
    with os.scandir(root) as it:
        return sorted(Path(e.path) for e in it if e.is_dir() and not e.name.startswith("."))


def _file_names(folder: Path) -> set[str]:
    try:
        with os.scandir(folder) as it:
            return {e.name for e in it if e.is_file()}
    except OSError:
        return set()


def _band_paths(folder: Path) -> tuple[Path, ...]:
    return tuple(folder / f"{b}.tif" for b in BANDS)


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


def _list_oncloudn(root: Path) -> list[ChipRecord]:
    features = root / _FEATURES
    labels_dir = root / _LABELS
    folders = {p.name for p in _subdirs(features)}
    label_names = _file_names(labels_dir) if labels_dir.is_dir() else set()
    meta_rows: dict[str, dict[str, str]] = {}
    meta_path = root / _METADATA
    if meta_path.is_file():
        meta = _read_metadata(meta_path)
        extra_cols = [c for c in meta.columns if c not in ("chip_id", "cloudpath")]
        for row in meta.itertuples(index=False):
            d = row._asdict()
            meta_rows[str(d["chip_id"])] = {c: str(d[c]) for c in extra_cols}

    records = []
    for chip_id in sorted(folders | set(meta_rows)):
        folder = features / chip_id
        problem = None
        if not is_safe_chip_id(chip_id):
            problem = (
                f"chip id {chip_id!r} in {meta_path} is not a plain name and would point "
                f"outside {features}; fix or delete that row of the metadata file"
            )
            folder = features
        elif chip_id not in folders:
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
                band_paths=_band_paths(folder),
                label_path=label_path if problem is None else None,
                metadata=meta_rows.get(chip_id, {}),
                problem=problem,
            )
        )
    return records


def _list_flat(root: Path) -> list[ChipRecord]:
    records = []
    for folder in _subdirs(root):
        names = _file_names(folder)
        if not (_FLAT_LABEL in names or any(f"{b}.tif" in names for b in BANDS)):
            continue  # not a chip folder (a cache, a models folder, …)
        label_path = folder / _FLAT_LABEL if _FLAT_LABEL in names else None
        records.append(ChipRecord(folder.name, folder, _band_paths(folder), label_path))
    return records


def _open_error(chip_id: str, path: Path, exc: Exception) -> ChipReadError:
    if not path.exists():
        return ChipReadError(chip_id, path, "file is missing; restore it or remove the chip")
    if "previous exception" in str(exc) and exc.__cause__ is not None:
        exc = exc.__cause__  # GDAL's own message says what failed
    text = str(exc.args[-1] if exc.args else exc).strip()
    detail = text.splitlines()[0] if text else type(exc).__name__
    return ChipReadError(
        chip_id,
        path,
        f"cannot be read as a GeoTIFF ({detail}); the file is damaged or not a TIFF: "
        "re-export it or remove the chip",
    )


def _read_single_band(chip_id: str, path: Path) -> tuple[np.ndarray, float | None, object, object]:
    try:
        with rasterio.open(path) as src:
            if src.count != 1:
                raise ChipReadError(
                    chip_id, path, f"has {src.count} bands; chipqa expects one band per file"
                )
            data = src.read(1)
            return data, src.nodata, src.crs, src.transform
    except ChipReadError:
        raise
    except (RasterioError, OSError, ValueError) as exc:
        raise _open_error(chip_id, path, exc) from exc


def _same_grid(chip_id: str, path: Path, what: str, shape, crs, transform, ref) -> None:
    ref_path, ref_shape, ref_crs, ref_transform = ref
    if shape != ref_shape:
        raise ChipReadError(
            chip_id,
            path,
            f"{what} is {shape[0]}×{shape[1]} pixels but {ref_path.name} is "
            f"{ref_shape[0]}×{ref_shape[1]}; all files of a chip must share one grid",
        )
    if crs != ref_crs:
        raise ChipReadError(
            chip_id,
            path,
            f"{what} is in {crs} but {ref_path.name} is in {ref_crs}; all files of a chip "
            "must share one CRS (reproject it onto the bands' grid)",
        )
    if (
        transform is not None
        and ref_transform is not None
        and not transform.almost_equals(ref_transform, precision=1e-6)
    ):
        raise ChipReadError(
            chip_id,
            path,
            f"{what} has a different georeference (transform) than {ref_path.name}; all files "
            "of a chip must share one grid",
        )


def read_chip(record: ChipRecord, *, with_label: bool = True) -> Chip:
    """Read the bands (and label) of one chip and check that they fit together.

    Args:
        record: the chip to read, from :func:`open_dataset`.
        with_label: read the label too (when the chip has one).

    Returns:
        The chip, with nodata of bands (0) and label (255) merged into ``valid``.

    Raises:
        ChipReadError: a file is missing, damaged, not a TIFF, on another grid or CRS,
            holds label values other than 0/1/255, or the chip has no valid pixel.
    """
    cid = record.chip_id
    if record.problem:
        raise ChipReadError(cid, record.folder, record.problem)
    with rasterio.Env(**_GDAL_ENV):
        bands = None
        valid = None
        ref = None
        crs = transform = None
        for i, path in enumerate(record.band_paths):
            data, nodata, crs_i, transform_i = _read_single_band(cid, path)
            if not np.issubdtype(data.dtype, np.integer):
                raise ChipReadError(
                    cid,
                    path,
                    f"holds {data.dtype} values; chipqa expects integer reflectance x 10 000 "
                    "(uint16, as Sentinel-2 L2A ships it)",
                )
            if ref is None:
                ref = (path, data.shape, crs_i, transform_i)
                crs, transform = crs_i, transform_i
                bands = np.empty((len(BANDS), *data.shape), dtype=np.uint16)
                valid = np.ones(data.shape, dtype=bool)
            else:
                _same_grid(cid, path, f"band {BANDS[i]}", data.shape, crs_i, transform_i, ref)
            nd = BAND_NODATA if nodata is None else nodata
            valid &= data != nd
            if data.dtype != np.uint16:
                if data.size and (data.min() < 0 or data.max() > 65535):
                    raise ChipReadError(
                        cid, path, "values outside 0…65535 cannot be reflectance x 10 000"
                    )
            bands[i] = data
        assert bands is not None and valid is not None and ref is not None

        label = None
        if with_label and record.label_path is not None:
            lpath = record.label_path
            data, nodata, crs_l, transform_l = _read_single_band(cid, lpath)
            _same_grid(cid, lpath, "label", data.shape, crs_l, transform_l, ref)
            if nodata is not None and nodata != LABEL_NODATA:
                data = np.where(data == nodata, LABEL_NODATA, data)
            bad = _label_values_outside(data)
            if bad:
                shown = ", ".join(str(v) for v in bad[:6]) + (" …" if len(bad) > 6 else "")
                raise ChipReadError(
                    cid,
                    lpath,
                    f"label holds values {shown}; expected 0 (clear), 1 (cloud) and 255 "
                    "(no label). Convert the mask (for example 0/255 masks to 0/1) first",
                )
            label = data.astype(np.uint8, copy=False)
            valid &= label != LABEL_NODATA
            label = np.where(valid, label, LABEL_NODATA).astype(np.uint8)

    scl = _read_scl(cid, record.folder / SCL_NAME, ref) if with_label else None

    if not valid.any():
        raise ChipReadError(
            cid,
            record.folder,
            "every pixel is nodata (bands = 0 or label = 255): nothing to score; "
            "remove the chip or restore its data",
        )
    return Chip(
        chip_id=cid,
        bands=bands,
        label=label,
        valid=valid,
        crs=crs.to_string() if crs is not None else None,
        transform=tuple(transform)[:6] if transform is not None else None,
        scl=scl,
    )


def _label_values_outside(data: np.ndarray) -> list[int]:
    """The label's values other than 0, 1 and 255, smallest first."""
    if data.dtype == np.uint8 and not ((data > 1) & (data != 255)).any():
        return []  # the usual case, checked without sorting
    return [v for v in np.unique(data).tolist() if v not in LABEL_VALUES]


def _nearest_index(
    n_dst: int, dst_origin: float, dst_step: float, src_origin: float, src_step: float, n_src: int
) -> np.ndarray:
    """Source index of each destination pixel centre along one axis (-1: outside), or
    None when a centre lies on a source pixel edge (a tie GDAL may break otherwise)."""
    centres = dst_origin + (np.arange(n_dst) + 0.5) * dst_step
    pos = (centres - src_origin) / src_step
    if np.any(np.abs(pos - np.round(pos)) < 1e-6):
        return None
    idx = np.floor(pos).astype(np.int64)
    idx[(idx < 0) | (idx >= n_src)] = -1
    return idx


def _scl_on_grid(data: np.ndarray, src_transform, dst_transform, shape) -> np.ndarray | None:
    """Nearest-neighbour resampling between two north-up grids of one CRS, or None when
    either grid is rotated or a pixel centre falls on a source pixel's edge (then GDAL's
    warper does it). The pixel whose area holds a destination pixel's centre is taken, as
    GDAL's nearest resampling does."""
    if src_transform.b or src_transform.d or dst_transform.b or dst_transform.d:
        return None
    rows = _nearest_index(
        shape[0], dst_transform.f, dst_transform.e, src_transform.f, src_transform.e, data.shape[0]
    )
    cols = _nearest_index(
        shape[1], dst_transform.c, dst_transform.a, src_transform.c, src_transform.a, data.shape[1]
    )
    if rows is None or cols is None:
        return None
    out = data.take(np.maximum(rows, 0), axis=0).take(np.maximum(cols, 0), axis=1)
    out[rows < 0, :] = 0
    out[:, cols < 0] = 0
    return out.astype(np.uint8, copy=False)


def _read_scl(chip_id: str, path: Path, ref) -> np.ndarray | None:
    """The chip's SCL resampled onto the bands' grid (any resolution or CRS), or None."""
    if not path.is_file():
        return None
    from rasterio.warp import Resampling, reproject

    _, shape, crs, transform = ref
    try:
        with rasterio.open(path) as src:
            data, src_transform, src_crs = src.read(1), src.transform, src.crs
        if src_crs == crs and transform is not None:
            fast = _scl_on_grid(data, src_transform, transform, shape)
            if fast is not None:
                return fast
        out = np.zeros(shape, np.uint8)
        reproject(
            source=data,
            destination=out,
            src_transform=src_transform,
            src_crs=src_crs,
            src_nodata=0,
            dst_transform=transform,
            dst_crs=crs,
            dst_nodata=0,
            resampling=Resampling.nearest,
        )
    except (RasterioError, OSError, ValueError) as exc:
        raise ChipReadError(
            chip_id,
            path,
            f"the Scene Classification Layer cannot be read ({exc}); fix or remove SCL.tif",
        ) from exc
    return out
