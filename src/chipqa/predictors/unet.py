"""A U-Net (or any segmentation-models-pytorch model) as a predictor."""

from __future__ import annotations

import threading
import warnings
from dataclasses import replace

import torch
from torch import Tensor, nn

from chipqa.predictors.adapter import InputAdapter
from chipqa.predictors.base import Predictor
from chipqa.predictors.model import ModelConfig, cloud_logit


class UNetPredictor(Predictor):
    """Cloud probability from a segmentation-models-pytorch model.

    Inputs are normalised on the device with the checkpoint's per-band statistics and
    padded (reflect) to a multiple of 32 pixels, as the U-Net's encoder requires. On CUDA
    the model runs in channels-last memory format under bf16 autocast.
    """

    def __init__(self, model: nn.Module, config: ModelConfig, name: str = "unet"):
        self.model = model.eval()
        self.config = config
        self.name = name
        self.device = next(model.parameters()).device
        self._eager: nn.Module | None = None  # the model before torch.compile, if compiled
        self._compiled_batch = 0
        # Scoring, the review prefetch and the plugin's jobs may share one predictor:
        # the compiled model's state (its batch size, the fallback to eager) changes
        # under this lock only. Eager inference itself needs none (an eval model keeps
        # no state between calls).
        self._lock = threading.Lock()
        self.dn_offset = config.dn_offset  # the chips it was trained on (0 for most)
        self.adapter = InputAdapter(config.mean, config.std, config.dn_offset).to(self.device)

    def to(self, device: str | torch.device) -> UNetPredictor:
        self.device = torch.device(device)
        self.model.to(self.device)
        if self.device.type == "cuda":
            self.model.to(memory_format=torch.channels_last)
        self.adapter.to(self.device)
        return self

    def with_dn_offset(self, offset: int) -> UNetPredictor:
        super().with_dn_offset(offset)
        self.adapter.dn_offset = self.dn_offset
        self.config = replace(self.config, dn_offset=self.dn_offset)
        return self

    def compile(self, mode: str | None = None) -> UNetPredictor:
        """Compile the model with ``torch.compile`` (shapes fixed: chips of one size).

        Worth it for long runs on a GPU, where the fused kernels outweigh the minute or so
        the first batch takes to compile. Where compiling is impossible (no C++ compiler
        for a CPU build, an unsupported platform) the eager model is kept and a warning
        says why. Compile before the predictor is shared between threads: a call already
        running eagerly finishes on the eager model.
        """
        try:
            compiled = torch.compile(self.model, mode=mode, dynamic=False)
        except Exception as exc:  # compiling is an optimisation, never a requirement
            warnings.warn(f"torch.compile is unavailable ({exc}); running eagerly", stacklevel=2)
            return self
        with self._lock:
            self._eager, self.model = self.model, compiled
            self._compiled_batch = 0
        return self

    def predict_proba(self, bands: Tensor) -> Tensor:
        return self.probability(self.forward_logits(bands))

    def forward_logits(self, bands: Tensor) -> Tensor:
        """The model's float32 logits ``(B, classes, H, W)`` for a batch of DNs on
        :attr:`device`, through the compiled model when there is one."""
        if self._eager is None:
            return self.logits(self.model, bands)
        with self._lock:  # one compiled call at a time: its state may change below
            if self._eager is None:  # another thread fell back to eager meanwhile
                return self.logits(self.model, bands)
            # A compiled model is specialised to its batch size: pad a short batch (the
            # last of a run) to the first one's size rather than compile again for it.
            n = bands.shape[0]
            self._compiled_batch = self._compiled_batch or n
            if n < self._compiled_batch:
                pad = bands[-1:].expand(self._compiled_batch - n, *bands.shape[1:])
                bands = torch.cat([bands, pad])
            try:
                return self.logits(self.model, bands)[:n]
            except Exception as exc:  # compilation happens on the first calls
                warnings.warn(
                    f"torch.compile failed ({type(exc).__name__}: {exc}); running eagerly",
                    stacklevel=2,
                )
                self.model, self._eager = self._eager, None
                return self.logits(self.model, bands)[:n]

    def logits(self, model: nn.Module, bands: Tensor) -> Tensor:
        """The model's float32 logits ``(B, classes, H, W)`` for a batch of DNs, cropped
        back to the chips' size."""
        x = self.adapter(bands)
        cuda = x.device.type == "cuda"
        with torch.autocast(device_type=x.device.type, dtype=torch.bfloat16, enabled=cuda):
            logits = model(x)
        h, w = bands.shape[-2:]
        return logits[..., :h, :w].float()

    def probability(self, logits: Tensor) -> Tensor:
        """Cloud probability ``(B, H, W)`` from the logits: the sigmoid of the cloud logit
        (see :func:`~chipqa.predictors.model.cloud_logit`: one-class chipqa checkpoints,
        and three-class ones fine-tuned from the pretrained model)."""
        return torch.sigmoid(cloud_logit(logits))
