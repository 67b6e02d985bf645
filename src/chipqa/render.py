"""Pictures of chips: true colour with a fixed stretch, outlines, and contact sheets.

The stretch is fixed (not per chip) so that chips compare: a dark chip looks dark."""

from __future__ import annotations

import functools
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image, ImageDraw, ImageFont

from chipqa.constants import LABEL_CLOUD, SCL_CLASSES, SCL_NODATA, panel_title_px
from chipqa.data import Chip, ChipDataset
from chipqa.errors import ChipReadError

TRUE_COLOUR_MAX = 3000.0
"""Reflectance x 10 000 shown as full brightness in true colour (B04, B03, B02)."""
TRUE_COLOUR_GAMMA = 0.8
FALSE_COLOUR_MAX = (5000.0, 3000.0, 3000.0)
"""Full-brightness DNs of the NIR false-colour composite (B08, B04, B03)."""

LABEL_COLOUR = (255, 221, 0)
PRED_COLOUR = (255, 0, 200)
NODATA_COLOUR = (40, 60, 90)


def _stretch_formula(x: np.ndarray, vmax: float, gamma: float) -> np.ndarray:
    y = np.clip(x.astype(np.float32) / vmax, 0.0, 1.0) ** gamma
    return (y * 255.0 + 0.5).astype(np.uint8)


@functools.lru_cache(maxsize=16)
def _stretch_table(vmax: float, gamma: float) -> np.ndarray:
    return _stretch_formula(np.arange(65536, dtype=np.uint16), vmax, gamma)


def _stretch(x: np.ndarray, vmax: float, gamma: float) -> np.ndarray:
    if x.dtype == np.uint16:  # a table of every DN: one lookup instead of a power per pixel
        return _stretch_table(float(vmax), float(gamma))[x]
    return _stretch_formula(x, vmax, gamma)


def true_colour(
    bands: np.ndarray, vmax: float = TRUE_COLOUR_MAX, gamma: float = TRUE_COLOUR_GAMMA
) -> np.ndarray:
    """``(4, H, W)`` DNs (B02, B03, B04, B08) → ``(H, W, 3)`` uint8 RGB from B04, B03, B02."""
    return np.stack([_stretch(bands[i], vmax, gamma) for i in (2, 1, 0)], axis=-1)


STRETCHES = ("fixed", "per chip")
"""True-colour stretches: ``fixed`` (reflectance 0–0.3 for every chip, so chips compare)
and ``per chip`` (from the chip's own 1st to 99.5th percentile, so thin cloud and haze
over a bright chip show instead of a flat white)."""


def chip_vmax(bands: np.ndarray, valid: np.ndarray | None = None) -> float:
    """The white point of the ``per chip`` stretch: the 99.5th percentile of the visible
    bands over valid pixels, rounded to 50 DN (never below the fixed stretch's 3000)."""
    vis = bands[:3]
    if valid is not None and valid.any():
        vis = vis[:, valid]
    if vis.size == 0:
        return TRUE_COLOUR_MAX
    top = float(np.percentile(vis[:, :: max(1, vis.shape[-1] // 20000)], 99.5))
    return max(TRUE_COLOUR_MAX, round(top / 50.0) * 50.0)


def true_colour_stretched(
    bands: np.ndarray, valid: np.ndarray | None = None, stretch: str = "fixed"
) -> np.ndarray:
    """True colour with one of :data:`STRETCHES`."""
    if stretch not in STRETCHES:
        raise ValueError(f"stretch must be one of {STRETCHES}, not {stretch!r}")
    vmax = TRUE_COLOUR_MAX if stretch == "fixed" else chip_vmax(bands, valid)
    return true_colour(bands, vmax)


def outline(mask: np.ndarray, width: int = 2) -> np.ndarray:
    """The ``width``-pixel inner outline of ``mask``; the image border counts as outside,
    so a mask covering the whole chip is drawn as a frame (never as nothing)."""
    m = mask.astype(bool)
    out = np.zeros_like(m)
    for _ in range(width):
        edge = inner_boundary(m)
        out |= edge
        m = m & ~edge
    return out


def thumbnail(
    rgb: np.ndarray,
    label: np.ndarray | None,
    prob: np.ndarray | None,
    size: int,
    *,
    threshold: float = 0.5,
) -> np.ndarray:
    """A ``(size, size, 3)`` gallery picture of a chip: true colour with the label's
    outline in yellow (on the border of the cloud) and the model's mask outline in magenta
    (2 px further in), so both show even where they coincide, e.g. at a chip's edge."""
    img = _resize(np.ascontiguousarray(rgb), size)
    img = img.copy()
    if prob is not None:
        p = _resize((np.clip(prob, 0, 1) * 255).astype(np.uint8), size, nearest=True)
        m = p >= int(threshold * 255)
        img[outline(m, 4) & ~outline(m, 2)] = PRED_COLOUR
    if label is not None:
        lab = _resize((label == LABEL_CLOUD).astype(np.uint8), size, nearest=True).astype(bool)
        img[outline(lab, 2)] = LABEL_COLOUR
    return img


def message_card(text: str, width: int, height: int) -> np.ndarray:
    """A dark ``(height, width, 3)`` picture with ``text`` wrapped on it (a chip that
    cannot be shown shows why, not a black square)."""
    import textwrap

    img = Image.new("RGB", (width, height), (40, 24, 24))
    size = max(10, min(18, width // 40))
    font = _font(size)
    chars = max(20, int(width / (size * 0.6)) - 2)
    lines = [ln for para in text.splitlines() for ln in (textwrap.wrap(para, chars) or [""])]
    draw = ImageDraw.Draw(img)
    for i, line in enumerate(lines[: max(1, (height - 8) // (size + 4))]):
        draw.text((8, 8 + i * (size + 4)), line, fill=(255, 150, 150), font=font)
    return np.asarray(img)


def false_colour(bands: np.ndarray, gamma: float = TRUE_COLOUR_GAMMA) -> np.ndarray:
    """NIR false colour (B08, B04, B03 as RGB): vegetation red, cloud white, water black."""
    return np.stack(
        [_stretch(bands[i], v, gamma) for i, v in zip((3, 2, 1), FALSE_COLOUR_MAX, strict=True)],
        axis=-1,
    )


def draw_outline(
    rgb: np.ndarray, mask: np.ndarray, colour: tuple[int, int, int], fill: float = 0.0
) -> np.ndarray:
    """Return ``rgb`` with the outline of ``mask`` drawn in ``colour``.

    The outline runs along the image border too, so that a label covering the whole
    chip shows as a frame; ``fill`` > 0 also tints the inside of the mask.
    """
    m = mask.astype(bool)
    if fill > 0:
        tint = np.asarray(colour, np.float32) * fill
        out = np.where(m[..., None], rgb * np.float32(1 - fill) + tint, rgb).astype(np.uint8)
    else:
        out = rgb.copy()
    out[inner_boundary(m)] = colour
    return out


def inner_boundary(mask: np.ndarray) -> np.ndarray:
    """Pixels of ``mask`` with a 4-neighbour outside it (the image border counts as
    outside): skimage's ``find_boundaries(mode="inner")``, in a few slice operations."""
    p = np.pad(mask, 1)
    inside = p[1:-1, 1:-1] & p[:-2, 1:-1] & p[2:, 1:-1] & p[1:-1, :-2] & p[1:-1, 2:]
    return mask & ~inside


def _resize(arr: np.ndarray, size: int, nearest: bool = False) -> np.ndarray:
    img = Image.fromarray(arr)
    return np.asarray(img.resize((size, size), Image.NEAREST if nearest else Image.BILINEAR))


def label_panel(rgb: np.ndarray, label: np.ndarray | None, valid: np.ndarray) -> np.ndarray:
    """The label over a dimmed true colour: cloud tinted yellow and outlined, nodata blue."""
    out = (rgb * 0.45).astype(np.uint8)
    if label is not None:
        out = draw_outline(out, label == LABEL_CLOUD, LABEL_COLOUR, fill=0.55)
    out[~valid] = NODATA_COLOUR
    return out


def prediction_panel(
    rgb: np.ndarray, prob: np.ndarray, label: np.ndarray | None, valid: np.ndarray
) -> np.ndarray:
    """The model's cloud probability (magenta, opacity = probability) over a dimmed true
    colour, with the label's outline in yellow for comparison."""
    base = rgb.astype(np.float32) * 0.45
    a = (np.clip(prob, 0.0, 1.0) * 0.85)[..., None]
    out = (base * (1 - a) + np.asarray(PRED_COLOUR, np.float32) * a).astype(np.uint8)
    if label is not None:
        out = draw_outline(out, label == LABEL_CLOUD, LABEL_COLOUR)
    out[~valid] = NODATA_COLOUR
    return out


SIDE_BY_SIDE_TITLES = (
    "true colour (B04 B03 B02)",
    "NIR false colour (B08 B04 B03)",
    "label",
    "model prediction (+ label outline)",
)
SIDE_BY_SIDE_SCL_TITLES = (
    "true colour (B04 B03 B02)",
    "Sen2Cor SCL cloud classes",
    "model prediction (+ label outline)",
    "NIR false colour (B08 B04 B03)",
    "label",
    "",
)
"""Titles of the 3 × 2 mosaic of a chip with an SCL, row by row."""

SCL_COLOURS: dict[int, tuple[int, int, int]] = {
    SCL_CLASSES["cloud_high"]: (255, 60, 40),
    SCL_CLASSES["cloud_medium"]: (255, 170, 40),
    SCL_CLASSES["thin_cirrus"]: (60, 200, 255),
    SCL_CLASSES["cloud_shadow"]: (150, 80, 255),
}
"""Colours of the Sen2Cor SCL classes shown: cloud high (9) red, medium (8) orange,
thin cirrus (10) cyan, cloud shadow (3) violet."""
SCL_LEGEND = tuple(
    (SCL_CLASSES[name], f"{text} ({SCL_CLASSES[name]})")
    for name, text in (
        ("cloud_high", "cloud, high probability"),
        ("cloud_medium", "cloud, medium probability"),
        ("thin_cirrus", "thin cirrus"),
        ("cloud_shadow", "cloud shadow"),
    )
)


def scl_panel(rgb: np.ndarray, scl: np.ndarray | None, valid: np.ndarray) -> np.ndarray:
    """The SCL's cloud and shadow classes over a dimmed true colour (colours:
    :data:`SCL_COLOURS`); SCL no-data and the image's nodata in blue-grey."""
    out = rgb.astype(np.float32) * 0.45
    if scl is not None:
        keep, tint = _scl_tables()
        out = out * keep[scl][..., None] + tint[scl]
    out = out.astype(np.uint8)
    nodata = ~valid if scl is None else (~valid | (scl == SCL_NODATA))
    out[nodata] = NODATA_COLOUR
    return out


@functools.lru_cache(maxsize=1)
def _scl_tables() -> tuple[np.ndarray, np.ndarray]:
    """Per SCL code: the share of the image kept (0.3 under a shown class, else 1) and the
    colour added (70 % of the class colour)."""
    keep = np.ones(256, np.float32)
    tint = np.zeros((256, 3), np.float32)
    for code, colour in SCL_COLOURS.items():
        keep[code] = 0.3
        tint[code] = np.asarray(colour, np.float32) * 0.7
    return keep, tint


@functools.lru_cache(maxsize=8)
def scl_legend(width: int, height: int, *, mask_colour: bool = False) -> np.ndarray:
    """``(height, width, 3)`` legend of the SCL colours (and the model's, with ``mask_colour``)."""
    img = Image.new("RGB", (width, height), (24, 24, 24))
    draw = ImageDraw.Draw(img)
    entries = [(SCL_COLOURS[c], text) for c, text in SCL_LEGEND]
    if mask_colour:
        entries.append((PRED_COLOUR, "model cloud probability"))
    entries.append((NODATA_COLOUR, "no data"))
    line = max(12, min(22, (height - 4) // max(len(entries), 1)))
    size = max(9, line - 6)
    for i, (colour, text) in enumerate(entries):
        y = 3 + i * line
        draw.rectangle((4, y + 2, 4 + line - 6, y + line - 4), fill=colour)
        text, font = fit_text(text, width - line - 4, size, smallest=min(size, 8))
        draw.text((line + 2, y), text, fill=(225, 225, 225), font=font)
    out = np.asarray(img)
    out.flags.writeable = False  # shared between calls (cached)
    return out


def fit_text(text: str, width: float, size: int, smallest: int = 8):
    """``(text, font)`` that fit ``width`` pixels: the text at ``size``, else without its
    "(…)" part, else in a smaller font (down to ``smallest``), else cut short with "…"."""
    candidates = [text, text.split(" (")[0]]
    for font in (_font(px) for px in range(size, smallest - 1, -1)):
        if fits := [t for t in candidates if font.getlength(t) <= width]:
            return fits[0], font
    t = candidates[-1]
    while len(t) > 1 and font.getlength(t + "…") > width:
        t = t[:-1]
    return t + "…", font


@functools.lru_cache(maxsize=64)
def _title_strip(text: str, width: int, height: int) -> np.ndarray:
    img = Image.new("RGB", (width, height), (24, 24, 24))
    text, font = fit_text(text, width - 6, max(10, height - 5))
    ImageDraw.Draw(img).text((3, 2), text, fill=(220, 220, 220), font=font)
    out = np.asarray(img)
    out.flags.writeable = False
    return out


def side_by_side(
    rgb: np.ndarray,
    nir_rgb: np.ndarray,
    label: np.ndarray | None,
    prob: np.ndarray | None,
    valid: np.ndarray,
    *,
    gap: int = 6,
    title_px: int | None = None,
    scl: np.ndarray | None = None,
) -> np.ndarray:
    """One RGB mosaic of a chip: true colour | NIR false colour over label | prediction.

    A single image is what the viewer can swap fastest when the reviewer moves to the
    next chip (one texture instead of four). Each panel has a title strip above it.
    With an SCL (on the chip's grid) the mosaic has three columns: true colour | SCL
    cloud classes | prediction above NIR false colour | label | legend, so the top row
    is the three-panel review of Sen2Cor against the model.
    """
    h, w = rgb.shape[:2]
    title_px = title_px or panel_title_px(w)
    prob = np.zeros((h, w), np.float32) if prob is None else prob
    if scl is None:
        ncol, titles = 2, SIDE_BY_SIDE_TITLES
        panels = [
            rgb,
            nir_rgb,
            label_panel(rgb, label, valid),
            prediction_panel(rgb, prob, label, valid),
        ]
    else:
        ncol, titles = 3, SIDE_BY_SIDE_SCL_TITLES
        panels = [
            rgb,
            scl_panel(rgb, scl, valid),
            prediction_panel(rgb, prob, label, valid),
            nir_rgb,
            label_panel(rgb, label, valid),
            scl_legend(w, h, mask_colour=True),
        ]
    cell_h = h + title_px
    out = np.empty((2 * cell_h + gap, ncol * w + (ncol - 1) * gap, 3), np.uint8)
    out[:] = 24
    for k, (panel, title) in enumerate(zip(panels, titles, strict=True)):
        r, c = divmod(k, ncol)
        y, x = r * (cell_h + gap), c * (w + gap)
        # Titles are drawn once per size and pasted (drawing text over the whole mosaic
        # meant two full copies of it through PIL for every chip).
        out[y : y + title_px, x : x + w] = _title_strip(title, w, title_px)
        out[y + title_px : y + cell_h, x : x + w] = panel
    return out


def three_panel(
    rgb: np.ndarray,
    scl: np.ndarray | None,
    prob: np.ndarray | None,
    valid: np.ndarray,
    *,
    title: str = "",
    titles: tuple[str, str, str] = (
        "true colour (B04 B03 B02)",
        "Sen2Cor SCL cloud classes",
        "model cloud mask",
    ),
    gap: int = 8,
) -> np.ndarray:
    """The review panel for reports: true colour | SCL cloud classes | model mask.

    ``scl`` and ``prob`` are on the grid of ``rgb`` (None leaves that panel dimmed with a
    note); a title line above, the panel titles over each panel and the legend below.
    """
    h, w = rgb.shape[:2]
    panels = [rgb, scl_panel(rgb, scl, valid)]
    if prob is None:
        panels.append((rgb * 0.45).astype(np.uint8))
    else:
        panels.append(prediction_panel(rgb, prob, None, valid))
    entries = [(SCL_COLOURS[c], t) for c, t in SCL_LEGEND]
    entries += [(PRED_COLOUR, "model cloud probability (opacity)"), (NODATA_COLOUR, "no data")]
    font = _font(12)
    width = 3 * w + 2 * gap
    # Legend entries flow left to right and wrap onto new lines in a narrow picture.
    measure = ImageDraw.Draw(Image.new("RGB", (1, 1)))
    places, x, line = [], 4, 0
    for colour, text in entries:
        size = 16 + int(measure.textlength(text, font=font)) + 18
        if x > 4 and x + size > width:
            x, line = 4, line + 1
        places.append((x, line, colour, text))
        x += size
    head, sub, foot = (28 if title else 0), 20, 12 + 18 * (line + 1)
    out = Image.new("RGB", (width, head + sub + h + foot), (24, 24, 24))
    draw = ImageDraw.Draw(out)
    for k, panel in enumerate(panels):
        out.paste(Image.fromarray(np.ascontiguousarray(panel)), (k * (w + gap), head + sub))
        text = titles[k]
        if (k == 1 and scl is None) or (k == 2 and prob is None):
            text += " (none given)"
        draw.text((k * (w + gap) + 3, head + 3), text, fill=(225, 225, 225), font=_font(14))
    if title:
        draw.text((3, 5), title, fill=(240, 240, 240), font=_font(16))
    for x, line, colour, text in places:
        y = head + sub + h + 8 + 18 * line
        draw.rectangle((x, y + 2, x + 12, y + 14), fill=colour)
        draw.text((x + 16, y), text, fill=(210, 210, 210), font=font)
    return np.asarray(out)


def chip_panels(chip: Chip, prob: np.ndarray | None, size: int = 160) -> list[np.ndarray]:
    """Three thumbnails of one chip: true colour, label, prediction with the label outline."""
    rgb = _resize(true_colour(chip.bands), size)
    valid = _resize(chip.valid.astype(np.uint8), size, nearest=True).astype(bool)
    label = None
    if chip.label is not None:
        label = _resize((chip.label == LABEL_CLOUD).astype(np.uint8), size, nearest=True)
    panels = [rgb, label_panel(rgb, label, valid)]
    if prob is not None:
        p = _resize((np.clip(prob, 0, 1) * 255).astype(np.uint8), size).astype(np.float32) / 255
        panels.append(prediction_panel(rgb, p, label, valid))
    return panels


def _font(size: int) -> ImageFont.ImageFont:
    try:
        return ImageFont.load_default(size=size)
    except TypeError:  # Pillow < 10.1
        return ImageFont.load_default()


def contact_sheet(
    scores: pd.DataFrame,
    dataset: ChipDataset,
    predict: Callable[[np.ndarray], np.ndarray] | None,
    out: str | Path,
    *,
    n: int = 24,
    columns: int = 2,
    thumb: int = 160,
    title: str = "",
    highlight: set[str] | None = None,
) -> Path:
    """Write a PNG grid of the ``n`` most suspicious readable chips.

    Each chip gets three panels: true colour; true colour with the label's outline
    (yellow); the model's cloud probability (magenta) with the label's outline. A caption
    gives the rank, chip id, suspicion, IoU, why the chip ranks there, and its flags.

    Args:
        scores: ranked scores table.
        dataset: the dataset the scores came from.
        predict: ``(4, H, W)`` DNs → ``(H, W)`` probabilities, or None for no prediction panel.
        out: PNG path.
        n: how many chips.
        columns: chips per row.
        thumb: panel size in pixels.
        title: a line at the top of the sheet.
        highlight: chip ids whose caption is marked (for example planted errors in a demo).
    """
    rows = scores[scores["error"].fillna("") == ""].head(n)
    n_panels = 3 if predict is not None else 2
    pad, caption = 6, 44
    cell_w = n_panels * thumb + (n_panels - 1) * 2 + pad * 2
    cell_h = thumb + caption + pad
    n_rows = max(1, -(-len(rows) // columns))
    header = 46
    sheet = Image.new("RGB", (columns * cell_w, header + n_rows * cell_h), (24, 24, 24))
    draw = ImageDraw.Draw(sheet)
    font, small = _font(15), _font(12)
    draw.text(
        (pad, 4), title or "chipqa: most suspicious labels first", fill=(235, 235, 235), font=font
    )
    legend = (
        "panels: true colour | label (yellow) | "
        "model cloud probability (magenta) with the label's outline"
    )
    if highlight is not None:
        legend += " | * = planted error"
    draw.text((pad, 24), legend, fill=(170, 170, 170), font=small)
    for i, r in enumerate(rows.itertuples(index=False)):
        cx = (i % columns) * cell_w + pad
        cy = header + (i // columns) * cell_h
        try:
            chip = dataset.read(r.chip_id)
        except (ChipReadError, KeyError):
            continue
        prob = predict(chip.bands) if predict is not None else None
        for j, panel in enumerate(chip_panels(chip, prob, thumb)):
            sheet.paste(Image.fromarray(panel), (cx + j * (thumb + 2), cy + caption))
        mark = "*" if highlight is not None and r.chip_id in highlight else " "
        line1 = f"{mark}#{r.rank} {r.chip_id}  suspicion {r.suspicion:.2f}  IoU {r.iou:.2f}"
        line2 = str(getattr(r, "why", "") or "")  # why it ranks here, cut to the cell
        while draw.textlength(line2, font=small) > cell_w - 2 * pad and len(line2) > 2:
            line2 = line2[:-2] + "…"
        colour = (255, 190, 120) if mark == "*" else (235, 235, 235)
        draw.text((cx, cy + 1), line1, fill=colour, font=small)
        draw.text((cx, cy + 15), line2, fill=(170, 170, 170), font=small)
        draw.text((cx, cy + 29), str(r.flags).replace(";", " "), fill=(150, 150, 150), font=small)
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    sheet.save(out)
    return out
