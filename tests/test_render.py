"""The fast forms of the picture helpers draw exactly what the plain forms draw."""

from __future__ import annotations

import numpy as np
from skimage.segmentation import find_boundaries

from chipqa.render import (
    _stretch,
    _stretch_formula,
    false_colour,
    fit_text,
    inner_boundary,
    side_by_side,
)


def test_outlines_are_skimages_inner_boundaries_with_the_border_as_outside():
    rng = np.random.default_rng(0)
    for _ in range(50):
        shape = (int(rng.integers(1, 40)), int(rng.integers(1, 40)))
        mask = rng.random(shape) > rng.random()
        want = find_boundaries(np.pad(mask, 1), mode="inner")[1:-1, 1:-1]
        np.testing.assert_array_equal(inner_boundary(mask), want)
    assert inner_boundary(np.ones((4, 4), bool)).sum() == 12  # a full label shows as a frame


def test_the_stretch_table_equals_the_stretch_formula_for_every_dn():
    dn = np.arange(65536, dtype=np.uint16).reshape(256, 256)
    np.testing.assert_array_equal(_stretch(dn, 3000.0, 0.8), _stretch_formula(dn, 3000.0, 0.8))
    bands = np.stack([dn] * 4)
    assert false_colour(bands).shape == (256, 256, 3)


def test_the_mosaic_has_its_titles_and_panels_in_place():
    h = w = 64
    rgb = np.full((h, w, 3), 200, np.uint8)
    valid = np.ones((h, w), bool)
    label = np.zeros((h, w), np.uint8)
    scl = np.full((h, w), 9, np.uint8)
    out = side_by_side(rgb, rgb, label, np.ones((h, w), np.float32), valid, scl=scl)
    assert out.shape == (2 * (h + 18) + 6, 3 * w + 2 * 6, 3)
    assert (out[18 : 18 + h, :w] == 200).all()  # true colour, top left
    assert (out[:18, :w] > 150).any()  # its title's text
    high_cloud = out[18 + h // 2, w + 6 + w // 2]
    assert high_cloud[0] > 150 and high_cloud[1] < 100  # SCL class 9 in red, top middle


def test_titles_and_legend_of_a_small_chip_stay_inside_their_panels():
    """A 64-pixel chip's titles drop their "(…)" part or shrink rather than run off the
    panel (napari zooms the mosaic up, so cut text is what the reviewer would see)."""
    h = w = 64
    rgb = np.full((h, w, 3), 60, np.uint8)
    valid = np.ones((h, w), bool)
    out = side_by_side(
        rgb,
        rgb,
        np.zeros((h, w), np.uint8),
        np.zeros((h, w), np.float32),
        valid,
        scl=np.zeros((h, w), np.uint8),
    )
    for r in range(2):
        for c in range(3):
            y, x = r * (h + 18 + 6), c * (w + 6)
            strip = out[y : y + 18, x : x + w]
            if r == 1 and c == 2:
                strip = out[y + 18 : y + 18 + h, x : x + w]  # the legend
            assert (strip[:, -2:] < 100).all(), (r, c)  # no text ink at the right edge
    title, font = fit_text("true colour (B04 B03 B02)", w - 6, 14)
    assert title.startswith("true colour") and font.getlength(title) <= w - 6


def test_panel_titles_grow_with_the_chip_so_they_stay_legible_when_shrunk_to_fit():
    from chipqa.constants import panel_title_px
    from chipqa.render import side_by_side

    size = 512
    rgb = np.zeros((size, size, 3), np.uint8)
    mosaic = side_by_side(rgb, rgb, None, None, np.ones((size, size), bool))
    top = panel_title_px(size)
    assert (mosaic[top : top + size, :size] == 0).all()  # the true colour starts below it
    strip = mosaic[:top, size + 6 :]  # the NIR panel's title
    rows = np.flatnonzero((strip > 150).any(axis=(1, 2)))
    # Shown at half size (a 512² chip's mosaic on a laptop screen) the letters are still
    # about 9 px tall, not the 5 px in which "NIR false colour" read "NIR fa se colcur".
    assert rows.max() - rows.min() + 1 >= 18
