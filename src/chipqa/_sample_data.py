"""napari sample data, opened for review: a small synthetic dataset with planted label
errors, and real On Cloud N chips.

Nothing is downloaded: the synthetic chips are generated (``chipqa.synth``) into the
user's cache folder the first time and reused afterwards; the real chips ship with
chipqa (``chipqa/sample_data/oncloudn``, see its README for their source) and are copied
there, with two copies carrying planted label errors, so that the review has something
to find on real pixels.
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


REAL_CHIPS = Path(__file__).parent / "sample_data" / "oncloudn"
"""The real On Cloud N chips shipped with chipqa (read-only in an installed package)."""

REAL_PLANTED = (("oncloudn_1", "all_cloud"), ("oncloudn_3", "blob_erased"))
"""Copies of real chips given a wrong label in the real sample (chip, kind of error)."""


def ensure_real_sample() -> Path:
    """Copy the real chips, and the copies with planted errors, into the cache (a review
    writes its scores and blocklist beside the dataset); return the dataset folder."""
    import shutil

    import numpy as np
    import rasterio

    from chipqa.synth.planting import plant_error

    base = sample_root().parent / "sample-real-oncloudn"
    if os.environ.get("CHIPQA_SAMPLE_DIR"):
        base = Path(os.environ["CHIPQA_SAMPLE_DIR"]) / "real-oncloudn"
    root, done = base / "data", base / "complete"
    if done.exists():
        return root
    if base.exists():
        shutil.rmtree(base)
    for chip in sorted(p for p in REAL_CHIPS.iterdir() if p.is_dir()):
        shutil.copytree(chip, root / chip.name, copy_function=shutil.copyfile)
    rng = np.random.default_rng(SAMPLE_SEED)
    for name, kind in REAL_PLANTED:
        copy = root / f"{name}_{kind}"
        shutil.copytree(REAL_CHIPS / name, copy, copy_function=shutil.copyfile)
        with rasterio.open(copy / "label.tif", "r+") as dst:
            dst.write(plant_error(rng, dst.read(1), kind), 1)
    done.write_text("ok\n")
    return root


def real_sample_dataset():
    """The real On Cloud N chips (and two copies with planted errors), opened in the
    Chip QA widget; returns the first chip's true colour as the sample's layer."""
    return _open_sample(ensure_real_sample())


def sample_dataset():
    """Make (or reuse) the sample dataset and open it in the Chip QA widget.

    Returns the true colour of the dataset's first chip as the sample's layer; the
    widget, docked right after, adopts that layer and adds the others.
    """
    return _open_sample(ensure_sample_dataset())


def _open_sample(root: Path):
    import napari

    from chipqa._qt.chip_layers import TRUE_COLOUR
    from chipqa.data import open_dataset
    from chipqa.render import true_colour

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
