"""Segmentation models: what a checkpoint says to rebuild one, and building it with
segmentation-models-pytorch's one factory (no download unless asked for)."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from chipqa.constants import BANDS

RECOMMENDED_ENCODERS = ("resnet34", "mobilenet_v2", "inceptionv4", "resnet18", "efficientnet-b0")
"""Encoders chipqa is tested with; any encoder segmentation-models-pytorch knows works."""

# Per-band mean and standard deviation of reflectance (DN / 10 000) used when a model
# is built without statistics of its own; training replaces them with the dataset's.
DEFAULT_MEAN = (0.25, 0.25, 0.25, 0.33)
DEFAULT_STD = (0.28, 0.27, 0.28, 0.24)


@dataclass
class ModelConfig:
    """Everything needed to rebuild a model and feed it (stored in each checkpoint)."""

    arch: str = "unet"
    encoder: str = "resnet34"
    in_channels: int = 4
    classes: int = 1
    bands: tuple[str, ...] = BANDS
    mean: tuple[float, ...] = DEFAULT_MEAN
    std: tuple[float, ...] = DEFAULT_STD
    dn_offset: int = 0

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["bands"] = list(self.bands)
        d["mean"] = [float(x) for x in self.mean]
        d["std"] = [float(x) for x in self.std]
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ModelConfig:
        known = {k: d[k] for k in cls.__dataclass_fields__ if k in d}
        for k in ("bands", "mean", "std"):
            if k in known:
                known[k] = tuple(known[k])
        return cls(**known)


def cloud_logit(logits: Tensor) -> Tensor:
    """The cloud logit ``(B, H, W)`` of a model's output ``(B, classes, H, W)``.

    A one-class model (chipqa's own) gives it directly. A three-class model (clear,
    cloud, cloud shadow: the pretrained csmask U-Net and models fine-tuned from it)
    gives ``l_cloud − logsumexp(l_clear, l_shadow)``, whose sigmoid is exactly the
    softmax probability of the cloud class, so such a model trains and predicts as a
    cloud / not-cloud model without losing its pretrained head.
    """
    if logits.shape[1] == 1:
        return logits[:, 0]
    if logits.shape[1] == 3:
        rest = torch.logsumexp(logits[:, [0, 2]], dim=1)
        return logits[:, 1] - rest
    raise ValueError(f"a model with {logits.shape[1]} outputs has no cloud class chipqa knows")


def encoder_names() -> list[str]:
    """Every encoder name segmentation-models-pytorch can build."""
    from chipqa._compat import import_smp

    smp = import_smp()
    return sorted(smp.encoders.get_encoder_names())


def build_model(config: ModelConfig, encoder_weights: str | Path | None = None) -> nn.Module:
    """Build a segmentation model with segmentation-models-pytorch's one factory.

    Args:
        config: architecture, encoder, channels and classes.
        encoder_weights: ``None`` (random initialisation, the default: no download), a
            local file holding an encoder ``state_dict`` (see :func:`load_encoder_weights`),
            or a name smp knows (``"imagenet"``), which smp downloads.

    Raises:
        ValueError: the encoder or architecture does not exist (the message lists the
            valid ones), or the weights file does not fit the encoder.
    """
    if encoder_weights is not None and Path(encoder_weights).is_file():
        model = build_model(config, None)
        load_encoder_weights(model, encoder_weights)
        return model
    from chipqa._compat import import_smp

    smp = import_smp()
    names = smp.encoders.get_encoder_names()
    if config.encoder not in names:
        raise ValueError(
            f"unknown encoder {config.encoder!r}. Recommended: {', '.join(RECOMMENDED_ENCODERS)}; "
            f"all {len(names)} that segmentation-models-pytorch knows: {', '.join(sorted(names))}"
        )
    try:
        return smp.create_model(
            config.arch,
            encoder_name=config.encoder,
            encoder_weights=encoder_weights,
            in_channels=config.in_channels,
            classes=config.classes,
        )
    except KeyError as exc:
        raise ValueError(f"unknown architecture {config.arch!r}: {exc}") from exc


def load_encoder_weights(model: nn.Module, path: str | Path) -> None:
    """Load pretrained encoder weights from a local file into ``model.encoder``.

    The file is a ``state_dict`` of the encoder (for example saved from an smp model
    built with ``encoder_weights="imagenet"`` on a machine with internet access); read
    with ``weights_only=True``. Weights made for 3-band (RGB) input are adapted to the
    model's bands the way smp does it: the RGB kernels are kept and every further band
    gets their mean, and the first layer is scaled by 3 / number of bands.

    Raises:
        ValueError: the file is not a state_dict or does not fit the encoder.
    """
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise ValueError(f"{path} cannot be read as an encoder state_dict ({exc})") from exc
    if isinstance(state, dict) and "state_dict" in state:
        state = state["state_dict"]
    if not isinstance(state, dict) or not all(isinstance(v, Tensor) for v in state.values()):
        raise ValueError(f"{path} does not hold an encoder state_dict (a mapping of tensors)")
    own = model.encoder.state_dict()
    adapted = {}
    for key, value in state.items():
        target = own.get(key)
        if target is not None and value.ndim == 4 and value.shape[1] != target.shape[1]:
            n_in = target.shape[1]
            extra = value.mean(1, keepdim=True).repeat(1, n_in - value.shape[1], 1, 1)
            value = torch.cat([value, extra], 1) * (value.shape[1] / n_in)
        adapted[key] = value
    missing = [k for k in own if k not in adapted]
    bad = [k for k in own if k in adapted and adapted[k].shape != own[k].shape]
    if missing or bad:
        raise ValueError(
            f"{path} does not fit encoder {type(model.encoder).__name__}: {len(missing)} missing "
            f"and {len(bad)} differently shaped tensors (e.g. {(missing + bad)[0]})"
        )
    model.encoder.load_state_dict({k: adapted[k] for k in own}, strict=True)
