"""Predictors: batches of chips in, per-pixel cloud probability out.

* :class:`SpectralBaseline` needs no weights: a fixed per-pixel spectral test.
* :class:`UNetPredictor` runs a segmentation-models-pytorch model rebuilt from a chipqa
  checkpoint (:mod:`~chipqa.predictors.checkpoint`) without unpickling arbitrary objects.
* :class:`PretrainedPredictor` runs UKIS csmask's pretrained cloud U-Net
  (:mod:`~chipqa.predictors.pretrained`; registered as ``"pretrained"``).

:func:`load_predictor` turns a registered name or a checkpoint path into one
(:mod:`~chipqa.predictors.registry`).
"""

from chipqa.predictors.adapter import InputAdapter
from chipqa.predictors.base import Predictor, reflectance, resolve_device, to_device
from chipqa.predictors.baseline import SpectralBaseline
from chipqa.predictors.checkpoint import (
    CheckpointInfo,
    load_checkpoint,
    read_checkpoint,
    save_checkpoint,
)
from chipqa.predictors.model import (
    RECOMMENDED_ENCODERS,
    ModelConfig,
    build_model,
    encoder_names,
    load_encoder_weights,
)
from chipqa.predictors.pretrained import PretrainedPredictor, load_pretrained
from chipqa.predictors.registry import available, load_predictor, register
from chipqa.predictors.unet import UNetPredictor

__all__ = [
    "RECOMMENDED_ENCODERS",
    "CheckpointInfo",
    "InputAdapter",
    "ModelConfig",
    "Predictor",
    "PretrainedPredictor",
    "SpectralBaseline",
    "UNetPredictor",
    "available",
    "build_model",
    "encoder_names",
    "load_checkpoint",
    "load_encoder_weights",
    "load_predictor",
    "load_pretrained",
    "read_checkpoint",
    "register",
    "reflectance",
    "resolve_device",
    "save_checkpoint",
    "to_device",
]
