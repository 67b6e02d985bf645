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
"""

from __future__ import annotations

import errno
import json
import os
import shutil
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from chipqa.constants import LABEL_NODATA
from chipqa.data.readahead import read_ahead
from chipqa.data.records import Chip, ChipRecord
from chipqa.data.tiff import read_chip
from chipqa.errors import ChipqaError, ChipReadError
from chipqa.io.layout import scl_path
from chipqa.io.paths import side_paths

if TYPE_CHECKING:
    from chipqa.data.dataset import ChipDataset

CACHE_VERSION = 4


def cache_dir_for(root: str | Path) -> Path:
    """The cache folder of a dataset: ``<dataset>_cache`` beside it."""
    return side_paths(root).cache


def _files(rec: ChipRecord) -> list[Path]:
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

    def __getstate__(self):
        state = self.__dict__.copy()
        state["_mm"] = None
        return state

    def _maps(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        # Reader threads may get here together: build both maps, then publish them in
        # one assignment, so no thread ever sees one map without the other.
        maps = self._mm
        if maps is None:
            maps = (
                np.load(self.folder / "bands.npy", mmap_mode="r"),
                np.load(self.folder / "labels.npy", mmap_mode="r"),
                np.load(self.folder / "scl.npy", mmap_mode="r"),
            )
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
        bands_map, labels_map, scl_map = self._maps()
        take = np.array if copy else np.asarray
        bands = take(bands_map[e.row])
        # The labels row holds 255 wherever the chip is not valid (band nodata, no label),
        # also for unlabelled chips, so validity is exactly what the TIFF reader found.
        label_row = labels_map[e.row]
        valid = label_row != LABEL_NODATA
        label = take(label_row) if e.has_label else None
        scl = take(scl_map[e.row]) if e.has_scl else None
        return Chip(chip_id=rec.chip_id, bands=bands, label=label, valid=valid, scl=scl)

    @classmethod
    def open(cls, root: str | Path, folder: str | Path | None = None) -> ChipCache | None:
        """Open a dataset's cache, or None when there is none (or it is unusable)."""
        folder = Path(folder) if folder else cache_dir_for(root)
        try:
            index = json.loads((folder / "index.json").read_text())
        except (OSError, ValueError):
            return None
        if index.get("version") != CACHE_VERSION:
            return None
        entries = {
            cid: _Entry(int(e["row"]), bool(e["has_label"]), e["signature"], bool(e["has_scl"]))
            for cid, e in index["chips"].items()
        }
        return cls(folder, entries, tuple(index["shape"]))


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
    records = [r for r in dataset if not r.problem]
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
    n = len(records)
    build_started = time.time_ns()
    # A dataset without SCLs gets a one-row placeholder instead of gigabytes of zeros.
    n_scl = max(n, 1) if any(scl_path(r.folder).is_file() for r in records) else 1
    try:
        bands = _new_array(tmp / "bands.npy", np.uint16, (max(n, 1), 4, *shape))
        labels = _new_array(tmp / "labels.npy", np.uint8, (max(n, 1), *shape))
        scls = _new_array(tmp / "scl.npy", np.uint8, (n_scl, *shape))
    except OSError as exc:
        shutil.rmtree(tmp, ignore_errors=True)
        need = (max(n, 1) * 9 + n_scl) * shape[0] * shape[1]  # bytes: 4 uint16 + 1 uint8
        raise ChipqaError(
            f"cannot make room for the cache of {n} chips (about {need / 1e9:.1f} GB) in "
            f"{folder.parent}: {exc.strerror or exc}. Free space there, or score and train "
            "without a cache (--cache off); the TIFFs are read directly then"
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
    (tmp / "index.json").write_text(
        json.dumps(
            {
                "version": CACHE_VERSION,
                "dataset": str(dataset.root),
                "shape": list(shape),
                "chips": chips,
            }
        )
    )
    old = folder.with_name(folder.name + ".old")
    shutil.rmtree(old, ignore_errors=True)
    if folder.exists():
        folder.rename(old)
    tmp.rename(folder)
    shutil.rmtree(old, ignore_errors=True)
    cache = ChipCache.open(dataset.root, folder)
    assert cache is not None
    return cache
