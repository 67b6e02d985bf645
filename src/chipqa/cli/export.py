"""``chipqa export``: a cleaned copy of a dataset, blocked chips left out, fixed labels in place."""

from __future__ import annotations

import argparse

from chipqa.cli.options import add_dataset_argument, add_quiet_option, chip_progress

HELP = "write a cleaned copy of the dataset: blocked chips left out, fixed labels in place"
DESCRIPTION = (
    "Write a copy of DATA in the same layout, ready for any pipeline that reads the "
    "original (torchgeo's CloudCoverDetection, the On Cloud N notebooks): chips blocked in "
    "the blocklist are left out, fixed labels replace the old ones and the metadata CSV "
    "keeps the rows of the chips exported. Unchanged files are hard-linked where the file "
    "system allows (no space used; do not edit them in place), else copied. The copy is "
    "built in a temporary folder and renamed to --out when complete."
)


def add_arguments(p: argparse.ArgumentParser) -> None:
    add_dataset_argument(p)
    p.add_argument("--out", required=True, help="the new dataset folder (new, or empty)")
    p.add_argument(
        "--blocklist",
        default=None,
        help="the decisions (default: DATA_chipqa_blocklist.csv beside DATA, if any)",
    )
    p.add_argument("--copy", action="store_true", help="copy every file instead of hard links")
    add_quiet_option(p)


def run(args: argparse.Namespace) -> int:
    from chipqa.review.export import export_dataset

    summary = export_dataset(
        args.data,
        args.out,
        blocklist=args.blocklist,
        copy=args.copy,
        progress=chip_progress(args.quiet),
    )
    if not args.quiet:
        print(summary.text())
    return 0
