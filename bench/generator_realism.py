"""The generator judged by a real model: how well does the pretrained cloud U-Net find
the clouds the generator says are there?

Writes a synthetic dataset without label errors (so every label is the generator's
true label) and scores it with the pretrained model (UKIS csmask, trained on real
Sentinel-2) and with the weight-free baseline (fitted to this generator). Reports the
median per-chip IoU against the true labels by sky and by dominant land cover, and
lists the partly cloudy chips where the real model sees least of the truth: the
places to look for an unrealistic generator.

    python bench/generator_realism.py --chips 120 --size 256
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import pandas as pd

from chipqa.data import open_dataset
from chipqa.predictors import load_predictor
from chipqa.scoring import score_dataset
from chipqa.synth import generate_dataset


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--chips", type=int, default=120)
    ap.add_argument("--size", type=int, default=256)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--worst", type=int, default=8, help="partly cloudy chips to list")
    args = ap.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        res = generate_dataset(
            Path(tmp) / "data", n_chips=args.chips, size=args.size, error_rate=0.0,
            seed=args.seed, nodata_rate=0.0,
        )  # fmt: skip
        truth = pd.read_csv(res.truth_csv, keep_default_na=False)
        dataset = open_dataset(res.root, cache="off")
        tables = {}
        for name in ("pretrained", "baseline"):
            predictor = load_predictor(name, device="cpu")
            t0 = time.perf_counter()
            scores = score_dataset(dataset, predictor, threshold="auto")
            cal = scores.attrs["calibration"]
            print(f"{name}: {time.perf_counter() - t0:.0f} s; {cal.describe()}", flush=True)
            tables[name] = scores.set_index("chip_id")

    rows = truth.set_index("chip_id")[["sky", "land_cover", "true_cloud_fraction"]]
    for name, t in tables.items():
        rows[f"iou_{name}"] = t["iou"]
        rows[f"pred_{name}"] = t["pred_cloud_fraction"]

    def table(by: str) -> pd.DataFrame:
        g = rows.groupby(by)
        cols = ["iou_pretrained", "iou_baseline", "true_cloud_fraction"]
        out = g[cols + ["pred_pretrained", "pred_baseline"]].median().round(3)
        out.insert(0, "chips", g.size())
        return out

    print(f"\nmedians per chip against the true labels ({args.chips} chips of {args.size}²):")
    print("IoU (1.0 when truth and prediction are both empty, 0 when a clear chip gets any")
    print("false cloud: read clear skies by the predicted cloud fraction) and cloud fractions\n")
    print(table("sky").to_string())
    print()
    print(table("land_cover").to_string())
    partial = rows[rows["sky"] == "partial"].sort_values("iou_pretrained")
    print("\npartly cloudy chips where the pretrained model sees least of the truth:")
    cols = ["land_cover", "true_cloud_fraction", "pred_pretrained", "iou_pretrained"]
    print(partial[cols].head(args.worst).round(3).to_string())


if __name__ == "__main__":
    main()
