"""The viewer layers that show one chip, reused from chip to chip."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from chipqa.review import ChipView

if TYPE_CHECKING:
    import napari

TRUE_COLOUR = "true colour"
FALSE_COLOUR = "NIR false colour"
LABEL = "label"
PREDICTION = "prediction"
LABEL_OUTLINE = "label outline"
PRED_OUTLINE = "prediction outline"
LAYER_NAMES = (TRUE_COLOUR, FALSE_COLOUR, LABEL, PREDICTION, LABEL_OUTLINE, PRED_OUTLINE)

SIDE_BY_SIDE = "side by side"
OVERLAY = "overlay"
MODES = (SIDE_BY_SIDE, OVERLAY)
_VISIBLE = {
    SIDE_BY_SIDE: {TRUE_COLOUR, FALSE_COLOUR, LABEL, PREDICTION},
    OVERLAY: {TRUE_COLOUR, LABEL_OUTLINE, PRED_OUTLINE},
}

YELLOW = (1.0, 0.87, 0.0, 1.0)
MAGENTA = (1.0, 0.0, 0.8, 1.0)
NODATA = (0.16, 0.24, 0.35, 1.0)


def _label_colormap(colour):
    from napari.utils.colormaps import DirectLabelColormap

    return DirectLabelColormap(
        color_dict={None: (0, 0, 0, 0), 0: (0, 0, 0, 0), 1: colour, 255: NODATA}
    )


def viewer_grid(viewer: napari.Viewer):
    """napari's grid settings (``viewer.canvas.grid`` since napari 0.9, ``viewer.grid`` before)."""
    canvas = getattr(viewer, "canvas", None)
    return canvas.grid if canvas is not None and hasattr(canvas, "grid") else viewer.grid


class ChipLayers:
    """Six layers for the current chip; created once, then only their data changes.

    Side by side (napari's grid, one view per layer): true colour | NIR false colour |
    label | prediction. Overlay: the label (yellow) and the prediction (magenta) as
    outlines on the true colour. Contrast is fixed (see :mod:`chipqa.render`), never
    recomputed per chip, so that chips can be compared.
    """

    def __init__(self, viewer: napari.Viewer):
        self.viewer = viewer
        self.mode = SIDE_BY_SIDE
        self.chip_id: str | None = None
        self._shape: tuple[int, int] | None = None

    def _get(self, name: str):
        return self.viewer.layers[name] if name in self.viewer.layers else None

    @property
    def layers(self) -> list:
        return [ly for ly in (self._get(n) for n in LAYER_NAMES) if ly is not None]

    def _ensure(self, shape: tuple[int, int]) -> None:
        v = self.viewer
        blank_rgb = np.zeros((*shape, 3), np.uint8)
        blank = np.zeros(shape, np.uint8)
        if self._get(TRUE_COLOUR) is None:
            v.add_image(blank_rgb, name=TRUE_COLOUR, rgb=True, contrast_limits=(0, 255))
        if self._get(FALSE_COLOUR) is None:
            v.add_image(blank_rgb, name=FALSE_COLOUR, rgb=True, contrast_limits=(0, 255))
        if self._get(LABEL) is None:
            v.add_labels(blank, name=LABEL, colormap=_label_colormap(YELLOW), opacity=0.9)
        if self._get(PREDICTION) is None:
            v.add_image(np.zeros(shape, np.float32), name=PREDICTION, colormap="magma",
                        contrast_limits=(0.0, 1.0))
        if self._get(LABEL_OUTLINE) is None:
            v.add_labels(blank, name=LABEL_OUTLINE, colormap=_label_colormap(YELLOW)).contour = 2
        if self._get(PRED_OUTLINE) is None:
            v.add_labels(blank, name=PRED_OUTLINE, colormap=_label_colormap(MAGENTA)).contour = 2
        for layer in self.layers:
            layer.editable = False
        self.set_mode(self.mode)

    def set_mode(self, mode: str) -> None:
        if mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}")
        self.mode = mode
        visible = _VISIBLE[mode]
        for layer in self.layers:
            layer.visible = layer.name in visible
        grid = viewer_grid(self.viewer)
        grid.stride = 1  # one layer per view; true colour (the bottom layer) top left
        grid.enabled = mode == SIDE_BY_SIDE

    def show(self, view: ChipView) -> None:
        """Put one chip's arrays into the layers (creating them the first time)."""
        if view.chip is None:
            return
        shape = view.chip.shape
        self._ensure(shape)
        label = view.label if view.label is not None else np.zeros(shape, np.uint8)
        prob = view.prob if view.prob is not None else np.zeros(shape, np.float32)
        self._get(TRUE_COLOUR).data = view.true_colour
        self._get(FALSE_COLOUR).data = view.false_colour
        self._get(LABEL).data = label
        self._get(PREDICTION).data = prob
        self._get(LABEL_OUTLINE).data = (label == 1).astype(np.uint8)
        self._get(PRED_OUTLINE).data = (prob >= 0.5).astype(np.uint8)
        for layer in self.layers:
            layer.metadata["chip_id"] = view.chip_id
        self.chip_id = view.chip_id
        if shape != self._shape:
            self._shape = shape
            self.viewer.reset_view()
