"""``chipqa synth``: write a synthetic dataset with planted label errors."""

from __future__ import annotations

import argparse

from chipqa.cli.options import add_quiet_option, add_synthetic_options, generate_synthetic

HELP = "write a synthetic dataset with planted label errors"
DESCRIPTION = (
    "Write Sentinel-2-like chips (4 bands + cloud label) with "
    "planted label errors; the truth goes to a folder beside the dataset."
)


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("out", help="dataset folder to create (must be new or empty)")
    add_synthetic_options(p)
    p.add_argument("--layout", choices=["oncloudn", "flat"], default="oncloudn")
    p.add_argument("--truth", default=None, help="truth folder (default: OUT-truth beside OUT)")
    add_quiet_option(p)


def run(args: argparse.Namespace) -> int:
    res = generate_synthetic(args, args.out, layout=args.layout, truth_dir=args.truth)
    print(f"wrote {len(res.chip_ids)} chips to {res.root} ({args.layout} layout)")
    print(f"planted label errors and true labels: {res.truth_dir} (kept outside the dataset)")
    return 0
