"""A dataset: its chips listed, and the one way every part of chipqa reads them.

A reviewer's label fixes (``fix`` decisions in the dataset's blocklist, their files in
``<dataset>_chipqa_fixes``) are applied when the dataset is opened: a fixed chip's
record points at its fix file (``label_source == "fixed"``), so scoring, training and
the review all read the corrected label.

Listing is cheap (a few directory listings, no file opened). :meth:`ChipDataset.read`
serves a chip from the dataset's memory-mapped cache (:mod:`chipqa.data.cache`) when it
holds an up-to-date copy, and from the chip's GeoTIFFs (:func:`chipqa.data.tiff.read_chip`)
otherwise. Scoring, training (band statistics included), out-of-fold scoring, the review
prefetch and export all read through it, so ``--cache`` means the same everywhere.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from pathlib import Path

from chipqa.blocklist.csvformat import Decision, fix_in_effect
from chipqa.blocklist.csvread import read_rows
from chipqa.data.cache import ChipCache
from chipqa.data.listing import list_flat, list_oncloudn
from chipqa.data.records import Chip, ChipRecord
from chipqa.data.tiff import read_chip
from chipqa.errors import DatasetError
from chipqa.io.layout import LAYOUT_HELP, ONCLOUDN, detect_layout
from chipqa.io.paths import side_paths

CACHE_MODES = ("auto", "off")


class ChipDataset:
    """A listed dataset: its chip records in a stable order, nothing read yet.

    Use :func:`open_dataset` to make one. Safe to pickle into DataLoader worker
    processes (a cache reopens its memory maps in each process).
    """

    def __init__(self, root: Path, layout: str, records: list[ChipRecord]):
        self.root = root
        self.layout = layout
        self.records = records
        self._by_id = {r.chip_id: r for r in records}
        self.cache: ChipCache | None = None
        """The cache chips are read from first (see :meth:`use_cache`), or None."""
        self.fixes_from: Path | None = None
        """The blocklist whose label fixes are applied (see :meth:`use_fixes`), or None."""

    # -- label fixes -----------------------------------------------------------
    def use_fixes(self, fixes: bool | str | Path | None = True) -> list[str]:
        """Read fixed labels where a blocklist records label fixes.

        Args:
            fixes: ``True``: the dataset's default blocklist
                (``<dataset>_chipqa_blocklist.csv``; none there: no fixes); a path: that
                blocklist (it must exist); ``False``/``None``: the dataset's own labels.

        Returns:
            The chips whose label changed.

        Raises:
            BlocklistError: the blocklist cannot be read (the message names the line),
                or a blocklist path was given that does not exist.
        """
        if fixes is None or fixes is False:
            self.fixes_from = None
            return self.apply_fixes({})
        path = side_paths(self.root).blocklist if fixes is True else Path(fixes).expanduser()
        rows = read_rows(path, missing_ok=fixes is True, only=set(self.chip_ids))
        self.fixes_from = path
        return self.apply_fixes(fix_files(rows))

    def refresh_fixes(self, decisions: Mapping[str, Decision] | None = None) -> list[str]:
        """Apply the fixes again after a fix or an undo: from ``decisions`` (a blocklist's
        current rows by chip, such as ``BlocklistStore.decisions``) or by reading the
        blocklist of :meth:`use_fixes` again. Returns the chips whose label changed."""
        if decisions is not None:
            return self.apply_fixes(fix_files(decisions))
        if self.fixes_from is None:
            return []
        rows = read_rows(self.fixes_from, missing_ok=True, only=set(self.chip_ids))
        return self.apply_fixes(fix_files(rows))

    def apply_fixes(self, files: Mapping[str, str]) -> list[str]:
        """Make each chip of ``files`` (chip id → fix file name in the dataset's fixes
        folder) read its fixed label, and every other chip its own. Chips the listing
        found unreadable stay as they are. Returns the chips whose label changed."""
        folder = side_paths(self.root).fixes
        changed, records = [], []
        for r in self.records:
            name = files.get(r.chip_id, "")
            new = r.with_fix(folder / name) if name and not r.problem else r.original()
            if new != r:
                changed.append(r.chip_id)
            records.append(new)
        self.records = records
        self._by_id = {r.chip_id: r for r in records}
        return changed

    @property
    def n_fixed(self) -> int:
        """Chips whose label is a fix."""
        return sum(r.fixed for r in self.records)

    def use_cache(self, cache: ChipCache | None | str = "auto") -> bool:
        """Read chips from ``cache`` when it holds them: ``"auto"`` opens the dataset's
        own ``<dataset>_cache`` if one was built, ``None``/``"off"`` reads the TIFFs.
        Returns whether a cache is in use."""
        if isinstance(cache, str):
            if cache not in CACHE_MODES:
                raise ValueError(f"cache must be one of {', '.join(CACHE_MODES)}, not {cache!r}")
            cache = ChipCache.open(self.root) if cache == "auto" else None
        self.cache = cache
        return cache is not None

    def read_record(self, record: ChipRecord, *, copy: bool = True) -> Chip:
        """Read one chip, from the cache when it holds an up-to-date copy (``copy=False``:
        read-only views of the cache's memory map, see :meth:`ChipCache.read`).

        Raises:
            ChipReadError: the chip cannot be read (the message names the file).
        """
        if self.cache is not None:
            chip = self.cache.read(record, copy=copy)
            if chip is not None:
                return chip
        return read_chip(record)

    def read(self, key: int | str) -> Chip:
        """Read one chip by index or id (see :meth:`read_record`)."""
        return self.read_record(self[key])

    def subset(self, chip_ids) -> list[ChipRecord]:
        """The records of ``chip_ids`` that the dataset holds, in the given order."""
        return [self._by_id[c] for c in chip_ids if c in self._by_id]

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

    def __repr__(self) -> str:
        return f"ChipDataset({str(self.root)!r}, layout={self.layout!r}, chips={len(self)})"


def fix_files(rows: Mapping[str, Decision]) -> dict[str, str]:
    """Chip id → fix file name, for the chips whose current row names a fix."""
    return {cid: f for cid, d in rows.items() if (f := fix_in_effect(d))}


def open_dataset(
    root: str | Path,
    cache: ChipCache | None | str = "auto",
    fixes: bool | str | Path | None = True,
) -> ChipDataset:
    """List the chips of a dataset folder in either layout (no chip file is opened).

    Chips are sorted by id. Problems that the listing itself reveals (a metadata row for
    a chip that does not exist, a chip id that would escape the folder) do not stop the
    listing: the chip keeps a record with ``problem`` set, so that a scoring run reports
    it in the chip's row.

    Args:
        root: the dataset folder.
        cache: ``"auto"`` (default) reads through the dataset's chip cache when one was
            built (``chipqa cache``), ``"off"`` reads the TIFFs, or a
            :class:`~chipqa.data.cache.ChipCache` to use.
        fixes: apply the label fixes of the dataset's default blocklist (``True``, the
            default), of another blocklist (its path), or none (``False``); see
            :meth:`ChipDataset.use_fixes`. A fixed chip reads its fix file, from the
            cache too (bands from the cache, the label from the fix).

    Raises:
        DatasetError: the folder is not a dataset at all.
        BlocklistError: the blocklist holding the fixes cannot be read.
    """
    root = Path(root).expanduser()
    layout = detect_layout(root)
    records = list_oncloudn(root) if layout == ONCLOUDN else list_flat(root)
    if not records:
        raise DatasetError(f"dataset folder {root} ({layout} layout) holds no chips. {LAYOUT_HELP}")
    dataset = ChipDataset(root, layout, records)
    dataset.use_fixes(fixes)
    dataset.use_cache(cache)
    return dataset
