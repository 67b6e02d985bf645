"""How well a ranking finds known label errors (planted ones, or ones a curator confirmed).

Given the scores table (most suspicious first) and the set of chips whose label is known
to be wrong, these functions give precision and recall at the top ``k`` of the ranking
and average precision over all of them (the area under the precision–recall curve as
information retrieval defines it: the mean of the precision at the rank of each wrong
label; a wrong label that was never ranked, because its chip could not be read,
contributes 0).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd


@dataclass
class RankingReport:
    """Retrieval figures of one ranking against known label errors."""

    n_chips: int
    n_errors: int
    average_precision: float
    at_k: list[dict] = field(default_factory=list)
    by_kind: list[dict] = field(default_factory=list)

    def format(self) -> str:
        """A small plain-text table for a terminal."""
        lines = [
            f"planted label errors: {self.n_errors} of {self.n_chips} chips; "
            f"average precision {self.average_precision:.3f}",
            f"{'top k':>8} {'errors in top k':>16} {'precision@k':>12} {'recall@k':>9}",
        ]
        for r in self.at_k:
            lines.append(f"{r['k']:>8} {r['hits']:>16} {r['precision']:>12.3f} {r['recall']:>9.3f}")
        if self.by_kind:
            k = self.n_errors
            lines.append(f"recall in the top {k} by kind of error:")
            for r in self.by_kind:
                lines.append(
                    f"  {r['kind']:<14} {r['found']:>4} of {r['total']:<4} ({r['recall']:.0%})"
                )
        return "\n".join(lines)


def average_precision(is_error_in_rank_order: Sequence[bool], n_errors: int | None = None) -> float:
    """Mean over the known errors of the precision at each error's rank."""
    hits = np.asarray(is_error_in_rank_order, dtype=bool)
    total = int(hits.sum()) if n_errors is None else int(n_errors)
    if total == 0:
        return float("nan")
    ranks = np.flatnonzero(hits) + 1
    precision_at_hits = np.arange(1, len(ranks) + 1) / ranks
    return float(precision_at_hits.sum() / total)


def ranking_report(
    ranked_ids: Sequence[str],
    error_ids: Iterable[str],
    *,
    ks: Sequence[int] | None = None,
    kinds: dict[str, str] | None = None,
    n_chips: int | None = None,
) -> RankingReport:
    """Precision/recall at k and average precision of a ranking.

    Args:
        ranked_ids: chip ids, most suspicious first.
        error_ids: chips whose label is known to be wrong.
        ks: cut-offs; by default 10, 25, 50, the number of errors, and 2× that.
        kinds: optional ``chip_id → kind of error`` for a per-kind recall at k = #errors.
        n_chips: dataset size (defaults to ``len(ranked_ids)``).
    """
    errors = set(error_ids)
    ranked = list(ranked_ids)
    hits = np.array([c in errors for c in ranked], dtype=bool)
    n_err = len(errors)
    if ks is None:
        ks = sorted({k for k in (10, 25, 50, n_err, 2 * n_err) if 0 < k <= len(ranked)})
    at_k = []
    for k in ks:
        h = int(hits[:k].sum())
        at_k.append(
            {
                "k": int(k),
                "hits": h,
                "precision": h / k if k else float("nan"),
                "recall": h / n_err if n_err else float("nan"),
            }
        )
    by_kind = []
    if kinds:
        top = set(ranked[:n_err])
        for kind in sorted(set(kinds[c] for c in errors if c in kinds)):
            members = [c for c in errors if kinds.get(c) == kind]
            found = sum(c in top for c in members)
            by_kind.append(
                {
                    "kind": kind,
                    "total": len(members),
                    "found": found,
                    "recall": found / len(members),
                }
            )
    return RankingReport(
        n_chips=len(ranked) if n_chips is None else n_chips,
        n_errors=n_err,
        average_precision=average_precision(hits, n_err),
        at_k=at_k,
        by_kind=by_kind,
    )


def read_truth(path: str | Path) -> pd.DataFrame:
    """Read a ``planted_errors.csv`` written by ``chipqa synth``."""
    df = pd.read_csv(path, dtype={"chip_id": str, "error_kind": str}, keep_default_na=False)
    df["corrupted"] = df["corrupted"].astype(str).str.lower().isin(["true", "1"])
    return df


def report_against_truth(scores: pd.DataFrame, truth: pd.DataFrame) -> RankingReport:
    """:func:`ranking_report` of a scores table against a synthetic dataset's truth."""
    bad = truth[truth["corrupted"]]
    return ranking_report(
        scores["chip_id"].tolist(),
        bad["chip_id"].tolist(),
        kinds=dict(zip(bad["chip_id"], bad["error_kind"], strict=True)),
        n_chips=len(truth),
    )
