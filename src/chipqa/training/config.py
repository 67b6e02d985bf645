"""The settings and the outcome of one training run, and its error type."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from chipqa.errors import ChipqaError


class TrainingError(ChipqaError):
    """Training cannot start or cannot go on (the message says what to change)."""


@dataclass
class TrainConfig:
    """Settings of one training run (the ``chipqa train`` options).

    The same ``seed`` gives the same weights on a CPU, whatever the number of loader
    ``workers``: it fixes the initial weights, the training/validation split, the chips
    behind the band statistics, the order of the chips in every epoch and the
    augmentation of every chip in every epoch.

    ``init="pretrained"`` (or ``"pretrained-l1c"``) fine-tunes UKIS csmask's pretrained
    cloud U-Net (efficientnet-b4, its own input normalisation) instead of training
    ``encoder`` from random weights. ``dn_offset`` is the DN offset of the chips' product
    (1 000 for Sentinel-2 L2A from processing baseline 04.00 on); it is taken off before
    the model sees reflectance and stored in the checkpoint.
    """

    encoder: str = "resnet34"
    epochs: int = 20
    batch_size: int = 8
    lr: float = 1e-3
    val_fraction: float = 0.2
    seed: int = 0
    devices: int | str = 1
    num_nodes: int = 1
    accelerator: str = "auto"
    workers: int = 2
    max_steps: int = -1
    augment: bool = True
    encoder_weights: str | None = None
    stats_chips: int = 64
    init: str = "random"
    dn_offset: int = 0


@dataclass
class TrainResult:
    """What a finished run produced.

    ``train_chips`` and ``val_chips`` are the chips actually used: chips that could not
    be read are left out of both (a ``warning`` progress event names them).
    ``best_val_iou`` is the best epoch's IoU on the validation chips, or on the training
    chips when there are none (``best_iou_on`` says which). ``log_dir`` is the folder
    of this run's per-epoch logs.
    """

    checkpoint: Path
    best_val_iou: float
    epochs_run: int
    train_chips: list[str]
    val_chips: list[str]
    seconds: float
    history: list[dict] = field(default_factory=list)
    skipped_chips: list[str] = field(default_factory=list)
    best_iou_on: str = "validation"
    log_dir: Path | None = None
