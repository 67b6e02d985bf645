"""The gallery in a real napari window (Xvfb): a page of chips, a cursor, block toggled
by key and by a real mouse click, a page saved in one write, and a bulk rule with its
spot check, each undone as one step."""

from __future__ import annotations

import numpy as np
import pytest

from chipqa._qt.gallery import GALLERY_LAYER
from chipqa._qt.gallery_page import PageGrid
from chipqa._qt.review_widget import ChipQAWidget
from chipqa.blocklist.csvread import read_blocklist
from chipqa.review.session import default_reason
from chipqa.synth import generate_dataset

pytestmark = pytest.mark.gui


@pytest.fixture
def root(tmp_path):
    out = tmp_path / "data"
    generate_dataset(out, n_chips=14, size=40, error_rate=0.3, seed=3)
    return out


def _gallery(viewer, qtbot, root) -> ChipQAWidget:
    w = ChipQAWidget(viewer)
    viewer.window.add_dock_widget(w, name="Chip QA")
    w.gallery.grid = PageGrid(cols=4, rows=2, size=64)
    w.open_dataset(root, "baseline")
    qtbot.waitUntil(lambda: w.session is not None and not w.scoring_running, timeout=60_000)
    w.set_view("gallery")
    qtbot.waitUntil(lambda: w.gallery.complete, timeout=30_000)
    return w


def _press(viewer, qtbot, key):
    from qtpy.QtCore import Qt

    canvas = viewer.window._qt_viewer.canvas.native
    canvas.setFocus()
    named = {"Right": Qt.Key.Key_Right, "Down": Qt.Key.Key_Down, "Left": Qt.Key.Key_Left}
    qtbot.keyClick(canvas, named.get(key, key))


def _click_cell(viewer, qtbot, w, k: int) -> None:
    """A real mouse click on the canvas, at the centre of gallery cell ``k``."""
    from qtpy.QtCore import QPoint, Qt

    y0, x0 = w.gallery.grid.origin(k)
    half = w.gallery.grid.size // 2
    world = np.array([y0 + half, x0 + half], float)
    canvas = viewer.window._qt_viewer.canvas.native
    camera = viewer.scene.camera if hasattr(viewer, "scene") else viewer.camera
    centre = np.array(camera.center[-2:])
    size = np.array([canvas.height(), canvas.width()])
    py, px = (world - centre) * camera.zoom + size / 2
    qtbot.mouseClick(canvas, Qt.MouseButton.LeftButton, pos=QPoint(int(px), int(py)))


def test_a_gallery_page_is_decided_in_one_write_and_undone_as_one_step(
    make_napari_viewer, qtbot, root
):
    viewer = make_napari_viewer(show=True)
    w = _gallery(viewer, qtbot, root)
    assert [ly.name for ly in viewer.layers] == [GALLERY_LAYER]
    page = list(w.gallery.state.chips)
    assert page == w.session.order[:8]
    # The page picture holds each chip's thumbnail (true colour, outlines) in its cell.
    pic = viewer.layers[GALLERY_LAYER].data
    assert pic.shape == w.gallery.grid.shape and pic.std() > 10

    _press(viewer, qtbot, "Right")  # cursor to cell 1
    _press(viewer, qtbot, "b")  # toggle block, reason from the chip's flag
    _press(viewer, qtbot, "Down")  # cell 5
    _press(viewer, qtbot, "3")  # block: shifted
    _click_cell(viewer, qtbot, w, 6)  # a click toggles block too
    _click_cell(viewer, qtbot, w, 7)
    _click_cell(viewer, qtbot, w, 7)  # … and back
    assert set(w.gallery.state.pending) == {page[1], page[5], page[6]}
    assert not w.store.path.exists()  # nothing written before the page is saved
    _press(viewer, qtbot, "k")  # keep the rest, save the page, next page
    rows = read_blocklist(w.store.path)
    # k keeps the undecided rest, except chips their own SCL contradicts (left for a look).
    contradicted = {c for c in page if "label_contradicted" in w.session.row(c)["flags"]}
    expected = {c: ("keep", "") for c in page if c not in contradicted}
    expected[page[1]] = ("block", default_reason(w.session.row(page[1])["flags"]))
    expected[page[5]] = ("block", "shifted")
    expected[page[6]] = ("block", default_reason(w.session.row(page[6])["flags"]))
    assert {c: (d.decision, d.reason) for c, d in rows.items()} == expected
    assert len({d.decided_at[:19] for d in rows.values()}) == 1  # one write
    assert w.gallery.state.index == 1 and w.gallery.state.chips == w.session.order[8:14]
    # The decided chips show their decision on their badge when their page is back.
    _press(viewer, qtbot, "p")
    assert w.gallery.state.index == 0
    _press(viewer, qtbot, "z")  # the whole page comes back as one step
    assert not read_blocklist(w.store.path)
    # o opens the cursor chip side by side; o again goes back to its page.
    _press(viewer, qtbot, "o")
    assert w.view == "side by side" and GALLERY_LAYER not in viewer.layers
    _press(viewer, qtbot, "o")
    assert w.view == "gallery"


def test_block_every_chip_in_a_filter_after_a_spot_check(make_napari_viewer, qtbot, root):
    viewer = make_napari_viewer(show=True)
    w = _gallery(viewer, qtbot, root)
    w.set_view("side by side")
    w.run("keep")  # a decision the rule must leave alone
    kept = next(iter(w.store.decisions))
    w.filters.flag_combo.setCurrentIndex(w.filters.flag_combo.findData("all_cloud_label"))
    listed = list(w.session.order)
    assert listed
    seen = {}

    def confirm(title, text):  # the reviewer looks at the sample, then says yes
        seen["text"], seen["chips"] = text, list(w.gallery.state.chips)
        seen["on canvas"] = GALLERY_LAYER in viewer.layers
        return True

    w.confirm = confirm
    assert w.gallery_actions.bulk_block()
    todo = [c for c in listed if c != kept]
    assert f"Block {len(todo)} undecided chips (flag=all_cloud_label)" in seen["text"]
    assert seen["on canvas"] and set(seen["chips"]) <= set(todo)
    rows = read_blocklist(w.store.path)
    for c in todo:
        assert (rows[c].decision, rows[c].reason) == ("block", "all_cloud_wrong")
        assert rows[c].rule == "flag=all_cloud_label"
    assert rows[kept].decision == "keep"
    assert w.view == "side by side"
    w.run("undo")  # one step takes the rule back
    rows = read_blocklist(w.store.path)
    assert list(rows) == [kept]


def test_the_next_page_painted_ahead_shows_decisions_made_meanwhile(
    make_napari_viewer, qtbot, root
):
    """The next page is painted while the reviewer looks at this one; a decision written
    meanwhile (here from the single-chip session) still shows when the page is turned,
    and the picture is what painting the page afresh gives."""
    viewer = make_napari_viewer(show=True)
    w = _gallery(viewer, qtbot, root)
    g = w.gallery
    following = w.session.order[8:14]
    qtbot.waitUntil(lambda: g._spare_from is not None, timeout=30_000)
    assert g._spare_from[0] == tuple(following)

    # Turning to it copies the picture painted ahead.
    _press(viewer, qtbot, "k")
    assert g.state.chips == following
    turned = viewer.layers[GALLERY_LAYER].data.copy()
    g._paint_all()
    np.testing.assert_array_equal(turned, viewer.layers[GALLERY_LAYER].data)

    # Back, block a chip of the next page from elsewhere, and turn again: not stale.
    _press(viewer, qtbot, "p")
    qtbot.waitUntil(lambda: g._spare_from is not None and g.state.index == 0, timeout=30_000)
    w.controller.decide_chips([(following[2], "block", "all_cloud_wrong")])
    _press(viewer, qtbot, "n")
    assert g.state.chips == following
    turned = viewer.layers[GALLERY_LAYER].data.copy()
    y, x = g.grid.origin(2)
    assert tuple(turned[y + 1, x + 1]) == (235, 70, 70)  # the block's red frame
    g._paint_all()
    np.testing.assert_array_equal(turned, viewer.layers[GALLERY_LAYER].data)


def test_undecided_only_next_page_shows_other_chips(make_napari_viewer, qtbot, root):
    viewer = make_napari_viewer(show=True)
    w = _gallery(viewer, qtbot, root)
    w.filters.undecided_check.setChecked(True)
    qtbot.waitUntil(lambda: w.session.undecided_only and w.gallery.state is not None)
    first = list(w.gallery.state.chips)
    _press(viewer, qtbot, "n")  # nothing decided on this page: on to the next one
    qtbot.waitUntil(lambda: w.gallery.state is not None and w.gallery.state.chips != first)
    assert not set(w.gallery.state.chips) & set(first)
    assert w.gallery.state.chips == w.session.order[8:16]


def test_k_does_not_keep_a_chip_its_scl_contradicts_unseen(make_napari_viewer, qtbot, root):
    from chipqa.io.atomic import atomic_write_csv
    from chipqa.io.paths import side_paths
    from chipqa.scoring import read_scores

    viewer = make_napari_viewer(show=True)
    w = _gallery(viewer, qtbot, root)
    w.close()
    path = side_paths(root).scores
    scores = read_scores(path)
    contradicted = scores["chip_id"].iloc[2]  # on the first page
    scores.loc[2, "flags"] = "label_contradicted"
    atomic_write_csv(scores, path)
    flagged = set(scores.loc[scores["flags"].str.contains("label_contradicted"), "chip_id"])
    w = _gallery(viewer, qtbot, root)  # the saved scores, with that flag
    page = list(w.gallery.state.chips)
    assert contradicted in page
    _press(viewer, qtbot, "k")
    rows = read_blocklist(w.store.path)
    assert not flagged & set(rows)  # left undecided, and said so
    assert {c for c in page if c not in flagged} <= set(rows)
    assert (
        "label_contradicted left undecided" in w.status.text() and contradicted in w.status.text()
    )
