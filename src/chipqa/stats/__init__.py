"""Per-chip statistics: one definition (:mod:`~chipqa.stats.definitions`), a batched torch
backend for any device (:mod:`~chipqa.stats.batched`) and fused numba kernels for the
CPU (:mod:`~chipqa.stats.kernels`, loaded by :func:`~chipqa.stats.backend.cpu_kernels`).
"""

from chipqa.stats.backend import cpu_kernels
from chipqa.stats.batched import chip_stats, per_chip_iou, predicted_fraction, scl_stats
from chipqa.stats.definitions import iou_from_counts, mask_iou, soft_min

__all__ = [
    "chip_stats",
    "cpu_kernels",
    "iou_from_counts",
    "mask_iou",
    "per_chip_iou",
    "predicted_fraction",
    "scl_stats",
    "soft_min",
]
