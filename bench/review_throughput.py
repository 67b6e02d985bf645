r"""A scripted reviewer in a real napari window: key presses and time per chip, gallery vs
single-chip review, and the gallery's page-turn latency.

Generates a synthetic dataset with planted label errors (10 % by default, 512×512
chips) — or, with ``--real DIR``, writes ``--chips`` copies of the real chips in DIR (e.g.
``../shared/real-dev``: the 8 rotations / flips of each, 56 distinct chips for the seven
there, repeated past that) with a gross label error planted into ``--error-rate`` of them
(:func:`chipqa.synth.planting.plant_error`); a chip of another size (856×512) is shown
as it is side by side and squeezed into its square cell in the gallery — scores it with
the baseline, and reviews every chip twice, each time into a fresh blocklist, blocking
exactly the planted errors and keeping the rest:

* **gallery** (6 × 4 chips a page): the reviewer looks at the page for ``--page-dwell``
  seconds, clicks each planted error (a real mouse click on the canvas: block, reason
  from the chip's flag) and presses ``k`` (keep the rest, save the page, next page).
  Page-turn latency is the time from the ``k`` key to the end of the first canvas draw
  that shows the next page with all its thumbnails.
* **single chip**: ``--dwell`` seconds a chip, then ``b`` (block) or ``k`` (keep).

Key presses and clicks are counted together as "presses". The blocklists are checked
against the planted errors. Needs a display; on a headless machine run it under Xvfb:

    xvfb-run -a -s "-screen 0 1920x1200x24" python bench/review_throughput.py
    xvfb-run -a -s "-screen 0 1920x1200x24" python bench/review_throughput.py \
        --real ../shared/real-dev --chips 112
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd


def pct(values, q):
    v = sorted(values)
    return v[int(round(q * (len(v) - 1)))]


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--chips", type=int, default=240)
    ap.add_argument("--size", type=int, default=512, help="generated chips' size")
    ap.add_argument("--error-rate", type=float, default=0.10)
    ap.add_argument("--dwell", type=float, default=0.3, help="seconds the reviewer looks at a chip")
    ap.add_argument(
        "--page-dwell", type=float, default=5.0, help="seconds the reviewer looks at a page"
    )
    ap.add_argument("--single-chips", type=int, default=96, help="chips reviewed one by one")
    ap.add_argument("--data", type=Path, default=None, help="reuse a generated dataset")
    ap.add_argument("--real", type=Path, metavar="DIR", help="copies of DIR's real chips")
    args = ap.parse_args()

    import napari
    from qtpy.QtCore import QPoint, Qt
    from qtpy.QtTest import QTest
    from qtpy.QtWidgets import QApplication
    from real_quality import gui_dataset  # bench/ is on the path

    from chipqa._qt.review_widget import ChipQAWidget
    from chipqa.blocklist.csvread import read_blocklist

    tmp = tempfile.TemporaryDirectory()
    root = args.data or Path(tmp.name) / "data"
    if not root.exists():
        print(gui_dataset(root, args.chips, args.real, args.size, error_rate=args.error_rate))
    chips = f"real chips ({args.real})" if args.real is not None else f"{args.size}² chips"
    truth = pd.read_csv(Path(f"{root}-truth") / "planted_errors.csv", dtype={"chip_id": str})
    planted = set(truth.loc[truth["corrupted"].astype(bool), "chip_id"])

    app = QApplication.instance() or QApplication([])
    viewer = napari.Viewer(show=True)
    viewer.window._qt_window.resize(1920, 1200)
    w = ChipQAWidget(viewer)
    viewer.window.add_dock_widget(w, name="Chip QA")
    canvas = viewer.window._qt_viewer.canvas  # the bench drives the real canvas widget
    native = canvas.native

    def spin(seconds=0.0, until=None, timeout=120.0):
        end, t0 = time.perf_counter() + seconds, time.perf_counter()
        while time.perf_counter() < end or (until is not None and not until()):
            app.processEvents()
            time.sleep(0.002)
            if time.perf_counter() - t0 > timeout:
                raise TimeoutError

    w.open_dataset(root, "baseline")
    spin(until=lambda: w.session is not None and not w.scoring_running, timeout=900)
    order = list(w.session.order)
    print(f"scored {len(order)} chips, {len(planted)} planted errors")

    drawn = {"t": None}
    canvas._scene_canvas.events.draw.connect(
        lambda e: drawn.__setitem__("t", time.perf_counter()), position="last"
    )
    painted = {"t": None, "page": None}
    w.gallery.painted.connect(lambda p: painted.update(t=time.perf_counter(), page=p))

    def press(key):
        native.setFocus()
        QTest.keyClick(native, key)

    def click_cell(k):
        g = w.gallery.grid
        y0, x0 = g.origin(k)
        world = np.array([y0 + g.size / 2, x0 + g.size / 2])
        cam = viewer.scene.camera if hasattr(viewer, "scene") else viewer.camera
        size = np.array([native.height(), native.width()])
        py, px = (world - np.array(cam.center[-2:])) * cam.zoom + size / 2
        QTest.mouseClick(native, Qt.MouseButton.LeftButton, pos=QPoint(int(px), int(py)))

    # ---------------------------------------------------------------- gallery
    for name in ("gallery_blocklist.csv", "single_blocklist.csv"):  # fresh ones each run
        (root.parent / name).unlink(missing_ok=True)
    w.controller.switch_blocklist(root.parent / "gallery_blocklist.csv")
    assert w.store.path == root.parent / "gallery_blocklist.csv", w.store.path
    w.session.position = 0
    w.set_view("gallery")
    spin(until=lambda: w.gallery.complete)
    presses, turns, t_start, looked = 0, [], time.perf_counter(), 0.0
    n_pages = w.session.page_count(w.gallery.grid.per_page)
    for page in range(n_pages):
        spin(args.page_dwell)
        looked += args.page_dwell
        st = w.gallery.state
        for k, cid in enumerate(list(st.chips)):
            if cid in planted:
                click_cell(k)
                presses += 1
        spin(until=lambda: not w.gallery.refresh_due)
        drawn["t"] = painted["t"] = None
        t0 = time.perf_counter()
        press("k")
        presses += 1
        if page == n_pages - 1:
            break
        spin(
            until=lambda p=page: (
                painted["page"] == p + 1
                and painted["t"] is not None
                and drawn["t"] is not None
                and drawn["t"] >= painted["t"]
            )
        )
        turns.append((drawn["t"] - t0) * 1000)
    # k leaves chips flagged label_contradicted undecided: the reviewer looks at each side
    # by side (j: next undecided) and decides it there.
    held = [c for c in order if c not in read_blocklist(w.store.path)]
    if held:
        w.set_view("side by side")
        for _ in held:
            press("j")
            spin(until=lambda: w.loading is None and w.chip_layers.chip_id == w.session.current)
            spin(args.dwell)
            looked += args.dwell
            press("b" if w.session.current in planted else "k")
            presses += 2
    gallery_s = time.perf_counter() - t_start
    rows = read_blocklist(w.store.path)
    blocked = {c for c, d in rows.items() if d.decision == "block"}
    assert len(rows) == len(order), f"{len(rows)} of {len(order)} chips decided"
    assert blocked == planted, (len(blocked - planted), len(planted - blocked))
    n = len(order)
    print(
        f"gallery ({w.gallery.grid.cols}×{w.gallery.grid.rows}, {chips}, dwell "
        f"{args.page_dwell:.1f} s a page): {presses} presses for {n} chips = "
        f"{presses / n:.3f} presses/chip; {1000 * gallery_s / n:.0f} ms/chip wall "
        f"({1000 * (gallery_s - looked) / n:.0f} ms/chip besides looking); page turn median "
        f"{statistics.median(turns):.0f} ms, p95 {pct(turns, 0.95):.0f} ms, "
        f"max {max(turns):.0f} ms ({len(turns)} turns); {len(held)} chips flagged "
        "label_contradicted decided side by side"
    )

    # ---------------------------------------------------------------- single chip
    w.set_view("side by side")
    w.controller.switch_blocklist(root.parent / "single_blocklist.csv")
    assert w.store.path == root.parent / "single_blocklist.csv", w.store.path
    w.session.position = 0
    m = min(args.single_chips, n)
    spin(until=lambda: w.loading is None and w.chip_layers.chip_id == w.session.current)
    presses, t_start, looked = 0, time.perf_counter(), 0.0
    for _ in range(m):
        spin(args.dwell)
        looked += args.dwell
        press("b" if w.session.current in planted else "k")
        presses += 1
    single_s = time.perf_counter() - t_start
    rows = read_blocklist(w.store.path)
    wanted = {c for c in order[:m] if c in planted}
    assert {c for c, d in rows.items() if d.decision == "block"} == wanted
    print(
        f"single chip ({chips}, dwell {args.dwell:.1f} s a chip): {presses} presses "
        f"for {m} chips = {presses / m:.3f} presses/chip; {1000 * single_s / m:.0f} ms/chip "
        f"wall ({1000 * (single_s - looked) / m:.0f} ms/chip besides looking)"
    )
    viewer.close()
    tmp.cleanup()


if __name__ == "__main__":
    main()
