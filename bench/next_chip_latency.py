r"""Time from the "next chip" key to the new chip drawn, in a real napari window.

Generates a synthetic dataset (512×512 chips by default) — or, with ``--real DIR``,
writes ``--chips`` copies of the real chips in DIR (e.g. ``../shared/real-dev``: the 8
rotations / flips of each, 56 distinct chips for the seven there, repeated past that,
with gross label errors planted into 15 % as in the generated set; a chip of another
size, 856×512, is shown as it is) — opens it in the Chip QA widget,
scores it with the baseline, then presses the real "next chip" key (→) on the canvas N
times. For each press it measures the time from the key event to the end
of the canvas draw that shows the new chip (after it has loaded, when the prefetch
was not ahead), and prints the median and the 95th
percentile. ``--dwell`` is the reviewer's look at each chip before the next key
press (background prefetch works during it); ``--dwell 0`` is key-repeat speed.

Needs a display; on a headless machine run it under Xvfb:

    xvfb-run -a -s "-screen 0 1920x1200x24" python bench/next_chip_latency.py --chips 110
    xvfb-run -a -s "-screen 0 1920x1200x24" python bench/next_chip_latency.py \
        --real ../shared/real-dev --chips 61
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument(
        "--chips", type=int, default=110, help="chips in the dataset (presses = chips - 5)"
    )
    ap.add_argument("--size", type=int, default=512, help="generated chips' size")
    ap.add_argument(
        "--dwell",
        type=float,
        nargs="+",
        default=[0.3, 0.0],
        help="seconds between presses (one run per value)",
    )
    ap.add_argument("--data", type=Path, default=None, help="reuse a generated dataset folder")
    ap.add_argument("--real", type=Path, metavar="DIR", help="copies of DIR's real chips")
    args = ap.parse_args()

    import napari
    from qtpy.QtCore import Qt
    from qtpy.QtTest import QTest
    from qtpy.QtWidgets import QApplication
    from real_quality import gui_dataset  # bench/ is on the path

    from chipqa._qt.review_widget import open_in_viewer

    tmp = tempfile.TemporaryDirectory()
    root = args.data or Path(tmp.name) / "data"
    if not root.exists():
        print(gui_dataset(root, args.chips, args.real, args.size))

    viewer = napari.Viewer(show=True)
    viewer.window._qt_window.resize(1600, 1000)
    app = QApplication.instance()
    widget = open_in_viewer(viewer, root, model="baseline")
    while widget.session is None or widget.scoring_running:
        app.processEvents()
        time.sleep(0.01)
    scene = viewer.window._qt_viewer.canvas._scene_canvas
    native = viewer.window._qt_viewer.canvas.native
    drawn = {"t": None}
    scene.events.draw.connect(
        lambda event: drawn.__setitem__("t", time.perf_counter()), position="last"
    )

    shown = {"t": None, "chip": None}  # when the chip's pixels went into the layers

    def on_shown(chip_id: str) -> None:
        shown["t"], shown["chip"] = time.perf_counter(), chip_id

    widget.display.drawn.connect(on_shown)

    def on_screen() -> bool:  # the current chip's pixels are in the layers (not loading)
        return widget.loading is None and widget.chip_layers.chip_id == widget.session.current

    presses = len(widget.session.order) - 5
    chips = f"real chips ({args.real})" if args.real is not None else f"{args.size}² chips"
    for dwell in args.dwell:
        widget.session.position = 0
        while not on_screen():
            app.processEvents()
        times, waited = [], 0
        for _ in range(presses):
            end = time.perf_counter() + dwell
            while time.perf_counter() < end:
                app.processEvents()
                time.sleep(0.002)
            before = widget.session.current
            native.setFocus()
            drawn["t"] = shown["t"] = None
            t0 = time.perf_counter()
            QTest.keyClick(native, Qt.Key.Key_Right)
            waited += widget.loading is not None
            # The end is the first canvas draw after the new chip went into the layers (a
            # chip that was not prefetched in time goes in when the loader has it).
            while not (
                shown["t"] is not None
                and shown["chip"] == widget.session.current
                and drawn["t"] is not None
                and drawn["t"] >= shown["t"]
            ):
                app.processEvents()
            assert widget.session.current != before
            times.append((drawn["t"] - t0) * 1000)
        times.sort()
        p95 = times[int(round(0.95 * (len(times) - 1)))]
        print(
            f"dwell {dwell:.2f} s, {len(times)} presses, {chips}: "
            f"median {statistics.median(times):.1f} ms, p95 {p95:.1f} ms, max {times[-1]:.1f} ms"
            f" ({waited} chips not prefetched in time)"
        )
    viewer.close()
    tmp.cleanup()


if __name__ == "__main__":
    main()
