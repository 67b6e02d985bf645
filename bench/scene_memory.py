"""Peak memory and time of `chipqa mask` on generated scenes of growing size.

Writes a four-band scene GeoTIFF of each size (synthetic 512×512 chips side by side,
written window by window), then runs `chipqa mask` on it in a separate process and
reads that process's peak resident memory (VmHWM). Memory should not grow with the
scene: the masker holds two strips of tile rows, not the scene.

    python bench/scene_memory.py --sizes 2000 6000
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import rasterio
from rasterio.transform import from_origin
from rasterio.windows import Window

from chipqa.synth import make_chip


def write_scene(path: Path, size: int, seed: int = 0) -> None:
    rng = np.random.default_rng(seed)
    profile = {
        "driver": "GTiff",
        "height": size,
        "width": size,
        "count": 4,
        "dtype": "uint16",
        "crs": "EPSG:32633",
        "transform": from_origin(300_000, 5_000_000, 10, 10),
        "nodata": 0,
        "tiled": True,
        "blockxsize": 512,
        "blockysize": 512,
    }
    with rasterio.open(path, "w", **profile) as dst:
        for y in range(0, size, 512):
            for x in range(0, size, 512):
                chip = make_chip(rng, "s", 512, sky="partial")
                h, w = min(512, size - y), min(512, size - x)
                dst.write(chip.bands[:, :h, :w], window=Window(x, y, w, h))


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--sizes", type=int, nargs="+", default=[2000, 6000])
    ap.add_argument("--model", default="baseline")
    ap.add_argument("--work", type=Path, default=None)
    args = ap.parse_args()
    tmp = tempfile.TemporaryDirectory()
    work = args.work or Path(tmp.name)
    work.mkdir(parents=True, exist_ok=True)
    for size in args.sizes:
        scene = work / f"scene{size}.tif"
        if not scene.exists():
            write_scene(scene, size)
        out = work / f"mask{size}.tif"
        code = (
            "from chipqa.cli import main; "
            f"main(['mask', {str(scene)!r}, '--out', {str(out)!r}, "
            f"'--model', {args.model!r}, '-q']); "
            "print([l for l in open('/proc/self/status') if l.startswith('VmHWM')][0].split()[1])"
        )
        t0 = time.perf_counter()
        res = subprocess.run(
            [sys.executable, "-c", code], capture_output=True, text=True, check=True
        )
        seconds = time.perf_counter() - t0
        peak = int(res.stdout.strip().splitlines()[-1]) / 1024
        print(
            f"{size}×{size} px scene ({scene.stat().st_size / 2**20:.0f} MB of bands): "
            f"peak memory {peak:.0f} MB, {seconds:.1f} s with {args.model}"
        )


if __name__ == "__main__":
    main()
