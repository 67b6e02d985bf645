"""The one input adapter of segmentation models, shared by inference and training.

Raw DNs → reflectance (DN / 10 000) → per-band standardisation with the checkpoint's
statistics → padding to a multiple of 32 pixels (the U-Net encoder's stride) → on CUDA,
channels-last memory format. The model's output is cropped back with :meth:`crop`.
A model trained through this adapter sees exactly what it will see when predicting.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from chipqa.constants import REFLECTANCE_SCALE
from chipqa.predictors.base import reflectance
from chipqa.predictors.model import cloud_logit

STRIDE = 32
"""Inputs are padded to a multiple of this (the total stride of smp's encoders)."""


class InputAdapter(nn.Module):
    """Normalise, pad and lay out a batch of DNs for a segmentation model.

    Args:
        mean: per-band mean of reflectance (DN / 10 000).
        std: per-band standard deviation of reflectance.
        dn_offset: added to every DN by the product (Sentinel-2 L2A of processing
            baseline 04.00 and later, from January 2022: DN = 10 000·ρ + 1 000);
            taken off before scaling, so every model sees reflectance.
    """

    def __init__(self, mean: Sequence[float], std: Sequence[float], dn_offset: int = 0):
        super().__init__()
        self.dn_offset = int(dn_offset)
        if len(mean) != len(std):
            raise ValueError(f"mean has {len(mean)} values but std has {len(std)}")
        shape = (1, len(mean), 1, 1)
        self.register_buffer("mean", torch.tensor(tuple(mean)).view(shape), persistent=False)
        self.register_buffer("std", torch.tensor(tuple(std)).view(shape), persistent=False)

    def forward(self, bands: Tensor) -> Tensor:
        """``(B, C, H, W)`` DNs → the model's input ``(B, C, H', W')``, H' and W' padded
        up to multiples of :data:`STRIDE` (reflect, or replicate for tiny chips)."""
        x = reflectance(bands)
        if self.dn_offset:
            x = x - self.dn_offset / REFLECTANCE_SCALE
        x = (x - self.mean) / self.std
        h, w = x.shape[-2:]
        ph, pw = (-h) % STRIDE, (-w) % STRIDE
        if ph or pw:
            mode = "reflect" if (ph < h and pw < w) else "replicate"
            x = F.pad(x, (0, pw, 0, ph), mode=mode)
        if x.device.type == "cuda":
            x = x.contiguous(memory_format=torch.channels_last)
        return x

    @staticmethod
    def crop(logits: Tensor, shape: tuple[int, int]) -> Tensor:
        """The cloud logits ``(B, H, W)`` (see :func:`~chipqa.predictors.model.cloud_logit`)
        cut back to the input's ``shape``."""
        h, w = shape
        return cloud_logit(logits[..., :h, :w])
