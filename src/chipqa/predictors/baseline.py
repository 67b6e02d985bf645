"""A weight-free spectral cloud test: chipqa's predictor on day one, before any training."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from chipqa.predictors.base import Predictor, reflectance
from chipqa.stats.backend import cpu_kernels
from chipqa.stats.detectors import chip_detectors

if TYPE_CHECKING:
    from chipqa.data.records import Chip


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
        kernels of :mod:`chipqa.stats.kernels` (one pass per chip), elsewhere with
        :meth:`predict_proba_torch` (fused, in-place torch operations)."""
        f = self.features(bands)
        w = torch.tensor(self.coefficients[1:], dtype=f.dtype, device=f.device)
        prob = torch.sigmoid(self.coefficients[0] + torch.einsum("bfhw,f->bhw", f, w))
        k = self.smooth_px
        if k > 1 and min(prob.shape[-2:]) >= k:
            prob = F.avg_pool2d(prob[:, None], k, 1, k // 2, count_include_pad=False)[:, 0]
        return prob.clamp(0.0, 1.0)

    def _without_offset(self, bands: Tensor) -> Tensor:
        if not self.dn_offset:
            return bands
        shifted = (bands.to(torch.int32) - self.dn_offset).clamp_(min=1)
        return torch.where(bands == 0, 0, shifted).to(bands.dtype)  # 0 stays no data

    def predict_proba(self, bands: Tensor) -> Tensor:
        bands = self._without_offset(bands)
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
        if kernels is None or self.dn_offset:  # offset data: the batch path takes it off
            return None
        c = np.asarray(self.coefficients, np.float64)
        k = self.smooth_px

        def score(chip: Chip) -> dict:
            if chip.label is None:
                return kernels.score_chip_baseline(
                    chip.bands, c, k, chip.label, chip.valid, chip.scl, threshold, temperature
                )
            # the detectors need the probability map itself: make it once, then count
            prob = np.empty(chip.valid.shape, np.float32)
            kernels.baseline_proba(np.ascontiguousarray(chip.bands), c, k, prob)
            row = kernels.score_chip_prob(
                prob, chip.label, chip.valid, chip.scl, threshold, temperature
            )
            row.update(chip_detectors(prob, chip.label, chip.valid, threshold))
            return row

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
