"""The ``chipqa`` command line: the same core as the napari plugin, for pipelines.

Subcommands: ``synth`` (make a synthetic dataset with planted label errors), ``score``
(rank every chip of a dataset by how suspicious its label is) and ``demo`` (both, on a
fresh synthetic dataset, with a report of how many planted errors were found and a
contact sheet PNG of the most suspicious chips).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
from pathlib import Path

from chipqa import __version__
from chipqa.errors import ChipqaError


def _positive_int(text: str) -> int:
    value = int(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {text}")
    return value


def _fraction(text: str) -> float:
    value = float(text)
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"must be between 0 and 1, got {text}")
    return value


def _add_cache_option(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--cache",
        choices=["auto", "build", "off"],
        default="auto",
        help="chip cache: auto = use <DATA>_cache when built, build = build or "
        "refresh it first, off = read the TIFFs (see `chipqa cache`)",
    )


def _add_scoring_options(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--model",
        default="baseline",
        help="'baseline' (weight-free spectral test) or a chipqa checkpoint (.ckpt)",
    )
    p.add_argument(
        "--device", default="auto", help="auto (CUDA when available), cpu, cuda, cuda:1, …"
    )
    p.add_argument(
        "--batch-size",
        type=_positive_int,
        default=None,
        help="chips per batch (default 64 on a GPU, 8 on a CPU)",
    )
    p.add_argument(
        "--workers",
        type=int,
        default=None,
        help="threads reading chips ahead (default: every core for the CPU baseline, "
        "which scores in them, else 2)",
    )
    p.add_argument(
        "--threshold",
        type=_fraction,
        default=0.5,
        help="probability at or above which a pixel is cloud (default 0.5)",
    )
    p.add_argument(
        "--compile",
        action="store_true",
        help="compile a U-Net with torch.compile (pays off on a GPU over many chips; "
        "the first batch takes a minute or more)",
    )


def _add_training_options(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("training")
    g.add_argument(
        "--encoder",
        default="resnet34",
        help="smp encoder: resnet34 (default), mobilenet_v2, inceptionv4, resnet18, …",
    )
    g.add_argument("--epochs", type=_positive_int, default=20)
    g.add_argument("--train-batch-size", type=_positive_int, default=8)
    g.add_argument("--lr", type=float, default=1e-3)
    g.add_argument("--val-fraction", type=_fraction, default=0.2)
    g.add_argument("--seed", type=int, default=0)
    g.add_argument("--accelerator", default="auto", help="auto, cpu or gpu")
    g.add_argument("--devices", default="1", help="devices per node (Lightning; 'auto' for all)")
    g.add_argument("--num-nodes", type=_positive_int, default=1, help="nodes for DDP")
    g.add_argument("--max-steps", type=int, default=-1, help="stop after this many steps (tests)")
    g.add_argument(
        "--encoder-weights",
        default=None,
        help="local file with pretrained encoder weights (a state_dict); "
        "default: random initialisation, nothing is downloaded",
    )


def _synth_progress(quiet: bool):
    """A tqdm bar for chip writing on a terminal; nothing otherwise (logs stay clean)."""
    if quiet or not sys.stderr.isatty():
        return None
    from tqdm.auto import tqdm

    bar = {}

    def show(done: int, total: int) -> None:
        if "b" not in bar:
            bar["b"] = tqdm(total=total, unit="chip", desc="writing chips")
        bar["b"].update(done - bar["b"].n)
        if done == total:
            bar["b"].close()

    return show


def cmd_synth(args: argparse.Namespace) -> int:
    from chipqa.synth import generate_dataset

    res = generate_dataset(
        args.out,
        n_chips=args.chips,
        size=args.size,
        error_rate=args.error_rate,
        seed=args.seed,
        layout=args.layout,
        truth_dir=args.truth,
        progress=_synth_progress(args.quiet),
    )
    print(f"wrote {len(res.chip_ids)} chips to {res.root} ({args.layout} layout)")
    print(f"planted label errors and true labels: {res.truth_dir} (kept outside the dataset)")
    return 0


def _score(dataset, args, quiet: bool):
    from chipqa.predictors import load_predictor
    from chipqa.scoring import score_dataset

    predictor = load_predictor(args.model, device=args.device, compile=args.compile)
    t0 = time.perf_counter()
    scores = score_dataset(  # progress=True: a bar on a terminal, silent otherwise
        dataset,
        predictor,
        batch_size=args.batch_size,
        workers=args.workers,
        threshold=args.threshold,
        progress=not quiet,
    )
    return predictor, scores, time.perf_counter() - t0


def _print_errors(scores, limit: int = 10) -> None:
    bad = scores[scores["error"] != ""]
    if len(bad):
        print(
            f"{len(bad)} chip(s) could not be read and were skipped (their rows say why):",
            file=sys.stderr,
        )
        for msg in bad["error"].head(limit):
            print(f"  - {msg}", file=sys.stderr)
        if len(bad) > limit:
            print(f"  … and {len(bad) - limit} more", file=sys.stderr)


def _print_top(scores, n: int) -> None:
    top = scores[scores["error"] == ""].head(n)
    if not len(top):
        return
    print(f"most suspicious labels (top {len(top)}):")
    print(
        f"{'rank':>5} {'chip_id':<12} {'suspicion':>9} {'IoU':>6} {'label':>6} {'model':>6}  flags"
    )
    for r in top.itertuples(index=False):
        print(
            f"{r.rank:>5} {r.chip_id:<12} {r.suspicion:>9.3f} {r.iou:>6.2f} "
            f"{r.label_cloud_fraction:>6.0%} {r.pred_cloud_fraction:>6.0%}  {r.flags}"
        )


def _open_with_cache(args: argparse.Namespace):
    """Open the dataset and, per ``--cache``, read it through its chip cache."""
    from chipqa.data import open_dataset

    dataset = open_dataset(args.data)
    mode = getattr(args, "cache", "off")
    if mode == "build":
        _build_cache(dataset, args.quiet)
    if mode in ("auto", "build") and dataset.use_cache() and not args.quiet:
        fresh = sum(dataset.cache.holds(r) for r in dataset)
        print(
            f"reading {fresh} of {len(dataset)} chips from the cache {dataset.cache.folder}",
            file=sys.stderr,
        )
    return dataset


def _build_cache(dataset, quiet: bool):
    from chipqa.data.cache import build_cache

    t0 = time.perf_counter()
    cache = build_cache(dataset, progress=_synth_progress(quiet))
    if not quiet:
        print(
            f"cached {len(cache)} of {len(dataset)} chips ({cache.shape[0]}×{cache.shape[1]}) "
            f"in {cache.folder} in {time.perf_counter() - t0:.1f} s",
            file=sys.stderr,
        )
    return cache


def cmd_cache(args: argparse.Namespace) -> int:
    from chipqa.data import open_dataset

    _build_cache(open_dataset(args.data), args.quiet)
    return 0


def cmd_score(args: argparse.Namespace) -> int:
    from chipqa.io.atomic import atomic_write_csv

    dataset = _open_with_cache(args)
    out = Path(args.out) if args.out else dataset.root.parent / f"{dataset.root.name}_scores.csv"
    if not args.quiet:
        print(
            f"{len(dataset)} chips in {dataset.root} ({dataset.layout} layout), "
            f"{dataset.n_labelled} with a label",
            file=sys.stderr,
        )
    if args.folds:
        from chipqa.scoring.oof import score_out_of_fold
        from chipqa.training import ProgressWriter

        t0 = time.perf_counter()
        bar = _TrainingBar(args.quiet)
        writer = ProgressWriter(args.progress, echo=bar)
        try:
            scores = score_out_of_fold(
                dataset,
                args.folds,
                out.with_suffix(".folds"),
                blocklist=args.blocklist,
                config=_train_config(args),
                device=args.device,
                batch_size=args.batch_size,
                echo=lambda ev: writer.emit(ev.pop("event"), **ev),
            )
            writer.emit("done", scores=str(out))
        finally:
            bar.close()
            writer.close()
        name, device = f"{args.folds}-fold out-of-fold U-Nets", args.device
        seconds = time.perf_counter() - t0
    else:
        predictor, scores, seconds = _score(dataset, args, args.quiet)
        name, device = predictor.name, predictor.device
    atomic_write_csv(scores, out)
    _print_errors(scores)
    if not args.quiet:
        _print_top(scores, args.top)
        print(f"scored {len(scores)} chips with {name} on {device} in {seconds:.1f} s; wrote {out}")
    return 0


class _TrainingBar:
    """Turns training progress events into a tqdm bar on a terminal (silent otherwise)."""

    def __init__(self, quiet: bool):
        self.enabled = not quiet and sys.stderr.isatty()
        self.bar = None

    def __call__(self, ev: dict) -> None:
        kind = ev.get("event")
        if kind == "warning":
            print(f"warning: {ev.get('message')}", file=sys.stderr)
        if not self.enabled:
            return
        from tqdm.auto import tqdm

        fold = f"fold {ev['fold']}/{ev['folds']} " if "fold" in ev else ""
        if kind == "start":
            self.close()
            total = ev["epochs"] * ev["steps_per_epoch"]
            self.bar = tqdm(total=total, unit="step", desc=f"{fold}training {ev['encoder']}")
        elif kind == "step" and self.bar is not None:
            self.bar.update(ev["step"] - self.bar.n)
            self.bar.set_postfix(epoch=ev["epoch"], loss=f"{ev['loss']:.3f}")
        elif kind == "epoch" and self.bar is not None:
            self.bar.set_postfix(epoch=ev["epoch"], val_iou=f"{ev.get('val_iou', math.nan):.3f}")

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None


def _train_config(args: argparse.Namespace):
    from chipqa.training import TrainConfig

    return TrainConfig(
        encoder=args.encoder,
        epochs=args.epochs,
        batch_size=args.train_batch_size,
        lr=args.lr,
        val_fraction=args.val_fraction,
        seed=args.seed,
        devices=int(args.devices) if str(args.devices).isdigit() else args.devices,
        num_nodes=args.num_nodes,
        accelerator=args.accelerator,
        workers=2 if args.workers is None else args.workers,
        max_steps=args.max_steps,
        encoder_weights=args.encoder_weights,
    )


def cmd_train(args: argparse.Namespace) -> int:
    import signal

    from chipqa.training import train

    def on_term(signum, frame):  # a cancel from the napari plugin or a job scheduler
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, on_term)
    bar = _TrainingBar(args.quiet)
    try:
        result = train(
            args.data,
            args.out,
            blocklist=args.blocklist,
            config=_train_config(args),
            progress=args.progress,
            echo=bar,
        )
    except (KeyboardInterrupt, SystemExit):
        print("chipqa train: cancelled; no checkpoint was written", file=sys.stderr)
        return 130
    finally:
        bar.close()
    if not args.quiet:
        print(
            f"trained {result.epochs_run} epoch(s) on {len(result.train_chips)} chips "
            f"({len(result.val_chips)} for validation) in {result.seconds:.0f} s; "
            f"best validation IoU {result.best_val_iou:.3f}; wrote {result.checkpoint}"
        )
    return 0


def cmd_mask(args: argparse.Namespace) -> int:
    from chipqa.predictors import load_predictor
    from chipqa.scene import (
        SceneError,
        mask_scene,
        open_scene,
        scale_for_resolution,
        scl_statistics,
        stats_path_for,
        write_scl_statistics,
    )

    scene = open_scene(args.scene)
    scale = args.scale
    if args.resolution is not None:
        scale = scale_for_resolution(scene, args.resolution)
    if args.scl is not None:
        if not Path(args.scl).is_file():
            raise SceneError(f"--scl {args.scl} does not exist; give the scene's SCL raster")
        for target in (Path(args.out), stats_path_for(args.out)):
            if target.resolve() == Path(args.scl).resolve():
                raise SceneError(
                    f"--out {args.out} would overwrite the SCL {args.scl}; choose another path"
                )
    predictor = load_predictor(args.model, device=args.device)
    t0 = time.perf_counter()
    bar = _synth_progress(args.quiet)
    out = mask_scene(
        scene,
        predictor,
        args.out,
        tile=args.tile,
        overlap=args.overlap,
        batch_size=args.batch_size,
        classes=args.classes,
        scale=scale,
        progress=bar,
    )
    if not args.quiet:
        px = abs(scene.transform.a) * scale
        print(
            f"masked {scene.width}×{scene.height} px with {predictor.name} on "
            f"{predictor.device} in {time.perf_counter() - t0:.1f} s; wrote {out}"
            + (f" ({px:g} m pixels)" if scale > 1 else "")
        )
    if args.scl is not None:
        stats = scl_statistics(out, args.scl)
        stats["model"] = predictor.name
        path = write_scl_statistics(stats, stats_path_for(out))
        print(
            f"SCL {args.scl}: cloud {stats['scl_cloud_fraction']:.1%}, shadow "
            f"{stats['scl_shadow_fraction']:.1%}; mask cloud {stats['mask_cloud_fraction']:.1%}; "
            f"IoU mask vs SCL cloud {stats['iou_mask_scl']:.3f} over "
            f"{stats['pixels_compared']:,} px ({stats['scl_coverage']:.0%} of the mask); "
            f"wrote {path}"
        )
    return 0


def _hint_overviews(scene, large: int = 4096) -> None:
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


def cmd_view(args: argparse.Namespace) -> int:
    from chipqa.scene import SceneError, open_scene

    scene = open_scene(args.scene)
    for what, path in (("--mask", args.mask), ("--scl", args.scl)):
        if path is not None and not Path(path).is_file():
            raise SceneError(f"{what} {path} does not exist")
    if args.png is not None:
        from chipqa.scene_view import write_scene_panel

        out = write_scene_panel(
            args.png, scene, mask=args.mask, scl=args.scl, max_side=args.max_side
        )
        print(f"wrote {out}")
        return 0
    try:
        import napari
    except ImportError:
        print(
            'napari is not installed: pip install "chipqa[napari]", or write a picture '
            "with --png OUT.png",
            file=sys.stderr,
        )
        return 2
    from chipqa._qt.scene_viewer import open_scene_in_viewer

    _hint_overviews(scene)
    viewer = napari.Viewer(title=f"chipqa: {Path(args.scene).name}")
    open_scene_in_viewer(
        viewer, scene, mask=args.mask, scl=args.scl, layout="grid" if args.grid else "side by side"
    )
    napari.run()
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from chipqa.data import open_dataset
    from chipqa.io.atomic import atomic_write_csv
    from chipqa.render import contact_sheet
    from chipqa.scoring.evaluate import read_truth, report_against_truth
    from chipqa.synth import generate_dataset

    folder = Path(args.folder)
    data, truth_dir = folder / "data", folder / "data-truth"
    settings = {
        "chips": args.chips,
        "size": args.size,
        "error_rate": args.error_rate,
        "seed": args.seed,
        "chipqa": __version__,
    }
    stamp = folder / "demo.json"
    if data.exists():
        old = json.loads(stamp.read_text()) if stamp.is_file() else None
        if old != settings:
            raise ChipqaError(
                f"{data} already exists and was not made by this demo with these settings; "
                "choose another folder (chipqa demo FOLDER) or delete it"
            )
        print(f"reusing the synthetic dataset in {data}")
    else:
        print(
            f"writing {args.chips} synthetic chips of {args.size}×{args.size} px with "
            f"{args.error_rate:.0%} planted label errors to {data}"
        )
        generate_dataset(
            data,
            n_chips=args.chips,
            size=args.size,
            error_rate=args.error_rate,
            seed=args.seed,
            truth_dir=truth_dir,
            progress=_synth_progress(args.quiet),
        )
        stamp.write_text(json.dumps(settings, indent=1))
    dataset = open_dataset(data)
    predictor, scores, seconds = _score(dataset, args, args.quiet)
    scores_path = atomic_write_csv(scores, folder / "scores.csv")
    _print_errors(scores)
    truth = read_truth(truth_dir / "planted_errors.csv")
    report = report_against_truth(scores, truth)
    _print_top(scores, args.top)
    print()
    print(report.format())
    sheet = contact_sheet(
        scores,
        dataset,
        predictor.predict_numpy,
        folder / "contact_sheet.png",
        n=args.sheet,
        title=f"chipqa demo: {len(scores)} synthetic chips scored by {predictor.name}, "
        "most suspicious first",
        highlight=set(truth.loc[truth["corrupted"], "chip_id"]),
    )
    print()
    print(
        f"scored {len(scores)} chips with {predictor.name} on {predictor.device} in {seconds:.1f} s"
    )
    print(f"scores:        {scores_path}")
    print(f"contact sheet: {sheet}")
    print(f"truth:         {truth_dir / 'planted_errors.csv'}")
    if args.view == "yes" or (args.view == "auto" and _can_open_viewer()):
        return _open_napari(data)
    return 0


def _can_open_viewer() -> bool:
    """An interactive terminal with a display: the demo then continues in napari."""
    has_display = bool(os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"))
    return has_display and sys.stdin.isatty() and sys.stdout.isatty()


def _open_napari(data: Path) -> int:
    try:
        import napari
    except ImportError:
        print(
            'napari is not installed: pip install "chipqa[napari]" to review the chips in it',
            file=sys.stderr,
        )
        return 0
    from chipqa._qt.review_widget import open_in_viewer

    print("opening napari with the Chip QA widget (close the window to finish)")
    viewer = napari.Viewer(title="chipqa demo")
    open_in_viewer(viewer, data)
    napari.run()
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="chipqa",
        description="Find wrong cloud masks in Sentinel-2 chip datasets.",
    )
    parser.add_argument("--version", action="version", version=f"chipqa {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser(
        "synth",
        help="write a synthetic dataset with planted label errors",
        description="Write Sentinel-2-like chips (4 bands + cloud label) with "
        "planted label errors; the truth goes to a folder beside the dataset.",
    )
    p.add_argument("out", help="dataset folder to create (must be new or empty)")
    p.add_argument("--chips", type=_positive_int, default=200, help="number of chips (default 200)")
    p.add_argument(
        "--size",
        type=_positive_int,
        default=256,
        help="chip size in pixels (default 256; real chips are 512)",
    )
    p.add_argument(
        "--error-rate",
        type=_fraction,
        default=0.15,
        help="share of labels to corrupt (default 0.15)",
    )
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--layout", choices=["oncloudn", "flat"], default="oncloudn")
    p.add_argument("--truth", default=None, help="truth folder (default: OUT-truth beside OUT)")
    p.add_argument("-q", "--quiet", action="store_true")
    p.set_defaults(func=cmd_synth)

    p = sub.add_parser(
        "score",
        help="rank every chip by how suspicious its label is",
        description="Predict every chip, compare with its label and write the "
        "scores table, most suspicious first.",
    )
    p.add_argument("data", help="dataset folder (On Cloud N or flat layout)")
    p.add_argument("--out", default=None, help="scores CSV (default: DATA_scores.csv beside DATA)")
    p.add_argument("--top", type=int, default=15, help="rows to print (default 15)")
    p.add_argument("-q", "--quiet", action="store_true")
    p.add_argument(
        "--folds",
        type=int,
        default=0,
        help="out-of-fold scoring: train K U-Nets on K-1 folds each and score every "
        "chip with the one that never saw it (ignores --model)",
    )
    p.add_argument("--blocklist", default=None, help="with --folds: chips left out of training")
    p.add_argument("--progress", default=None, help="with --folds: progress events as JSON lines")
    _add_scoring_options(p)
    _add_training_options(p)
    _add_cache_option(p)
    p.set_defaults(func=cmd_score)

    p = sub.add_parser(
        "mask",
        help="cloud mask of a whole scene as a Cloud-Optimized GeoTIFF",
        description="Tiled inference with blended overlaps over a scene of any size (a "
        "4-band GeoTIFF/COG/VRT in B02 B03 B04 B08 order, or a folder of B02.tif … B08.tif); "
        "writes uint8 cloud probability in percent (or classes) as a COG on the scene's grid.",
    )
    p.add_argument("scene", help="scene file or folder")
    p.add_argument("--out", required=True, help="mask to write (.tif, Cloud-Optimized GeoTIFF)")
    p.add_argument("--model", default="baseline", help="'baseline' or a chipqa checkpoint")
    p.add_argument("--device", default="auto")
    p.add_argument("--tile", type=_positive_int, default=512)
    p.add_argument("--overlap", type=int, default=64)
    p.add_argument("--batch-size", type=_positive_int, default=4)
    p.add_argument("--classes", action="store_true", help="write 0/1 classes, not probability")
    res = p.add_mutually_exclusive_group()
    res.add_argument(
        "--scale",
        type=_positive_int,
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
    p.add_argument("-q", "--quiet", action="store_true")
    p.set_defaults(func=cmd_mask)

    p = sub.add_parser(
        "view",
        help="a scene's true colour | SCL cloud classes | mask, in napari or as a PNG",
        description="Open a scene in napari as lazy multiscale layers (true colour, the "
        "SCL's cloud classes and the mask side by side; never read whole), or with --png "
        "write the same three panels as a picture from decimated reads, without a window.",
    )
    p.add_argument("scene", help="scene file or folder (as for `chipqa mask`)")
    p.add_argument("--mask", default=None, help="a mask written by `chipqa mask`")
    p.add_argument("--scl", default=None, help="the scene's Sen2Cor SCL (any resolution or CRS)")
    p.add_argument("--png", default=None, metavar="OUT.png", help="write a PNG, open no window")
    p.add_argument(
        "--max-side", type=_positive_int, default=900, help="PNG panel size in pixels (900)"
    )
    p.add_argument("--grid", action="store_true", help="napari grid mode instead of side by side")
    p.set_defaults(func=cmd_view)

    p = sub.add_parser(
        "cache",
        help="convert a dataset's chips into a memory-mapped cache for fast reading",
        description="Write <DATA>_cache beside the dataset: one uint16 array of bands, one "
        "uint8 array of labels and an index. Scoring, training and the viewer read it "
        "instead of five TIFFs per chip; chips whose files changed are read from the TIFFs "
        "until the cache is rebuilt.",
    )
    p.add_argument("data", help="dataset folder (On Cloud N or flat layout)")
    p.add_argument("-q", "--quiet", action="store_true")
    p.set_defaults(func=cmd_cache)

    p = sub.add_parser(
        "train",
        help="train a U-Net on the chips that are not blocked",
        description="Train a segmentation-models-pytorch U-Net with PyTorch Lightning on the "
        "labelled chips that the blocklist does not block, and write one checkpoint when "
        "training ends.",
    )
    p.add_argument("data", help="dataset folder (On Cloud N or flat layout)")
    p.add_argument("--out", required=True, help="checkpoint to write (.ckpt)")
    p.add_argument(
        "--blocklist", default=None, help="blocklist CSV; its blocked chips are left out"
    )
    p.add_argument("--progress", default=None, help="write progress events as JSON lines here")
    p.add_argument("--workers", type=int, default=2, help="data-loading worker processes")
    p.add_argument("-q", "--quiet", action="store_true")
    _add_training_options(p)
    _add_cache_option(p)
    p.set_defaults(func=cmd_train)

    p = sub.add_parser(
        "demo",
        help="synthetic dataset + scoring + report + contact sheet",
        description="Make a synthetic dataset with planted label errors, score "
        "it with the weight-free baseline, report how many planted errors rank "
        "at the top and write a contact sheet of the most suspicious chips.",
    )
    p.add_argument(
        "folder", nargs="?", default="chipqa-demo", help="output folder (default ./chipqa-demo)"
    )
    p.add_argument("--chips", type=_positive_int, default=200)
    p.add_argument("--size", type=_positive_int, default=256)
    p.add_argument("--error-rate", type=_fraction, default=0.15)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--sheet", type=_positive_int, default=24, help="chips on the contact sheet")
    p.add_argument(
        "--view",
        choices=["auto", "yes", "no"],
        default="auto",
        help="open the data in napari afterwards (auto: when run from a terminal with a display)",
    )
    p.add_argument("--top", type=int, default=15, help="rows to print (default 15)")
    p.add_argument("-q", "--quiet", action="store_true")
    _add_scoring_options(p)
    p.set_defaults(func=cmd_demo)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except (ChipqaError, ValueError, FileExistsError) as exc:
        print(f"chipqa {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(
            f"chipqa {args.command}: interrupted; files already written are complete",
            file=sys.stderr,
        )
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
