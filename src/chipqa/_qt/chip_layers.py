"""The viewer layers that show one chip, reused from chip to chip."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from chipqa.review.loader import ChipView

if TYPE_CHECKING:
    import napari

TRUE_COLOUR = "true colour"
FALSE_COLOUR = "NIR false colour"
LABEL = "label"
PREDICTION = "prediction"
LABEL_OUTLINE = "label outline"
PRED_OUTLINE = "prediction outline"
SIDE_BY_SIDE_LAYER = "side by side"
SCL_LAYER = "SCL cloud classes"
LAYER_NAMES = (
    TRUE_COLOUR,
    FALSE_COLOUR,
    SCL_LAYER,
    LABEL,
    PREDICTION,
    LABEL_OUTLINE,
    PRED_OUTLINE,
    SIDE_BY_SIDE_LAYER,
)

SIDE_BY_SIDE = "side by side"
LAYERS = "layers"
MODES = (SIDE_BY_SIDE, LAYERS)
_VISIBLE = {
    SIDE_BY_SIDE: {SIDE_BY_SIDE_LAYER},
    LAYERS: {TRUE_COLOUR, LABEL_OUTLINE, PRED_OUTLINE},
}

YELLOW = (1.0, 0.87, 0.0, 1.0)
MAGENTA = (1.0, 0.0, 0.8, 1.0)
NODATA = (0.16, 0.24, 0.35, 1.0)
DIMMED = 0.35
ERROR_TEXT = (1.0, 0.42, 0.42, 1.0)
"""Opacity factor of the chip still on screen while the next one loads."""


def viewer_grid(viewer: napari.Viewer):
    """napari's grid settings (``viewer.canvas.grid`` since napari 0.9, ``viewer.grid`` before)."""
    canvas = getattr(viewer, "canvas", None)
    return canvas.grid if canvas is not None and hasattr(canvas, "grid") else viewer.grid


def text_overlay(viewer: napari.Viewer):
    """napari's text over the canvas (``viewer.canvas.overlays.text`` since napari 0.9,
    ``viewer.text_overlay`` before)."""
    canvas = getattr(viewer, "canvas", None)
    overlays = getattr(canvas, "overlays", None)
    return overlays.text if overlays is not None else viewer.text_overlay


def scl_colormap():
    """napari colours of the SCL classes shown (those of :data:`chipqa.render.SCL_COLOURS`);
    every other class is transparent."""
    from napari.utils.colormaps import DirectLabelColormap

    from chipqa.render import SCL_COLOURS

    colours = {code: (*(c / 255 for c in rgb), 1.0) for code, rgb in SCL_COLOURS.items()}
    return DirectLabelColormap(color_dict={None: (0, 0, 0, 0), **colours})


def _label_colormap(colour):
    from napari.utils.colormaps import DirectLabelColormap

    return DirectLabelColormap(
        color_dict={None: (0, 0, 0, 0), 0: (0, 0, 0, 0), 1: colour, 255: NODATA}
    )


class ChipLayers:
    """The layers of the current chip; created once, then only their pixels change.

    Two ways to look at a chip (``g`` switches):

    * **side by side**: one image holding true colour | NIR false colour over label |
      prediction (each mask over the dimmed true colour, the label's outline on the
      prediction). One image is the fastest thing to swap when the reviewer moves on.
      A chip with a Sen2Cor SCL gets three columns: true colour | SCL cloud classes |
      prediction above NIR false colour | label | legend.
    * **layers**: the same content as separate napari layers (true colour, NIR false
      colour, SCL cloud classes, label, prediction, label and prediction outlines),
      outlines over true colour by default; any of them can be toggled, blended and
      inspected. The SCL layer is empty for a chip without an SCL.

    Every layer always holds the current chip (hidden ones are filled without being
    redrawn), so switching modes or toggling a layer never shows a stale chip. Contrast
    is fixed (see :mod:`chipqa.render`), never recomputed per chip.
    """

    def __init__(self, viewer: napari.Viewer):
        self.viewer = viewer
        self.mode = SIDE_BY_SIDE
        self.chip_id: str | None = None
        self._shape: tuple[int, int] | None = None
        self._opacity: dict[str, float] = {}  # each layer's own opacity while dimmed

    @property
    def dimmed(self) -> bool:
        return bool(self._opacity)

    def dim(self, on: bool = True) -> None:
        """Dim the chip on screen (the next one is loading) or restore it."""
        if on and not self._opacity:
            for layer in self.layers:
                self._opacity[layer.name] = layer.opacity
                layer.opacity = layer.opacity * DIMMED
        elif not on and self._opacity:
            for layer in self.layers:
                if layer.name in self._opacity:
                    layer.opacity = self._opacity[layer.name]
            self._opacity = {}

    def _get(self, name: str):
        return self.viewer.layers[name] if name in self.viewer.layers else None

    @property
    def layers(self) -> list:
        return [ly for ly in (self._get(n) for n in LAYER_NAMES) if ly is not None]

    def _ensure(self, shape: tuple[int, int], mosaic_shape: tuple[int, ...]) -> None:
        if len(self.layers) == len(LAYER_NAMES):
            return
        v = self.viewer

        # Each layer gets a buffer of its own: pixels are later copied into it in place.
        def blank_rgb():
            return np.zeros((*shape, 3), np.uint8)

        def blank():
            return np.zeros(shape, np.uint8)

        if self._get(TRUE_COLOUR) is None:
            v.add_image(blank_rgb(), name=TRUE_COLOUR, rgb=True, contrast_limits=(0, 255))
        if self._get(FALSE_COLOUR) is None:
            v.add_image(blank_rgb(), name=FALSE_COLOUR, rgb=True, contrast_limits=(0, 255))
        if self._get(SCL_LAYER) is None:
            v.add_labels(blank(), name=SCL_LAYER, colormap=scl_colormap(), opacity=0.6)
        if self._get(LABEL) is None:
            v.add_labels(blank(), name=LABEL, colormap=_label_colormap(YELLOW), opacity=0.5)
        if self._get(PREDICTION) is None:
            v.add_image(
                np.zeros(shape, np.float32),
                name=PREDICTION,
                colormap="magma",
                contrast_limits=(0.0, 1.0),
                opacity=0.7,
                blending="additive",
            )
        if self._get(LABEL_OUTLINE) is None:
            v.add_labels(blank(), name=LABEL_OUTLINE, colormap=_label_colormap(YELLOW)).contour = 2
        if self._get(PRED_OUTLINE) is None:
            v.add_labels(blank(), name=PRED_OUTLINE, colormap=_label_colormap(MAGENTA)).contour = 2
        if self._get(SIDE_BY_SIDE_LAYER) is None:
            v.add_image(
                np.zeros(mosaic_shape, np.uint8),
                name=SIDE_BY_SIDE_LAYER,
                rgb=True,
                contrast_limits=(0, 255),
            )
        for layer in self.layers:
            layer.editable = False
        self.set_mode(self.mode)

    def set_mode(self, mode: str) -> None:
        if mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}")
        changed = mode != self.mode
        self.mode = mode
        visible = _VISIBLE[mode]
        for layer in self.layers:
            layer.visible = layer.name in visible
        viewer_grid(self.viewer).enabled = False
        if changed:
            self.viewer.reset_view()

    def note(self, text: str = "", *, error: bool = False) -> None:
        """A line over the canvas (a chip loading, why a chip cannot be shown); "" hides it."""
        overlay = text_overlay(self.viewer)
        if not text:
            if overlay.visible:
                overlay.visible = False
            return
        overlay.color = ERROR_TEXT if error else (1.0, 1.0, 1.0, 1.0)
        overlay.text = text
        overlay.visible = True

    def _put(self, name: str, array: np.ndarray) -> None:
        """Give a layer new pixels as cheaply as napari allows.

        Same shape and dtype: copy into the layer's own buffer and refresh it if it is
        visible (napari then skips recomputing extents and dims, about half the cost of
        ``layer.data = …``; a hidden layer is refreshed by napari when it is shown).
        Otherwise the layer gets a private copy, so that the loader's cached arrays are
        never written to.
        """
        layer = self._get(name)
        old = layer.data
        if isinstance(old, np.ndarray) and old.shape == array.shape and old.dtype == array.dtype:
            old[...] = array
            if layer.visible:
                layer.refresh()
        else:
            layer.data = np.array(array, copy=True)

    def clear(self, chip_id: str) -> None:
        """Blank every layer (for a chip that cannot be read), so no other chip shows."""
        self.dim(False)
        for layer in self.layers:
            if isinstance(layer.data, np.ndarray):
                layer.data[...] = 0
                if layer.visible:
                    layer.refresh()
            layer.metadata["chip_id"] = chip_id
        self.chip_id = chip_id

    def show(self, view: ChipView) -> None:
        """Put one chip's arrays into the layers (creating them the first time)."""
        self.dim(False)
        if view.chip is None:
            self.clear(view.chip_id)
            return
        shape = view.chip.shape
        self._ensure(shape, view.mosaic.shape)
        label = view.label if view.label is not None else np.zeros(shape, np.uint8)
        prob = view.prob if view.prob is not None else np.zeros(shape, np.float32)
        # Visible layers last: the hidden ones are only a memory copy each.
        order = sorted(LAYER_NAMES, key=lambda n: n in _VISIBLE[self.mode])
        arrays = {
            TRUE_COLOUR: view.true_colour,
            FALSE_COLOUR: view.false_colour,
            SCL_LAYER: view.scl if view.scl is not None else np.zeros(shape, np.uint8),
            LABEL: label,
            PREDICTION: prob,
            LABEL_OUTLINE: (label == 1).astype(np.uint8),
            PRED_OUTLINE: (prob >= 0.5).astype(np.uint8),
            SIDE_BY_SIDE_LAYER: view.mosaic,
        }
        for name in order:
            self._put(name, arrays[name])
            self._get(name).metadata["chip_id"] = view.chip_id
        self.chip_id = view.chip_id
        if shape != self._shape:
            self._shape = shape
            self.viewer.reset_view()
