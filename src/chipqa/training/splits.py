"""Which chips a run trains and validates on: blocked chips out, splits by location."""

from __future__ import annotations

import random
from collections.abc import Sequence
from pathlib import Path

from chipqa.blocklist.csvread import blocked_ids
from chipqa.data import ChipDataset, ChipRecord
from chipqa.training.config import TrainingError


def _by_location(records: Sequence[ChipRecord]) -> dict[str, list[str]]:
    groups: dict[str, list[str]] = {}
    for r in records:
        groups.setdefault(r.metadata.get("location", ""), []).append(r.chip_id)
    return groups


def split_chips(
    records: Sequence[ChipRecord], val_fraction: float, seed: int
) -> tuple[list[str], list[str]]:
    """Training and validation chip ids, stratified by ``location`` when records have one.

    Within each location the chips are shuffled and about ``val_fraction`` of them go to
    validation (at least one when a location has 3 chips or more), so every place is
    represented on both sides.
    """
    rng = random.Random(seed)
    groups = _by_location(records)
    train, val = [], []
    for loc in sorted(groups):
        ids = sorted(groups[loc])
        rng.shuffle(ids)
        n_val = int(round(len(ids) * val_fraction))
        if n_val == 0 and len(ids) >= 3 and val_fraction > 0:
            n_val = 1
        val += ids[:n_val]
        train += ids[n_val:]
    if not val and len(train) >= 2 and val_fraction > 0:
        val.append(train.pop())
    return sorted(train), sorted(val)


def kfold_chips(records: Sequence[ChipRecord], k: int, seed: int) -> list[list[str]]:
    """``k`` disjoint folds of chip ids, stratified by ``location``."""
    rng = random.Random(seed)
    groups = _by_location(records)
    folds: list[list[str]] = [[] for _ in range(k)]
    i = 0
    for loc in sorted(groups):
        ids = sorted(groups[loc])
        rng.shuffle(ids)
        for cid in ids:
            folds[i % k].append(cid)
            i += 1
    return [sorted(f) for f in folds]


def prepare_chips(
    dataset: ChipDataset, blocklist: str | Path | None, chips: Sequence[str] | None = None
) -> tuple[list[ChipRecord], list[str], list[str]]:
    """Labelled, unblocked records to train on; the dataset's blocked chip ids; and the
    blocked ids that are not chips of the dataset (ignored).

    Raises:
        TrainingError: nothing is left to train on.
    """
    blocked = set(blocked_ids(blocklist)) if blocklist else set()
    unknown = sorted(blocked - set(dataset.chip_ids))
    pool = [r for r in dataset if r.label_path is not None and not r.problem]
    if chips is not None:
        keep = set(chips)
        pool = [r for r in pool if r.chip_id in keep]
    usable = [r for r in pool if r.chip_id not in blocked]
    if len(usable) < 2:
        raise TrainingError(
            f"only {len(usable)} labelled chip(s) of {dataset.root} are left after leaving out "
            f"{len(blocked & {r.chip_id for r in pool})} blocked one(s); training needs at "
            "least 2. Unblock some chips or check the blocklist."
        )
    return usable, sorted(blocked - set(unknown)), unknown
