"""A dataset under review and the files chipqa keeps beside it.

:class:`ReviewProject` knows where a dataset's scores, blocklist, cache and retrained
models go (:func:`chipqa.io.paths.side_paths`) and when scores saved earlier can be
reused instead of scoring again (:mod:`chipqa.scoring.settings`). No Qt: the napari
widget, the CLI and scripts share it.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from chipqa.blocklist.store import BlocklistStore
from chipqa.data import ChipDataset, open_dataset
from chipqa.errors import ChipqaError
from chipqa.io.paths import SidePaths, side_paths
from chipqa.scoring import read_scores, write_scores
from chipqa.scoring.settings import ScoringSettings, saved_settings_match, write_settings


class ReviewProject:
    """One dataset and its side files (scores, blocklist, cache, models).

    Args:
        dataset: the opened dataset (see :func:`open`).
    """

    def __init__(self, dataset: ChipDataset):
        self.dataset = dataset
        self.paths: SidePaths = side_paths(dataset.root)

    @classmethod
    def open(cls, root: str | Path) -> ReviewProject:
        """Open the dataset at ``root``, reading from its chip cache when one is built.

        Raises:
            DatasetError: ``root`` holds no chips (the message says what was looked for).
        """
        # cache "auto": `chipqa cache DATA` speeds the prefetch. Label fixes come from
        # the blocklist the review uses (:meth:`use_fixes`), which may not be the default.
        return cls(open_dataset(root, fixes=False))

    @property
    def root(self) -> Path:
        return self.dataset.root

    @property
    def scores_path(self) -> Path:
        return self.paths.scores

    @property
    def default_blocklist(self) -> Path:
        return self.paths.blocklist

    @property
    def models_dir(self) -> Path:
        return self.paths.models

    # -- scores ------------------------------------------------------------------
    def saved_scores(
        self, settings: ScoringSettings
    ) -> tuple[pd.DataFrame, ScoringSettings] | None:
        """The scores saved beside the dataset and the settings they were made with
        (the threshold resolved), when they stand for scoring now with ``settings``:
        the same model (a checkpoint by its content), threshold policy and DN offset,
        the same chips, label fixes in force and chip files. None otherwise (none
        saved, unreadable, or stale)."""
        path = self.scores_path
        if not path.is_file():
            return None
        resolved = saved_settings_match(path, settings, self.dataset)
        if resolved is None:
            return None
        try:
            scores = read_scores(path)
        except ChipqaError:
            return None
        if set(scores["chip_id"].astype(str)) != set(self.dataset.chip_ids):
            return None
        return scores, resolved

    def save_scores(self, scores: pd.DataFrame, settings: ScoringSettings) -> Path:
        """Write the scores beside the dataset (atomically; spreadsheet-safe cells), then
        the settings they were made with and the data's fingerprint.

        Raises:
            ScoresWriteError: the file cannot be written (the message says why).
        """
        path = write_scores(scores, self.scores_path)
        try:
            write_settings(path, settings, self.dataset)
        except OSError:
            pass  # without them the scores are only not reused: scored again next time
        return path

    # -- decisions ---------------------------------------------------------------
    def use_fixes(self, blocklist: str | Path | None = None) -> str:
        """Read the label fixes recorded in ``blocklist`` (default: beside the dataset);
        returns "" or, when that blocklist cannot be read, why (the dataset's own labels
        are used then, and nothing is lost)."""
        path = Path(blocklist).expanduser() if blocklist else self.default_blocklist
        try:
            self.dataset.use_fixes(path if path.exists() else False)
        except ChipqaError as exc:
            self.dataset.use_fixes(False)
            return f"Label fixes not applied: {exc}"
        return ""

    def open_store(self, path: str | Path | None = None) -> BlocklistStore:
        """The blocklist at ``path`` (default: beside the dataset).

        Raises:
            BlocklistError: the file is not a blocklist or its folder cannot be written.
        """
        return BlocklistStore(Path(path).expanduser() if path else self.default_blocklist)
