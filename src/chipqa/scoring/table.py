"""The scores table: its columns, the flags in words, the suspicion that ranks it, and
reading and writing it.

The table is a stable contract: one row per chip, ``chip_id`` first, numbers as floats,
flags as words separated by ``;``, and a chip that could not be read keeps its row with
the reason in ``error``.
"""

from __future__ import annotations

import errno
import math
from collections.abc import Iterable
from pathlib import Path

import numpy as np
import pandas as pd

from chipqa.errors import ChipqaError
from chipqa.io.atomic import atomic_write_csv
from chipqa.io.spreadsheet import escape_frame, unescape_frame
from chipqa.scoring.ranking import rank_scores
from chipqa.stats.detectors import DETECTOR_COLUMNS

STAT_COLUMNS = [
    "iou",
    "label_cloud_fraction",
    "pred_cloud_fraction",
    "mismatch_fraction",
    "soft_mismatch",
    "label_quality",
    "valid_fraction",
    "scl_cloud_fraction",
    "scl_shadow_fraction",
    "iou_label_scl",
    "iou_pred_scl",
    "pred_shadow_fraction",
    *DETECTOR_COLUMNS,
]
"""The per-chip statistics (see :func:`chipqa.stats.batched.chip_stats` and
:func:`chipqa.stats.batched.scl_stats`; the SCL ones are empty for chips without an
SCL; ``pred_shadow_fraction``, the share of the chip a three-class model calls cloud
shadow, is empty for cloud-only models)."""

SCORE_COLUMNS = [
    "chip_id",
    "rank",
    "suspicion",
    "why",
    "detector",
    "outlier_z",
    *STAT_COLUMNS,
    "flags",
    "error",
    "model",
    "threshold",
    "label_source",
    "height",
    "width",
]
"""Columns of the scores table, in order; metadata columns (location, datetime) follow."""


NUMERIC_EXTRA = ["suspicion", "outlier_z", "threshold", "height", "width"]

# Thresholds behind the flags (fractions of a chip's valid pixels).
ALL_CLOUD_MIN = 0.995
NO_CLOUD_MAX = 0.005
LOW_IOU = 0.5
FRACTION_GAP = 0.25
CONTRADICTION_MIN = 0.3

FLAG_DESCRIPTIONS = {
    "all_cloud_label": f"the label calls ≥ {ALL_CLOUD_MIN:.1%} of the chip cloud",
    "no_cloud_label": f"the label calls ≤ {NO_CLOUD_MAX:.1%} of the chip cloud",
    "label_contradicted": (
        "an all-cloud or no-cloud label that the image contradicts on "
        f"≥ {CONTRADICTION_MIN:.0%} of the chip"
    ),
    "low_iou": f"IoU of label and prediction < {LOW_IOU}",
    "cloud_missing_from_label": f"the model sees ≥ {FRACTION_GAP:.0%} more of the chip as cloud",
    "extra_cloud_in_label": f"the label has ≥ {FRACTION_GAP:.0%} more of the chip as cloud",
    "partial_nodata": "part of the chip has no data (band nodata or label 255)",
    "scl_disagrees": f"IoU of the label with Sen2Cor's SCL cloud classes < {LOW_IOU}",
    "no_label": "the chip has no label file: predicted, not scored",
    "unreadable": "the chip could not be read: see the error column",
}
"""Every flag word chipqa writes, with what it means."""


def flags_for(row: dict) -> list[str]:
    """Flag words for one scored row (see :data:`FLAG_DESCRIPTIONS`)."""
    if row.get("error"):
        return ["unreadable"]
    flags = []
    lab = row.get("label_cloud_fraction")
    pred = row.get("pred_cloud_fraction")
    if lab is None or (isinstance(lab, float) and math.isnan(lab)):
        flags.append("no_label")
    else:
        constant = False
        if lab >= ALL_CLOUD_MIN:
            flags.append("all_cloud_label")
            constant = True
        elif lab <= NO_CLOUD_MAX:
            flags.append("no_cloud_label")
            constant = True
        if constant and row["mismatch_fraction"] >= CONTRADICTION_MIN:
            flags.append("label_contradicted")
        if row["iou"] < LOW_IOU:
            flags.append("low_iou")
        scl_iou = row.get("iou_label_scl")
        if scl_iou is not None and not math.isnan(scl_iou) and scl_iou < LOW_IOU:
            flags.append("scl_disagrees")
        if pred - lab >= FRACTION_GAP:
            flags.append("cloud_missing_from_label")
        elif lab - pred >= FRACTION_GAP:
            flags.append("extra_cloud_in_label")
    if row.get("valid_fraction", 1.0) < 0.999:
        flags.append("partial_nodata")
    return flags


def finalize(rows: list[dict]) -> pd.DataFrame:
    """Rows → the ranked scores table: flags, suspicion, rank; most suspicious first.

    Labelled chips come first by decreasing suspicion, then unlabelled chips, then
    chips that could not be read.
    """
    df = pd.DataFrame(rows, columns=None if rows else SCORE_COLUMNS)
    for col in SCORE_COLUMNS:
        if col not in df.columns:
            numeric = col in STAT_COLUMNS + NUMERIC_EXTRA
            df[col] = np.nan if numeric else ("original" if col == "label_source" else "")
    for col in STAT_COLUMNS:
        df[col] = df[col].astype(float)
    df["error"] = df["error"].fillna("").astype(str)
    df = rank_scores(df)
    df["flags"] = [";".join(flags_for(r)) for r in df.to_dict("records")]
    group = np.where(df["error"] != "", 2, np.where(df["suspicion"].isna(), 1, 0))
    df = df.assign(_group=group).sort_values(
        ["_group", "outlier_z", "chip_id"], ascending=[True, False, True], kind="mergesort"
    )
    df = df.drop(columns="_group").reset_index(drop=True)
    df["rank"] = np.arange(1, len(df) + 1)
    extra = [c for c in df.columns if c not in SCORE_COLUMNS]
    return df[SCORE_COLUMNS + extra]


def scored_threshold(scores: pd.DataFrame, default: float = 0.5) -> float:
    """The threshold the table was scored at (the most common one: a table stitched from
    runs may hold several), or ``default`` for a table without the column."""
    if "threshold" not in scores:
        return default
    values = pd.to_numeric(scores["threshold"], errors="coerce").dropna()
    return float(values.mode().iloc[0]) if len(values) else default


class ScoresWriteError(ChipqaError):
    """A scores table could not be written anywhere it was asked to go.

    Attributes:
        paths: every place tried, in order.
        disk_full: True when the (last) failure was a full disk or quota.
    """

    def __init__(self, failures: list[tuple[Path, OSError]]):
        self.paths = [p for p, _ in failures]
        self.disk_full = failures[-1][1].errno in _DISK_FULL
        parts = []
        for p, exc in failures:
            why = "the disk is full" if exc.errno in _DISK_FULL else (exc.strerror or str(exc))
            parts.append(f"{p} ({why})")
        super().__init__(
            "could not write the scores table to "
            + "; nor to ".join(parts)
            + ". Free space there (or pass another --out) and score again"
        )


_DISK_FULL = (errno.ENOSPC, errno.EDQUOT)


def write_scores(
    df: pd.DataFrame, path: str | Path, *, fallbacks: Iterable[str | Path] = ()
) -> Path:
    """Write a scores table atomically (a reader never sees half a file); returns the
    path written.

    Text cells that a spreadsheet would read as a formula (starting with ``=``, ``+``,
    ``-``, ``@``, tab or CR) are written with a leading ``'`` (see
    :mod:`chipqa.io.spreadsheet`); numbers never are, and :func:`read_scores` gives the
    original text back. The same rule leaves every chip id exactly as it is: the
    dataset listing refuses ids that would need escaping (only such a refused chip's
    row, holding its error, has its id escaped).

    When ``path`` cannot be written (a full disk, no permission), each of ``fallbacks``
    is tried in turn, so that a long run's scores are kept somewhere; a failed attempt
    leaves no file behind and the previous file at that path as it was.

    Raises:
        ScoresWriteError: no place could be written (the message names each place tried
            and why, "the disk is full" for ENOSPC and EDQUOT).
    """
    safe = escape_frame(df)
    failures: list[tuple[Path, OSError]] = []
    for target in (path, *fallbacks):
        target = Path(target)
        try:
            return atomic_write_csv(safe, target)
        except OSError as exc:
            failures.append((target, exc))
    raise ScoresWriteError(failures) from failures[-1][1]


def read_scores(path: str | Path) -> pd.DataFrame:
    """Read a scores CSV written by chipqa (``flags`` and ``error`` come back as strings;
    text that :func:`write_scores` escaped for spreadsheets comes back as it was)."""
    path = Path(path)
    try:
        df = pd.read_csv(
            path,
            dtype={
                "chip_id": str, "flags": str, "error": str, "model": str, "why": str,
                "detector": str,
            },
            keep_default_na=False,
            na_values={c: [""] for c in STAT_COLUMNS + NUMERIC_EXTRA},
        )
    except (OSError, pd.errors.ParserError, pd.errors.EmptyDataError) as exc:
        raise ChipqaError(
            f"scores file {path} cannot be read ({exc}); re-run `chipqa score`"
        ) from exc
    missing = [c for c in ("chip_id", "suspicion") if c not in df.columns]
    if missing:
        raise ChipqaError(
            f"{path} is not a chipqa scores table (no column {', '.join(missing)}); "
            "re-run `chipqa score`"
        )
    return unescape_frame(df)
