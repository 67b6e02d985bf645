"""Scoring throughput from TIFFs and from the chip cache, next to the I/O floor.

On one generated dataset, in one run, it measures (chips per second, median of
``--repeat`` passes, files warm in the page cache):

* the I/O floor: only opening and reading each chip's TIFFs (bands, label, SCL) with
  rasterio, in the scorer's own reading threads; then reading *and checking* them
  (``read_chip``: grids, nodata, label values, the SCL put onto the chip grid);
* baseline scoring from the TIFFs (ratio to the floor);
* reading from the cache, and baseline scoring from the cache (ratio to TIFFs);
* a U-Net (random weights; the speed does not depend on them) on ``--unet-chips`` chips,
  from TIFFs and from the cache;
* peak resident memory of a whole ``chipqa score`` process on N and on 10×N chips.

    python bench/scoring_throughput.py --chips 100 --size 512
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import rasterio
import torch

from chipqa.constants import SCL_NAME
from chipqa.data import ChipDataset, open_dataset, read_ahead, read_chip
from chipqa.data.cache import build_cache
from chipqa.data.tiff import GDAL_ENV
from chipqa.predictors import (
    ModelConfig,
    SpectralBaseline,
    UNetPredictor,
    build_model,
    resolve_device,
)
from chipqa.scoring import score_dataset
from chipqa.scoring.pipeline import default_workers
from chipqa.synth import generate_dataset


def median_time(fn, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def peak_rss_mb(data: Path, out: Path) -> float:
    """Peak resident memory (MB) of a separate `chipqa score` process.

    Read from VmHWM in /proc (it starts afresh at exec; ru_maxrss would carry this
    process's own peak over into the child on Linux).
    """
    code = (
        "from chipqa.cli import main; "
        f"rc = main(['score', {str(data)!r}, '--out', {str(out)!r}, '-q', '--cache', 'off']); "
        "print([l for l in open('/proc/self/status') if l.startswith('VmHWM')][0].split()[1])"
    )
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return int(res.stdout.strip().splitlines()[-1]) / 1024


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--chips", type=int, default=100)
    ap.add_argument("--size", type=int, default=512)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--batch-size", type=int, default=8)
    ap.add_argument("--unet-chips", type=int, default=16)
    ap.add_argument("--encoder", default="resnet34")
    ap.add_argument("--memory-chips", type=int, default=40, help="N for the N vs 10×N memory runs")
    ap.add_argument("--memory-size", type=int, default=256)
    ap.add_argument("--device", default="auto")
    ap.add_argument("--work", type=Path, default=None)
    args = ap.parse_args()
    dev = resolve_device(args.device)
    tmp = tempfile.TemporaryDirectory()
    work = args.work or Path(tmp.name)
    root = work / f"data{args.chips}x{args.size}"
    if not root.exists():
        generate_dataset(root, n_chips=args.chips, size=args.size, seed=0)
    ds = open_dataset(root, cache="off")  # the TIFFs first, even where a cache was built
    n = len(ds)
    print(
        f"{n} chips of {args.size}², device {dev}, {torch.get_num_threads()} torch threads, "
        f"median of {args.repeat}"
    )

    workers = default_workers(True)

    def read_all(read):
        for _ in read_ahead(list(ds), read, workers=workers, depth=16):
            pass

    def read_files(rec) -> None:
        """The I/O floor: open and read each of the chip's files, nothing more."""
        with rasterio.Env(**GDAL_ENV):
            for path in (*rec.band_paths, rec.label_path, rec.folder / SCL_NAME):
                if path is not None and path.is_file():
                    with rasterio.open(path) as src:
                        src.read(1)

    base = SpectralBaseline().to(dev)
    score_dataset(ds, base)  # compile or load the CPU kernels; warm the page cache
    t_floor = median_time(lambda: read_all(read_files), args.repeat)
    t_read = median_time(lambda: read_all(read_chip), args.repeat)
    t_tiff = median_time(lambda: score_dataset(ds, base, batch_size=args.batch_size), args.repeat)
    t0 = time.perf_counter()
    cache = build_cache(ds)
    t_build = time.perf_counter() - t0
    ds.use_cache(cache)
    score_dataset(ds, base)
    t_cread = median_time(lambda: read_all(ds.read_record), args.repeat)
    t_cache = median_time(lambda: score_dataset(ds, base, batch_size=args.batch_size), args.repeat)
    print(f"  read the TIFFs only (I/O floor)  {n / t_floor:8.1f} chips/s  ({workers} threads)")
    print(
        f"  read and check chips (read_chip) {n / t_read:8.1f} chips/s  "
        f"({t_read / t_floor:.2f}× the floor's time)"
    )
    print(
        f"  baseline scoring from TIFFs      {n / t_tiff:8.1f} chips/s  "
        f"({t_tiff / t_floor:.2f}× the floor's time)"
    )
    print(f"  build the cache                  {n / t_build:8.1f} chips/s  (once)")
    print(f"  read from the cache              {n / t_cread:8.1f} chips/s")
    print(
        f"  baseline scoring from the cache  {n / t_cache:8.1f} chips/s  "
        f"({t_tiff / t_cache:.2f}× faster than from TIFFs)"
    )

    cfg = ModelConfig(encoder=args.encoder)
    unet = UNetPredictor(build_model(cfg), cfg, name=f"unet-{args.encoder}").to(dev)
    k = min(args.unet_chips, n)
    sub = ChipDataset(ds.root, ds.layout, ds.records[:k])  # no cache: TIFFs
    t_ut = median_time(lambda: score_dataset(sub, unet, batch_size=args.batch_size), 1)
    sub.use_cache(cache)
    t_uc = median_time(lambda: score_dataset(sub, unet, batch_size=args.batch_size), 1)
    print(f"  U-Net {args.encoder} from TIFFs     {k / t_ut:8.2f} chips/s  ({k} chips)")
    print(f"  U-Net {args.encoder} from the cache {k / t_uc:8.2f} chips/s")

    m = args.memory_chips
    small, big = work / f"mem{m}", work / f"mem{10 * m}"
    for folder, count in ((small, m), (big, 10 * m)):
        if not folder.exists():
            generate_dataset(folder, n_chips=count, size=args.memory_size, seed=1)
    rss_small = peak_rss_mb(small, work / "s.csv")
    rss_big = peak_rss_mb(big, work / "b.csv")
    print(f"  peak memory, score {m} chips of {args.memory_size}²    {rss_small:8.0f} MB")
    print(
        f"  peak memory, score {10 * m} chips of {args.memory_size}²   {rss_big:8.0f} MB  "
        f"({(rss_big / rss_small - 1) * 100:+.1f} %)"
    )


if __name__ == "__main__":
    main()
