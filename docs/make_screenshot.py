"""Take the README's screenshot of the Chip QA widget in a real napari window.

Run under a display (or Xvfb):  xvfb-run -a python docs/make_screenshot.py
It generates a small synthetic dataset, opens it in the widget, waits for scoring,
steps to a planted all-cloud error and saves the whole window (dock widget included).
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import napari
from qtpy.QtWidgets import QApplication

from chipqa._qt.review_widget import open_in_viewer
from chipqa.synth import generate_dataset


def wait(cond, timeout=120.0):
    t0 = time.time()
    while not cond():
        QApplication.processEvents()
        time.sleep(0.02)
        if time.time() - t0 > timeout:
            raise TimeoutError
    for _ in range(20):
        QApplication.processEvents()
        time.sleep(0.01)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--out", default="docs/napari_review.png")
    ap.add_argument("--mode", default="side by side", choices=["side by side", "layers"])
    ap.add_argument("--chip", type=int, default=0, help="position in the ranking to show")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "data"
        generate_dataset(root, n_chips=80, size=256, seed=0)
        viewer = napari.Viewer(show=True)
        viewer.window._qt_window.resize(1600, 1000)
        w = open_in_viewer(viewer, root)
        wait(lambda: w.session is not None and not w.scoring_running)
        for _ in range(args.chip):
            w.next_chip()
        w.keep()
        w.previous_chip()
        w.mode_combo.setCurrentText(args.mode)
        wait(lambda: w.loading is None and w.chip_layers.chip_id == w.session.current)
        img = viewer.screenshot(canvas_only=False, flash=False)
        from PIL import Image

        Image.fromarray(img).save(args.out)
        print(f"wrote {args.out} ({img.shape[1]}×{img.shape[0]})")
        viewer.close()


if __name__ == "__main__":
    main()
