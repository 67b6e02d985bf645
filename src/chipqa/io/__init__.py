"""Files on disk: atomic writes, the dataset layouts and where chipqa's side files go.

Nothing here reads pixels; :mod:`chipqa.data` does that on top of these rules.
"""

from chipqa.io.atomic import atomic_open, atomic_write_csv, atomic_write_text
from chipqa.io.paths import SidePaths, side_paths

__all__ = ["SidePaths", "atomic_open", "atomic_write_csv", "atomic_write_text", "side_paths"]
