"""Chips on disk as records and pixels: list a dataset, read a chip, cache a dataset.

``open_dataset(root)`` gives a :class:`ChipDataset` whose :meth:`~ChipDataset.read` is
the one reader every consumer uses (from the chip cache when one is built, else from
the GeoTIFFs).
"""

from chipqa.data.cache import ChipCache, build_cache, cache_dir_for
from chipqa.data.dataset import ChipDataset, open_dataset
from chipqa.data.readahead import read_ahead
from chipqa.data.records import Chip, ChipRecord, DataWarning
from chipqa.data.tiff import read_chip

__all__ = [
    "Chip",
    "ChipCache",
    "ChipDataset",
    "ChipRecord",
    "DataWarning",
    "build_cache",
    "cache_dir_for",
    "open_dataset",
    "read_ahead",
    "read_chip",
]
