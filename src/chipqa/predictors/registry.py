"""Predictors by name, like segmentation-models-pytorch's encoders: a name maps to a
factory, and anything else given to :func:`load_predictor` is a checkpoint path.

A new predictor (a pretrained model shipped in a package, another weight-free test)
registers itself with :func:`register` and is then usable everywhere a model is asked
for: ``chipqa score --model NAME``, the plugin's model field, :func:`load_predictor`.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import torch

from chipqa.predictors.base import Predictor, resolve_device
from chipqa.predictors.baseline import SpectralBaseline
from chipqa.predictors.checkpoint import load_checkpoint
from chipqa.predictors.pretrained import CREDIT, load_pretrained
from chipqa.predictors.unet import UNetPredictor

Factory = Callable[[torch.device], Predictor]

_REGISTRY: dict[str, tuple[Factory, str]] = {}


def register(name: str, factory: Factory, description: str = "") -> None:
    """Make ``name`` a predictor: ``factory(device)`` builds it on that device."""
    if not name or "/" in name or name.endswith((".ckpt", ".pt", ".pth")):
        raise ValueError(f"{name!r} cannot name a predictor (it looks like a path)")
    _REGISTRY[name] = (factory, description)


def available() -> dict[str, str]:
    """Registered predictor names and what each is."""
    return {name: desc for name, (_, desc) in sorted(_REGISTRY.items())}


def load_predictor(
    spec: str | Path, device: str | torch.device | None = "auto", *, compile: bool = False
) -> Predictor:
    """A registered name (``"baseline"``, see :func:`available`) or a checkpoint path →
    a predictor on ``device`` (``"auto"``: CUDA when there is one).

    ``compile=True`` compiles a U-Net with ``torch.compile`` (see
    :meth:`UNetPredictor.compile`); other predictors ignore it.

    Raises:
        CheckpointError: ``spec`` is neither a registered name nor a usable checkpoint.
    """
    dev = resolve_device(device)
    entry = _REGISTRY.get(str(spec))
    if entry is not None:
        return entry[0](dev)
    model, info = load_checkpoint(spec, device="cpu")
    name = f"unet-{info.config.encoder}:{Path(spec).name}"
    predictor = UNetPredictor(model, info.config, name=name).to(dev)
    return predictor.compile() if compile else predictor


register(
    "baseline",
    lambda device: SpectralBaseline().to(device),
    "weight-free spectral cloud test (fitted on synthetic chips only)",
)
register(
    "pretrained",
    lambda device: load_pretrained("l2a", device),
    f"cloud / cloud-shadow U-Net (efficientnet-b4) for Sentinel-2 L2A, from {CREDIT}",
)
register(
    "pretrained-l1c",
    lambda device: load_pretrained("l1c", device),
    f"cloud / cloud-shadow U-Net (efficientnet-b4) for Sentinel-2 L1C, from {CREDIT}",
)
