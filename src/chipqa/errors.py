"""Error types with messages a user can act on."""

from __future__ import annotations

from pathlib import Path


class ChipqaError(Exception):
    """Base class of every error chipqa raises on purpose."""


class DatasetError(ChipqaError):
    """A folder is not a chip dataset chipqa can read (nothing to score at all)."""


class ChipReadError(ChipqaError):
    """One chip cannot be read; the others can still be used.

    Args:
        chip_id: the chip that failed.
        path: the file at fault (or the chip's folder when no single file is).
        problem: what is wrong and, where possible, what to do about it.
    """

    def __init__(self, chip_id: str, path: str | Path | None, problem: str):
        self.chip_id = chip_id
        self.path = Path(path) if path is not None else None
        self.problem = problem
        where = f" ({self.path})" if self.path is not None else ""
        super().__init__(f"chip {chip_id!r}{where}: {problem}")


class CheckpointError(ChipqaError):
    """A model checkpoint cannot be used."""
