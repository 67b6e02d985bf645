"""``chipqa demo``: a synthetic dataset, scored, checked against its planted errors."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from chipqa import __version__
from chipqa.cli.options import (
    add_quiet_option,
    add_scoring_options,
    add_synthetic_options,
    add_top_option,
    generate_synthetic,
    positive_int,
)
from chipqa.cli.score import print_errors, print_top, score_with_predictor
from chipqa.errors import ChipqaError

HELP = "synthetic dataset + scoring + report + contact sheet"
DESCRIPTION = (
    "Make a synthetic dataset with planted label errors, score it (with the pretrained "
    "cloud U-Net unless --model says otherwise), report how many planted errors rank "
    "at the top and write a contact sheet of the most suspicious chips."
)


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "folder", nargs="?", default="chipqa-demo", help="output folder (default ./chipqa-demo)"
    )
    add_synthetic_options(p, explained=False)
    p.add_argument("--sheet", type=positive_int, default=24, help="chips on the contact sheet")
    p.add_argument(
        "--view",
        choices=["auto", "yes", "no"],
        default="auto",
        help="open the data in napari afterwards (auto: when run from a terminal with a display)",
    )
    add_top_option(p)
    add_quiet_option(p)
    add_scoring_options(p)


def _make_or_reuse(folder: Path, args: argparse.Namespace) -> tuple[Path, Path]:
    """The demo's dataset and truth folders: reused when this demo made them with the
    same settings, written otherwise; any other data under ``folder`` is refused."""
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
        generate_synthetic(args, data, truth_dir=truth_dir)
        stamp.write_text(json.dumps(settings, indent=1))
    return data, truth_dir


def run(args: argparse.Namespace) -> int:
    from chipqa.data import open_dataset
    from chipqa.render import contact_sheet
    from chipqa.scoring import write_scores
    from chipqa.scoring.evaluate import read_truth, report_against_truth
    from chipqa.scoring.settings import write_settings

    if args.view == "yes":  # asked for the viewer: say at once when it cannot open
        from chipqa.cli.display import NO_DISPLAY_HINT, display_problem, napari_missing

        problem = napari_missing() or display_problem()
        if problem:
            raise ChipqaError(
                f"--view yes: cannot open napari: {problem}. Run without --view yes "
                f"(--view auto opens it only when it can), or {NO_DISPLAY_HINT}"
            )
    folder = Path(args.folder)
    data, truth_dir = _make_or_reuse(folder, args)
    dataset = open_dataset(data)
    predictor, scores, settings, seconds = score_with_predictor(dataset, args)
    scores_path = write_scores(scores, folder / "scores.csv")
    write_settings(scores_path, settings, dataset)
    print_errors(scores)
    truth = read_truth(truth_dir / "planted_errors.csv")
    report = report_against_truth(scores, truth)
    print_top(scores, args.top)
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
    """An interactive terminal where napari can open a window: the demo then continues in
    napari. When it cannot (not installed, no usable display), say why in one line."""
    from chipqa.cli.display import display_problem, napari_missing

    if not (sys.stdin.isatty() and sys.stdout.isatty()):
        return False
    problem = napari_missing() or display_problem()
    if problem:
        print(f"not opening napari: {problem}", file=sys.stderr)
        return False
    return True


def _open_napari(data: Path) -> int:
    import napari

    from chipqa._qt.review_widget import open_in_viewer

    print("opening napari with the Chip QA widget (close the window to finish)")
    viewer = napari.Viewer(title="chipqa demo")
    open_in_viewer(viewer, data)
    napari.run()
    return 0
