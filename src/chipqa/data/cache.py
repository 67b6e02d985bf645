"""A memory-mapped copy of a dataset's chips: one file of bands, one of labels.

Opening five small GeoTIFFs per chip dominates the time of a scoring run over a large
dataset. ``chipqa cache DATA`` (or ``chipqa score --cache build``) converts the chips
once into::

    <dataset>_cache/bands.npy    (N, 4, H, W) uint16, reflectance x 10 000, 0 = nodata
    <dataset>_cache/labels.npy   (N, H, W)    uint8, 0/1, 255 = no label or nodata (an
                                              unlabelled chip: 0 where valid)
    <dataset>_cache/scl.npy      (N, H, W)    uint8, Sen2Cor SCL on the chip grid (0 = none)
    <dataset>_cache/index.json   chip ids, rows, and the size, times and inode of every source file

both read as memory maps, so a chip is a slice of a file the operating system keeps in
its page cache. Only chips of the dataset's most common size are cached; other chips,
unreadable ones and chips whose source files changed since the cache was built (size or
modification time) are read from their TIFFs as before, so the cache is never required
and never serves stale pixels. Rebuilding refreshes it.

The cache always holds the dataset's own labels. A chip whose label was fixed (see
:func:`chipqa.data.open_dataset`) is served with its bands from the cache and its label
from the fix file, so a fix never needs a rebuild and the cache never serves the label
it replaced.
"""

from __future__ import annotations

import errno
import json
import os
import shutil
import time
import warnings
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from chipqa.constants import LABEL_NODATA
from chipqa.data.readahead import read_ahead
from chipqa.data.records import Chip, ChipRecord, DataWarning
from chipqa.data.tiff import read_chip, read_label
from chipqa.errors import ChipqaError, ChipReadError
from chipqa.io.atomic import atomic_write_text
from chipqa.io.layout import scl_path
from chipqa.io.paths import side_paths

if TYPE_CHECKING:
    from chipqa.data.dataset import ChipDataset

CACHE_VERSION = 5  # 5: labels tagged nodata 0 are read as 0 clear (see data.tiff)


def cache_dir_for(root: str | Path) -> Path:
    """The cache folder of a dataset: ``<dataset>_cache`` beside it."""
    return side_paths(root).cache


def _files(rec: ChipRecord) -> list[Path]:
    rec = rec.original()  # the cache holds the dataset's own files; a fix is read over it
    files = [*rec.band_paths, *([rec.label_path] if rec.label_path is not None else [])]
    scl = scl_path(rec.folder)
    return [*files, scl] if scl.is_file() else files


def _signature(rec: ChipRecord) -> list[list[int]] | None:
    """(size, mtime, ctime, inode) of every file of a chip, or None when one is missing.

    ctime and inode change on any rewrite, even one that keeps size and mtime (``cp -p``).
    """
    sig = []
    for p in _files(rec):
        try:
            st = os.stat(p)
        except OSError:
            return None
        sig.append([st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino])
    return sig


@dataclass
class _Entry:
    row: int
    has_label: bool
    signature: list[list[int]]
    has_scl: bool = False


class ChipCache:
    """Read chips from a built cache (see the module docstring). Safe to pickle into
    DataLoader worker processes: the memory maps are opened lazily in each process."""

    def __init__(self, folder: Path, entries: dict[str, _Entry], shape: tuple[int, int]):
        self.folder = Path(folder)
        self.entries = entries
        self.shape = shape
        self._mm: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None
        self._broken = False

    def __getstate__(self):
        state = self.__dict__.copy()
        state["_mm"] = None
        state["_broken"] = False
        return state

    def _maps(self) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
        """The three memory maps (opened once per process), or None when they cannot be
        opened (the cache was damaged after it was opened: chips come from the TIFFs)."""
        # Reader threads may get here together: build both maps, then publish them in
        # one assignment, so no thread ever sees one map without the other.
        maps = self._mm
        if maps is None and not self._broken:
            try:
                maps = _open_maps(self.folder, self.entries, self.shape)
            except _Damaged as exc:
                self._broken = True
                warn_damaged(self.folder, str(exc))
                return None
            self._mm = maps
        return maps

    def __len__(self) -> int:
        return len(self.entries)

    def holds(self, rec: ChipRecord) -> bool:
        """True when the chip is cached and its files are unchanged since."""
        e = self.entries.get(rec.chip_id)
        return e is not None and not rec.problem and _signature(rec) == e.signature

    def read(self, rec: ChipRecord, *, copy: bool = True) -> Chip | None:
        """The chip from the cache, or None when it must be read from its TIFFs.

        With ``copy=False`` the bands, label and SCL are read-only views of the memory
        map (no copy; for readers that only look, such as scoring).
        """
        if not self.holds(rec):
            return None
        e = self.entries[rec.chip_id]
        maps = self._maps()
        if maps is None:
            return None
        bands_map, labels_map, scl_map = maps
        take = np.array if copy else np.asarray
        # The labels row holds 255 wherever the chip is not valid (band nodata, no label),
        # also for unlabelled chips, so validity is exactly what the TIFF reader found.
        label_row = labels_map[e.row]
        valid = label_row != LABEL_NODATA
        label = take(label_row) if e.has_label else None
        if rec.fixed:
            fixed = _fixed_label(rec, e, valid, self.shape)
            if fixed is None:
                return None
            label, valid = fixed
        bands = take(bands_map[e.row])
        scl = take(scl_map[e.row]) if e.has_scl else None
        return Chip(chip_id=rec.chip_id, bands=bands, label=label, valid=valid, scl=scl)

    @classmethod
    def open(cls, root: str | Path, folder: str | Path | None = None) -> ChipCache | None:
        """Open a dataset's cache, or None when there is none or it is unusable.

        A cache that exists but is damaged (an unreadable index, arrays truncated or of
        the wrong shape) or was built by another version of chipqa is not used: a
        :class:`~chipqa.data.records.DataWarning` names its folder and says to rebuild
        it with ``chipqa cache DATA``, and chips are read from their TIFFs.
        """
        folder = Path(folder) if folder else cache_dir_for(root)
        index_path = folder / "index.json"
        if not index_path.exists():
            return None
        try:
            index = json.loads(index_path.read_text())
            if index.get("version") != CACHE_VERSION:
                raise _Damaged(
                    f"it was built by another version of chipqa (format {index.get('version')}, "
                    f"this chipqa reads {CACHE_VERSION})"
                )
            entries = {
                cid: _Entry(int(e["row"]), bool(e["has_label"]), e["signature"], bool(e["has_scl"]))
                for cid, e in index["chips"].items()
            }
            cache = cls(folder, entries, tuple(int(n) for n in index["shape"]))
            cache._mm = _open_maps(folder, entries, cache.shape)
        except _Damaged as exc:
            warn_damaged(folder, str(exc))
            return None
        except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
            warn_damaged(folder, f"its index cannot be read ({type(exc).__name__}: {exc})")
            return None
        return cache


def _fixed_label(
    rec: ChipRecord, e: _Entry, cached_valid: np.ndarray, shape: tuple[int, int]
) -> tuple[np.ndarray, np.ndarray] | None:
    """A fixed chip's label (read from its fix file) and validity over the cached bands,
    or None when the TIFFs must be read instead: the fix cannot be read (the TIFF reader
    then says why), or it labels pixels that the cached labels row marks as not valid,
    where the cache cannot tell a band's nodata from the original label's (only the
    TIFFs can)."""
    try:
        label = read_label(rec.chip_id, rec.label_path, shape)  # type: ignore[arg-type]
    except ChipReadError:
        return None
    labelled = label != LABEL_NODATA
    if e.has_label and (labelled & ~cached_valid).any():
        return None
    valid = cached_valid & labelled  # unlabelled original: the row's 255s are band nodata
    return np.where(valid, label, LABEL_NODATA).astype(np.uint8), valid


class _Damaged(Exception):
    """A cache's files do not hold what its index says."""


def warn_damaged(folder: Path, why: str) -> None:
    """Say (once per folder and reason) that a cache is not used and must be rebuilt."""
    warnings.warn(
        f"the chip cache {folder} is not used: {why}. Chips are read from their TIFFs "
        f"(slower); rebuild the cache with `chipqa cache DATA` (DATA: the dataset folder "
        f"{folder.with_name(folder.name.removesuffix('_cache'))})",
        DataWarning,
        stacklevel=3,
    )


def _open_maps(
    folder: Path, entries: dict[str, _Entry], shape: tuple[int, int]
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Memory-map the three arrays and check them against the index.

    Raises:
        _Damaged: a file is missing, truncated or not of the indexed shape and type.
    """
    h, w = shape
    want = {
        "bands.npy": (np.uint16, lambda s: len(s) == 4 and s[1:] == (4, h, w)),
        "labels.npy": (np.uint8, lambda s: len(s) == 3 and s[1:] == (h, w)),
        "scl.npy": (np.uint8, lambda s: len(s) == 3 and s[1:] == (h, w)),
    }
    rows = 1 + max((e.row for e in entries.values()), default=0)
    scl_rows = rows if any(e.has_scl for e in entries.values()) else 1
    maps = []
    for name, (dtype, fits) in want.items():
        try:
            arr = np.load(folder / name, mmap_mode="r")
        except (OSError, ValueError, EOFError) as exc:
            raise _Damaged(f"{name} cannot be opened ({exc})") from exc
        n = scl_rows if name == "scl.npy" else rows
        if arr.dtype != dtype or not fits(arr.shape) or arr.shape[0] < n:
            raise _Damaged(
                f"{name} holds {arr.dtype} {arr.shape}, not the {np.dtype(dtype)} "
                f"(N, …, {h}, {w}) of its index"
            )
        maps.append(arr)
    return maps[0], maps[1], maps[2]


def _new_array(path: Path, dtype, shape: tuple[int, ...]) -> np.memmap:
    """A new .npy memory map whose disk space is reserved now.

    Writing through a memory map into a sparse file that the disk cannot hold kills the
    process with SIGBUS, so the blocks are allocated first: a full disk then fails here,
    with an OSError, before any chip is read.
    """
    arr = np.lib.format.open_memmap(path, "w+", dtype, shape)
    try:
        with open(path, "r+b") as f:
            os.posix_fallocate(f.fileno(), 0, os.fstat(f.fileno()).st_size)
    except OSError as exc:
        if exc.errno in (errno.EOPNOTSUPP, errno.EINVAL):
            return arr  # a file system without fallocate: the file stays sparse
        del arr
        raise
    except AttributeError:  # no posix_fallocate on this platform
        pass
    return arr


def build_cache(
    dataset: ChipDataset,
    folder: str | Path | None = None,
    *,
    progress: Callable[[int, int], None] | None = None,
) -> ChipCache:
    """Convert a dataset's chips into a cache (memory stays bounded: chips are streamed).

    The new cache is written beside the old one and swapped in at the end, so an
    interrupted build leaves the previous cache (or none) in place.

    Raises:
        ChipqaError: no chip could be read, or the folder cannot be written.
    """
    folder = Path(folder) if folder else cache_dir_for(dataset.root)
    records = [r.original() for r in dataset if not r.problem]  # fixes are read over it
    shapes = Counter()
    for rec in records[: min(len(records), 32)]:
        try:
            import rasterio

            with rasterio.open(rec.band_paths[0]) as src:
                shapes[(src.height, src.width)] += 1
        except Exception:  # noqa: BLE001 - unreadable chips are skipped below
            continue
    if not shapes:
        raise ChipqaError(f"no chip of {dataset.root} could be read; nothing to cache")
    shape = shapes.most_common(1)[0][0]
    tmp = folder.with_name(folder.name + ".building")
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        tmp.mkdir(parents=True)
    except OSError as exc:
        raise ChipqaError(f"cannot create the cache folder {tmp}: {exc}") from exc
    try:
        _fill(tmp, folder, dataset, records, shape, progress)
    except BaseException:
        # Whatever stopped the build (a full disk, an interrupt), nothing half-built stays.
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    cache = ChipCache.open(dataset.root, folder)
    assert cache is not None
    return cache


def _no_room(what: str, folder: Path, exc: OSError) -> ChipqaError:
    return ChipqaError(
        f"cannot {what} in {folder.parent}: {exc.strerror or exc}. Free space there, or "
        "score and train without a cache (--cache off); the TIFFs are read directly then"
    )


def _fill(
    tmp: Path,
    folder: Path,
    dataset: ChipDataset,
    records: list[ChipRecord],
    shape: tuple[int, int],
    progress: Callable[[int, int], None] | None,
) -> None:
    """Write the cache into ``tmp``, then swap it in for ``folder``.

    Raises:
        ChipqaError: the disk has no room for the arrays or the index, or the folder
            cannot be swapped in (the previous cache, if any, is kept).
    """
    n = len(records)
    build_started = time.time_ns()
    # A dataset without SCLs gets a one-row placeholder instead of gigabytes of zeros.
    n_scl = max(n, 1) if any(scl_path(r.folder).is_file() for r in records) else 1
    try:
        bands = _new_array(tmp / "bands.npy", np.uint16, (max(n, 1), 4, *shape))
        labels = _new_array(tmp / "labels.npy", np.uint8, (max(n, 1), *shape))
        scls = _new_array(tmp / "scl.npy", np.uint8, (n_scl, *shape))
    except OSError as exc:
        need = (max(n, 1) * 9 + n_scl) * shape[0] * shape[1]  # bytes: 4 uint16 + 1 uint8
        raise _no_room(
            f"make room for the cache of {n} chips (about {need / 1e9:.1f} GB)", folder, exc
        ) from exc
    chips: dict[str, dict] = {}
    row = 0
    for i, (rec, chip) in enumerate(read_ahead(records, read_chip, workers=2, depth=16), start=1):
        if isinstance(chip, ChipReadError) or chip.shape != shape:
            if progress:
                progress(i, n)
            continue
        sig = _signature(rec)
        if sig is None or any(f[2] >= build_started for f in sig):
            continue  # changed while being read: leave it to the TIFFs
        if chip.scl is not None and row >= len(scls):
            continue  # an SCL that appeared during the build: leave the chip to the TIFFs
        bands[row] = chip.bands
        labels[row] = (  # unlabelled: 255 where not valid, so the cache knows validity
            chip.label if chip.label is not None else np.where(chip.valid, 0, LABEL_NODATA)
        )
        if chip.scl is not None:
            scls[row] = chip.scl  # the array starts zeroed: 0 is SCL's "no data"
        chips[rec.chip_id] = {
            "row": row,
            "has_label": chip.label is not None,
            "signature": sig,
            "has_scl": chip.scl is not None,
        }
        row += 1
        if progress:
            progress(i, n)
    for arr in (bands, labels, scls):
        arr.flush()
    del bands, labels, scls
    index = {"version": CACHE_VERSION, "dataset": str(dataset.root), "shape": list(shape)}
    try:
        atomic_write_text(tmp / "index.json", json.dumps({**index, "chips": chips}))
    except OSError as exc:
        raise _no_room(f"write the cache index {tmp / 'index.json'}", folder, exc) from exc
    old = folder.with_name(folder.name + ".old")
    shutil.rmtree(old, ignore_errors=True)
    try:
        if folder.exists():
            folder.rename(old)
        try:
            tmp.rename(folder)
        except OSError:
            if old.exists() and not folder.exists():
                old.rename(folder)  # the previous cache stays in use
            raise
    except OSError as exc:
        raise ChipqaError(
            f"cannot put the new cache in place of {folder}: {exc.strerror or exc}; the "
            "previous cache (if any) is kept. Check the folder's permissions, or use "
            "--cache off"
        ) from exc
    shutil.rmtree(old, ignore_errors=True)
