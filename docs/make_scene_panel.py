"""Make docs/scene_review.png: a generated scene, its chipqa mask and SCL, three panels.

    python docs/make_scene_panel.py [--size 2048] [--work /tmp/chipqa-scene]

Writes a synthetic scene with its 20 m SCL (chipqa.synth.write_scene), masks it with the
weight-free baseline and prints the SCL statistics (`chipqa mask … --scl`), then writes
the picture with `chipqa view SCENE --mask MASK --scl SCL --png docs/scene_review.png`.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from chipqa.cli import main as chipqa
from chipqa.synth import write_scene


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--size", type=int, default=2048)
    ap.add_argument("--work", type=Path, default=Path("/tmp/chipqa-scene"))
    ap.add_argument("--out", type=Path, default=Path(__file__).parent / "scene_review.png")
    args = ap.parse_args()
    args.work.mkdir(parents=True, exist_ok=True)
    scene, scl, mask = (args.work / n for n in ("scene.tif", "SCL.tif", "mask.tif"))
    if not scene.exists():
        write_scene(scene, args.size, seed=3, scl_path=scl)
    chipqa(["mask", str(scene), "--out", str(mask), "--scl", str(scl), "-q"])
    chipqa(["view", str(scene), "--mask", str(mask), "--scl", str(scl), "--png", str(args.out)])


if __name__ == "__main__":
    main()
