"""The gallery's cell pictures, headless: captions that fit and say the label's share,
a cursor unlike any outline, pending blocks unlike written ones."""

from __future__ import annotations

import math

import numpy as np

from chipqa._qt.gallery_page import CURSOR, FRAME, PageGrid, caption_lines
from chipqa.render import fit_text


def _cell(grid: PageGrid, **kw) -> np.ndarray:
    page = grid.blank()
    thumb = np.full((grid.size, grid.size, 3), 90, np.uint8)
    args = dict(chip_id="abcd", thumb=thumb, stored=None, pending=None, cursor=False)
    args.update(kw)
    grid.paint(page, 0, **args)
    ch, cw = grid.cell
    return page[: ch - 4, : cw - 4]


def test_a_caption_says_the_label_share_and_whether_a_decision_is_saved():
    assert caption_lines("abcd", 1.0, None, None)[0] == "abcd · label 100%"
    assert caption_lines("abcd", 0.0, None, None)[0] == "abcd · label 0%"
    assert caption_lines("abcd", math.nan, None, None)[0] == "abcd · no label"
    assert caption_lines("abcd", 0.5, ("block", "shifted"), None)[1] == "block: shifted"
    pending = caption_lines("abcd", 0.5, None, ("block", "shifted"))[1]
    assert pending == "→ block: shifted (not saved)"


def test_the_longest_caption_fits_the_cell_instead_of_being_cut():
    for size in (64, 192):
        width = size + 2 * FRAME - 6
        for line in caption_lines("chip_0123", 0.42, None, ("block", "clouds_missing")):
            text, font = fit_text(line, width, 16, smallest=9)
            assert font.getlength(text) <= width


def test_the_cursor_is_unlike_an_all_cloud_outline_and_pending_unlike_written():
    grid = PageGrid(cols=1, rows=1, size=64)
    side = grid.size + 2 * FRAME
    cursor = _cell(grid, cursor=True)
    plain = _cell(grid)
    assert (cursor[side + 2, 1] == CURSOR).all()  # a white caption under the cursor
    assert not (plain[side + 2, 1] == CURSOR).all()
    written = _cell(grid, stored=("block", "other"))
    pending = _cell(grid, pending=("block", "other"))
    top_written, top_pending = written[1, :side], pending[1, :side]
    assert (top_written == top_written[0]).all()  # a solid frame
    assert len(np.unique(top_pending, axis=0)) > 1  # a dashed one
    assert not np.array_equal(written[FRAME : side - FRAME], pending[FRAME : side - FRAME])


def test_an_undecided_cell_says_why_the_chip_ranks_there_and_a_decision_replaces_it():
    why = "a 6% cloud region the model sees is missing from the label"
    assert caption_lines("aaaa", 0.4, None, None, why=why) == ("aaaa · label 40%", why)
    assert caption_lines("aaaa", 0.4, ("keep", ""), None, why=why)[1] == "keep"
    assert caption_lines("aaaa", 0.4, None, None, loading=True, why=why)[1] == "loading…"
