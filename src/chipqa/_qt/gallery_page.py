"""A gallery page without a screen: which chips, the cursor, the decisions pending, and
the picture (plain numpy and PIL, no Qt), so that the page logic is tested headless.

A page is a grid of thumbnails (true colour with the label's outline in yellow and the
model's mask outline in magenta, see :func:`chipqa.render.thumbnail`). Each cell has a
frame and a two-line caption: the chip and its label's cloud share (an all-cloud label
outlines the whole thumbnail, a no-cloud label nothing: the share says which), then its
decision. A written decision has a solid frame in its colour (a block a solid cross); a
decision pending on this page a dashed frame, a dashed cross and "→ … (not saved)". The
cursor is a thick white frame and a white caption, unlike any outline. Captions are
fitted to the cell (a smaller font, then shortened), never cut. Only the cells that
change are painted again.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field

import numpy as np
from PIL import Image, ImageDraw

FRAME = 5
CAPTION = 34
"""Height of a cell's caption: two lines."""
GAP = 4
DASH = 8
"""Length of the dashes of a pending decision's frame."""
BACKGROUND = 20
COLOURS = {
    "keep": (90, 200, 90),
    "block": (235, 70, 70),
    "unsure": (240, 190, 60),
    "fix": (90, 190, 255),
    None: (70, 70, 70),
}
CURSOR = (255, 255, 255)


@functools.lru_cache(maxsize=4096)
def caption(
    lines: tuple[str, ...], width: int, colour: tuple[int, int, int], background: int | tuple = 30
) -> np.ndarray:
    """A ``(CAPTION, width, 3)`` strip with up to two ``lines``, each fitted to the width
    (a smaller font, then shortened with "…"; see :func:`chipqa.render.fit_text`), drawn
    once per text and size."""
    from chipqa.render import fit_text

    bg = background if isinstance(background, tuple) else (background,) * 3
    img = Image.new("RGB", (width, CAPTION), bg)
    draw = ImageDraw.Draw(img)
    size = max(10, min(16, CAPTION // 2 - 2))
    for i, line in enumerate(lines[:2]):
        text, font = fit_text(line, width - 6, size, smallest=9)
        draw.text((3, 1 + i * (CAPTION // 2)), text, fill=colour, font=font)
    out = np.asarray(img)
    out.flags.writeable = False
    return out


def caption_lines(
    chip_id: str,
    label_share: float | None,
    stored: tuple[str, str] | None,
    pending: tuple[str, str] | None,
    loading: bool = False,
    why: str = "",
) -> tuple[str, str]:
    """The two caption lines of a cell: ``"aaaa · label 100%"`` and the decision
    (``"block: shifted"`` written, ``"→ block: shifted (not saved)"`` pending) or, while
    there is none, why the chip ranks where it does (the scores' ``why``).
    ``label_share``: None when not known, NaN for a chip without a label."""
    first = chip_id
    if label_share is not None:  # None: not known here; NaN: the chip has no label
        first += " · no label" if label_share != label_share else f" · label {label_share:.0%}"
    if pending is not None:
        what = pending[0] + (f": {pending[1]}" if pending[1] else "")
        second = f"→ {what} (not saved)"
    elif stored is not None:
        second = stored[0] + (f": {stored[1]}" if stored[1] else "")
    else:
        second = "loading…" if loading else (why or "no decision")
    return first, second


def _dashed(mask_len: int) -> np.ndarray:
    """True on the dashes of a dashed line of ``mask_len`` pixels."""
    return (np.arange(mask_len) // DASH) % 2 == 0


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
        label_share: float | None = None,
        why: str = "",
    ) -> None:
        """Paint cell ``k`` of ``page`` in place (``label_share``: the cloud share of
        the chip's label, and ``why``: why it ranks there, said in the caption)."""
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
        side = s + 2 * f
        frame = cell[:side, :side]
        if cursor:  # thick white, with the decision's colour as a thin line inside it
            frame[...] = CURSOR
            frame[f - 2 : side - f + 2, f - 2 : side - f + 2] = colour
        else:
            frame[...] = colour
            if pending is not None:  # dashed: not written yet
                gaps = ~_dashed(side)
                frame[: f - 1, gaps] = BACKGROUND
                frame[side - f + 1 :, gaps] = BACKGROUND
                frame[gaps, : f - 1] = BACKGROUND
                frame[gaps, side - f + 1 :] = BACKGROUND
        inner = cell[f : f + s, f : f + s]
        if thumb is None:
            inner[...] = 45
        else:
            inner[...] = thumb[:s, :s]
            if decision == "block":
                d = np.arange(s)
                on = _dashed(s) if pending is not None else np.ones(s, bool)
                for w in range(-2, 3):
                    i = np.clip(d + w, 0, s - 1)
                    inner[d[on], i[on]] = colour
                    inner[d[on], s - 1 - i[on]] = colour
        lines = caption_lines(chip_id, label_share, stored, pending, thumb is None, why)
        if cursor:  # the cursor's caption is white: no outline looks like it
            strip = caption(lines, side, (20, 20, 20), CURSOR)
        else:
            strip = caption(lines, side, colour if shown else (210, 210, 210))
        cell[side:, :side] = strip
