"""Score every chip and rank the suspicious labels first.

* :mod:`~chipqa.scoring.pipeline`: read, predict and count in batches (:func:`score_dataset`,
  :func:`iter_scores`).
* :mod:`~chipqa.scoring.table`: the scores table's columns, flags, suspicion, CSV.
* :mod:`~chipqa.scoring.evaluate`: how well a ranking finds known label errors.
"""

from chipqa.scoring.pipeline import ScoreProgress, iter_scores, score_batch, score_dataset
from chipqa.scoring.table import (
    FLAG_DESCRIPTIONS,
    SCORE_COLUMNS,
    STAT_COLUMNS,
    ScoresWriteError,
    finalize,
    flags_for,
    read_scores,
    write_scores,
)

__all__ = [
    "FLAG_DESCRIPTIONS",
    "SCORE_COLUMNS",
    "STAT_COLUMNS",
    "ScoreProgress",
    "ScoresWriteError",
    "finalize",
    "flags_for",
    "iter_scores",
    "read_scores",
    "score_batch",
    "score_dataset",
    "write_scores",
]
