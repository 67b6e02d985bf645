"""A gallery page without a screen: which chips, the cursor, the decisions pending, and
the picture (plain numpy and PIL, no Qt), so that the page logic is tested headless.

A page is a grid of thumbnails (true colour with the label's outline in yellow and the
model's mask outline in magenta, see :func:`chipqa.render.thumbnail`). Each cell has a
frame and a caption that show the chip's decision: written ones in their colour, ones
pending on this page with an arrow and, for a block, a cross over the picture. The
cursor is a white frame. Only the cells that change are painted again.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field

import numpy as np
from PIL import Image, ImageDraw, ImageFont

FRAME = 5
CAPTION = 18
GAP = 4
BACKGROUND = 20
COLOURS = {
    "keep": (90, 200, 90),
    "block": (235, 70, 70),
    "unsure": (240, 190, 60),
    "fix": (90, 190, 255),
    None: (70, 70, 70),
}
CURSOR = (255, 255, 255)


@functools.lru_cache(maxsize=1)
def _font() -> ImageFont.ImageFont:
    try:
        return ImageFont.load_default(size=12)
    except TypeError:  # Pillow < 10.1
        return ImageFont.load_default()


@functools.lru_cache(maxsize=4096)
def caption(text: str, width: int, colour: tuple[int, int, int]) -> np.ndarray:
    """A ``(CAPTION, width, 3)`` strip with ``text`` (drawn once per text and size)."""
    img = Image.new("RGB", (width, CAPTION), (BACKGROUND + 10,) * 3)
    ImageDraw.Draw(img).text((3, 2), text, fill=colour, font=_font())
    out = np.asarray(img)
    out.flags.writeable = False
    return out


@dataclass
class PageState:
    """The chips of one page, the cursor on it and the decisions pending there.

    ``pending`` maps a chip to ``(decision, reason)``: what saving the page writes for
    it, on top of *keep* for every chip of the page that has no decision yet.
    """

    chips: list[str]
    index: int = 0
    cursor: int = 0
    pending: dict[str, tuple[str, str]] = field(default_factory=dict)
    title: str = ""
    sample: bool = False
    """A spot-check page (a bulk rule's sample): shown, not decided on."""

    def move(self, dx: int, dy: int, cols: int) -> int:
        """Move the cursor (clamped to the page); returns the old cursor."""
        old = self.cursor
        n = len(self.chips)
        if n:
            r, c = divmod(self.cursor, cols)
            c = min(max(c + dx, 0), cols - 1)
            r = max(r + dy, 0)
            self.cursor = min(r * cols + c, n - 1)
        return old

    def toggle(
        self,
        k: int,
        decision: str,
        reason: str,
        stored: tuple[str, str] | None,
        *,
        any_reason: bool = True,
    ) -> None:
        """Toggle chip ``k`` between ``decision`` (with ``reason``) and not. A chip that
        shows that decision already (pending, or written; with the same reason unless
        ``any_reason``) goes back to its written decision, or to a pending *keep* when
        the written decision is the one toggled off; any other chip gets it pending."""
        cid = self.chips[k]
        shown = self.pending.get(cid, stored)
        same = shown is not None and shown[0] == decision and (any_reason or shown[1] == reason)
        if same:
            if stored is not None and stored[0] == decision:
                self.pending[cid] = ("keep", "")
            else:
                self.pending.pop(cid, None)
        else:
            self.pending[cid] = (decision, reason)
            if stored == self.pending[cid]:
                del self.pending[cid]

    def items(self, stored: dict[str, tuple[str, str] | None]) -> list[tuple[str, str, str]]:
        """What saving the page writes: pending decisions that differ from the written
        ones, and *keep* for the chips without any decision."""
        out = []
        for cid in self.chips:
            want = self.pending.get(cid)
            if want is None:
                if stored.get(cid) is None:
                    out.append((cid, "keep", ""))
            elif want != stored.get(cid):
                out.append((cid, *want))
        return out

    def pending_only(self, stored: dict[str, tuple[str, str] | None]) -> list[tuple[str, str, str]]:
        """The pending decisions alone (leaving a page with ``n``/``p`` writes these)."""
        return [
            (cid, *want)
            for cid in self.chips
            if (want := self.pending.get(cid)) is not None and want != stored.get(cid)
        ]


@dataclass
class PageGrid:
    """The geometry of a page picture: ``cols × rows`` cells of ``size``-pixel thumbnails."""

    cols: int = 6
    rows: int = 4
    size: int = 192

    @property
    def per_page(self) -> int:
        return self.cols * self.rows

    @property
    def cell(self) -> tuple[int, int]:
        """(height, width) of a cell, gap included."""
        return self.size + 2 * FRAME + CAPTION + GAP, self.size + 2 * FRAME + GAP

    @property
    def shape(self) -> tuple[int, int, int]:
        ch, cw = self.cell
        return self.rows * ch, self.cols * cw, 3

    def origin(self, k: int) -> tuple[int, int]:
        r, c = divmod(k, self.cols)
        ch, cw = self.cell
        return r * ch, c * cw

    def cell_at(self, y: float, x: float) -> int | None:
        """The cell under page pixel (y, x), or None outside the cells."""
        ch, cw = self.cell
        if y < 0 or x < 0:
            return None
        r, c = int(y // ch), int(x // cw)
        if r >= self.rows or c >= self.cols:
            return None
        return r * self.cols + c

    def blank(self) -> np.ndarray:
        return np.full(self.shape, BACKGROUND, np.uint8)

    def paint(
        self,
        page: np.ndarray,
        k: int,
        *,
        chip_id: str | None,
        thumb: np.ndarray | None,
        stored: tuple[str, str] | None,
        pending: tuple[str, str] | None,
        cursor: bool,
    ) -> None:
        """Paint cell ``k`` of ``page`` in place."""
        y, x = self.origin(k)
        s, f = self.size, FRAME
        ch, cw = self.cell
        cell = page[y : y + ch - GAP, x : x + cw - GAP]
        if chip_id is None:
            cell[...] = BACKGROUND
            return
        shown = pending or stored
        decision = shown[0] if shown else None
        colour = COLOURS.get(decision, COLOURS[None])
        cell[: s + 2 * f] = CURSOR if cursor else colour
        if cursor:  # the decision's colour stays visible inside the cursor's white frame
            cell[2 : s + 2 * f - 2, 2 : s + 2 * f - 2] = colour
        inner = cell[f : f + s, f : f + s]
        if thumb is None:
            inner[...] = 45
        else:
            inner[...] = thumb[:s, :s]
            if decision == "block":
                d = np.arange(s)
                for w in range(-2, 3):
                    i = np.clip(d + w, 0, s - 1)
                    inner[d, i] = colour
                    inner[d, s - 1 - i] = colour
        text = chip_id
        if shown:
            what = shown[0] + (f": {shown[1]}" if shown[1] else "")
            text += ("  → " if pending else "  ") + what
        elif thumb is None:
            text += "  loading…"
        cell[s + 2 * f :, : s + 2 * f] = caption(text, s + 2 * f, colour if shown else (210,) * 3)
