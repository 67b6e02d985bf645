"""One ranking from several label-error detectors, each judged against the dataset's own
distribution, and a reason in words for every chip.

Most labels of a dataset are right (``--threshold auto`` assumes as much), so what is
normal for a detector is what most chips show: a generous label style makes every chip's
edge sit a few pixels outside the model's, a hazy region makes every chip's label
quality a little lower. Each detector's value is turned into a robust z-score — its
distance from the dataset's median in units of the median absolute deviation (×1.4826,
the standard deviation for normal data), never smaller than the detector's
floor in :data:`DETECTORS` — and a chip ranks by its **largest** z-score: far out on any one
detector is suspicious, whichever kind of error it is.

``suspicion = 0.5 + 0.5 · d / (|d| + 6)`` with ``d = z − 3``: 0.5 at three robust standard
deviations, 0.91 at 30, 0.97 at 100 (it does not saturate at three decimals), in
(0, 1), in the same order as ``z`` (kept in the ``outlier_z`` column). Chips that
nothing makes unusual keep the order of their largest z-score.

Why these detectors and this rule: see the README's "How well it finds wrong labels",
measured on real Sentinel-2 chips with planted errors (``bench/real_quality.py``).
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

DETECTORS = {
    # column: (sign, floor). sign +1: high is suspicious; -1: low is; 0: both ways.
    "contradicted_fraction": (+1, 0.01),
    "missing_region": (+1, 0.002),
    "extra_region": (+1, 0.002),
    "edge_offset": (0, 1.0),
    "centred_quality": (-1, 0.05),
    "scl_disagreement": (+1, 0.1),
}
"""The detectors the ranking reads (see :mod:`chipqa.stats.detectors`), which way is
suspicious, and the smallest scale of each: 1 % of the chip contradicted, 0.2 % of the
chip in a region of confident disagreement, 1 px of edge offset, 0.05 of soft label
quality, 0.1 of IoU with Sen2Cor's SCL. The floors keep a dataset whose chips all agree
closely from turning tiny differences into large z-scores."""

ALL_CLOUD, NO_CLOUD = 0.995, 0.005
"""Label cloud shares from which a label counts as all cloud / no cloud (as the flags)."""

REPORT_Z = 3.0
"""From this z-score on, ``why`` names the detector; below it the chip is unremarkable."""

DETECTOR_REASONS = {
    "all_cloud_contradicted": "all_cloud_wrong",
    "no_cloud_contradicted": "no_cloud_wrong",
    "contradicted": "other",
    "missing_region": "clouds_missing",
    "extra_region": "extra_cloud",
    "edge_tight": "edge_off",
    "edge_loose": "edge_off",
    "soft_quality": "other",
    "scl": "other",
}
"""The block reason each detector suggests (the review's default reason)."""


def robust_z(values: np.ndarray, floor: float) -> np.ndarray:
    """``(x − median) / max(1.4826 · MAD, floor)`` over the finite values; NaN stays NaN."""
    x = np.asarray(values, float)
    finite = x[np.isfinite(x)]
    if not len(finite):
        return np.full(x.shape, np.nan)
    med = float(np.median(finite))
    mad = 1.4826 * float(np.median(np.abs(finite - med)))
    return (x - med) / max(mad, floor)


def detector_z(df: pd.DataFrame) -> pd.DataFrame:
    """Each detector's z-score, oriented so that high is suspicious (labelled chips only;
    other rows and detectors a chip lacks are NaN)."""
    labelled = df["label_cloud_fraction"].notna() & (df["error"].fillna("") == "")
    out = pd.DataFrame(index=df.index)
    values = df.assign(scl_disagreement=1.0 - df.get("iou_label_scl", np.nan))
    for col, (sign, floor) in DETECTORS.items():
        raw = values[col] if col in values else pd.Series(np.nan, index=df.index)
        x = np.where(labelled, pd.to_numeric(raw, errors="coerce"), np.nan)
        z = robust_z(x, floor)
        out[col] = np.abs(z) if sign == 0 else sign * z
    return out


def rank_scores(df: pd.DataFrame) -> pd.DataFrame:
    """Add ``outlier_z``, ``suspicion``, ``detector`` and ``why`` to a scores table (any
    order; rows without a label or with an error get NaN scores and a ``why`` saying so)."""
    z = detector_z(df)
    zmax = z.max(axis=1, skipna=True)
    top = [_reason_detector(zrow) for zrow in z.to_dict("records")]
    df = df.copy()
    df["outlier_z"] = zmax
    d = zmax.to_numpy(float) - REPORT_Z
    df["suspicion"] = 0.5 + 0.5 * d / (np.abs(d) + 6.0)
    detectors, whys = [], []
    for row, col, zz in zip(df.to_dict("records"), top, zmax, strict=True):
        name, text = explain(row, col, zz)
        detectors.append(name)
        whys.append(text)
    df["detector"] = detectors
    df["why"] = whys
    return df


WHY_ORDER = (
    ("missing_region", "extra_region"),
    ("edge_offset",),
    ("contradicted_fraction",),
    ("scl_disagreement",),
    ("centred_quality",),
)
"""Which detector a chip's ``why`` names when several are far out: the most specific
first (a region, an edge), the broad ones after; within a group the larger z-score."""


def _reason_detector(z: dict) -> str:
    for group in WHY_ORDER:
        over = {c: z[c] for c in group if np.isfinite(z.get(c, np.nan)) and z[c] >= REPORT_Z}
        if over:
            return max(over, key=over.get)
    finite = {c: v for c, v in z.items() if np.isfinite(v)}
    return max(finite, key=finite.get) if finite else ""


def _pct(x: float | None) -> str:
    if x is None or not np.isfinite(x):
        return "?"
    if 0 < x < 0.01:
        return f"{x:.1%}"
    return f"{x:.0%}"


def explain(row: dict, column: str, z: float) -> tuple[str, str]:
    """``(detector, why)`` for one chip: the detector that ranks it, and a short reason."""
    if row.get("error"):
        return "", "unreadable: " + str(row["error"]).split(";")[0][:80]
    lab, pred = row.get("label_cloud_fraction"), row.get("pred_cloud_fraction")
    if lab is None or not np.isfinite(float(lab)):
        return "", f"no label; model {_pct(pred)} cloud"
    summary = f"label {_pct(lab)} cloud, model {_pct(pred)}"
    if not np.isfinite(z) or z < REPORT_Z:
        return "", f"nothing unusual: {summary}"
    share = _pct(row.get("contradicted_fraction", math.nan))
    if column in ("contradicted_fraction", "missing_region", "extra_region"):
        # a constant label contradicted anywhere is contradicted as a whole
        if lab >= ALL_CLOUD:
            return "all_cloud_contradicted", f"{summary}; the model is sure {share} is clear"
        if lab <= NO_CLOUD:
            return "no_cloud_contradicted", f"{summary}; the model is sure {share} is cloud"
    if column == "contradicted_fraction":
        return "contradicted", f"{summary}; the model confidently disagrees on {share}"
    if column == "missing_region":
        return "missing_region", (
            f"a {_pct(row['missing_region'])} cloud region the model sees is missing "
            f"from the label ({summary})"
        )
    if column == "extra_region":
        return "extra_region", (
            f"a {_pct(row['extra_region'])} region labelled cloud is clear to the model ({summary})"
        )
    if column == "edge_offset":
        s = row.get("edge_offset", math.nan)
        gain = row.get("edge_gain", math.nan)
        if s > 0:
            return "edge_tight", (
                f"label edge {s:.0f} px inside the model's cloud edge all round "
                f"(IoU +{gain:.2f} when grown)"
            )
        return "edge_loose", (
            f"label edge {-s:.0f} px outside the model's cloud edge all round "
            f"(IoU +{gain:.2f} when shrunk)"
        )
    if column == "scl_disagreement":
        return (
            "scl",
            f"label disagrees with Sen2Cor's SCL (IoU {row['iou_label_scl']:.2f}; {summary})",
        )
    return "soft_quality", (
        f"the model confidently contradicts part of the label (soft label quality "
        f"{row.get('centred_quality', math.nan):.2f}; {summary})"
    )
