"""napari sample data: a small synthetic dataset with planted label errors, opened for review.

Nothing is downloaded: the chips are generated (``chipqa.synth``) into the user's cache
folder the first time and reused afterwards.
"""

from __future__ import annotations

import os
from pathlib import Path

SAMPLE_CHIPS = 60
SAMPLE_SIZE = 256
SAMPLE_SEED = 0


def sample_root() -> Path:
    """Where the sample dataset lives (``CHIPQA_SAMPLE_DIR`` overrides it)."""
    env = os.environ.get("CHIPQA_SAMPLE_DIR")
    if env:
        return Path(env)
    base = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache"))
    return base / "chipqa" / f"sample-{SAMPLE_CHIPS}x{SAMPLE_SIZE}-seed{SAMPLE_SEED}"


def ensure_sample_dataset() -> Path:
    """Generate the sample dataset unless it is there already; return its folder."""
    from chipqa.synth import generate_dataset

    root = sample_root() / "data"
    done = sample_root() / "complete"
    if not done.exists():
        if root.exists():  # an interrupted earlier generation: start again
            import shutil

            shutil.rmtree(sample_root())
        generate_dataset(
            root,
            n_chips=SAMPLE_CHIPS,
            size=SAMPLE_SIZE,
            seed=SAMPLE_SEED,
            truth_dir=sample_root() / "truth",
        )
        done.write_text("ok\n")
    return root


def sample_dataset():
    """Make (or reuse) the sample dataset and open it in the Chip QA widget.

    Returns the true colour of the dataset's first chip as the sample's layer; the
    widget, docked right after, adopts that layer and adds the others.
    """
    import napari

    from chipqa._qt.chip_layers import TRUE_COLOUR
    from chipqa.data import open_dataset
    from chipqa.render import true_colour

    root = ensure_sample_dataset()
    first = open_dataset(root).read(0)
    viewer = napari.current_viewer()
    if viewer is not None:
        from qtpy.QtCore import QTimer

        from chipqa._qt.review_widget import open_in_viewer

        QTimer.singleShot(0, lambda: open_in_viewer(viewer, root))
    meta = {"chip_id": first.chip_id, "dataset": str(root)}
    return [
        (
            true_colour(first.bands),
            {"name": TRUE_COLOUR, "rgb": True, "contrast_limits": (0, 255), "metadata": meta},
            "image",
        )
    ]
