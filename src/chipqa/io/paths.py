"""Where chipqa keeps the files it makes for a dataset: beside the dataset folder, never
inside it, so the dataset itself stays exactly as its provider shipped it::

    <dataset>_scores.csv            the scores table (``chipqa score``, the plugin)
    <dataset>_chipqa_blocklist.csv  the reviewers' decisions
    <dataset>_chipqa_fixes/         corrected labels, one GeoTIFF per fix (named in the
                                    blocklist's ``fix`` rows; never overwritten)
    <dataset>_cache/                the memory-mapped chip cache
    <dataset>_chipqa_previews/      small copies of the model's probability maps, kept
                                    from scoring for the gallery (a cache)
    <dataset>_models/               checkpoints retrained from the plugin
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

BLOCKLIST_NAME = "chipqa_blocklist.csv"
FIXES_NAME = "chipqa_fixes"
PREVIEWS_NAME = "chipqa_previews"


@dataclass(frozen=True)
class SidePaths:
    """The side files of one dataset (see the module docstring)."""

    root: Path

    def _beside(self, suffix: str) -> Path:
        return self.root.parent / f"{self.root.name}_{suffix}"

    @property
    def scores(self) -> Path:
        return self._beside("scores.csv")

    @property
    def blocklist(self) -> Path:
        return self._beside(BLOCKLIST_NAME)

    @property
    def fixes(self) -> Path:
        return self._beside(FIXES_NAME)

    @property
    def previews(self) -> Path:
        return self._beside(PREVIEWS_NAME)

    @property
    def cache(self) -> Path:
        return self._beside("cache")

    @property
    def models(self) -> Path:
        return self._beside("models")


def side_paths(dataset_root: str | Path) -> SidePaths:
    """The side files of the dataset at ``dataset_root`` (resolved, so that ``.`` and a
    relative path name the same files)."""
    return SidePaths(Path(dataset_root).expanduser().resolve())
