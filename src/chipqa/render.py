"""Pictures of chips: true colour with a fixed stretch, outlines, and contact sheets.

The stretch is fixed (not per chip) so that chips can be compared with each other: a
dark chip looks dark and an overcast one looks white, as a curator expects.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image, ImageDraw, ImageFont
from skimage.segmentation import find_boundaries

from chipqa.dataset import Chip, ChipDataset
from chipqa.errors import ChipReadError

TRUE_COLOUR_MAX = 3000.0
"""Reflectance x 10 000 shown as full brightness in true colour (B04, B03, B02)."""
TRUE_COLOUR_GAMMA = 0.8
FALSE_COLOUR_MAX = (5000.0, 3000.0, 3000.0)
"""Full-brightness DNs of the NIR false-colour composite (B08, B04, B03)."""

LABEL_COLOUR = (255, 221, 0)
PRED_COLOUR = (255, 0, 200)
NODATA_COLOUR = (40, 60, 90)


def _stretch(x: np.ndarray, vmax: float, gamma: float) -> np.ndarray:
    y = np.clip(x.astype(np.float32) / vmax, 0.0, 1.0) ** gamma
    return (y * 255.0 + 0.5).astype(np.uint8)


def true_colour(bands: np.ndarray, vmax: float = TRUE_COLOUR_MAX, gamma: float = TRUE_COLOUR_GAMMA) -> np.ndarray:
    """``(4, H, W)`` DNs (B02, B03, B04, B08) → ``(H, W, 3)`` uint8 RGB from B04, B03, B02."""
    return np.stack([_stretch(bands[i], vmax, gamma) for i in (2, 1, 0)], axis=-1)


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
    out = rgb.copy()
    if fill > 0:
        tint = np.asarray(colour, np.float32)
        out[m] = (out[m] * (1 - fill) + tint * fill).astype(np.uint8)
    edge = find_boundaries(np.pad(m, 1), mode="inner")[1:-1, 1:-1]
    out[edge] = colour
    return out


def _resize(arr: np.ndarray, size: int, nearest: bool = False) -> np.ndarray:
    img = Image.fromarray(arr)
    return np.asarray(img.resize((size, size), Image.NEAREST if nearest else Image.BILINEAR))


def chip_panels(chip: Chip, prob: np.ndarray | None, size: int = 160) -> list[np.ndarray]:
    """Three thumbnails of one chip: true colour, + label outline, prediction + label outline."""
    rgb = _resize(true_colour(chip.bands), size)
    nodata = _resize((~chip.valid).astype(np.uint8), size, nearest=True).astype(bool)
    panels = [rgb]
    if chip.label is not None:
        lab = _resize((chip.label == 1).astype(np.uint8), size, nearest=True)
        with_label = draw_outline(rgb, lab, LABEL_COLOUR, fill=0.3)
    else:
        lab = None
        with_label = rgb.copy()
    with_label[nodata] = NODATA_COLOUR
    panels.append(with_label)
    if prob is not None:
        p = _resize((np.clip(prob, 0, 1) * 255).astype(np.uint8), size)
        pred_rgb = np.stack([p, (p * 0.2).astype(np.uint8), (p * 0.8).astype(np.uint8)], -1)
        pred_rgb = np.maximum(pred_rgb, (rgb * 0.35).astype(np.uint8))
        if lab is not None:
            pred_rgb = draw_outline(pred_rgb, lab, LABEL_COLOUR)
        pred_rgb[nodata] = NODATA_COLOUR
        panels.append(pred_rgb)
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
    gives the rank, chip id, suspicion, IoU, label and predicted cloud fractions and flags.

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
    draw.text((pad, 4), title or "chipqa: most suspicious labels first", fill=(235, 235, 235), font=font)
    legend = "panels: true colour | label (yellow) | model cloud probability (magenta) + label outline"
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
        line2 = f"label {r.label_cloud_fraction:.0%} cloud, model {r.pred_cloud_fraction:.0%}"
        colour = (255, 190, 120) if mark == "*" else (235, 235, 235)
        draw.text((cx, cy + 1), line1, fill=colour, font=small)
        draw.text((cx, cy + 15), line2, fill=(170, 170, 170), font=small)
        draw.text((cx, cy + 29), str(r.flags).replace(";", " "), fill=(150, 150, 150), font=small)
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    sheet.save(out)
    return out
