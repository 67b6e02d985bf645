"""Cost of one review decision as the blocklist grows.

For each size it writes a blocklist that already holds that many rows, opens it with
:class:`chipqa.blocklist.store.BlocklistStore` (as the napari widget does) and records
``--decisions`` new decisions one by one, timing each ``decide`` call: the lock, taking
in other processes' rows, appending the row and its fsync. It prints the median and the
95th percentile per size, and the ratio of the largest size's median to the smallest's.
Run it on the disk your blocklists live on (``--dir``): the fsync is most of the cost.

    python bench/blocklist_scale.py --rows 100 1000 10000 --decisions 300
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


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--rows", type=int, nargs="+", default=[100, 1000, 10000], help="existing rows")
    ap.add_argument("--decisions", type=int, default=300, help="timed decisions per size")
    ap.add_argument(
        "--dir", type=Path, default=None, help="folder for the blocklists (default: a temp one)"
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


if __name__ == "__main__":
    main()
