"""``chipqa export``: a cleaned copy of a dataset, blocked chips left out, fixed labels in place."""

from __future__ import annotations

import argparse

from chipqa.cli.options import add_dataset_argument, add_quiet_option, chip_progress

HELP = "write a cleaned copy of the dataset: blocked chips left out, fixed labels in place"
DESCRIPTION = (
    "Write a copy of DATA in the same layout, ready for any pipeline that reads the "
    "original (torchgeo's CloudCoverDetection, the On Cloud N notebooks): chips blocked in "
    "the blocklist are left out, fixed labels replace the old ones and the metadata CSV "
    "keeps the rows of the chips exported. Unchanged files are reflinked (copy-on-write, "
    "no space used) where the file system has reflinks, else copied, so editing the copy "
    "never changes the original. The copy is built in a temporary folder and renamed to "
    "--out when complete."
)


def add_arguments(p: argparse.ArgumentParser) -> None:
    add_dataset_argument(p)
    p.add_argument("--out", required=True, help="the new dataset folder (new, or empty)")
    p.add_argument(
        "--blocklist",
        default=None,
        help="the decisions (default: DATA_chipqa_blocklist.csv beside DATA, if any)",
    )
    how = p.add_mutually_exclusive_group()
    how.add_argument(
        "--copy", action="store_true", help="always copy files (no reflinks, even where possible)"
    )
    how.add_argument(
        "--hardlink",
        action="store_true",
        help="hard-link unchanged files where the file system allows (no space used). RISK: "
        "the copy and the original are then the same files, so editing a file in --out "
        "(a label fixed by hand) changes the original dataset too",
    )
    add_quiet_option(p)


def run(args: argparse.Namespace) -> int:
    from chipqa.review.export import export_dataset

    summary = export_dataset(
        args.data,
        args.out,
        blocklist=args.blocklist,
        files="copy" if args.copy else "hardlink" if args.hardlink else "reflink",
        progress=chip_progress(args.quiet),
    )
    if not args.quiet:
        print(summary.text())
    return 0
