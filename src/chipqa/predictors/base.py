"""The predictor interface: batches of chips in, per-pixel cloud probability out.

Predictors take raw reflectance DNs (``(B, 4, H, W)`` integers in
:data:`~chipqa.constants.BANDS` order) already on their device and do all normalisation
there, so that a batch travels to the GPU as compact integers.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from typing import TYPE_CHECKING

import numpy as np
import torch
from torch import Tensor

from chipqa.constants import REFLECTANCE_SCALE

if TYPE_CHECKING:
    from chipqa.data.records import Chip


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


def dn_offset_problem(offset: int) -> str | None:
    """Why ``offset`` cannot be the DN offset of Sentinel-2 chips (None: it can). DN =
    10 000·reflectance + offset, with reflectance from 0 up: an offset below 0 or of
    10 000 and more cannot be one. The same rule for ``train``, ``score`` and ``mask``."""
    if 0 <= int(offset) < 10_000:
        return None
    return (
        f"a DN offset must be between 0 and 9 999, not {offset}: DN = 10 000·reflectance + "
        "offset, so it is 1000 for Sentinel-2 L2A from processing baseline 04.00 on "
        "(January 2022) and 0 for older products and On Cloud N"
    )


def dn_offset_override(predictor: Predictor, offset: int) -> str | None:
    """A warning when ``offset`` differs from the DN offset a checkpoint was trained with
    (None: it does not, or the predictor has no trained offset)."""
    trained = predictor.trained_dn_offset
    if trained is None or int(offset) == trained:
        return None
    return (
        f"warning: {predictor.name} was trained on chips with DN offset {trained}; "
        f"--dn-offset {offset} takes {offset} off these chips instead. Right when they "
        f"come from another product; for chips like the training chips leave out "
        "--dn-offset"
    )


class Predictor(ABC):
    """Batches of chips in, per-pixel cloud probability out."""

    name: str = "predictor"
    device: torch.device = torch.device("cpu")
    dn_offset: int = 0
    """DN offset taken off the bands before predicting (see :meth:`with_dn_offset`)."""
    trained_dn_offset: int | None = None
    """The DN offset of the chips a checkpoint was trained on (None: not a checkpoint)."""

    @abstractmethod
    def predict_proba(self, bands: Tensor) -> Tensor:
        """Cloud probability for a batch.

        Args:
            bands: ``(B, 4, H, W)`` integer reflectance x 10 000 (uint16 or wider) on
                :attr:`device`.

        Returns:
            ``(B, H, W)`` float32 probabilities in [0, 1] on the same device.
        """

    def predict_maps(self, bands: Tensor) -> dict[str, Tensor]:
        """Every per-pixel map the predictor makes for a batch, by name, each ``(B, H, W)``
        on :attr:`device`: ``"cloud"`` (the cloud probability of :meth:`predict_proba`)
        always; ``"shadow"`` (cloud-shadow probability) from predictors that know it."""
        return {"cloud": self.predict_proba(bands)}

    def with_dn_offset(self, offset: int) -> Predictor:
        """Predict chips whose DNs carry ``offset`` (Sentinel-2 L2A from processing
        baseline 04.00 on: DN = 10 000·ρ + 1 000): the offset is taken off first, so the
        predictor sees reflectance as it was made for."""
        problem = dn_offset_problem(offset)
        if problem is not None:
            raise ValueError(problem)
        self.dn_offset = int(offset)
        return self

    def to(self, device: str | torch.device) -> Predictor:
        self.device = torch.device(device)
        return self

    def chip_scorer(self, threshold: float, temperature: float) -> Callable[[Chip], dict] | None:
        """A function that scores one chip on its own, in any thread, or None.

        Predictors that can score a chip cheaply on the CPU without a batch (the spectral
        baseline, with the fused kernels of :mod:`chipqa.stats.kernels`) return one; scoring
        then runs it in the reading threads, so reading and computing share every core.
        The function returns the per-chip statistics of :mod:`chipqa.stats` as a dict
        (the keys of :func:`chipqa.stats.kernels.stats_row`).
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
    return bands.float() * (1.0 / REFLECTANCE_SCALE)
