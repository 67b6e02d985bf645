"""A pretrained cloud and cloud-shadow U-Net for chipqa's four bands, from UKIS csmask.

The ``ukis-csmask`` package (DLR's UKIS team, Apache-2.0) ships its models as ONNX files
in its wheel: ``ukis_csmask/model_4b_l2a.onnx`` (Sentinel-2 L2A surface reflectance) and
``model_4b_l1c.onnx`` (L1C top-of-atmosphere), each with a ``.json`` beside it that names
the bands (blue, green, red, NIR) and gives their per-band mean and standard deviation
of reflectance (DN / 10 000). Each is a segmentation-models-pytorch
``Unet("efficientnet-b4", classes=3)`` trained on 256 x 256 tiles; its classes are
0 clear, 1 cloud, 2 cloud shadow.

chipqa does not run the ONNX graph: it reads the graph's weights (initializers named
``model.<smp state-dict key>``) with the ``onnx`` package and loads them into the same
smp model in torch, so the model runs on chipqa's fast path (uint16 batches normalised
on the device, bf16 and channels-last on CUDA, any chip size padded to a multiple of
32 and cropped back). Cloud probability is the softmax of the cloud class.

The shipped graphs store their weights in float16 and compute in float16; chipqa
computes in float32 with those same weights. Against onnxruntime running the graph
converted to float32 the logits agree to about 2e-5; against the shipped float16 graph
they differ by up to about 0.04 (logits of standard deviation about 4), because
onnxruntime folds each BatchNorm into the preceding convolution and rounds the folded
weights to float16 (without that fold the difference is about 1e-3, the float16
rounding of the activations).

Nothing is downloaded: the weights come from the installed package. The model is
built only when asked for (``load_predictor("pretrained")``); importing chipqa imports
neither ``onnx`` nor ``ukis_csmask``.
"""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from chipqa.constants import BANDS
from chipqa.errors import CheckpointError
from chipqa.predictors.model import ModelConfig, build_model
from chipqa.predictors.unet import UNetPredictor

INSTALL = "pip install ukis-csmask onnx"
"""The command that installs what the pretrained models need."""

CREDIT = "UKIS csmask (DLR), Apache-2.0"

LEVELS = ("l2a", "l1c")
"""Sentinel-2 processing levels a model is shipped for."""

CLASSES = ("clear", "cloud", "cloud shadow")
"""The models' output classes, in order."""

CLOUD_CLASS = 1
SHADOW_CLASS = 2

ENCODER = "efficientnet-b4"

# csmask's band names for chipqa's bands (chipqa.constants.BANDS).
BAND_NAMES = {"B02": "blue", "B03": "green", "B04": "red", "B08": "nir"}

# Weights of the smp model that the ONNX graph does not hold: BatchNorm step counters
# (unused in inference) and the encoder's classification head, which the U-Net never calls.
_UNUSED = ("num_batches_tracked", "encoder._conv_head.", "encoder._bn1.")


def weights_file(level: str = "l2a") -> Path:
    """The installed ONNX file of the 4-band model for ``level`` (``"l2a"`` or ``"l1c"``).

    Raises:
        CheckpointError: ``ukis-csmask`` is not installed.
    """
    if level not in LEVELS:
        raise ValueError(f"unknown level {level!r}; choose one of {', '.join(LEVELS)}")
    spec = importlib.util.find_spec("ukis_csmask")
    if spec is None or spec.origin is None:
        raise CheckpointError(
            "the pretrained cloud model comes from the ukis-csmask package, which is not "
            f"installed: {INSTALL} (or use --model baseline)"
        )
    return Path(spec.origin).parent / f"model_4b_{level}.onnx"


def read_config(json_path: str | Path) -> ModelConfig:
    """The model description beside an ONNX file → chipqa's :class:`ModelConfig`.

    Raises:
        CheckpointError: the file is missing or unreadable, describes another model, or
            its bands are not chipqa's four bands in chipqa's order.
    """
    json_path = Path(json_path)
    try:
        meta = json.loads(json_path.read_text())
        data, model = meta["data"], meta["model"]
        names = [str(b).lower() for b in data["dataset_statistics"]["band_names"]]
        mean, std = (tuple(float(v) for v in s) for s in data["dataset_statistics"]["img"])
        classes, encoder = int(data["classes"]), str(model["encoder_name"])
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise CheckpointError(
            f"{json_path} cannot be read as a csmask model description ({exc}); "
            f"reinstall the package: {INSTALL} --force-reinstall"
        ) from exc
    expected = [BAND_NAMES[b] for b in BANDS]
    if names != expected:
        raise CheckpointError(
            f"{json_path} describes a model of bands {names}; chipqa feeds {expected} "
            f"({', '.join(BANDS)}), so this model is refused"
        )
    if classes != len(CLASSES) or encoder != ENCODER or not len(mean) == len(std) == len(BANDS):
        raise CheckpointError(
            f"{json_path} describes a {encoder} model with {classes} classes and "
            f"{len(mean)} band statistics; chipqa expects {ENCODER}, {len(CLASSES)} classes "
            f"(clear, cloud, shadow) and {len(BANDS)} bands"
        )
    return ModelConfig(
        arch="unet", encoder=ENCODER, in_channels=len(BANDS), classes=classes, mean=mean, std=std
    )


def read_onnx_weights(onnx_path: str | Path) -> dict[str, Tensor]:
    """The ONNX graph's initializers as an smp state dict (``model.`` stripped, float32).

    Raises:
        CheckpointError: ``onnx`` is not installed, or the file is missing or damaged.
    """
    try:
        import onnx
        from onnx import numpy_helper
    except ImportError as exc:
        raise CheckpointError(
            f"the pretrained cloud model is read with the onnx package, which is not "
            f"installed: {INSTALL} (or use --model baseline)"
        ) from exc
    onnx_path = Path(onnx_path)
    if not onnx_path.is_file():
        raise CheckpointError(
            f"the pretrained weights {onnx_path} are missing; reinstall the package: "
            f"{INSTALL} --force-reinstall (or use --model baseline)"
        )
    try:
        graph = onnx.load(str(onnx_path)).graph
        state = {
            init.name.removeprefix("model."): torch.from_numpy(
                np.asarray(numpy_helper.to_array(init), dtype=np.float32)
            )
            for init in graph.initializer
            if init.name.startswith("model.")
        }
    except Exception as exc:  # protobuf decode errors, truncated tensors, …
        raise CheckpointError(
            f"the pretrained weights {onnx_path} are damaged ({type(exc).__name__}: {exc}); "
            f"reinstall the package: {INSTALL} --force-reinstall (or use --model baseline)"
        ) from exc
    bad = [k for k, v in state.items() if v.is_floating_point() and not torch.isfinite(v).all()]
    if bad:
        raise CheckpointError(
            f"the pretrained weights {onnx_path} are damaged ({len(bad)} tensors hold NaN or "
            f"infinite values, e.g. {bad[0]}); reinstall the package: {INSTALL} --force-reinstall"
        )
    return state


def build_pretrained_model(onnx_path: str | Path) -> tuple[torch.nn.Module, ModelConfig]:
    """The smp U-Net with the weights of ``onnx_path`` and its config (from the ``.json``
    beside it), on the CPU in eval mode.

    Raises:
        CheckpointError: a file is missing or damaged, or does not fit the model.
    """
    onnx_path = Path(onnx_path)
    config = read_config(onnx_path.with_suffix(".json"))
    state = read_onnx_weights(onnx_path)
    model = build_model(config)
    try:
        result = model.load_state_dict(state, strict=False)
    except RuntimeError as exc:  # tensors of the wrong shape
        why = str(exc).splitlines()[-1].strip()
        raise CheckpointError(
            f"the pretrained weights {onnx_path} do not fit an smp Unet({ENCODER}) ({why}); "
            f"reinstall the package: {INSTALL} --force-reinstall"
        ) from exc
    missing = [k for k in result.missing_keys if not any(u in k for u in _UNUSED)]
    if missing or result.unexpected_keys:
        extra = list(result.unexpected_keys)
        raise CheckpointError(
            f"the pretrained weights {onnx_path} do not fit an smp Unet({ENCODER}): "
            f"{len(missing)} tensors missing (e.g. {missing[:3]}), {len(extra)} unexpected "
            f"(e.g. {extra[:3]}); reinstall the package: {INSTALL} --force-reinstall"
        )
    return model.eval(), config


class PretrainedPredictor(UNetPredictor):
    """UKIS csmask's cloud / cloud-shadow U-Net as a chipqa predictor.

    Cloud probability is the softmax probability of the cloud class;
    :meth:`class_probabilities` gives all three classes.
    """

    def probability(self, logits: Tensor) -> Tensor:
        return torch.softmax(logits, dim=1)[:, CLOUD_CLASS]

    def predict_maps(self, bands: Tensor) -> dict[str, Tensor]:
        """Cloud and cloud-shadow probability from one forward pass."""
        probs = self.class_probabilities(bands)
        return {"cloud": probs[:, CLOUD_CLASS], "shadow": probs[:, SHADOW_CLASS]}

    def class_probabilities(self, bands: Tensor) -> Tensor:
        """``(B, 3, H, W)`` probabilities of clear, cloud and cloud shadow for a batch of
        DNs on :attr:`device`."""
        with torch.inference_mode():
            return torch.softmax(self.forward_logits(bands), dim=1)


def load_pretrained(
    level: str = "l2a", device: str | torch.device = "cpu", onnx_path: str | Path | None = None
) -> PretrainedPredictor:
    """The csmask model for ``level`` (or the one in ``onnx_path``) as a predictor.

    Raises:
        CheckpointError: the package, the ``onnx`` reader or a weights file is missing or
            damaged (the message gives the install command).
    """
    path = weights_file(level) if onnx_path is None else Path(onnx_path)
    model, config = build_pretrained_model(path)
    name = "pretrained" if level == "l2a" else f"pretrained-{level}"
    return PretrainedPredictor(model, config, name=name).to(device)
