"""Does cleaning the labels help? Train on noisy labels, with the planted errors blocked,
and with them fixed from a model's masks.

On a synthetic dataset with planted label errors (15 % by default):

1. **noisy**: train a U-Net on every training chip, wrong labels included;
2. **blocked**: train the same U-Net, same split, seed and epochs, with the planted
   errors blocked (as a curator's blocklist would);
3. **fixed**: the same again, with the planted errors kept but their labels replaced by
   a model's masks (``--fix-from``: by default the U-Net of arm 2, which never trained
   on them; no true label is used), recorded as label fixes exactly as ``chipqa fix
   --from-model`` does;
4. evaluate all three on the same validation chips against the **true** labels (kept by
   the generator outside the dataset), pooled IoU of the cloud class.

Then (unless ``--skip-ranking``) it compares rankings of the planted errors (average
precision): the weight-free baseline, a U-Net scoring the chips it was trained on
(in-sample), and out-of-fold U-Nets (``chipqa score --folds K``).

    python bench/cleaning_gain.py --chips 160 --size 64 --epochs 8 --folds 3
    python bench/cleaning_gain.py --chips 160 --size 64 --epochs 8 --skip-ranking
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import rasterio

from chipqa.blocklist.store import BlocklistStore
from chipqa.data import open_dataset
from chipqa.data.listing import find_chip
from chipqa.predictors import SpectralBaseline, load_predictor
from chipqa.review.fixes import predict_label
from chipqa.scoring import score_dataset
from chipqa.scoring.evaluate import read_truth, report_against_truth
from chipqa.synth import generate_dataset
from chipqa.training import TrainConfig, dataset_iou, split_chips, train
from chipqa.training.oof import score_out_of_fold


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--chips", type=int, default=160)
    ap.add_argument("--size", type=int, default=64)
    ap.add_argument("--error-rate", type=float, default=0.15)
    ap.add_argument("--encoder", default="mobilenet_v2")
    ap.add_argument("--epochs", type=int, default=8)
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument("--folds", type=int, default=3)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--workers", type=int, default=0)
    ap.add_argument("--work", type=Path, default=None, help="keep data and models here")
    ap.add_argument(
        "--fix-from",
        choices=["blocked", "noisy", "baseline"],
        default="blocked",
        help="whose masks fix the planted errors: the U-Net trained with them blocked "
        "(default), the one trained on the noisy labels, or the weight-free baseline",
    )
    ap.add_argument("--threshold", type=float, default=0.5, help="threshold of the fix masks")
    ap.add_argument("--skip-ranking", action="store_true", help="only the three training arms")
    args = ap.parse_args()

    tmp = tempfile.TemporaryDirectory()
    work = args.work or Path(tmp.name)
    work.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    synth = generate_dataset(
        work / "data",
        n_chips=args.chips,
        size=args.size,
        error_rate=args.error_rate,
        seed=args.seed,
    )
    ds = open_dataset(synth.root)
    truth = read_truth(synth.truth_csv)
    planted = truth.loc[truth["corrupted"], "chip_id"].tolist()
    print(
        f"{args.chips} chips of {args.size}², {len(planted)} planted label errors "
        f"({time.perf_counter() - t0:.0f} s to generate)"
    )

    cfg = TrainConfig(
        encoder=args.encoder,
        epochs=args.epochs,
        batch_size=args.batch_size,
        seed=args.seed,
        workers=args.workers,
        accelerator="auto",
    )
    train_ids, val_ids = split_chips(list(ds), 0.25, args.seed)
    bl = work / "planted_blocklist.csv"
    store = BlocklistStore(bl, reviewer="truth")
    for cid in planted:
        store.decide(cid, "block", "planted")
    true_labels = synth.truth_dir / "true_labels"

    results, predictors = {}, {}

    def arm(name: str, data, blocklist) -> None:
        t = time.perf_counter()
        res = train(data, work / f"{name}.ckpt", blocklist=blocklist, config=cfg, val_chips=val_ids)
        pred = predictors[name] = load_predictor(res.checkpoint, device="auto")
        iou = dataset_iou(pred, ds, val_ids, label_dir=true_labels)
        results[name] = (iou, len(res.train_chips), time.perf_counter() - t)
        print(
            f"{name:8s}: trained on {len(res.train_chips)} chips, {args.epochs} epochs, "
            f"{results[name][2]:.0f} s; validation IoU vs true labels {iou:.4f} "
            f"(vs its own validation labels: {res.best_val_iou:.4f})"
        )

    arm("noisy", ds, None)
    arm("blocked", ds, bl)

    # fix the planted errors from a model's masks, as `chipqa fix --from-model` does
    fixer = predictors.get(args.fix_from) or SpectralBaseline()
    fix_bl = work / "planted_fixes.csv"
    fixes = BlocklistStore(fix_bl, reviewer="model", dataset_root=synth.root)
    agree = [0, 0, 0, 0]  # fixed ∩ true, fixed ∪ true, wrong ∩ true, wrong ∪ true
    for cid in planted:
        rec = find_chip(synth.root, cid)
        label = predict_label(rec, fixer, args.threshold)
        d = fixes.fix(cid, label, source="model", model=fixer.name)
        with rasterio.open(true_labels / f"{cid}.tif") as src:
            true = src.read(1)
        chip = ds.read(cid)  # the planted (wrong) label
        with rasterio.open(fixes.fix_path(cid)) as src:
            fixed = src.read(1)
        valid = chip.valid & (true != 255) & (fixed != 255)
        for k, lab in ((0, fixed), (2, chip.label)):
            agree[k] += int(((lab == 1) & (true == 1) & valid).sum())
            agree[k + 1] += int((((lab == 1) | (true == 1)) & valid).sum())
        assert d.decision == "fix"
    print(
        f"fixes   : {len(planted)} planted errors fixed with {fixer.name}'s masks at "
        f"{args.threshold:g}; IoU with the true labels {agree[0] / max(agree[1], 1):.4f} "
        f"(the planted labels: {agree[2] / max(agree[3], 1):.4f})"
    )
    arm("fixed", open_dataset(synth.root, fixes=fix_bl), None)

    noisy = results["noisy"][0]
    print(f"\nvalidation IoU vs true labels ({len(val_ids)} validation chips):")
    for name in ("noisy", "blocked", "fixed"):
        iou, n, seconds = results[name]
        print(f"  {name:8s} {iou:.4f}  ({iou - noisy:+.4f} vs noisy; {n} training chips)")
    gap = results["fixed"][0] - results["blocked"][0]
    print(f"  fixed vs blocked: {gap:+.4f}")
    if args.skip_ranking:
        print(f"total {time.perf_counter() - t0:.0f} s")
        return

    print("\nranking the planted errors (average precision):")

    def ap(scores) -> float:
        return report_against_truth(scores, truth).average_precision

    base = score_dataset(ds, SpectralBaseline())
    print(f"  baseline (no training)        AP {ap(base):.3f}")
    t = time.perf_counter()
    insample_cfg = TrainConfig(**{**cfg.__dict__, "val_fraction": 0.0})
    res = train(ds, work / "insample.ckpt", config=insample_cfg)
    ins = score_dataset(ds, load_predictor(res.checkpoint, device="auto"))
    print(f"  U-Net, in-sample              AP {ap(ins):.3f}  ({time.perf_counter() - t:.0f} s)")
    t = time.perf_counter()
    oof = score_out_of_fold(ds, args.folds, work / "oof", config=insample_cfg)
    print(
        f"  U-Net, {args.folds}-fold out-of-fold     AP {ap(oof):.3f}"
        f"  ({time.perf_counter() - t:.0f} s)"
    )
    print(f"total {time.perf_counter() - t0:.0f} s")


if __name__ == "__main__":
    main()
