"""Read one chip's GeoTIFFs and check that they fit together.

Each band is a single-band GeoTIFF (uint16 surface reflectance x 10 000, nodata 0); the
label is a single-band uint8 GeoTIFF on the same grid with 0 = clear, 1 = cloud and
255 = no label; an optional ``SCL.tif`` beside the bands is Sen2Cor's Scene
Classification Layer at any resolution or CRS. Everything that can be wrong with one
chip is reported as a :class:`~chipqa.errors.ChipReadError` naming the chip and the
file, so that callers can go on with the other chips.
"""

from __future__ import annotations

import contextlib
import errno
import os
import threading
import warnings
from collections import Counter
from pathlib import Path

import numpy as np
import rasterio
from rasterio.errors import NotGeoreferencedWarning, RasterioError

from chipqa.constants import (
    BAND_NODATA,
    BANDS,
    LABEL_CLEAR,
    LABEL_CLOUD,
    LABEL_NODATA,
    LABEL_VALUES,
)
from chipqa.data.records import Chip, ChipRecord, DataWarning
from chipqa.errors import ChipReadError
from chipqa.io.layout import scl_path

GDAL_ENV = {"GDAL_DISABLE_READDIR_ON_OPEN": "EMPTY_DIR"}
"""GDAL settings for reading chips (no directory listing on open: much faster in folders
of many files)."""
# Resampling an SCL onto a chip grid in a worker thread makes rasterio warn about its
# in-memory destination even though both transforms are given; the pixels are right
# (tests compare them), so the warning would only confuse users.
warnings.filterwarnings(
    "ignore",
    message="Dataset has no geotransform",
    category=NotGeoreferencedWarning,
    module="rasterio.warp",
)


def _open_error(chip_id: str, path: Path, exc: Exception) -> ChipReadError:
    try:
        os.stat(path)
    except OSError as err:
        if err.errno == errno.ELOOP:
            return ChipReadError(
                chip_id,
                path,
                "is a symbolic link loop (the link, or a folder link above it, points back "
                "at itself); replace it with the file or a link to the real file",
            )
        if path.is_symlink():
            return ChipReadError(
                chip_id,
                path,
                f"is a symbolic link to {os.readlink(path)}, which does not exist; restore "
                "the target or replace the link with the file",
            )
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


def _open(chip_id: str, path: Path, stack: contextlib.ExitStack):
    """Open one single-band file (its header only: no pixel is read)."""
    try:
        src = stack.enter_context(rasterio.open(path))
    except (RasterioError, OSError, ValueError) as exc:
        raise _open_error(chip_id, path, exc) from exc
    if src.count != 1:
        raise ChipReadError(
            chip_id, path, f"has {src.count} bands; chipqa expects one band per file"
        )
    return src


def _read(chip_id: str, src) -> np.ndarray:
    try:
        return src.read(1)
    except (RasterioError, OSError, ValueError) as exc:
        raise _open_error(chip_id, Path(src.name), exc) from exc


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


def _grid(src) -> tuple[tuple[int, int], object, object]:
    return (src.height, src.width), src.crs, src.transform


def _check_headers(chip_id: str, bands: list, label) -> tuple:
    """Check what the files declare (band count, type, size, CRS, georeference) before
    any pixel is read, so that a header declaring a huge size is refused without
    reading it. Returns the reference grid ``(path, shape, crs, transform)``: that of
    the first band of the size most bands share, so that the odd file is the one named.
    """
    for src in bands:
        dtype = np.dtype(src.dtypes[0])
        if not np.issubdtype(dtype, np.integer):
            raise ChipReadError(
                chip_id,
                Path(src.name),
                f"holds {dtype} values; chipqa expects integer reflectance x 10 000 "
                "(uint16, as Sentinel-2 L2A ships it)",
            )
    shapes = [(src.height, src.width) for src in bands]
    counts = Counter(shapes)
    first = max(range(len(bands)), key=lambda i: (counts[shapes[i]], -i))
    ref = (Path(bands[first].name), *_grid(bands[first]))
    for i, src in enumerate(bands):
        _same_grid(chip_id, Path(src.name), f"band {BANDS[i]}", *_grid(src), ref)
    if label is not None:
        _same_grid(chip_id, Path(label.name), "label", *_grid(label), ref)
    return ref


class _LabelTagWarnings:
    """Remembers the datasets already warned about a wrong nodata tag on their labels,
    so that a dataset whose labels all carry it gets one warning, not one per chip."""

    def __init__(self):
        self._lock = threading.Lock()
        self._warned: set[Path] = set()

    def warn(self, path: Path, nodata) -> None:
        dataset = path.parent.parent  # ROOT/train_labels/x.tif and ROOT/x/label.tif
        with self._lock:
            if dataset in self._warned:
                return
            self._warned.add(dataset)
        warnings.warn(
            f"label {path} declares nodata={nodata:g}, but {nodata:g} means "
            f"{'clear' if nodata == LABEL_CLEAR else 'cloud'} in chipqa labels and the label "
            "holds only 0, 1 and 255: chipqa reads it as 0 = clear, 1 = cloud, 255 = no label "
            f"and ignores the tag (for every label of {dataset} tagged like this; this warning "
            "is shown once). Fix the tag: `rio edit-info --nodata 255 FILE` (or "
            "`gdal_edit.py -a_nodata 255 FILE`)",
            DataWarning,
            stacklevel=2,
        )


_label_tags = _LabelTagWarnings()


def _label_nodata(path: Path, data: np.ndarray, nodata) -> np.ndarray:
    """Apply a label's declared nodata. A tag of 0 or 1 on a label holding only 0, 1 and
    255 contradicts what those values mean (typically inherited from a band's profile,
    whose nodata is 0): it is ignored, with a :class:`DataWarning`."""
    if nodata is None or nodata == LABEL_NODATA:
        return data
    if nodata in (LABEL_CLEAR, LABEL_CLOUD) and not _label_values_outside(data):
        _label_tags.warn(path, nodata)
        return data
    return np.where(data == nodata, LABEL_NODATA, data)


def read_chip(record: ChipRecord, *, with_label: bool = True) -> Chip:
    """Read the bands (and label) of one chip and check that they fit together.

    The headers of all files are compared (one band each, integer bands, one size, CRS
    and georeference) before any pixel is read, so that a file declaring another size
    is reported, naming it, without reading it.

    A label's nodata tag is honoured, except a tag of 0 or 1 on a label that holds only
    0, 1 and 255: such a tag (usually copied from a band's profile, where 0 is nodata)
    would turn every clear (or cloud) pixel into no data. chipqa then reads the label
    as 0 = clear, 1 = cloud, 255 = no label and warns once per dataset with a
    :class:`~chipqa.data.records.DataWarning` naming the file and how to fix the tag.

    Args:
        record: the chip to read, from :func:`open_dataset`.
        with_label: read the label too (when the chip has one).

    Returns:
        The chip, with nodata of bands (0) and label (255) merged into ``valid``.

    Raises:
        ChipReadError: a file is missing (or a broken or looping symbolic link), damaged,
            not a TIFF, on another grid or CRS, holds label values other than 0/1/255,
            or the chip has no valid pixel.
    """
    cid = record.chip_id
    if record.problem:
        raise ChipReadError(cid, record.folder, record.problem)
    read_label = with_label and record.label_path is not None
    if read_label and record.fixed and not os.path.lexists(record.label_path):
        raise ChipReadError(cid, record.label_path, MISSING_FIX)
    with rasterio.Env(**GDAL_ENV), contextlib.ExitStack() as stack:
        srcs = [_open(cid, path, stack) for path in record.band_paths]
        lsrc = _open(cid, record.label_path, stack) if read_label else None
        ref = _check_headers(cid, srcs, lsrc)
        _, shape, crs, transform = ref
        bands = np.empty((len(BANDS), *shape), dtype=np.uint16)
        valid = np.ones(shape, dtype=bool)
        for i, src in enumerate(srcs):
            data = _read(cid, src)
            nd = BAND_NODATA if src.nodata is None else src.nodata
            valid &= data != nd
            if data.dtype != np.uint16:
                if data.size and (data.min() < 0 or data.max() > 65535):
                    raise ChipReadError(
                        cid, Path(src.name), "values outside 0…65535 cannot be reflectance x 10 000"
                    )
            bands[i] = data

        label = None
        if lsrc is not None:
            lpath = record.label_path
            data = _label_nodata(lpath, _read(cid, lsrc), lsrc.nodata)
            label = _checked_label(cid, lpath, data)
            valid &= label != LABEL_NODATA
            label = np.where(valid, label, LABEL_NODATA).astype(np.uint8)

    scl = _read_scl(cid, scl_path(record.folder), ref) if with_label else None

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


MISSING_FIX = (
    "this label fix, named by the blocklist, is missing from the fixes folder; restore "
    "the file, or fix the chip's label again (`chipqa fix`, or in the review)"
)


def _checked_label(chip_id: str, path: Path, data: np.ndarray) -> np.ndarray:
    """``data`` as a uint8 label, or a :class:`ChipReadError` naming the values that are
    not 0, 1 or 255."""
    bad = _label_values_outside(data)
    if bad:
        shown = ", ".join(str(v) for v in bad[:6]) + (" …" if len(bad) > 6 else "")
        raise ChipReadError(
            chip_id,
            path,
            f"label holds values {shown}; expected 0 (clear), 1 (cloud) and 255 "
            "(no label). Convert the mask (for example 0/255 masks to 0/1) first",
        )
    return data.astype(np.uint8, copy=False)


def read_label(chip_id: str, path: Path, shape: tuple[int, int]) -> np.ndarray:
    """One label file on its own (a label fix over a chip read from the cache): ``(H, W)``
    uint8, 0 clear, 1 cloud, 255 no label, its nodata tag applied as :func:`read_chip`
    does.

    Raises:
        ChipReadError: the file is missing, damaged, not ``shape`` or holds other values.
    """
    if not os.path.lexists(path):
        raise ChipReadError(chip_id, path, MISSING_FIX)
    with rasterio.Env(**GDAL_ENV), contextlib.ExitStack() as stack:
        src = _open(chip_id, path, stack)
        if (src.height, src.width) != tuple(shape):
            raise ChipReadError(
                chip_id,
                path,
                f"label is {src.height}×{src.width} pixels but the chip is "
                f"{shape[0]}×{shape[1]}; a label must share the chip's grid",
            )
        data = _label_nodata(path, _read(chip_id, src), src.nodata)
    return _checked_label(chip_id, path, data)


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


SCL_MAX_PIXELS_PER_CHIP_PIXEL = 16
"""An SCL may be finer than the bands (or cover more ground), but not by more than this
many pixels per chip pixel: a header declaring more is refused before it is read."""


def _read_scl(chip_id: str, path: Path, ref) -> np.ndarray | None:
    """The chip's SCL resampled onto the bands' grid (any resolution or CRS), or None."""
    if not path.is_file():
        return None
    from rasterio.warp import Resampling, reproject

    _, shape, crs, transform = ref
    try:
        with rasterio.open(path) as src:
            if src.width * src.height > SCL_MAX_PIXELS_PER_CHIP_PIXEL * shape[0] * shape[1]:
                raise ChipReadError(
                    chip_id,
                    path,
                    f"the Scene Classification Layer declares {src.height}×{src.width} pixels "
                    f"for a chip of {shape[0]}×{shape[1]}; crop it to the chip or remove "
                    "SCL.tif",
                )
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


def check_written(path: Path) -> None:
    """Raise OSError unless every block of a just-closed GeoTIFF is on disk whole,
    at every resolution level (the overviews of a COG too).

    GDAL writes blocks when its cache flushes, and a write that fails then (a full disk)
    is only logged; the file still opens, with the lost blocks read as empty or cut
    short. A GeoTIFF written without SPARSE_OK has every block (tile or strip) on disk, so a block
    without bytes, or one whose bytes would end past the end of the file, means a failed
    write.
    """
    end = path.stat().st_size
    with rasterio.open(path) as src:
        levels = len(src.overviews(1))
    for level in [None, *range(levels)]:
        kwargs = {} if level is None else {"overview_level": level}
        with rasterio.open(path, **kwargs) as src:
            bh, bw = src.block_shapes[0]
            for i in range(-(-src.height // bh)):
                for j in range(-(-src.width // bw)):
                    size = src.block_size(1, i, j)
                    offset = int(src.get_tag_item(f"BLOCK_OFFSET_{j}_{i}", "TIFF", bidx=1) or 0)
                    if not size or not offset or offset + size > end:
                        raise OSError(
                            f"block {i},{j} of {path.name} was not written whole "
                            "(is the disk full?)"
                        )
