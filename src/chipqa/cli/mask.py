"""``chipqa mask``: the cloud mask of a whole scene as a Cloud-Optimized GeoTIFF."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from chipqa.cli.options import (
    add_dn_offset_option,
    add_quiet_option,
    chip_progress,
    positive_int,
)

HELP = "cloud mask of a whole scene as a Cloud-Optimized GeoTIFF"
DESCRIPTION = (
    "Tiled inference with blended overlaps over a scene of any size (a "
    "4-band GeoTIFF/COG/VRT in B02 B03 B04 B08 order, or a folder of B02.tif … B08.tif); "
    "writes uint8 cloud probability in percent (or classes) as a COG on the scene's grid."
)


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("scene", help="scene file or folder")
    p.add_argument("--out", required=True, help="mask to write (.tif, Cloud-Optimized GeoTIFF)")
    p.add_argument(
        "--model",
        default="pretrained",
        help="'pretrained' (the default: UKIS csmask's cloud U-Net for L2A; 'pretrained-l1c' "
        "for L1C), 'baseline' (weight-free spectral quick look) or a chipqa checkpoint",
    )
    p.add_argument("--device", default="auto")
    add_dn_offset_option(p)
    p.add_argument("--tile", type=positive_int, default=512)
    p.add_argument("--overlap", type=int, default=64)
    p.add_argument("--batch-size", type=positive_int, default=4)
    p.add_argument("--classes", action="store_true", help="write 0/1 classes, not probability")
    res = p.add_mutually_exclusive_group()
    res.add_argument(
        "--scale",
        type=positive_int,
        default=1,
        help="write a mask of N×N times larger pixels (mean probability of each block)",
    )
    res.add_argument(
        "--resolution",
        type=float,
        default=None,
        metavar="METRES",
        help="pixel size of the mask, a whole multiple of the scene's (e.g. 60)",
    )
    p.add_argument(
        "--scl",
        default=None,
        help="the scene's Sen2Cor SCL (any resolution or CRS): print how the mask compares "
        "with its cloud classes and write the figures to <out>.scl.json",
    )
    add_quiet_option(p)


def _check_scl_argument(args: argparse.Namespace) -> None:
    """``--scl`` must exist, and neither the mask nor its statistics may overwrite it."""
    from chipqa.scene import SceneError, stats_path_for

    if not Path(args.scl).is_file():
        raise SceneError(f"--scl {args.scl} does not exist; give the scene's SCL raster")
    for target in (Path(args.out), stats_path_for(args.out)):
        if target.resolve() == Path(args.scl).resolve():
            raise SceneError(
                f"--out {args.out} would overwrite the SCL {args.scl}; choose another path"
            )


def _report_scl(out: Path, args: argparse.Namespace, model: str) -> None:
    """Compare the written mask with ``--scl``, print the figures and write them as JSON."""
    from chipqa.scene import scl_statistics, stats_path_for, write_scl_statistics

    stats = scl_statistics(out, args.scl)
    stats["model"] = model
    path = write_scl_statistics(stats, stats_path_for(out))
    print(
        f"SCL {args.scl}: cloud {stats['scl_cloud_fraction']:.1%}, shadow "
        f"{stats['scl_shadow_fraction']:.1%}; mask cloud {stats['mask_cloud_fraction']:.1%}; "
        f"IoU mask vs SCL cloud {stats['iou_mask_scl']:.3f} over "
        f"{stats['pixels_compared']:,} px ({stats['scl_coverage']:.0%} of the mask); "
        f"wrote {path}"
    )


def run(args: argparse.Namespace) -> int:
    from chipqa.scene import check_output, mask_scene, open_scene, scale_for_resolution
    from chipqa.scoring.settings import ScoringSettings

    scene = open_scene(args.scene)
    if args.scl is not None:
        _check_scl_argument(args)
    check_output(scene, args.out)  # never over the scene's bands, its SCL or a chip's label
    scale = args.scale
    if args.resolution is not None:
        scale = scale_for_resolution(scene, args.resolution)
    settings = ScoringSettings.create(args.model, dn_offset=args.dn_offset, previews=False)
    predictor, settings = settings.load_predictor(args.device)
    if args.dn_offset is not None:
        from chipqa.predictors.base import dn_offset_override

        note = dn_offset_override(predictor, args.dn_offset)
        if note:
            print(note, file=sys.stderr)
    t0 = time.perf_counter()
    out = mask_scene(
        scene,
        predictor,
        args.out,
        tile=args.tile,
        overlap=args.overlap,
        batch_size=args.batch_size,
        classes=args.classes,
        scale=scale,
        progress=chip_progress(args.quiet),
    )
    if not args.quiet:
        px = abs(scene.transform.a) * scale
        print(
            f"masked {scene.width}×{scene.height} px with {predictor.name} on "
            f"{predictor.device} in {time.perf_counter() - t0:.1f} s; wrote {out}"
            + (f" ({px:g} m pixels)" if scale > 1 else "")
        )
    if args.scl is not None:
        _report_scl(out, args, predictor.name)
    return 0
