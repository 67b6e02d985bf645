"""``chipqa cache``, and how every command that reads a dataset honours ``--cache``."""

from __future__ import annotations

import argparse
import sys
import time

from chipqa.cli.options import add_dataset_argument, add_quiet_option, chip_progress

HELP = "convert a dataset's chips into a memory-mapped cache for fast reading"
DESCRIPTION = (
    "Write <DATA>_cache beside the dataset: one uint16 array of bands, one "
    "uint8 array of labels and an index. Scoring, training and the viewer read it "
    "instead of five TIFFs per chip; chips whose files changed are read from the TIFFs "
    "until the cache is rebuilt."
)


def add_arguments(p: argparse.ArgumentParser) -> None:
    add_dataset_argument(p)
    add_quiet_option(p)


def build_cache_reported(dataset, quiet: bool):
    """Build (or refresh) the dataset's chip cache, with a progress bar and a summary."""
    from chipqa.data import build_cache

    t0 = time.perf_counter()
    cache = build_cache(dataset, progress=chip_progress(quiet))
    if not quiet:
        print(
            f"cached {len(cache)} of {len(dataset)} chips ({cache.shape[0]}×{cache.shape[1]}) "
            f"in {cache.folder} in {time.perf_counter() - t0:.1f} s",
            file=sys.stderr,
        )
    return cache


def open_dataset_for(args: argparse.Namespace):
    """Open ``args.data`` reading its chips as ``--cache`` says.

    ``auto``: through the chip cache when one was built; ``build``: build or refresh the
    cache first, then read through it; ``off``: from the TIFFs.
    """
    from chipqa.data import open_dataset

    mode = args.cache
    # Label fixes come from the blocklist the command names (train, score --folds), else
    # from the dataset's default blocklist.
    fixes = getattr(args, "blocklist", None) or True
    dataset = open_dataset(args.data, cache="off" if mode == "build" else mode, fixes=fixes)
    if mode == "build":
        dataset.use_cache(build_cache_reported(dataset, args.quiet))
    if dataset.cache is not None and not args.quiet:
        fresh = sum(dataset.cache.holds(r) for r in dataset)
        print(
            f"reading {fresh} of {len(dataset)} chips from the cache {dataset.cache.folder}",
            file=sys.stderr,
        )
    return dataset


def run(args: argparse.Namespace) -> int:
    from chipqa.data import open_dataset

    build_cache_reported(open_dataset(args.data, cache="off"), args.quiet)
    return 0
