"""A U-Net (or any segmentation-models-pytorch model) as a predictor."""

from __future__ import annotations

import threading
import warnings
from dataclasses import replace

import torch
from torch import Tensor, nn

from chipqa.predictors.adapter import InputAdapter
from chipqa.predictors.base import Predictor
from chipqa.predictors.fast_cpu import OnnxRunner, onnx_runner
from chipqa.predictors.model import ModelConfig, cloud_logit


class UNetPredictor(Predictor):
    """Cloud probability from a segmentation-models-pytorch model.

    Inputs are normalised on the device with the checkpoint's per-band statistics and
    padded (reflect) to a multiple of 32 pixels, as the U-Net's encoder requires. On CUDA
    the model runs in channels-last memory format under bf16 autocast. On a CPU,
    :meth:`fast_cpu` has onnxruntime run the network instead of torch (about twice as
    fast; :mod:`chipqa.predictors.fast_cpu`).
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
        self.cpu_runner: OnnxRunner | None = None  # onnxruntime on the CPU: fast_cpu()
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

    def fast_cpu(self, enable: bool = True, **kwargs) -> UNetPredictor:
        """Run the network with onnxruntime whenever the input is on the CPU.

        The network is exported to ONNX once per set of weights and cached (see
        :func:`~chipqa.predictors.fast_cpu.onnx_runner`, which takes ``kwargs``:
        ``folder``, ``threads``, ``name``); normalisation and padding stay in torch. Where that is
        impossible (onnxruntime missing, the cache folder read-only or full) a warning
        says why and the model keeps running in torch. Call it on a CPU predictor whose
        weights will not change: a later change of the weights is not seen by the
        export. ``enable=False`` goes back to torch.
        """
        runner = None
        if enable and self.device.type == "cpu":
            model = self._eager if self._eager is not None else self.model
            kwargs.setdefault("name", self.name)
            runner = onnx_runner(model, self.config.in_channels, **kwargs)
        self.cpu_runner = runner
        return self

    def compile(self, mode: str | None = None) -> UNetPredictor:
        """Compile the model with ``torch.compile`` (shapes fixed: chips of one size).

        Compiling replaces the onnxruntime path of :meth:`fast_cpu`.

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
            self.cpu_runner = None
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
        runner = self.cpu_runner
        if runner is not None and x.device.type == "cpu":
            logits = runner(x)  # the same network, exported: see fast_cpu()
        else:
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
