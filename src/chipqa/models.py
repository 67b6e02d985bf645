"""Predictors: batches of chips in, per-pixel cloud probability out.

Two predictors share one interface (:class:`Predictor`):

* :class:`SpectralBaseline` needs no weights. It is a fixed per-pixel spectral test on
  the four bands (see its docstring for what it does and where it fails).
* :class:`UNetPredictor` runs a U-Net from segmentation-models-pytorch, rebuilt from a
  chipqa checkpoint (:func:`load_checkpoint`) without unpickling arbitrary objects.

Both take raw reflectance DNs (``(B, 4, H, W)`` integers, :data:`~chipqa.dataset.BANDS`
order) already on their device and do all normalisation there, so that a batch travels
to the GPU as compact integers.
"""

from __future__ import annotations

import pickle
import threading
import warnings
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from chipqa import __version__
from chipqa._io import atomic_open
from chipqa.dataset import BANDS, Chip
from chipqa.errors import CheckpointError

CHECKPOINT_FORMAT = "chipqa-checkpoint"
CHECKPOINT_VERSION = 1
RECOMMENDED_ENCODERS = ("resnet34", "mobilenet_v2", "inceptionv4", "resnet18", "efficientnet-b0")
"""Encoders chipqa is tested with; any encoder segmentation-models-pytorch knows works."""

# Per-band mean and standard deviation of reflectance (DN / 10 000) used when a model
# is built without statistics of its own; training replaces them with the dataset's.
DEFAULT_MEAN = (0.25, 0.25, 0.25, 0.33)
DEFAULT_STD = (0.28, 0.27, 0.28, 0.24)


def resolve_device(device: str | torch.device | None = "auto") -> torch.device:
    """``"auto"``/``None`` → CUDA when available, else CPU; otherwise checked as given.

    Raises:
        ValueError: CUDA was asked for and there is none.
    """
    if device is None or str(device) == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    dev = torch.device(device)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(
            f"device {device!r} was asked for but this machine has no usable CUDA GPU "
            "(torch.cuda.is_available() is False); use --device cpu or auto"
        )
    return dev


def to_device(array: np.ndarray, device: torch.device) -> Tensor:
    """A host array on ``device`` in its own dtype (uint16 bands stay integers until the
    device normalises them), through pinned memory on CUDA so the copy can overlap."""
    t = torch.from_numpy(array)
    if device.type == "cuda":
        t = t.pin_memory()
    return t.to(device, non_blocking=True)


_kernels_lock = threading.Lock()
_kernels_state: dict[str, Any] = {}


def cpu_kernels():
    """The fused CPU kernels (:mod:`chipqa._kernels`), ready to run, or None.

    The first call compiles them (or loads them from numba's on-disk cache). Where the
    cache cannot be written (a read-only install without a writable home, a full disk)
    they are compiled without it, with a warning; where they cannot be built at all
    (numba missing for the platform) scoring falls back to torch, with a warning.
    """
    with _kernels_lock:
        if "module" not in _kernels_state:
            _kernels_state["module"] = _load_kernels()
        return _kernels_state["module"]


def _load_kernels():
    import importlib
    import os
    import sys

    try:
        module = importlib.import_module("chipqa._kernels")
        module.warm_up()
        return module
    except ImportError as exc:  # numba is a dependency, but a platform may lack its wheels
        warnings.warn(
            f"numba is unavailable ({exc}); CPU scoring uses torch (slower)", stacklevel=2
        )
        return None
    except Exception as exc:  # most likely the on-disk cache: try once without it
        first = exc
    os.environ["CHIPQA_KERNEL_CACHE"] = "0"
    sys.modules.pop("chipqa._kernels", None)
    try:
        module = importlib.import_module("chipqa._kernels")
        module.warm_up()
    except Exception as exc:
        warnings.warn(
            f"the CPU kernels cannot be built ({type(exc).__name__}: {exc}); CPU scoring "
            "uses torch (slower)",
            stacklevel=2,
        )
        return None
    warnings.warn(
        f"the CPU kernels cannot be cached ({type(first).__name__}: {first}); they are "
        "compiled anew in each run (about 10 s). Make the package folder or ~/.cache "
        "writable, or set NUMBA_CACHE_DIR to a writable folder",
        stacklevel=2,
    )
    return module


class Predictor(ABC):
    """Batches of chips in, per-pixel cloud probability out."""

    name: str = "predictor"
    device: torch.device = torch.device("cpu")

    @abstractmethod
    def predict_proba(self, bands: Tensor) -> Tensor:
        """Cloud probability for a batch.

        Args:
            bands: ``(B, 4, H, W)`` integer reflectance x 10 000 (uint16 or wider) on
                :attr:`device`.

        Returns:
            ``(B, H, W)`` float32 probabilities in [0, 1] on the same device.
        """

    def to(self, device: str | torch.device) -> Predictor:
        self.device = torch.device(device)
        return self

    def chip_scorer(self, threshold: float, temperature: float) -> Callable[[Chip], dict] | None:
        """A function that scores one chip on its own, in any thread, or None.

        Predictors that can score a chip cheaply on the CPU without a batch (the spectral
        baseline, with the fused kernels of :mod:`chipqa._kernels`) return one; scoring
        then runs it in the reading threads, so reading and computing share every core.
        The function returns the statistics of :func:`chipqa.scoring.score_batch`.
        """
        return None

    def predict_numpy(self, bands: np.ndarray) -> np.ndarray:
        """Convenience for one chip ``(4, H, W)`` or a batch ``(B, 4, H, W)`` on the host."""
        single = bands.ndim == 3
        x = torch.from_numpy(np.ascontiguousarray(bands[None] if single else bands))
        with torch.inference_mode():
            prob = self.predict_proba(x.to(self.device)).float().cpu().numpy()
        return prob[0] if single else prob


def reflectance(bands: Tensor) -> Tensor:
    """Integer DNs → float32 reflectance (DN / 10 000), computed on the tensor's device."""
    if bands.dtype == torch.uint16:  # few kernels support uint16 directly
        bands = bands.to(torch.int32)
    return bands.float() * 1e-4


class SpectralBaseline(Predictor):
    """A weight-free per-pixel cloud test on B02, B03, B04 and B08.

    Clouds are bright in every band and nearly white (flat) across the visible and the
    near-infrared; the surfaces they are confused with are not: vegetation is dark in the
    visible and bright in the NIR, soil and urban are darker and reddish, water is dark
    with almost no NIR. The score combines, as a logistic model:

    * **brightness**: mean visible reflectance (thick cloud ≳ 0.4, land ≲ 0.2);
    * **whiteness**: Σ|band − mean| / mean over B02, B03, B04 (Fmask's whiteness test;
      clouds ≈ 0–0.2, land 0.3–1);
    * **haze-optimised transform**: B02 − 0.5·B04 (clouds and haze are blue-bright);
    * **NIR ratio**: B08 / mean visible (vegetation ≫ 1, cloud ≈ 1, snow ≈ 0.85).

    The probability is then smoothed over a small window (clouds are spatially
    coherent; single-pixel bright roofs are not).

    The coefficients were fitted on chipqa's synthetic chips only (``chipqa synth``),
    not on real data. Known limits: without a short-wave infrared band (B11) snow and
    bright salt flats cannot be told from cloud reliably, thin cirrus over dark water is
    missed, and cloud shadows are never cloud. Use a trained U-Net for real decisions;
    the baseline is for ranking obviously wrong labels on day one.
    """

    name = "baseline"

    FEATURES = ("brightness", "whiteness", "hot", "nir_ratio_gap", "ndvi")
    # Logistic coefficients: bias, then one per feature (bench/tune_baseline.py).
    coefficients: tuple[float, ...] = (1.85, 2.542, -7.353, 0.118, -11.879, 6.327)
    smooth_px: int = 5

    @staticmethod
    def features(bands: Tensor) -> Tensor:
        """``(B, 4, H, W)`` DNs → ``(B, 5, H, W)`` features in :attr:`FEATURES` order."""
        r = reflectance(bands)
        blue, green, red, nir = r[:, 0], r[:, 1], r[:, 2], r[:, 3]
        vis = (blue + green + red) / 3.0
        safe = vis.clamp(min=1e-3)
        whiteness = ((blue - vis).abs() + (green - vis).abs() + (red - vis).abs()) / safe
        hot = blue - 0.5 * red
        # The NIR ratio helps only away from 1: vegetation (≫ 1) and snow (< 1).
        gap = ((nir / safe).clamp(max=4.0) - 1.0).abs()
        ndvi = (nir - red) / (nir + red).clamp(min=1e-3)
        return torch.stack([vis, whiteness, hot, gap, ndvi], dim=1)

    def predict_proba_reference(self, bands: Tensor) -> Tensor:
        """The model written plainly (:meth:`features`, then the logistic and the window).

        :meth:`predict_proba` computes the same numbers faster: on a CPU with the fused
        kernels of :mod:`chipqa._kernels` (one pass per chip), elsewhere with
        :meth:`predict_proba_torch` (fused, in-place torch operations)."""
        f = self.features(bands)
        w = torch.tensor(self.coefficients[1:], dtype=f.dtype, device=f.device)
        prob = torch.sigmoid(self.coefficients[0] + torch.einsum("bfhw,f->bhw", f, w))
        k = self.smooth_px
        if k > 1 and min(prob.shape[-2:]) >= k:
            prob = F.avg_pool2d(prob[:, None], k, 1, k // 2, count_include_pad=False)[:, 0]
        return prob.clamp(0.0, 1.0)

    def predict_proba(self, bands: Tensor) -> Tensor:
        kernels = cpu_kernels() if bands.device.type == "cpu" else None
        if kernels is None or bands.ndim != 4 or bands.dtype.is_floating_point:
            return self.predict_proba_torch(bands)
        x = bands.numpy()
        out = torch.empty((x.shape[0], *x.shape[2:]), dtype=torch.float32)
        c = np.asarray(self.coefficients, np.float64)
        for i in range(x.shape[0]):
            kernels.baseline_proba(x[i], c, self.smooth_px, out[i].numpy())
        return out

    def chip_scorer(self, threshold: float, temperature: float) -> Callable[[Chip], dict] | None:
        kernels = cpu_kernels() if self.device.type == "cpu" else None
        if kernels is None:
            return None
        c = np.asarray(self.coefficients, np.float64)
        k = self.smooth_px

        def score(chip: Chip) -> dict:
            return kernels.score_chip_baseline(
                chip.bands, c, k, chip.label, chip.valid, chip.scl, threshold, temperature
            )

        return score

    def predict_proba_torch(self, bands: Tensor) -> Tensor:
        """:meth:`predict_proba` in torch operations, for any device (CUDA, MPS, CPU)."""
        # Fused form of predict_proba_reference: works in DN (the 1e-4 of reflectance is
        # folded into the linear coefficients; the other features are ratios), in place,
        # without stacking the features; the box filter runs as two 1-D passes.
        c = self.coefficients
        r = bands.to(torch.float32)
        blue, green, red, nir = r.unbind(1)
        vis = (blue + green + red).mul_(1.0 / 3.0)
        inv = vis.clamp(min=10.0).reciprocal_()  # 10 DN = the reference's 1e-3 reflectance
        logit = (blue - vis).abs_().add_((green - vis).abs_()).add_((red - vis).abs_())
        logit.mul_(inv).mul_(c[2])
        logit.add_(vis, alpha=c[1] * 1e-4).add_(blue, alpha=c[3] * 1e-4)
        logit.add_(red, alpha=-0.5 * c[3] * 1e-4)
        logit.add_((nir * inv).clamp_(max=4.0).sub_(1.0).abs_(), alpha=c[4])
        logit.add_((nir - red).div_((nir + red).clamp_(min=10.0)), alpha=c[5]).add_(c[0])
        prob = logit.sigmoid_()[:, None]
        k = self.smooth_px
        if k > 1 and min(prob.shape[-2:]) >= k:
            prob = F.avg_pool2d(prob, (1, k), 1, (0, k // 2), count_include_pad=False)
            prob = F.avg_pool2d(prob, (k, 1), 1, (k // 2, 0), count_include_pad=False)
        return prob[:, 0].clamp_(0.0, 1.0)


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
        self._set_stats()

    def _set_stats(self) -> None:
        shape = (1, len(self.config.mean), 1, 1)
        self._mean = torch.tensor(self.config.mean, device=self.device).view(shape)
        self._std = torch.tensor(self.config.std, device=self.device).view(shape)

    def to(self, device: str | torch.device) -> UNetPredictor:
        self.device = torch.device(device)
        self.model.to(self.device)
        if self.device.type == "cuda":
            self.model.to(memory_format=torch.channels_last)
        self._set_stats()
        return self

    def compile(self, mode: str | None = None) -> UNetPredictor:
        """Compile the model with ``torch.compile`` (shapes fixed: chips of one size).

        Worth it for long runs on a GPU, where the fused kernels outweigh the minute or so
        the first batch takes to compile. Where compiling is impossible (no C++ compiler
        for a CPU build, an unsupported platform) the eager model is kept and a warning
        says why.
        """
        try:
            compiled = torch.compile(self.model, mode=mode, dynamic=False)
        except Exception as exc:  # compiling is an optimisation, never a requirement
            warnings.warn(f"torch.compile is unavailable ({exc}); running eagerly", stacklevel=2)
            return self
        self._eager, self.model = self.model, compiled
        self._compiled_batch = 0
        return self

    def predict_proba(self, bands: Tensor) -> Tensor:
        if self._eager is None:
            return self._predict(bands)
        # A compiled model is specialised to its batch size: pad a short batch (the last
        # of a run) to the first one's size rather than compile again for it.
        n = bands.shape[0]
        self._compiled_batch = self._compiled_batch or n
        if n < self._compiled_batch:
            pad = bands[-1:].expand(self._compiled_batch - n, *bands.shape[1:])
            bands = torch.cat([bands, pad])
        try:
            return self._predict(bands)[:n]
        except Exception as exc:  # compilation happens on the first calls
            warnings.warn(
                f"torch.compile failed ({type(exc).__name__}: {exc}); running eagerly",
                stacklevel=2,
            )
            self.model, self._eager = self._eager, None
            return self._predict(bands)[:n]

    def _predict(self, bands: Tensor) -> Tensor:
        x = (reflectance(bands) - self._mean) / self._std
        h, w = x.shape[-2:]
        ph, pw = (-h) % 32, (-w) % 32
        if ph or pw:
            mode = "reflect" if (ph < h and pw < w) else "replicate"
            x = F.pad(x, (0, pw, 0, ph), mode=mode)
        cuda = x.device.type == "cuda"
        if cuda:
            x = x.contiguous(memory_format=torch.channels_last)
        with torch.autocast(device_type=x.device.type, dtype=torch.bfloat16, enabled=cuda):
            logits = self.model(x)
        return torch.sigmoid(logits[:, 0, :h, :w].float())


@dataclass
class CheckpointInfo:
    """What a checkpoint says about itself besides its weights."""

    path: Path
    config: ModelConfig
    chipqa_version: str
    train_chips: list[str] = field(default_factory=list)
    blocklist: list[str] = field(default_factory=list)
    extra: dict[str, Any] = field(default_factory=dict)


def save_checkpoint(
    path: str | Path,
    model: nn.Module,
    config: ModelConfig,
    *,
    train_chips: Sequence[str] = (),
    blocklist: Sequence[str] = (),
    extra: dict[str, Any] | None = None,
) -> Path:
    """Write a checkpoint atomically (temporary file, fsync, rename).

    The file holds only tensors and plain Python values, so that
    ``torch.load(..., weights_only=True)`` reads it without unpickling code.
    """
    path = Path(path)
    state = {k: v.detach().cpu() for k, v in model.state_dict().items()}
    obj = {
        "format": CHECKPOINT_FORMAT,
        "format_version": CHECKPOINT_VERSION,
        "chipqa_version": __version__,
        "config": config.to_dict(),
        "state_dict": state,
        "train_chips": [str(c) for c in train_chips],
        "blocklist": [str(c) for c in blocklist],
        "extra": dict(extra or {}),
    }
    with atomic_open(path, "wb") as f:
        torch.save(obj, f)
    return path


def read_checkpoint(path: str | Path) -> tuple[dict[str, Tensor], CheckpointInfo]:
    """Read a checkpoint's weights and description safely (no arbitrary unpickling).

    Raises:
        CheckpointError: missing file, not a PyTorch file, a pickle holding Python
            objects, not a chipqa checkpoint, or one from a newer chipqa.
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint {path} does not exist (give a .ckpt file or 'baseline')")
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        with open(path, "rb") as f:
            head = f.read(4)
        # torch.save writes a zip archive; a bare pickle starts with the PROTO opcode.
        if not (head.startswith(b"PK") or head[:1] == b"\x80"):
            raise CheckpointError(
                f"{path} cannot be read as a PyTorch checkpoint ({str(exc).splitlines()[0]}). "
                "Is it a .ckpt written by chipqa?"
            ) from exc
        raise CheckpointError(
            f"{path} is not a safe chipqa checkpoint: it holds Python objects that chipqa "
            "will not unpickle (loading it could run code). Use a checkpoint written by "
            "`chipqa train`."
        ) from exc
    except Exception as exc:
        raise CheckpointError(
            f"{path} cannot be read as a PyTorch checkpoint ({type(exc).__name__}: "
            f"{str(exc).splitlines()[0] if str(exc) else ''}). Is it a .ckpt written by chipqa?"
        ) from exc
    if not isinstance(obj, dict) or obj.get("format") != CHECKPOINT_FORMAT:
        hint = ""
        if isinstance(obj, dict) and obj and all(isinstance(v, Tensor) for v in obj.values()):
            hint = " It looks like a bare state_dict: it lacks the model description chipqa needs."
        raise CheckpointError(
            f"{path} is not a chipqa checkpoint (no '{CHECKPOINT_FORMAT}' header).{hint} "
            "Use a checkpoint written by `chipqa train`."
        )
    version = obj.get("format_version")
    if not isinstance(version, int) or version > CHECKPOINT_VERSION:
        raise CheckpointError(
            f"{path} was written by chipqa {obj.get('chipqa_version', '?')} in checkpoint format "
            f"{version}; this chipqa ({__version__}) reads format {CHECKPOINT_VERSION} and older. "
            "Upgrade chipqa to use it."
        )
    try:
        config = ModelConfig.from_dict(obj["config"])
        state = obj["state_dict"]
    except (KeyError, TypeError) as exc:
        raise CheckpointError(f"{path} is a damaged chipqa checkpoint (missing {exc})") from exc
    info = CheckpointInfo(
        path=path,
        config=config,
        chipqa_version=str(obj.get("chipqa_version", "?")),
        train_chips=list(obj.get("train_chips", [])),
        blocklist=list(obj.get("blocklist", [])),
        extra=dict(obj.get("extra", {})),
    )
    return state, info


def load_checkpoint(
    path: str | Path, device: str | torch.device = "cpu"
) -> tuple[nn.Module, CheckpointInfo]:
    """Rebuild the model a checkpoint describes and load its weights.

    Raises:
        CheckpointError: see :func:`read_checkpoint`, or the weights do not fit the
            architecture the checkpoint names.
    """
    state, info = read_checkpoint(path)
    try:
        model = build_model(info.config)
    except ValueError as exc:
        raise CheckpointError(f"{path}: {exc}") from exc
    # Compare names and shapes first: smp's load_state_dict only warns on shape mismatch.
    own = model.state_dict()
    missing = [k for k in own if k not in state]
    unexpected = [k for k in state if k not in own]
    reshaped = [k for k in own if k in state and tuple(state[k].shape) != tuple(own[k].shape)]
    if missing or unexpected or reshaped:
        raise CheckpointError(
            f"{path}: its weights do not fit a {info.config.arch} with encoder "
            f"{info.config.encoder!r} ({len(missing)} missing, {len(unexpected)} unexpected and "
            f"{len(reshaped)} differently shaped tensors, e.g. "
            f"{(missing + unexpected + reshaped)[0]}). The checkpoint was probably edited or "
            "written by another program."
        )
    model.load_state_dict(state, strict=True)
    return model.to(device).eval(), info


def load_predictor(
    spec: str | Path, device: str | torch.device | None = "auto", *, compile: bool = False
) -> Predictor:
    """``"baseline"`` → :class:`SpectralBaseline`; a path → :class:`UNetPredictor`.

    ``compile=True`` compiles a U-Net with ``torch.compile`` (see
    :meth:`UNetPredictor.compile`); the baseline ignores it.
    """
    dev = resolve_device(device)
    if str(spec) == "baseline":
        return SpectralBaseline().to(dev)
    model, info = load_checkpoint(spec, device="cpu")
    name = f"unet-{info.config.encoder}:{Path(spec).name}"
    predictor = UNetPredictor(model, info.config, name=name).to(dev)
    return predictor.compile() if compile else predictor


__all__ = [
    "CheckpointInfo",
    "ModelConfig",
    "Predictor",
    "SpectralBaseline",
    "UNetPredictor",
    "build_model",
    "encoder_names",
    "load_checkpoint",
    "load_predictor",
    "read_checkpoint",
    "resolve_device",
    "save_checkpoint",
]
