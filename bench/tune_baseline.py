"""Fit the spectral baseline's logistic coefficients on synthetic chips.

The weight-free baseline (chipqa.predictors.SpectralBaseline) is a logistic model on four
per-pixel spectral features. This script makes synthetic chips of every land cover and
sky with ``chipqa.synth.make_chip`` (never the chips used for evaluation: a separate
seed), samples pixels with their true label, fits the coefficients by maximum
likelihood, and prints them for pasting into the class. It is how the shipped
coefficients were obtained; rerun it after changing the generator.

    python bench/tune_baseline.py --chips 120 --seed 1234
"""

from __future__ import annotations

import argparse

import numpy as np
import torch

from chipqa.predictors import SpectralBaseline
from chipqa.synth import LAND_COVERS, SKIES, make_chip


def features(bands: torch.Tensor) -> torch.Tensor:
    """The baseline's features, in the order of its coefficients (after the bias)."""
    return SpectralBaseline.features(bands)


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--chips", type=int, default=120)
    ap.add_argument("--size", type=int, default=128)
    ap.add_argument("--pixels", type=int, default=1500, help="pixels sampled per chip")
    ap.add_argument("--seed", type=int, default=1234)
    args = ap.parse_args()

    rng = np.random.default_rng(args.seed)
    xs, ys = [], []
    for i in range(args.chips):
        chip = make_chip(
            rng,
            f"t{i:03d}",
            args.size,
            sky=SKIES[i % 3],
            land_cover=LAND_COVERS[(i // 3) % len(LAND_COVERS)],
        )
        valid = chip.label != 255
        f = features(torch.from_numpy(chip.bands[None].astype(np.int32)))[0]  # (F, H, W)
        idx = np.flatnonzero(valid.ravel())
        pick = rng.choice(idx, size=min(args.pixels, idx.size), replace=False)
        xs.append(f.reshape(f.shape[0], -1)[:, pick].T)
        ys.append(torch.from_numpy((chip.label.ravel()[pick] == 1).astype(np.float32)))
    x = torch.cat(xs).double()
    y = torch.cat(ys).double()
    w = torch.zeros(x.shape[1] + 1, dtype=torch.float64, requires_grad=True)
    opt = torch.optim.LBFGS([w], max_iter=500, line_search_fn="strong_wolfe")

    def closure():
        opt.zero_grad()
        logit = w[0] + x @ w[1:]
        loss = (
            torch.nn.functional.binary_cross_entropy_with_logits(logit, y)
            + 1e-4 * (w[1:] ** 2).sum()
        )
        loss.backward()
        return loss

    opt.step(closure)
    with torch.no_grad():
        acc = (((w[0] + x @ w[1:]) > 0).double() == y).double().mean().item()
    print(f"{len(y)} pixels from {args.chips} chips; pixel accuracy {acc:.3f}")
    print("coefficients (bias, " + ", ".join(SpectralBaseline.FEATURES) + "):")
    print(tuple(round(float(v), 3) for v in w.detach()))


if __name__ == "__main__":
    main()
