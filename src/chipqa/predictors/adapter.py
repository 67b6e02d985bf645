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

from chipqa.predictors.base import reflectance

STRIDE = 32
"""Inputs are padded to a multiple of this (the total stride of smp's encoders)."""


class InputAdapter(nn.Module):
    """Normalise, pad and lay out a batch of DNs for a segmentation model.

    Args:
        mean: per-band mean of reflectance (DN / 10 000).
        std: per-band standard deviation of reflectance.
    """

    def __init__(self, mean: Sequence[float], std: Sequence[float]):
        super().__init__()
        if len(mean) != len(std):
            raise ValueError(f"mean has {len(mean)} values but std has {len(std)}")
        shape = (1, len(mean), 1, 1)
        self.register_buffer("mean", torch.tensor(tuple(mean)).view(shape), persistent=False)
        self.register_buffer("std", torch.tensor(tuple(std)).view(shape), persistent=False)

    def forward(self, bands: Tensor) -> Tensor:
        """``(B, C, H, W)`` DNs → the model's input ``(B, C, H', W')``, H' and W' padded
        up to multiples of :data:`STRIDE` (reflect, or replicate for tiny chips)."""
        x = (reflectance(bands) - self.mean) / self.std
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
        """The first class's logits ``(B, H, W)`` cut back to the input's ``shape``."""
        h, w = shape
        return logits[:, 0, :h, :w]
