"""Peak memory and time of `chipqa mask` on generated scenes of growing size.

Writes a four-band scene GeoTIFF of each size and its 20 m SCL
(:func:`chipqa.synth.write_scene`: synthetic 512×512 chips side by side, written block by
block), then runs `chipqa mask --scl` on it in a separate process and reads that
process's peak resident memory (VmHWM). Memory should not grow with the scene: the
masker holds two strips of tile rows, and the SCL is compared strip by strip.

    python bench/scene_memory.py --sizes 2000 6000
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from chipqa.synth import write_scene


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--sizes", type=int, nargs="+", default=[2000, 6000])
    ap.add_argument("--model", default="baseline")
    ap.add_argument("--work", type=Path, default=None)
    ap.add_argument("--no-scl", action="store_true", help="mask without the SCL comparison")
    args = ap.parse_args()
    tmp = tempfile.TemporaryDirectory()
    work = args.work or Path(tmp.name)
    work.mkdir(parents=True, exist_ok=True)
    for size in args.sizes:
        scene, scl = work / f"scene{size}.tif", work / f"SCL{size}.tif"
        if not scene.exists() or not scl.exists():
            write_scene(scene, size, scl_path=scl)
        out = work / f"mask{size}.tif"
        extra = [] if args.no_scl else ["--scl", str(scl)]
        code = (
            "from chipqa.cli import main; "
            f"main(['mask', {str(scene)!r}, '--out', {str(out)!r}, "
            f"'--model', {args.model!r}, '-q', *{extra!r}]); "
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
            + ("" if args.no_scl else " and the SCL comparison")
        )


if __name__ == "__main__":
    main()
