"""What several ``chipqa`` commands share: option groups, the settings they turn into,
and progress bars (tqdm on a terminal, nothing in logs).

Only the standard library is imported here, so that ``chipqa --help`` stays quick.
"""

from __future__ import annotations

import argparse
import math
import sys
from collections.abc import Callable

from chipqa.constants import DEFAULT_THRESHOLD


def positive_int(text: str) -> int:
    """An argparse type: a whole number above 0."""
    value = int(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {text}")
    return value


def fraction(text: str) -> float:
    """An argparse type: a number from 0 to 1."""
    value = float(text)
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"must be between 0 and 1, got {text}")
    return value


def threshold_or_auto(text: str) -> float | str:
    """An argparse type: ``auto`` or a probability from 0 to 1."""
    return "auto" if text.strip().lower() == "auto" else fraction(text)


def add_quiet_option(p: argparse.ArgumentParser) -> None:
    p.add_argument("-q", "--quiet", action="store_true")


def add_dataset_argument(p: argparse.ArgumentParser) -> None:
    """The DATA positional of the commands that read a chip dataset."""
    p.add_argument("data", help="dataset folder (On Cloud N or flat layout)")


def add_top_option(p: argparse.ArgumentParser) -> None:
    p.add_argument("--top", type=int, default=15, help="rows to print (default 15)")


def add_synthetic_options(p: argparse.ArgumentParser, *, explained: bool = True) -> None:
    """How many chips of which size a synthetic dataset gets, with how many planted errors.

    ``explained=False`` leaves the options without help text (``chipqa demo``).
    """

    def say(text: str) -> str | None:
        return text if explained else None

    p.add_argument(
        "--chips", type=positive_int, default=200, help=say("number of chips (default 200)")
    )
    p.add_argument(
        "--size",
        type=positive_int,
        default=256,
        help=say("chip size in pixels (default 256; real chips are 512)"),
    )
    p.add_argument(
        "--error-rate",
        type=fraction,
        default=0.15,
        help=say("share of labels to corrupt (default 0.15)"),
    )
    p.add_argument("--seed", type=int, default=0)


def generate_synthetic(args: argparse.Namespace, out, **kwargs):
    """:func:`chipqa.synth.generate_dataset` with the synthetic options (and a progress
    bar unless ``--quiet``); ``kwargs`` go to it as they are."""
    from chipqa.synth import generate_dataset

    return generate_dataset(
        out,
        n_chips=args.chips,
        size=args.size,
        error_rate=args.error_rate,
        seed=args.seed,
        progress=chip_progress(args.quiet),
        **kwargs,
    )


def add_cache_option(p: argparse.ArgumentParser) -> None:
    """``--cache auto|build|off``: how the dataset's chip cache is used (see ``chipqa cache``)."""
    p.add_argument(
        "--cache",
        choices=["auto", "build", "off"],
        default="auto",
        help="chip cache: auto = use <DATA>_cache when built, build = build or "
        "refresh it first, off = read the TIFFs (see `chipqa cache`)",
    )


def add_scoring_options(p: argparse.ArgumentParser) -> None:
    """The predictor and how it runs over the chips (``score``, ``demo``)."""
    p.add_argument(
        "--model",
        default="pretrained",
        help="'pretrained' (the default: UKIS csmask's cloud U-Net for Sentinel-2 L2A; "
        "'pretrained-l1c' for L1C chips), 'baseline' (weight-free spectral quick look, "
        "fitted to synthetic chips only), or a chipqa checkpoint (.ckpt)",
    )
    p.add_argument(
        "--device", default="auto", help="auto (CUDA when available), cpu, cuda, cuda:1, …"
    )
    p.add_argument(
        "--batch-size",
        type=positive_int,
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
        type=threshold_or_auto,
        default="auto",
        help="probability at or above which a pixel is cloud, or 'auto' (the default): "
        "the threshold at which the model agrees best with this dataset's labels "
        f"(median per-chip IoU over a sample of labelled chips; {DEFAULT_THRESHOLD} when "
        "no chip is labelled)",
    )
    add_dn_offset_option(p)
    p.add_argument(
        "--compile",
        action="store_true",
        help="compile a U-Net with torch.compile (pays off on a GPU over many chips; "
        "the first batch takes a minute or more)",
    )


def dn_offset(text: str) -> int:
    """``--dn-offset``: a whole number of DN that can be an offset (same rule everywhere)."""
    from chipqa.predictors.base import dn_offset_problem

    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
    problem = dn_offset_problem(value)
    if problem is not None:
        raise argparse.ArgumentTypeError(problem)
    return value


def add_dn_offset_option(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--dn-offset",
        type=dn_offset,
        default=None,
        metavar="DN",
        help="DN offset of the chips: 1000 for Sentinel-2 L2A of processing baseline "
        "04.00 and later (from January 2022: DN = 10000·reflectance + 1000); taken off "
        "before any model sees the chips (default: 0, or what a checkpoint was trained "
        "with; On Cloud N has none)",
    )


def add_training_options(p: argparse.ArgumentParser) -> None:
    """The "training" group: the U-Net and how it is trained (``train``, ``score --folds``)."""
    g = p.add_argument_group("training")
    g.add_argument(
        "--encoder",
        default="resnet34",
        help="smp encoder: resnet34 (default), mobilenet_v2, inceptionv4, resnet18, …",
    )
    g.add_argument(
        "--init",
        choices=["random", "pretrained", "pretrained-l1c"],
        default="random",
        help="random: train --encoder from random weights (default); pretrained: fine-tune "
        "the pretrained csmask cloud U-Net (efficientnet-b4; --encoder is ignored)",
    )
    g.add_argument("--epochs", type=positive_int, default=20)
    g.add_argument("--train-batch-size", type=positive_int, default=8)
    g.add_argument(
        "--lr", type=float, default=None, help="learning rate (default 1e-3; 1e-4 fine-tuning)"
    )
    g.add_argument("--val-fraction", type=fraction, default=0.2)
    g.add_argument("--seed", type=int, default=0)
    g.add_argument("--accelerator", default="auto", help="auto, cpu or gpu")
    g.add_argument("--devices", default="1", help="devices per node (Lightning; 'auto' for all)")
    g.add_argument("--num-nodes", type=positive_int, default=1, help="nodes for DDP")
    g.add_argument("--max-steps", type=int, default=-1, help="stop after this many steps (tests)")
    g.add_argument(
        "--encoder-weights",
        default=None,
        help="local file with pretrained encoder weights (a state_dict); "
        "default: random initialisation, nothing is downloaded",
    )


def training_config(args: argparse.Namespace):
    """The :class:`chipqa.training.TrainConfig` that the training options ask for."""
    from chipqa.training import TrainConfig

    return TrainConfig(
        encoder=args.encoder,
        epochs=args.epochs,
        batch_size=args.train_batch_size,
        lr=args.lr if args.lr is not None else (1e-3 if args.init == "random" else 1e-4),
        init=args.init,
        dn_offset=getattr(args, "dn_offset", None) or 0,
        val_fraction=args.val_fraction,
        seed=args.seed,
        devices=int(args.devices) if str(args.devices).isdigit() else args.devices,
        num_nodes=args.num_nodes,
        accelerator=args.accelerator,
        workers=2 if args.workers is None else args.workers,
        max_steps=args.max_steps,
        encoder_weights=args.encoder_weights,
    )


# ------------------------------------------------------------------ progress bars


def chip_progress(quiet: bool) -> Callable[[int, int], None] | None:
    """A ``progress(done, total)`` callback drawing a tqdm bar on a terminal; None when
    ``quiet`` or when stderr is not a terminal (logs stay clean)."""
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


class TrainingBar:
    """Turns training progress events into a tqdm bar on a terminal (silent otherwise).

    Warnings are printed to stderr in any case.
    """

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
            if "val_iou" in ev:
                self.bar.set_postfix(epoch=ev["epoch"], val_iou=f"{ev['val_iou']:.3f}")
            else:  # no validation chips (--val-fraction 0)
                iou = ev.get("train_iou", math.nan)
                self.bar.set_postfix(epoch=ev["epoch"], train_iou=f"{iou:.3f}")

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None
