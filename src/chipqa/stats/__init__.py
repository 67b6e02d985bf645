"""Per-chip statistics: one definition (:mod:`~chipqa.stats.definitions`), a batched torch
backend for any device (:mod:`~chipqa.stats.batched`) and fused numba kernels for the
CPU (:mod:`~chipqa.stats.kernels`, loaded by :func:`~chipqa.stats.backend.cpu_kernels`).

The names below are imported on first use, so that code needing only the plain
definitions (the synthetic generator, scene statistics) does not load torch. The scalar
``iou_from_counts`` and ``soft_min`` of :mod:`~chipqa.stats.definitions` and the tensor
ones of :mod:`~chipqa.stats.batched` share names: import them from their module.
"""

from __future__ import annotations

import importlib

_EXPORTS = {
    "cpu_kernels": "chipqa.stats.backend",
    "chip_stats": "chipqa.stats.batched",
    "per_chip_iou": "chipqa.stats.batched",
    "predicted_fraction": "chipqa.stats.batched",
    "scl_stats": "chipqa.stats.batched",
    "shadow_fraction": "chipqa.stats.batched",
    "threshold_counts": "chipqa.stats.batched",
    "mask_iou": "chipqa.stats.definitions",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'chipqa.stats' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)
