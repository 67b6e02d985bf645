"""A rough time a training run will take, said before it starts.

The one figure behind it was measured (``bench/training_epoch.py``, 2 CPU cores,
resnet34, chips of 128²): 270 s per 1 000 chips an epoch. It is scaled by the chips'
pixels and the number of epochs; encoders differ by a factor of about two either way,
so the estimate says "about" and the training curve shows the real time left after its
first steps. No figure was measured on a GPU, so none is made up for one.
"""

from __future__ import annotations

CPU_SECONDS_PER_CHIP_128 = 0.27
"""Seconds a chip of 128² costs per epoch on 2 CPU cores (resnet34, measured)."""


def rough_training_seconds(n_chips: int, size: int, epochs: int, device: str) -> float | None:
    """About how long training ``n_chips`` chips of ``size``² for ``epochs`` takes on a
    CPU; None on a GPU (not measured) or for nothing to train."""
    if device not in ("cpu", "auto") or n_chips <= 0 or size <= 0:
        return None
    if device == "auto":
        try:
            import torch

            if torch.cuda.is_available():
                return None
        except ImportError:  # pragma: no cover (torch is a dependency)
            pass
    return CPU_SECONDS_PER_CHIP_128 * (size / 128) ** 2 * n_chips * epochs


def describe_seconds(seconds: float) -> str:
    """42 → 'under a minute', 600 → 'about 10 min', 7200 → 'about 2.0 h'."""
    if seconds < 60:
        return "under a minute"
    if seconds < 5400:
        return f"about {seconds / 60:.0f} min"
    return f"about {seconds / 3600:.1f} h"
