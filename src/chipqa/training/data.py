"""Chips as training samples, read through the dataset's one reader.

Every read goes through :meth:`ChipDataset.read_record`, so training uses the chip cache
exactly when scoring does (``--cache``). Augmentation is seeded per chip and per epoch
(:class:`EpochSampler` hands each sample its epoch), so a run is reproducible whatever
the number of loader workers.
"""

from __future__ import annotations

import random
from collections.abc import Iterator, Sequence
from typing import NamedTuple

import numpy as np
import torch
from torch import Tensor
from torch.utils.data import Dataset, Sampler

from chipqa.constants import BAND_NODATA, BANDS, REFLECTANCE_SCALE
from chipqa.data import ChipDataset, ChipRecord
from chipqa.errors import ChipReadError
from chipqa.training.config import TrainingError

_MAX_DN = np.iinfo(np.uint16).max


class Batch(NamedTuple):
    """A batch of samples: bands float32 DNs ``(B, 4, H, W)``, label uint8 ``(B, H, W)``,
    valid bool ``(B, H, W)``, and the ids of its chips that could not be read (bands,
    label and valid are None when none could)."""

    bands: Tensor | None
    label: Tensor | None
    valid: Tensor | None
    skipped: list[str]


def rank_and_world() -> tuple[int, int]:
    """This process's rank and the number of processes (0, 1 outside DDP)."""
    dist = torch.distributed
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


class EpochSampler(Sampler):
    """Chip indices in a random order fixed by (seed, epoch), each paired with its epoch,
    and under DDP this process's share of them.

    Training shards (``pad=True``) repeat a few chips so that every process takes the
    same number of steps, as DDP requires. Validation shards (``pad=False``) split the
    chips exactly, so the IoU summed over the processes counts every validation chip
    once. Lightning calls :meth:`set_epoch` before every epoch; a new pass starts a new
    epoch anyway.
    """

    def __init__(self, n: int, seed: int, shuffle: bool = True, pad: bool = True):
        self.n = n
        self.seed = seed
        self.shuffle = shuffle
        self.pad = pad
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def _shard(self, order: list[int]) -> list[int]:
        rank, world = rank_and_world()
        if world == 1:
            return order
        if self.pad and order:
            order = order + order[: (-len(order)) % world]
        return order[rank::world]

    def __len__(self) -> int:
        return len(self._shard(list(range(self.n))))

    def __iter__(self) -> Iterator[tuple[int, int]]:
        epoch = self.epoch
        self.epoch += 1
        order = list(range(self.n))
        if self.shuffle:
            g = torch.Generator().manual_seed(_mix(self.seed, epoch, 1))
            order = torch.randperm(self.n, generator=g).tolist()
        return iter([(epoch, i) for i in self._shard(order)])


def _mix(*keys: int) -> int:
    """One 63-bit seed from a few integers (the run's seed, the epoch, …)."""
    seq = np.random.SeedSequence([k % 2**32 for k in keys])
    return int(seq.generate_state(1, np.uint64)[0] >> np.uint64(1))


def augment(bands: np.ndarray, label: np.ndarray, valid: np.ndarray, rng: np.random.Generator):
    """Random flip, 90° rotation and per-band brightness/contrast jitter of one chip.

    The jitter fits 4-band reflectance: a gain of 0.9–1.1 about the band's mean and an
    offset of ±2 % reflectance, clipped to the valid DN range.
    """
    k = int(rng.integers(4))
    flip = bool(rng.integers(2))
    bands = np.rot90(bands, k, axes=(1, 2))
    label, valid = np.rot90(label, k), np.rot90(valid, k)
    if flip:
        bands, label, valid = bands[:, :, ::-1], label[:, ::-1], valid[:, ::-1]
    n = bands.shape[0]
    gain = rng.uniform(0.9, 1.1, size=(n, 1, 1)).astype(np.float32)
    jitter = 0.02 * REFLECTANCE_SCALE
    offset = rng.uniform(-jitter, jitter, size=(n, 1, 1)).astype(np.float32)
    mean = bands.reshape(n, -1).mean(1).reshape(n, 1, 1)
    bands = np.clip((bands - mean) * gain + mean + offset, BAND_NODATA + 1, _MAX_DN)
    return bands, label, valid


class ChipTrainingSet(Dataset):
    """Chips as training samples: (bands float32 (4,H,W), label uint8 (H,W), valid bool (H,W)).

    Chips are read with ``dataset.read_record`` (from the chip cache when it holds them).
    A chip that cannot be read yields its id instead, which :func:`collate` reports in
    the batch's ``skipped`` list. Keys are indices, or ``(epoch, index)`` pairs from
    :class:`EpochSampler`: the augmentation of a chip depends on (seed, epoch, index)
    only, never on the process or worker that reads it.
    """

    def __init__(
        self,
        dataset: ChipDataset,
        records: Sequence[ChipRecord],
        augment: bool,
        seed: int = 0,
    ):
        self.dataset = dataset  # pickles into DataLoader workers (its cache reopens there)
        self.records = list(records)
        self.augment = augment
        self.seed = seed

    def __len__(self) -> int:
        return len(self.records)

    def __getitem__(self, key: int | tuple[int, int]):
        epoch, i = key if isinstance(key, tuple) else (0, key)
        rec = self.records[i]
        try:
            chip = self.dataset.read_record(rec)
        except ChipReadError:
            return rec.chip_id
        bands = chip.bands.astype(np.float32)
        label, valid = chip.label, chip.valid
        if self.augment:
            rng = np.random.default_rng(_mix(self.seed, epoch, 0, i))
            bands, label, valid = augment(bands, label, valid, rng)
        return tuple(torch.from_numpy(np.ascontiguousarray(a)) for a in (bands, label, valid))


def collate(samples: Sequence) -> Batch:
    """Stack the samples that could be read; name the chips that could not."""
    skipped = [s for s in samples if isinstance(s, str)]
    read = [s for s in samples if not isinstance(s, str)]
    if not read:
        return Batch(None, None, None, skipped)
    bands, label, valid = (torch.stack(x) for x in zip(*read, strict=True))
    return Batch(bands, label, valid, skipped)


def band_statistics(
    dataset: ChipDataset,
    records: Sequence[ChipRecord],
    n: int = 64,
    seed: int = 0,
    dn_offset: int = 0,
) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Per-band mean and standard deviation of reflectance over valid pixels of ≤ n chips
    (read through ``dataset``, so from its cache when it holds them).

    Raises:
        TrainingError: none of the chips picked could be read.
    """
    rng = random.Random(seed)
    pick = list(records)
    rng.shuffle(pick)
    sums = np.zeros(len(BANDS))
    sq = np.zeros(len(BANDS))
    count = 0
    for rec in pick[:n]:
        try:
            chip = dataset.read_record(rec, copy=False)
        except ChipReadError:
            continue
        v = (chip.bands[:, chip.valid].astype(np.float64) - dn_offset) / REFLECTANCE_SCALE
        sums += v.sum(1)
        sq += (v**2).sum(1)
        count += v.shape[1]
    if count == 0:
        raise TrainingError("none of the training chips could be read; see `chipqa score` for why")
    mean = sums / count
    std = np.sqrt(np.maximum(sq / count - mean**2, 1e-8))
    return tuple(float(x) for x in mean), tuple(float(x) for x in std)
