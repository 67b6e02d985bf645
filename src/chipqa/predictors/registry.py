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

from chipqa.errors import CheckpointError
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


def unknown_model_error(spec: str | Path) -> CheckpointError:
    """The error for a model that is neither registered nor a file: it lists the
    registered names and suggests the closest one (``pretrainde`` → ``pretrained``)."""
    import difflib

    names = list(available())
    close = difflib.get_close_matches(str(spec), names, n=1, cutoff=0.6)
    hint = f"did you mean '{close[0]}'? " if close else ""
    return CheckpointError(
        f"unknown model '{spec}': {hint}it is neither a registered model "
        f"({', '.join(names)}) nor a checkpoint file"
    )


def check_model_spec(spec: str | Path) -> None:
    """Raise a clear error for a model that is neither registered nor a file.

    Raises:
        CheckpointError: a bare word that is not registered (the message lists the
            registered names and suggests the closest) or a missing checkpoint path.
    """
    if str(spec) in _REGISTRY:
        return
    path = Path(spec).expanduser()
    if path.is_file():
        return
    if path.suffix or len(path.parts) > 1:
        raise CheckpointError(f"checkpoint {path} does not exist (give a .ckpt file or 'baseline')")
    raise unknown_model_error(spec)


def load_predictor(
    spec: str | Path,
    device: str | torch.device | None = "auto",
    *,
    compile: bool = False,
    fast: bool | None = None,
) -> Predictor:
    """A registered name (``"baseline"``, see :func:`available`) or a checkpoint path →
    a predictor on ``device`` (``"auto"``: CUDA when there is one).

    ``compile=True`` compiles a U-Net with ``torch.compile`` (see
    :meth:`UNetPredictor.compile`); other predictors ignore it.

    ``fast``: on a CPU, run a U-Net's network with onnxruntime (about twice as fast as
    torch; see :meth:`UNetPredictor.fast_cpu`). ``None`` (the default): for registered
    models (``"pretrained"``, whose export is made once and cached), not for a
    checkpoint (each new checkpoint would need its own export); ``True``: for a
    checkpoint too; ``False``: torch only. Ignored on a GPU and when compiling.

    Raises:
        CheckpointError: ``spec`` is neither a registered name nor a usable checkpoint.
    """
    dev = resolve_device(device)
    entry = _REGISTRY.get(str(spec))
    if entry is not None:
        predictor = entry[0](dev)
    else:
        check_model_spec(spec)
        model, info = load_checkpoint(spec, device="cpu")
        name = f"unet-{info.config.encoder}:{Path(spec).name}"
        predictor = UNetPredictor(model, info.config, name=name).to(dev)
        predictor.trained_dn_offset = int(info.config.dn_offset)
    if not isinstance(predictor, UNetPredictor):
        return predictor
    if compile:
        return predictor.compile()
    if (entry is not None if fast is None else fast) and dev.type == "cpu":
        predictor.fast_cpu()
    return predictor


register(
    "baseline",
    lambda device: SpectralBaseline().to(device),
    "weight-free spectral cloud test (fitted on synthetic chips only)",
)


def _pretrained(level: str) -> Factory:
    def factory(device: torch.device) -> Predictor:
        # The few weights the shipped graph does not hold (the encoder's classification
        # head, which the U-Net never calls) start at random: seeded, so that the model,
        # and the hash of its weights that names its onnxruntime export, are the same in
        # every process. The caller's random state is left as it was.
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(0)
            return load_pretrained(level, device)

    return factory


register(
    "pretrained",
    _pretrained("l2a"),
    f"cloud / cloud-shadow U-Net (efficientnet-b4) for Sentinel-2 L2A, from {CREDIT}",
)
register(
    "pretrained-l1c",
    _pretrained("l1c"),
    f"cloud / cloud-shadow U-Net (efficientnet-b4) for Sentinel-2 L1C, from {CREDIT}",
)
# The same models under the names their authors give them.
register("csmask-l2a", _pretrained("l2a"), "the same model as 'pretrained'")
register("csmask-l1c", _pretrained("l1c"), "the same model as 'pretrained-l1c'")
