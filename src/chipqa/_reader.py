"""napari reader: open a chip dataset folder (either layout) for review.

A folder that is not a chip dataset is declined (``None``) so that napari can try
other readers. Opening a dataset docks the Chip QA widget, which scores the chips
(or loads their scores from disk) and shows the most suspicious one.
"""

from __future__ import annotations

import os

from chipqa.errors import DatasetError
from chipqa.io.layout import detect_layout


def get_reader(path: str | list[str]):
    """Return a reader for a dataset folder, or None for anything else."""
    if isinstance(path, list):
        if len(path) != 1:
            return None
        path = path[0]
    if not os.path.isdir(path):
        return None
    try:
        detect_layout(path)
    except (DatasetError, OSError):
        return None
    return read_dataset


def read_dataset(path: str | list[str]):
    """Dock the Chip QA widget on the dataset; the widget makes and fills its own layers."""
    import napari

    if isinstance(path, list):
        path = path[0]
    viewer = napari.current_viewer()
    if viewer is None:  # pragma: no cover - napari always has one when reading
        return [(None,)]
    from qtpy.QtCore import QTimer

    from chipqa._qt.review_widget import open_in_viewer

    # After napari has finished this open call: the widget adds its own layers.
    QTimer.singleShot(0, lambda: open_in_viewer(viewer, path))
    return [(None,)]
