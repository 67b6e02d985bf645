"""Training epoch time per 1 000 chips, from TIFFs and from the chip cache.

Generates a synthetic dataset, then runs ``chipqa.training.train`` (the same code as
``chipqa train``) for ``--epochs`` epochs twice: reading the TIFFs, and reading the chip
cache. The epoch time is taken from the trainer's own progress events (the time between
two ``epoch`` events; the first epoch, which pays for start-up, is reported apart).

    python bench/training_epoch.py --chips 200 --size 128 --encoder resnet34 --epochs 3
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
from itertools import pairwise
from pathlib import Path

from chipqa.data import open_dataset
from chipqa.data.cache import build_cache
from chipqa.synth import generate_dataset
from chipqa.training import TrainConfig, train


def run(ds, out: Path, cfg: TrainConfig) -> tuple[float, float, int]:
    events = []
    res = train(ds, out, config=cfg, echo=events.append)
    start = next(e["time"] for e in events if e["event"] == "start")
    ends = [e["time"] for e in events if e["event"] == "epoch"]
    first = ends[0] - start
    later = [b - a for a, b in pairwise(ends)]
    return first, (statistics.median(later) if later else first), len(res.train_chips)


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--chips", type=int, default=200)
    ap.add_argument("--size", type=int, default=128)
    ap.add_argument("--encoder", default="resnet34")
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--accelerator", default="auto")
    ap.add_argument("--work", type=Path, default=None)
    args = ap.parse_args()
    tmp = tempfile.TemporaryDirectory()
    work = args.work or Path(tmp.name)
    root = work / f"train{args.chips}x{args.size}"
    if not root.exists():
        generate_dataset(root, n_chips=args.chips, size=args.size, seed=0)
    cfg = TrainConfig(
        encoder=args.encoder,
        epochs=args.epochs,
        batch_size=args.batch_size,
        workers=args.workers,
        accelerator=args.accelerator,
        val_fraction=0.1,
    )
    ds = open_dataset(root, cache="off")  # first the TIFFs, even where a cache was built
    first, epoch, n = run(ds, work / "tiff.ckpt", cfg)
    print(
        f"{n} training chips of {args.size}², {args.encoder}, batch {args.batch_size}, "
        f"{args.workers} loader workers, {args.epochs} epochs"
    )
    print(
        f"  from TIFFs:     epoch {epoch:7.1f} s  = {epoch / n * 1000:8.1f} s per 1 000 chips "
        f"(first epoch {first:.1f} s)"
    )
    ds.use_cache(build_cache(ds))
    first, epoch_c, n = run(ds, work / "cache.ckpt", cfg)
    print(
        f"  from the cache: epoch {epoch_c:7.1f} s  = {epoch_c / n * 1000:8.1f} s per 1 000 chips "
        f"(first epoch {first:.1f} s)"
    )


if __name__ == "__main__":
    main()
