"""Out-of-fold scoring: every chip is scored by a model that never saw its label.

A model scores the chips it was trained on too kindly: it has partly memorised their
labels, wrong ones included, so in-sample scores hide exactly the errors a curator is
looking for. With K folds, K models are trained, each on K−1 folds (blocked chips left
out), and each chip is scored by the model of the fold it belongs to, as cleanlab's
authors recommend for finding label errors.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pandas as pd

from chipqa.data import ChipDataset
from chipqa.predictors import load_predictor
from chipqa.scoring.pipeline import iter_scores
from chipqa.scoring.previews import PreviewStore
from chipqa.scoring.table import finalize
from chipqa.training.config import TrainConfig
from chipqa.training.fit import train
from chipqa.training.splits import kfold_chips


def score_out_of_fold(
    dataset: ChipDataset,
    k: int,
    work_dir: str | Path,
    *,
    blocklist: str | Path | None = None,
    config: TrainConfig | None = None,
    device: str = "auto",
    batch_size: int | None = None,
    echo: Callable[[dict], None] | None = None,
    threshold: float | str = "auto",
    previews: bool = True,
) -> pd.DataFrame:
    """Train ``k`` models and score each chip with the one that did not train on it.

    Args:
        dataset: the chips.
        k: number of folds (≥ 2).
        work_dir: where the fold checkpoints and logs go (``fold1.ckpt`` …).
        blocklist: blocked chips are left out of training (they are still scored).
        config: training settings for every fold.
        device: where scoring runs.
        batch_size: chips per scoring batch (None: 64 on a GPU, else 8).
        echo: receives progress events, each with a ``fold`` key added.
        threshold: a probability, or ``"auto"``: each fold's model is calibrated to the
            labels of the chips it scores (see :mod:`chipqa.scoring.calibrate`).
        previews: keep each chip's probability map for the gallery (under the fold
            model's name, beside the dataset).

    Returns:
        The ranked scores table; ``model`` says ``unet-<encoder>:oof-k<K>/fold<i>``.
    """
    if k < 2:
        raise ValueError(f"--folds must be at least 2, got {k}")
    cfg = config or TrainConfig()
    work = Path(work_dir)
    work.mkdir(parents=True, exist_ok=True)
    folds = kfold_chips(list(dataset), k, cfg.seed)
    rows: list[dict] = []
    for i, held_out in enumerate(folds, start=1):
        others = [c for j, f in enumerate(folds, start=1) if j != i for c in f]

        def fold_echo(ev: dict, i: int = i) -> None:
            if echo is not None:
                echo({**ev, "fold": i, "folds": k})

        ckpt = work / f"fold{i}.ckpt"
        train(
            dataset,
            ckpt,
            blocklist=blocklist,
            config=cfg,
            chips=others,
            echo=fold_echo,
            log_dir=work / f"fold{i}.logs",
        )
        predictor = load_predictor(ckpt, device=device)
        # the checkpoint's own encoder: --init pretrained trains efficientnet-b4
        encoder = getattr(getattr(predictor, "config", None), "encoder", cfg.encoder)
        predictor.name = f"unet-{encoder}:oof-k{k}/fold{i}"
        store = PreviewStore.for_predictor(dataset.root, predictor) if previews else None
        for batch_rows in iter_scores(
            dataset,
            predictor,
            batch_size=batch_size,
            chip_ids=held_out,
            threshold=threshold,
            previews=store,
        ):
            rows.extend(batch_rows)
    return finalize(rows)
