"""Does cleaning the labels help? Train on noisy labels vs with the planted errors blocked.

On a synthetic dataset with planted label errors (15 % by default):

1. **noisy**: train a U-Net on every training chip, wrong labels included;
2. **cleaned**: train the same U-Net, same split, seed and epochs, with the planted
   errors blocked (as a curator's blocklist would);
3. evaluate both on the same validation chips against the **true** labels (kept by the
   generator outside the dataset), pooled IoU of the cloud class.

Then it compares rankings of the planted errors (average precision): the weight-free
baseline, a U-Net scoring the chips it was trained on (in-sample), and out-of-fold
U-Nets (``chipqa score --folds K``).

    python bench/cleaning_gain.py --chips 160 --size 64 --epochs 8 --folds 3
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from chipqa.data import open_dataset
from chipqa.predictors import SpectralBaseline, load_predictor
from chipqa.review.blocklist import BlocklistStore
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

    results = {}
    for name, blocklist in (("noisy", None), ("cleaned", bl)):
        t = time.perf_counter()
        res = train(ds, work / f"{name}.ckpt", blocklist=blocklist, config=cfg, val_chips=val_ids)
        pred = load_predictor(res.checkpoint, device="auto")
        iou = dataset_iou(pred, ds, val_ids, label_dir=true_labels)
        results[name] = (iou, len(res.train_chips), time.perf_counter() - t)
        print(
            f"{name:8s}: trained on {len(res.train_chips)} chips, {args.epochs} epochs, "
            f"{results[name][2]:.0f} s; validation IoU vs true labels {iou:.4f} "
            f"(vs its own, noisy, validation labels: {res.best_val_iou:.4f})"
        )
    print(
        f"cleaning gain: {results['cleaned'][0] - results['noisy'][0]:+.4f} IoU "
        f"({len(val_ids)} validation chips)"
    )

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
