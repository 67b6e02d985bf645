"""``chipqa train``: train a U-Net on the chips that the blocklist does not block."""

from __future__ import annotations

import argparse
import sys

from chipqa.cli.cache import open_dataset_for
from chipqa.cli.options import (
    TrainingBar,
    add_cache_option,
    add_dataset_argument,
    add_dn_offset_option,
    add_quiet_option,
    add_training_options,
    training_config,
)

HELP = "train a U-Net on the chips that are not blocked"
DESCRIPTION = (
    "Train a segmentation-models-pytorch U-Net with PyTorch Lightning on the "
    "labelled chips that the blocklist does not block, and write one checkpoint when "
    "training ends."
)


def add_arguments(p: argparse.ArgumentParser) -> None:
    add_dataset_argument(p)
    p.add_argument("--out", required=True, help="checkpoint to write (.ckpt)")
    p.add_argument(
        "--blocklist", default=None, help="blocklist CSV; its blocked chips are left out"
    )
    p.add_argument("--progress", default=None, help="write progress events as JSON lines here")
    p.add_argument("--workers", type=int, default=2, help="data-loading worker processes")
    add_quiet_option(p)
    add_training_options(p)
    add_dn_offset_option(p)
    add_cache_option(p)


def run(args: argparse.Namespace) -> int:
    import signal

    from chipqa.cli.score import warn_dn_offset
    from chipqa.training import train

    def on_term(signum, frame):  # a cancel from the napari plugin or a job scheduler
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, on_term)
    bar = TrainingBar(args.quiet)
    try:
        dataset = open_dataset_for(args)  # with --cache: trains from the chip cache
        if args.dn_offset:
            warn_dn_offset(dataset, args.dn_offset)
        result = train(
            dataset,
            args.out,
            blocklist=args.blocklist,
            config=training_config(args),
            progress=args.progress,
            echo=bar,
        )
    except (KeyboardInterrupt, SystemExit):
        print("chipqa train: cancelled; no checkpoint was written", file=sys.stderr)
        return 130
    finally:
        bar.close()
    if not args.quiet:
        skipped = len(result.skipped_chips)
        print(
            f"trained {result.epochs_run} epoch(s) on {len(result.train_chips)} chips, "
            f"validated on {len(result.val_chips)}"
            + (f" ({skipped} unreadable chip(s) left out)" if skipped else "")
            + f" in {result.seconds:.0f} s; best {result.best_iou_on} IoU "
            f"{result.best_val_iou:.3f}; wrote {result.checkpoint} (logs in {result.log_dir})"
        )
    return 0
