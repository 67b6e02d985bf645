"""Cost of one review decision as the blocklist grows.

For each size it writes a blocklist that already holds that many rows, opens it with
:class:`chipqa.blocklist.store.BlocklistStore` (as the napari widget does) and records
``--decisions`` new decisions one by one, timing each ``decide`` call: the lock, taking
in other processes' rows, appending the row and its fsync. It prints the median and the
95th percentile per size, and the ratio of the largest size's median to the smallest's.
Run it on the disk your blocklists live on (``--dir``): the fsync is most of the cost.

    python bench/blocklist_scale.py --rows 100 1000 10000 --decisions 300

``--reads`` then times what a large blocklist costs the commands that read it, for each
size given (default 10 000 and 1 000 000 rows) and each shape: rows spread over
``--chips`` chip ids (a live blocklist after a long review: each chip decided many
times) and one row per chip. The file is the default blocklist of a 20-chip dataset
(32 px), whose chips it blocks and keeps too. Each operation runs in a fresh process on
a fresh copy of the file, and its wall time, CPU time (steadier on a shared machine) and
peak memory (the process's peak resident set minus its size before the operation,
imports done) are printed:

- open: ``BlocklistStore(path)``, as the napari widget and ``chipqa fix`` do (it
  compacts a file of mostly superseded rows);
- score: ``chipqa score DATA --model baseline --threshold 0.5``, the whole command;
- export: ``chipqa export DATA --out CLEAN``, the whole command.

The same commands with no blocklist are timed once for comparison.

    python bench/blocklist_scale.py --rows 10000 --decisions 300 --reads 10000 1000000
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path


def _existing(path: Path, n: int) -> None:
    from chipqa.blocklist.csvformat import Decision
    from chipqa.blocklist.csvwrite import render

    rows = {
        f"c{i:06d}": Decision(
            f"c{i:06d}",
            ("block", "keep", "unsure")[i % 3],
            "all_cloud_wrong",
            "all_cloud_label;low_iou",
            "0.912346",
            "0.02",
            "1",
            "0.05",
            "baseline",
            "bench",
            f"2026-01-01T00:00:00.{i:06d}Z",
        )
        for i in range(n)
    }
    path.write_text(render(rows), encoding="utf-8")


def measure(folder: Path, n: int, decisions: int) -> list[float]:
    """Seconds per decision on a blocklist that starts with ``n`` rows."""
    from chipqa.blocklist.store import BlocklistStore

    path = folder / f"bl_{n}.csv"
    _existing(path, n)
    store = BlocklistStore(path, reviewer="bench")
    info = {"flags": "low_iou", "suspicion": 0.5, "iou": 0.4, "model": "baseline"}
    times = []
    for i in range(decisions):
        t0 = time.perf_counter()
        store.decide(f"new{i:06d}", ("block", "keep")[i % 2], "shifted", info=info)
        times.append(time.perf_counter() - t0)
    return times


DATA_CHIPS = 20

_OPERATION = """
import os, resource, shutil, sys, time
from pathlib import Path
import chipqa.cli.score, chipqa.cli.export, chipqa.review.export, chipqa.predictors
from chipqa.blocklist.store import BlocklistStore
from chipqa.cli import main

def rss_kb():
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith("VmRSS:"))

op, root, out = sys.argv[1], sys.argv[2], sys.argv[3]
before = rss_kb()
t0, c0 = time.perf_counter(), time.process_time()
if op == "open":
    BlocklistStore(root + "_chipqa_blocklist.csv", dataset_root=root)
elif op == "score":
    assert main(["score", root, "--model", "baseline", "--threshold", "0.5", "-q",
                 "--out", out]) == 0
else:
    assert main(["export", root, "--out", out, "-q"]) == 0
seconds, cpu = time.perf_counter() - t0, time.process_time() - c0
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(seconds, cpu, (peak - before) / 1024)
"""


def _write_rows(path: Path, n: int, chips: int, dataset_ids: list[str]) -> None:
    """``n`` rows over ``chips`` ids (the dataset's chips decided in the last rows)."""
    from chipqa.blocklist.csvformat import COLUMNS

    with open(path, "w", encoding="utf-8") as f:
        f.write(",".join(COLUMNS) + "\n")
        for i in range(n - len(dataset_ids)):
            s, us = divmod(i, 1_000_000)
            f.write(
                f"c{i % chips:07d},{('block', 'keep', 'unsure')[i % 3]},all_cloud_wrong,"
                f"low_iou,0.912346,0.02,1,0.05,baseline,bench,"
                f"2026-01-01T{s // 3600:02d}:{s // 60 % 60:02d}:{s % 60:02d}.{us:06d}Z,,,\n"
            )
        for j, cid in enumerate(dataset_ids):
            decision = "block" if j % 5 == 0 else "keep"
            f.write(f"{cid},{decision},,,,,,,,bench,2026-06-01T00:00:00.{j:06d}Z,,,\n")


def _run(op: str, root: Path, out: Path) -> tuple[float, float, float]:
    """(wall seconds, CPU seconds, peak MB above the size before) of one operation."""
    import subprocess
    import sys

    res = subprocess.run(
        [sys.executable, "-c", _OPERATION, op, str(root), str(out)],
        capture_output=True,
        text=True,
        check=True,
    )
    seconds, cpu, delta = (float(x) for x in res.stdout.split()[-3:])
    return seconds, cpu, delta


def measure_reads(folder: Path, sizes: list[int], chips: int) -> None:
    """Print the cost of open, score and export for each size and shape."""
    import shutil

    from chipqa.data import open_dataset
    from chipqa.synth import generate_dataset

    root = generate_dataset(folder / "data", DATA_CHIPS, 32, seed=1).root
    ids = open_dataset(root, cache="off").chip_ids
    blocklist = Path(f"{root}_chipqa_blocklist.csv")
    master = folder / "master.csv"
    print(
        f"\n{'rows':>9} {'chip ids':>9} {'MB':>5}  {'operation':<9} {'s':>6} {'CPU s':>6} "
        f"{'peak MB':>8}"
    )
    cases = [(0, 0)] + [(n, c) for n in sizes for c in sorted({min(chips, n), n})]
    for n, distinct in cases:
        if n:
            _write_rows(master, n, distinct, ids)
        size = master.stat().st_size / 1e6 if n else 0.0
        for op in ("open", "score", "export"):
            if n == 0 and op == "open":
                continue
            if n:
                shutil.copyfile(master, blocklist)  # fresh: open may compact it
            else:
                blocklist.unlink(missing_ok=True)
            out = folder / f"out-{op}"
            shutil.rmtree(out, ignore_errors=True)
            seconds, cpu, delta = _run(op, root, out / "clean" if op == "export" else out)
            shutil.rmtree(out, ignore_errors=True)
            label = "none" if not n else f"{n:>9}"
            print(
                f"{label:>9} {distinct:>9} {size:>5.0f}  {op:<9} {seconds:>6.2f} {cpu:>6.2f} "
                f"{delta:>8.0f}"
            )


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--rows", type=int, nargs="+", default=[100, 1000, 10000], help="existing rows")
    ap.add_argument("--decisions", type=int, default=300, help="timed decisions per size")
    ap.add_argument(
        "--dir", type=Path, default=None, help="folder for the blocklists (default: a temp one)"
    )
    ap.add_argument(
        "--reads",
        type=int,
        nargs="*",
        default=[10_000, 1_000_000],
        help="blocklist sizes (rows) at which to time open, score and export (none: skip)",
    )
    ap.add_argument(
        "--chips", type=int, default=20_000, help="chip ids the rows of --reads are spread over"
    )
    args = ap.parse_args()

    with tempfile.TemporaryDirectory(dir=args.dir) as tmp:
        medians = {}
        print(f"{'rows':>7} {'median ms':>10} {'p95 ms':>8}")
        for n in args.rows:
            t = sorted(measure(Path(tmp), n, args.decisions))
            medians[n] = statistics.median(t)
            p95 = t[min(len(t) - 1, int(0.95 * len(t)))]
            print(f"{n:>7} {medians[n] * 1e3:>10.3f} {p95 * 1e3:>8.3f}")
        lo, hi = min(args.rows), max(args.rows)
        print(f"median at {hi} rows / median at {lo} rows: {medians[hi] / medians[lo]:.2f}")
        if args.reads:
            measure_reads(Path(tmp), args.reads, args.chips)


if __name__ == "__main__":
    main()
