"""``chipqa score``: rank every chip of a dataset by how suspicious its label is."""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

from chipqa.cli.cache import open_dataset_for
from chipqa.cli.options import (
    TrainingBar,
    add_cache_option,
    add_dataset_argument,
    add_quiet_option,
    add_scoring_options,
    add_top_option,
    add_training_options,
    training_config,
)
from chipqa.errors import ChipqaError

HELP = "rank every chip by how suspicious its label is"
DESCRIPTION = (
    "Predict every chip, compare with its label and write the scores table, most suspicious first."
)


def add_arguments(p: argparse.ArgumentParser) -> None:
    add_dataset_argument(p)
    p.add_argument("--out", default=None, help="scores CSV (default: DATA_scores.csv beside DATA)")
    add_top_option(p)
    add_quiet_option(p)
    p.add_argument(
        "--folds",
        type=int,
        default=0,
        help="out-of-fold scoring: train K U-Nets on K-1 folds each and score every "
        "chip with the one that never saw it (ignores --model)",
    )
    p.add_argument("--blocklist", default=None, help="with --folds: chips left out of training")
    p.add_argument("--progress", default=None, help="with --folds: progress events as JSON lines")
    p.add_argument(
        "--no-previews",
        dest="previews",
        action="store_false",
        help="do not keep the small probability maps the napari gallery draws the model's "
        "outline from (DATA_chipqa_previews/, about 16 KB a chip; without them the "
        "gallery predicts every chip it shows again)",
    )
    add_scoring_options(p)
    add_training_options(p)
    add_cache_option(p)


def warn_dn_offset(dataset, offset: int, predictor=None) -> None:
    """Say on stderr when ``offset`` overrides a checkpoint's, or leaves most of the
    dataset's pixels at or below zero reflectance (the same for ``score`` and ``train``)."""
    from chipqa.data.dn_offset import offset_warning
    from chipqa.predictors.base import dn_offset_override

    for note in (
        dn_offset_override(predictor, offset) if predictor is not None else None,
        offset_warning(dataset, offset),
    ):
        if note:
            print(note, file=sys.stderr)


def settings_from_args(args: argparse.Namespace):
    """The :class:`~chipqa.scoring.settings.ScoringSettings` the options ask for."""
    from chipqa.scoring.settings import ScoringSettings

    return ScoringSettings.create(
        args.model, args.threshold, args.dn_offset, getattr(args, "previews", True)
    )


def score_with_predictor(dataset, args: argparse.Namespace):
    """Score the dataset with ``--model``; returns the predictor, the scores, the
    settings they were made with (threshold resolved) and seconds."""
    from chipqa.scoring import score_dataset
    from chipqa.scoring.previews import PreviewStore
    from chipqa.scoring.table import scored_threshold

    predictor, settings = settings_from_args(args).load_predictor(args.device, compile=args.compile)
    if args.dn_offset is not None:
        warn_dn_offset(dataset, args.dn_offset, predictor)
    if settings.threshold_policy == "auto" and not args.quiet:
        print(f"calibrating the threshold to the labels with {predictor.name} …", file=sys.stderr)
    t0 = time.perf_counter()
    scores = score_dataset(  # progress=True: a bar on a terminal, silent otherwise
        dataset,
        predictor,
        batch_size=args.batch_size,
        workers=args.workers,
        threshold=settings.score_threshold,
        progress=not args.quiet,
        previews=PreviewStore.for_settings(dataset.root, settings) if settings.previews else None,
    )
    seconds = time.perf_counter() - t0
    calibration = scores.attrs.get("calibration")
    if calibration is not None and not args.quiet:
        print(calibration.describe())
    settings = settings.resolved(threshold=scored_threshold(scores, settings.threshold_in_force))
    return predictor, scores, settings, seconds


def print_errors(scores, limit: int = 10) -> None:
    """Say on stderr which chips could not be read (the first ``limit`` reasons)."""
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


def print_top(scores, n: int) -> None:
    """Print the ``n`` most suspicious chips as a table."""
    readable = scores[scores["error"] == ""]
    top = readable.head(n)
    if not len(top):
        return
    if readable["label_cloud_fraction"].isna().all():
        print(
            "no chip has a label, so no label can be suspicious: the scores hold the "
            "model's cloud fraction of each chip (pred_cloud_fraction)"
        )
        return
    print(f"most suspicious labels (top {len(top)}):")
    print(
        f"{'rank':>5} {'chip_id':<12} {'suspicion':>9} {'IoU':>6} {'label':>6} {'model':>6}  why"
    )

    def cell(value: float, spec: str, width: int) -> str:
        return f"{'–' if value != value else format(value, spec):>{width}}"  # nan: a dash

    for r in top.itertuples(index=False):
        print(
            f"{r.rank:>5} {r.chip_id:<12} {cell(r.suspicion, '.3f', 9)} {cell(r.iou, '.2f', 6)} "
            f"{cell(r.label_cloud_fraction, '.0%', 6)} {cell(r.pred_cloud_fraction, '.0%', 6)}"
            f"  {getattr(r, 'why', '') or r.flags}"
        )


def _score_out_of_fold(dataset, args: argparse.Namespace, out: Path):
    """``--folds K``: train K U-Nets and score each chip with one that never saw it,
    at ``--threshold`` (auto: calibrated per fold on its held-out chips), with
    ``--dn-offset`` and ``--no-previews`` as for one model."""
    from chipqa.scoring.settings import AUTO, FIXED, ScoringSettings
    from chipqa.scoring.table import scored_threshold
    from chipqa.training import ProgressWriter
    from chipqa.training.oof import score_out_of_fold

    bar = TrainingBar(args.quiet)
    writer = ProgressWriter(args.progress, echo=bar)
    auto = args.threshold == "auto"
    try:
        scores = score_out_of_fold(
            dataset,
            args.folds,
            out.with_suffix(".folds"),
            blocklist=args.blocklist,
            config=training_config(args),
            device=args.device,
            batch_size=args.batch_size,
            echo=lambda ev: writer.emit(ev.pop("event"), **ev),
            threshold=args.threshold,
            previews=getattr(args, "previews", True),
        )
        writer.emit("done", scores=str(out))
    finally:
        bar.close()
        writer.close()
    settings = ScoringSettings(
        model=f"oof-k{args.folds}-{_trained_encoder(scores, args.encoder)}",
        threshold_policy=AUTO if auto else FIXED,
        threshold=scored_threshold(scores),
        dn_offset=args.dn_offset or 0,
        previews=getattr(args, "previews", True),
    )
    return scores, settings


def _trained_encoder(scores, asked: str) -> str:
    """The encoder the folds' checkpoints hold (``unet-<encoder>:oof-…`` in the model
    column): with ``--init pretrained`` it is the pretrained model's, not ``--encoder``."""
    models = [str(m) for m in scores.get("model", []) if str(m).startswith("unet-")]
    return models[0].split(":", 1)[0].removeprefix("unet-") if models else asked


def write_scores_or_fallback(scores, out: Path) -> tuple[Path, str | None]:
    """Write the scores to ``out``; when that fails (a full disk), to a file in the system's
    temporary folder, so that a long run's scores are not lost.

    Returns the file written and, after a fallback, why ``out`` could not be written.

    Raises:
        ChipqaError: neither file could be written (the message says both reasons).
    """
    import tempfile

    from chipqa.scoring import ScoresWriteError, write_scores

    try:
        return write_scores(scores, out), None
    except ScoresWriteError as exc:
        why = str(exc)
    fallback = None
    try:
        fd, name = tempfile.mkstemp(prefix=f"chipqa-{out.stem}-", suffix=".csv")
        os.close(fd)
        fallback = Path(name)
        write_scores(scores, fallback)
    except (OSError, ScoresWriteError) as exc:
        if fallback is not None:
            fallback.unlink(missing_ok=True)
        raise ChipqaError(
            f"cannot write the scores to {out} ({why}), nor to {tempfile.gettempdir()} ({exc}); "
            "the scores of this run are lost. Free some space or choose another --out"
        ) from exc
    return fallback, why


def _write_settings(written: Path, settings, dataset) -> None:
    """Write the settings beside the scores (a failure only costs a re-score later)."""
    from chipqa.scoring.settings import write_settings

    try:
        write_settings(written, settings, dataset)
    except OSError as exc:
        print(
            f"chipqa score: warning: cannot write the scoring settings beside {written} "
            f"({exc}); the plugin will score again instead of reusing these scores",
            file=sys.stderr,
        )


def run(args: argparse.Namespace) -> int:
    from chipqa.io.paths import side_paths

    dataset = open_dataset_for(args)
    out = Path(args.out) if args.out else side_paths(dataset.root).scores
    if not args.quiet:
        print(
            f"{len(dataset)} chips in {dataset.root} ({dataset.layout} layout), "
            f"{dataset.n_labelled} with a label",
            file=sys.stderr,
        )
    if args.folds:
        t0 = time.perf_counter()
        scores, settings = _score_out_of_fold(dataset, args, out)
        name, device = f"{args.folds}-fold out-of-fold U-Nets", args.device
        seconds = time.perf_counter() - t0
    else:
        predictor, scores, settings, seconds = score_with_predictor(dataset, args)
        name, device = predictor.name, predictor.device
    try:
        written, why = write_scores_or_fallback(scores, out)
    except ChipqaError as exc:  # the run's scores are lost: a failure, not a usage error
        print(f"chipqa score: error: {exc}", file=sys.stderr)
        return 1
    _write_settings(written, settings, dataset)
    print_errors(scores)
    if not args.quiet:
        print_top(scores, args.top)
        print(
            f"scored {len(scores)} chips with {name} on {device} in {seconds:.1f} s "
            f"({settings.describe()}); wrote {written}"
        )
    if why is not None:
        print(
            f"chipqa score: error: cannot write the scores to {out} ({why}); they were "
            f"written to {written} instead. Free some space, then move that file into place",
            file=sys.stderr,
        )
        return 1
    unreadable = int((scores["error"] != "").sum())
    if len(scores) and unreadable == len(scores):
        print(
            f"chipqa score: error: none of the {len(scores)} chips of {dataset.root} could be "
            f"read, so nothing was scored; {written} says why for each chip",
            file=sys.stderr,
        )
        return 1
    return 0
