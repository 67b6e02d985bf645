"""``chipqa view``: a scene's true colour | SCL cloud classes | mask, in napari or a PNG."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from chipqa.cli.options import positive_int

HELP = "a scene's true colour | SCL cloud classes | mask, in napari or as a PNG"
DESCRIPTION = (
    "Open a scene in napari as lazy multiscale layers (true colour, the "
    "SCL's cloud classes and the mask side by side; never read whole), or with --png "
    "write the same three panels as a picture from decimated reads, without a window."
)


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("scene", help="scene file or folder (as for `chipqa mask`)")
    p.add_argument("--mask", default=None, help="a mask written by `chipqa mask`")
    p.add_argument("--scl", default=None, help="the scene's Sen2Cor SCL (any resolution or CRS)")
    p.add_argument("--png", default=None, metavar="OUT.png", help="write a PNG, open no window")
    p.add_argument(
        "--max-side", type=positive_int, default=900, help="PNG panel size in pixels (900)"
    )
    p.add_argument("--grid", action="store_true", help="napari grid mode instead of side by side")


def hint_overviews(scene, large: int = 4096) -> None:
    """Say how to make a large scene without overviews quick to view zoomed out."""
    import rasterio

    if max(scene.height, scene.width) < large:
        return
    for path in dict.fromkeys(p for p, _ in scene.sources):
        with rasterio.open(path) as src:
            if not src.overviews(1):
                print(
                    f"{path} has no overviews: zoomed-out views read all of it and pan "
                    f"slowly. Build them once with `gdaladdo -r average {path}` (or write a "
                    "Cloud-Optimized GeoTIFF) for smooth panning.",
                    file=sys.stderr,
                )


def run(args: argparse.Namespace) -> int:
    from chipqa.scene import SceneError, open_scene

    scene = open_scene(args.scene)
    for what, path in (("--mask", args.mask), ("--scl", args.scl)):
        if path is not None and not Path(path).is_file():
            raise SceneError(f"{what} {path} does not exist")
    if args.png is not None:
        from chipqa.scene import write_scene_panel

        out = write_scene_panel(
            args.png, scene, mask=args.mask, scl=args.scl, max_side=args.max_side
        )
        print(f"wrote {out}")
        return 0
    from chipqa.cli.display import NO_DISPLAY_HINT, display_problem, napari_missing

    missing = napari_missing()
    if missing:
        print(f"chipqa view: {missing}, or write a picture with --png OUT.png", file=sys.stderr)
        return 2
    problem = display_problem()
    if problem:
        print(
            f"chipqa view: cannot open napari: {problem}. Write a picture instead with "
            f"--png OUT.png, or {NO_DISPLAY_HINT}",
            file=sys.stderr,
        )
        return 2
    import napari

    from chipqa._qt.scene_viewer import open_scene_in_viewer

    hint_overviews(scene)
    viewer = napari.Viewer(title=f"chipqa: {Path(args.scene).name}")
    open_scene_in_viewer(
        viewer, scene, mask=args.mask, scl=args.scl, layout="grid" if args.grid else "side by side"
    )
    napari.run()
    return 0
