"""Take the README's screenshots of the Chip QA widget in a real napari window.

Run under a display (or Xvfb):

    xvfb-run -a -s "-screen 0 1920x1200x24" python docs/make_screenshot.py

It generates a small synthetic dataset, opens it in the widget (baseline model), waits
for scoring and writes

* ``docs/gallery.png``: the gallery, a page of chips with two blocks pending and the
  page before it saved (its badges);
* ``docs/napari_review.png``: a planted all-cloud error side by side, blocked, with the
  decision on the canvas and in the table;
* ``docs/napari_fix.png``: a planted no-cloud label being fixed: painted in a napari
  Labels layer over the chip (``e``), before Return saves it;
* ``docs/napari_retrain.png``: the Retrain tab after a real short training run on small
  chips (``--retrain-epochs``, mobilenet_v2 from random weights on the CPU): its loss and
  IoU curve, and the validation IoU before and after.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import napari
from qtpy.QtWidgets import QApplication

from chipqa._qt.review_widget import ChipQAWidget
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


def save(viewer, out: str) -> None:
    from PIL import Image

    img = viewer.screenshot(canvas_only=False, flash=False)
    Image.fromarray(img).save(out)
    print(f"wrote {out} ({img.shape[1]}×{img.shape[0]})")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--out-dir", default="docs")
    ap.add_argument("--retrain-epochs", type=int, default=8)
    args = ap.parse_args()
    out = Path(args.out_dir)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "data"
        generate_dataset(root, n_chips=80, size=256, seed=0, error_rate=0.15)
        viewer = napari.Viewer(show=True)
        viewer.window._qt_window.resize(1920, 1200)
        w = ChipQAWidget(viewer)
        viewer.window.add_dock_widget(w, name="Chip QA")
        w.open_dataset(root, "baseline")
        wait(lambda: w.session is not None and not w.scoring_running)

        # The gallery: page 1 saved (k), page 2 with two chips toggled to block.
        w.set_view("gallery")
        wait(lambda: w.gallery.complete)
        w.run("keep")
        wait(lambda: w.gallery.complete)
        w.gallery_actions.click(2)
        w.gallery_actions.click(9)
        w.run("right")
        wait(lambda: w.gallery.complete)
        save(viewer, str(out / "gallery.png"))

        # Side by side: the most suspicious chip, blocked; the canvas says so.
        w.run("undo")
        w.session.position = 0
        w.set_view("side by side")
        wait(lambda: w.loading is None and w.chip_layers.chip_id == w.session.current)
        w.run("block")
        w.run("previous")
        wait(lambda: w.loading is None and w.chip_layers.chip_id == w.session.current)
        save(viewer, str(out / "napari_review.png"))

        # A fix being painted: a partly cloudy chip whose label says no cloud at all.
        rows = w.session.scores.set_index("chip_id")
        target = next(
            c
            for c in w.session.order
            if "no_cloud_label" in rows.loc[c, "flags"]
            and 0.2 < rows.loc[c, "pred_cloud_fraction"] < 0.8
        )
        w.session.goto(target)
        wait(lambda: w.loading is None and w.chip_layers.chip_id == target)
        w.run("paint")
        layer = viewer.layers.selection.active
        view = w.loader.get(target)
        layer.data = (view.prob >= 0.5).astype(layer.data.dtype)  # strokes over the clouds
        layer.refresh()
        wait(lambda: True)
        save(viewer, str(out / "napari_fix.png"))
        w.run("cancel_paint")
        viewer.close()

        retrain_shot(Path(tmp) / "small", out, args.retrain_epochs)


def retrain_shot(root: Path, out: Path, epochs: int) -> None:
    """A real training run from the Retrain tab, on chips small enough for a CPU."""
    generate_dataset(root, n_chips=160, size=64, seed=1, error_rate=0.15)
    viewer = napari.Viewer(show=True)
    viewer.window._qt_window.resize(1920, 1200)
    w = ChipQAWidget(viewer)
    viewer.window.add_dock_widget(w, name="Chip QA")
    w.open_dataset(root, "baseline")
    wait(lambda: w.session is not None and not w.scoring_running)
    p = w.retrain
    p.init.setCurrentText("random")
    p.encoder.setCurrentText("mobilenet_v2")
    p.epochs.setValue(epochs)
    p.batch.setValue(8)
    p.device.setCurrentText("cpu")
    w.confirm = lambda *_: True  # replace the baseline whatever the figures say
    w.tabs.setCurrentWidget(p)
    assert p.start()
    wait(lambda: not p.running, timeout=1800)
    wait(lambda: p.after_iou is not None, timeout=600)
    wait(  # re-scored with the new model, and its most suspicious chip on the canvas
        lambda: (
            w.session is not None
            and not w.scoring_running
            and w.loading is None
            and w.chip_layers.chip_id == w.session.current
        ),
        timeout=600,
    )
    save(viewer, str(out / "napari_retrain.png"))
    viewer.close()


if __name__ == "__main__":
    main()
