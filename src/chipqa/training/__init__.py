"""Train the U-Net on the chips a reviewer did not block (PyTorch Lightning).

:func:`train` is the whole job: it lists the dataset, leaves out blocked chips, splits
the rest into training and validation chips (stratified by ``location`` when the metadata
has it, :mod:`~chipqa.training.splits`), fits a segmentation-models-pytorch U-Net with
Adam and a Dice + BCE loss that ignores nodata pixels (:mod:`~chipqa.training.module`),
logs per-epoch metrics to CSV (and TensorBoard when it is installed), writes progress
events as JSON lines (:mod:`~chipqa.training.progress`), and finally writes one
checkpoint atomically (see :func:`chipqa.predictors.checkpoint.save_checkpoint`): the
weights of the epoch with the best validation IoU, everything needed to rebuild the
model and its input normalisation, the training chips and the blocklist.

Chips are read through the dataset's one reader, from the chip cache when it holds
them (:mod:`~chipqa.training.data`). The same seed gives the same weights on a CPU.

Lightning runs the loop, so the same call uses one CPU, one GPU (bf16 autocast,
channels-last) or several GPUs and nodes through DDP (``devices``, ``num_nodes``); the
IoUs are formed from pixel counts summed over every process. Nothing is written under
the checkpoint's name unless training finishes: a run that is cancelled, fails or
produces NaN leaves no checkpoint behind.

:func:`score_out_of_fold` (:mod:`~chipqa.training.oof`) trains K models and scores each
chip with the one that never saw its label.

Importing this package does not import Lightning; the names that need it
(:class:`CloudSegmenter`, :class:`CloudIoU`, :func:`dice_bce_loss`,
:class:`JsonProgress`) are imported on first use.
"""

from __future__ import annotations

import importlib

from chipqa.training.config import TrainConfig, TrainingError, TrainResult
from chipqa.training.data import ChipTrainingSet, EpochSampler, band_statistics, collate
from chipqa.training.evaluate import dataset_iou
from chipqa.training.fit import train
from chipqa.training.progress import ProgressWriter, read_progress
from chipqa.training.splits import kfold_chips, prepare_chips, split_chips

_LAZY = {
    "CloudIoU": "chipqa.training.module",
    "CloudSegmenter": "chipqa.training.module",
    "dice_bce_loss": "chipqa.training.module",
    "JsonProgress": "chipqa.training.callbacks",
    "score_out_of_fold": "chipqa.training.oof",
}

__all__ = [
    "ChipTrainingSet",
    "CloudIoU",
    "CloudSegmenter",
    "EpochSampler",
    "JsonProgress",
    "ProgressWriter",
    "TrainConfig",
    "TrainResult",
    "TrainingError",
    "band_statistics",
    "collate",
    "dataset_iou",
    "dice_bce_loss",
    "kfold_chips",
    "prepare_chips",
    "read_progress",
    "score_out_of_fold",
    "split_chips",
    "train",
]


def __getattr__(name: str):
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'chipqa.training' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)
