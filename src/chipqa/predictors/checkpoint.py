"""chipqa's checkpoint format: weights plus everything needed to rebuild the model, its
input normalisation and the list of chips it was trained on; read without unpickling
arbitrary objects (``torch.load(weights_only=True)``)."""

from __future__ import annotations

import math
import pickle
import pickletools
import re
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
        with open(path, "rb") as f:
            head = f.read(_SNIFF)
    except OSError as exc:
        raise CheckpointError(
            f"checkpoint {path} cannot be opened ({exc.strerror or exc})"
        ) from exc
    # torch.save writes a zip archive (or, in its legacy format, a pickle of protocol 2
    # or later, starting with the PROTO opcode); anything else is not a checkpoint and is
    # not handed to torch, whose messages about it would only confuse.
    if not (head.startswith(b"PK\x03\x04") or head[:1] == b"\x80"):
        raise CheckpointError(f"{path} {_not_a_checkpoint(path, head)}")
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        raise CheckpointError(
            f"{path} is not a safe chipqa checkpoint: it holds Python objects that chipqa "
            "will not unpickle (loading it could run code). Use a checkpoint written by "
            "`chipqa train`."
        ) from exc
    except Exception as exc:
        if head[:1] == b"\x80" and _is_pickle(path):
            raise CheckpointError(
                f"{path} is a plain Python pickle, not a PyTorch checkpoint. Use a .ckpt "
                "written by `chipqa train`."
            ) from exc
        raise CheckpointError(
            f"{path} cannot be read as a PyTorch checkpoint ({type(exc).__name__}: "
            f"{_first_line(exc)}). Is it a .ckpt written by chipqa?"
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
    _check_config(path, config)
    _check_weights(path, state)
    info = CheckpointInfo(
        path=path,
        config=config,
        chipqa_version=str(obj.get("chipqa_version", "?")),
        train_chips=list(obj.get("train_chips", [])),
        blocklist=list(obj.get("blocklist", [])),
        extra=dict(obj.get("extra", {})),
    )
    return state, info


_SNIFF = 512
_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")


def _first_line(exc: Exception) -> str:
    """The first line of an exception's message, without terminal colour codes."""
    text = _ANSI.sub("", str(exc)).strip()
    return text.splitlines()[0] if text else ""


def _is_pickle(path: Path) -> bool:
    """True when the file parses as a pickle (opcodes only: nothing is executed)."""
    try:
        with open(path, "rb") as f:
            for _ in pickletools.genops(f):
                pass
    except Exception:  # noqa: BLE001 - any parse failure means "not a pickle"
        return False
    return True


def _not_a_checkpoint(path: Path, head: bytes) -> str:
    """Why a file that is neither a zip archive nor a binary pickle is no checkpoint."""
    use = "Use a .ckpt written by `chipqa train`."
    if not head:
        return f"is empty, not a checkpoint. {use}"
    if _is_pickle(path):
        return (
            "is a plain Python pickle (protocol 0 or 1), not a PyTorch checkpoint; "
            f"chipqa does not unpickle such files (loading one could run code). {use}"
        )
    try:
        text = head.decode("utf-8")
    except UnicodeDecodeError as exc:  # a character cut at the end of the sniffed bytes
        text = head[: exc.start].decode("utf-8") if exc.start >= len(head) - 3 else None
    if text is not None and all(c.isprintable() or c in "\t\r\n" for c in text):
        first = text.strip().splitlines()[0][:40] if text.strip() else ""
        return f"is a text file (it begins {first!r}), not a PyTorch checkpoint. {use}"
    return f"is not a PyTorch checkpoint (it begins with the bytes {head[:8]!r}). {use}"


def _check_config(path: Path, config: ModelConfig) -> None:
    """Refuse input statistics that cannot normalise the checkpoint's bands."""
    n = config.in_channels
    for name, values in (("mean", config.mean), ("std", config.std)):
        if len(values) != n:
            raise CheckpointError(
                f"{path} is a damaged chipqa checkpoint: its input {name} has {len(values)} "
                f"values for a model of {n} bands ({', '.join(config.bands)}). Retrain it "
                "with `chipqa train`."
            )
        try:
            ok = all(math.isfinite(float(v)) for v in values)
        except (TypeError, ValueError):
            ok = False
        if not ok or (name == "std" and any(float(v) <= 0 for v in values)):
            raise CheckpointError(
                f"{path} is a damaged chipqa checkpoint: its input {name} "
                f"{list(values)} is not {'positive and ' if name == 'std' else ''}finite. "
                "Retrain it with `chipqa train`."
            )
    if len(config.bands) != n:
        raise CheckpointError(
            f"{path} is a damaged chipqa checkpoint: it names {len(config.bands)} bands for a "
            f"model of {n} input channels. Retrain it with `chipqa train`."
        )


def _check_weights(path: Path, state) -> None:
    """Refuse weights that are not tensors, or hold NaN or infinite values (a diverged
    training run): such a model predicts nothing useful and would rank nothing."""
    if not isinstance(state, dict) or not all(isinstance(v, Tensor) for v in state.values()):
        raise CheckpointError(
            f"{path} is a damaged chipqa checkpoint (its weights are not tensors)"
        )
    bad = [
        k
        for k, v in state.items()
        if (v.is_floating_point() or v.is_complex()) and not bool(torch.isfinite(v).all())
    ]
    if bad:
        raise CheckpointError(
            f"{path} holds NaN or infinite weights ({len(bad)} tensors, e.g. {bad[0]}): the "
            "training run that wrote it diverged. Retrain (a lower learning rate often "
            "helps) or use an earlier checkpoint."
        )


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
