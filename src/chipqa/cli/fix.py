"""``chipqa fix``: correct one chip's label (the model's mask, or a label file) and record
the fix in the blocklist, exactly as the review in napari does."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from chipqa.cli.options import (
    add_dataset_argument,
    add_dn_offset_option,
    add_quiet_option,
    fraction,
)
from chipqa.constants import DEFAULT_THRESHOLD

HELP = "correct a chip's label from the model's mask or a file, keeping the original"
DESCRIPTION = (
    "Write a corrected label for CHIP_ID into <DATA>_chipqa_fixes/ (a GeoTIFF on the "
    "chip's grid; the original label is never touched) and record a 'fix' decision in "
    "the dataset's blocklist. Scoring, training, the review, the cache and `chipqa "
    "export` then use the fixed label."
)


def add_arguments(p: argparse.ArgumentParser) -> None:
    add_dataset_argument(p)
    p.add_argument("chip_id", help="the chip, exactly as the dataset names it")
    what = p.add_mutually_exclusive_group(required=True)
    what.add_argument(
        "--from-model", action="store_true", help="use the model's mask (see --model, --threshold)"
    )
    what.add_argument(
        "--label",
        metavar="FILE.tif",
        default=None,
        help="use this label GeoTIFF (on the chip's grid; 0 clear, 1 cloud, 255 no label)",
    )
    p.add_argument(
        "--model",
        default=None,
        help="with --from-model: 'pretrained', 'baseline' or a chipqa checkpoint (default: "
        "the model the dataset's scores were made with, else 'pretrained')",
    )
    p.add_argument(
        "--threshold",
        type=fraction,
        default=None,
        help="with --from-model: probability at or above which a pixel is cloud (default: "
        f"the threshold the dataset's scores were made at, else {DEFAULT_THRESHOLD})",
    )
    add_dn_offset_option(p)
    p.add_argument("--device", default="auto", help="with --from-model: auto, cpu, cuda, …")
    p.add_argument(
        "--blocklist",
        default=None,
        help="record the fix here (default: DATA_chipqa_blocklist.csv beside DATA, which "
        "every reader applies)",
    )
    p.add_argument("--reason", default="", help="why, in words (written into the decision)")
    add_quiet_option(p)


def run(args: argparse.Namespace) -> int:
    from chipqa.blocklist.store import BlocklistStore, default_path
    from chipqa.data.listing import find_chip
    from chipqa.review.fixes import label_profile, predict_label, read_label_file

    data = Path(args.data).expanduser()
    record = find_chip(data, args.chip_id)  # an unknown chip stops here, naming it
    blocklist = Path(args.blocklist).expanduser() if args.blocklist else default_path(data)
    store = BlocklistStore(blocklist, dataset_root=data)
    settings, cloud = None, 0.0
    if args.from_model:
        from chipqa.io.paths import side_paths
        from chipqa.scoring.settings import settings_for_fix

        settings, where = settings_for_fix(
            side_paths(data).scores, args.model, args.threshold, args.dn_offset
        )
        predictor, settings = settings.load_predictor(args.device)
        threshold = settings.threshold_in_force
        if not args.quiet:
            print(f"chip {args.chip_id}: {settings.describe()} ({where})")
        label = predict_label(record, predictor, threshold)
        cloud = float((label == 1).mean())
        decision = store.fix(
            args.chip_id,
            label,
            source="model",
            model=predictor.name,
            info={"pred_cloud_fraction": cloud},
            reason=args.reason or f"model mask at threshold {threshold:g}",
        )
    else:
        profile, ref = label_profile(record)
        label = read_label_file(args.chip_id, args.label, profile, ref)
        decision = store.fix(args.chip_id, label, source="file", reason=args.reason)
    if not args.quiet:
        cloud_text = f", {cloud:.1%} cloud" if settings else ""
        print(
            f"chip {args.chip_id}: fixed label ({decision.fix_source}{cloud_text}) written to "
            f"{store.fix_path(args.chip_id)}; fix recorded in {store.path}"
        )
        if blocklist != default_path(data):
            print(
                f"note: {blocklist} is not the dataset's default blocklist; pass it where the "
                "fix should count (for example `chipqa export DATA --blocklist` it)",
                file=sys.stderr,
            )
    return 0
