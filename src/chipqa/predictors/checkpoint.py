"""chipqa's checkpoint format: weights plus everything needed to rebuild the model, its
input normalisation and the list of chips it was trained on; read without unpickling
arbitrary objects (``torch.load(weights_only=True)``)."""

from __future__ import annotations

import pickle
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from chipqa import __version__
from chipqa.errors import CheckpointError
from chipqa.io.atomic import atomic_open
from chipqa.predictors.model import ModelConfig, build_model

CHECKPOINT_FORMAT = "chipqa-checkpoint"
CHECKPOINT_VERSION = 1


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
