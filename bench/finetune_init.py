"""Fine-tuning the pretrained cloud U-Net against training from random weights.

On a synthetic dataset (with its default 15 % planted label errors, as a real dataset
would have), trains for the same short CPU run and the same split and seed:

1. **random**: smp ``Unet(efficientnet-b4)`` from random weights (``--init random``);
2. **pretrained**: the same network starting from UKIS csmask's pretrained weights
   (``--init pretrained``);
3. **resnet34** (chipqa's default encoder) from random weights, for reference;

and reports the pooled IoU of each on the validation chips against the generator's
*true* labels, with the pretrained model before fine-tuning as a fourth line.

    python bench/finetune_init.py --chips 96 --size 64 --epochs 4
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from chipqa.data import open_dataset
from chipqa.predictors import load_predictor
from chipqa.synth import generate_dataset
from chipqa.training import TrainConfig, dataset_iou, split_chips, train


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--chips", type=int, default=96)
    ap.add_argument("--size", type=int, default=64)
    ap.add_argument("--epochs", type=int, default=4)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        res = generate_dataset(work / "data", n_chips=args.chips, size=args.size, seed=args.seed)
        true_labels = res.truth_dir / "true_labels"
        ds = open_dataset(res.root, cache="off")
        _, val_ids = split_chips(list(ds), 0.25, args.seed)
        pre = load_predictor("pretrained", device="cpu")
        before = dataset_iou(pre, ds, val_ids, label_dir=true_labels)
        print(f"pretrained, not fine-tuned: validation IoU vs truth {before:.3f}")
        arms = {
            "random (efficientnet-b4)": dict(init="random", encoder="efficientnet-b4", lr=1e-3),
            "pretrained (efficientnet-b4)": dict(init="pretrained", lr=1e-4),
            "random (resnet34)": dict(init="random", encoder="resnet34", lr=1e-3),
        }
        for name, kw in arms.items():
            cfg = TrainConfig(epochs=args.epochs, batch_size=8, workers=0, seed=args.seed, **kw)
            t0 = time.perf_counter()
            out = train(ds, work / f"{kw['init']}-{len(name)}.ckpt", config=cfg, val_chips=val_ids)
            iou = dataset_iou(load_predictor(out.checkpoint, "cpu"), ds, val_ids, true_labels)
            print(
                f"{name}: {args.epochs} epochs on {len(out.train_chips)} chips in "
                f"{time.perf_counter() - t0:.0f} s; validation IoU vs truth {iou:.3f}"
            )


if __name__ == "__main__":
    main()
