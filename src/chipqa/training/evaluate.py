"""How well a predictor does on chosen chips (before/after comparisons of a retrained model)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import torch

from chipqa.constants import DEFAULT_THRESHOLD, LABEL_CLOUD, LABEL_NODATA
from chipqa.data import ChipDataset
from chipqa.errors import ChipReadError
from chipqa.predictors import Predictor, to_device
from chipqa.stats.definitions import iou_from_counts


def _label_override(label_dir: str | Path, chip_id: str):
    import rasterio

    with rasterio.open(Path(label_dir) / f"{chip_id}.tif") as src:
        return src.read(1)


def dataset_iou(
    predictor: Predictor,
    dataset: ChipDataset,
    chip_ids: Sequence[str],
    label_dir: str | Path | None = None,
    threshold: float = DEFAULT_THRESHOLD,
) -> float:
    """Pooled IoU of the cloud class over ``chip_ids`` (Σ intersection / Σ union).

    Chips are read through the dataset (from its cache when it holds them); chips that
    cannot be read are left out. Labels come from the dataset, or from
    ``label_dir/<chip_id>.tif`` (for example the true labels a synthetic dataset keeps
    outside the dataset folder).
    """
    tp = fp = fn = 0
    for cid in chip_ids:
        try:
            chip = dataset.read(cid)
        except ChipReadError:
            continue
        label = chip.label if label_dir is None else _label_override(label_dir, cid)
        if label is None:
            continue
        valid = chip.valid & (label != LABEL_NODATA)
        with torch.inference_mode():
            prob = predictor.predict_proba(to_device(chip.bands[None], predictor.device))
        pred = (prob[0].cpu().numpy() >= threshold) & valid
        target = (label == LABEL_CLOUD) & valid
        tp += int((pred & target).sum())
        fp += int((pred & ~target).sum())
        fn += int((~pred & target).sum())
    return iou_from_counts(tp, fp, fn)
