"""Chips in batches for a predictor: grouping, and batch and thread counts per device."""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator

from chipqa.data import Chip, ChipRecord
from chipqa.errors import ChipReadError
from chipqa.predictors import Predictor


def chip_batches(
    chips: Iterable[tuple[ChipRecord, Chip | ChipReadError]], batch_size: int
) -> Iterator[tuple[list[tuple[ChipRecord, Chip]], list[tuple[ChipRecord, ChipReadError]]]]:
    """Group readable chips of one shape (and labelled-ness) into batches."""
    batch: list[tuple[ChipRecord, Chip]] = []
    failed: list[tuple[ChipRecord, ChipReadError]] = []
    key = None
    for rec, chip in chips:
        if isinstance(chip, ChipReadError):
            failed.append((rec, chip))
            continue
        k = (chip.shape, chip.label is not None, chip.scl is not None)
        if batch and (k != key or len(batch) >= batch_size):
            yield batch, failed
            batch, failed = [], []
        key = k
        batch.append((rec, chip))
    if batch or failed:
        yield batch, failed


def default_batch_size(predictor: Predictor) -> int:
    """Chips per predictor call: large on a GPU (its throughput grows with the batch up to
    well past 64 chips of 512²), small elsewhere (a CPU gains nothing from batching)."""
    return 64 if predictor.device.type == "cuda" else 8


def default_workers(chip_scorer: bool) -> int:
    """Reading threads: every core when they also score (the CPU baseline), else two
    (the predictor's own threads or the GPU do the computing)."""
    if not chip_scorer:
        return 2
    try:
        cores = len(os.sched_getaffinity(0))  # the cores this process may use
    except AttributeError:  # not on Linux
        cores = os.cpu_count() or 2
    return max(2, min(16, cores))
