"""The viewer layers that show one chip, reused from chip to chip."""

from __future__ import annotations

from collections.abc import Callable
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
CHIP_LAYER_NAMES = (
    TRUE_COLOUR,
    FALSE_COLOUR,
    SCL_LAYER,
    LABEL,
    PREDICTION,
    LABEL_OUTLINE,
    PRED_OUTLINE,
)
LAYER_NAMES = (*CHIP_LAYER_NAMES, SIDE_BY_SIDE_LAYER)

SIDE_BY_SIDE = "side by side"
LAYERS = "layers"
GALLERY = "gallery"
MODES = (SIDE_BY_SIDE, LAYERS)
VIEWS = (GALLERY, SIDE_BY_SIDE, LAYERS)
_IN_VIEWER = {SIDE_BY_SIDE: (SIDE_BY_SIDE_LAYER,), LAYERS: CHIP_LAYER_NAMES}
_VISIBLE = {
    SIDE_BY_SIDE: {SIDE_BY_SIDE_LAYER},
    LAYERS: {TRUE_COLOUR, LABEL_OUTLINE, PRED_OUTLINE},
}

YELLOW = (1.0, 0.87, 0.0, 1.0)
MAGENTA = (1.0, 0.0, 0.8, 1.0)
NODATA = (0.16, 0.24, 0.35, 1.0)
DIMMED = 0.35
"""Opacity factor of the chip still on screen while the next one loads."""
ERROR_TEXT = (1.0, 0.42, 0.42, 1.0)
DECISION_COLOURS = {
    "keep": (0.45, 0.9, 0.45, 1.0),
    "block": (1.0, 0.42, 0.42, 1.0),
    "unsure": (1.0, 0.8, 0.3, 1.0),
    "fix": (0.4, 0.8, 1.0, 1.0),
    None: (1.0, 1.0, 1.0, 1.0),
}


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


TEXT_MARGIN = 0.1
"""Share of the canvas left around a chip when it is fitted to the view: the top band
holds the decision badge, so that it covers neither pixels nor panel titles."""


class CanvasText:
    """The one line of text napari shows over the canvas, shared by what chipqa says
    there: the help (``h``) wins over a note (loading, an error), which comes after the
    chip's decision badge."""

    def __init__(self, viewer: napari.Viewer):
        self.viewer = viewer
        self.badge, self.badge_colour = "", DECISION_COLOURS[None]
        self.note_text, self.note_error = "", False
        self.help_text = ""

    def refresh(self) -> None:
        overlay = text_overlay(self.viewer)
        if self.help_text:
            text, colour = self.help_text, (1.0, 1.0, 1.0, 1.0)
        else:
            text = "\n".join(t for t in (self.badge, self.note_text) if t)
            colour = ERROR_TEXT if self.note_error and self.note_text else self.badge_colour
        if not text:
            if overlay.visible:
                overlay.visible = False
            return
        if overlay.text != text:
            overlay.text = text
        if overlay.color is None or tuple(overlay.color) != tuple(colour):
            overlay.color = colour
        # The help is a table of keys: left-aligned at the top left (napari aligns the
        # text to the side it is on); the badge is a short note at the top right.
        position = "top_left" if self.help_text else "top_right"
        if overlay.position != position:
            overlay.position = position
            overlay.font_size = 11
        overlay.visible = True

    def clear(self) -> None:
        self.badge = self.note_text = self.help_text = ""
        self.refresh()

    def hide_badge(self) -> None:
        """Take the badge off at once, cheaply: the text is made transparent, not laid
        out again (that costs napari as much as drawing a chip), until :meth:`refresh`
        shows the next one. (Hiding the overlay and showing it with new text crashed
        Mesa's software renderer.)"""
        self.badge = ""
        if self.help_text or self.note_text:
            self.refresh()
            return
        overlay = text_overlay(self.viewer)
        if overlay.visible and overlay.color is not None and overlay.color[3] != 0:
            r, g, b, _ = overlay.color
            overlay.color = (r, g, b, 0.0)


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
      inspected. The SCL layer is empty for a chip without an SCL. An outline runs
      along the chip's border where the mask reaches it, so an all-cloud label or
      prediction is a frame.

    Only the current view's layers are in the viewer, so napari's *reset view* fits the
    chip. Every layer always holds the current chip (layers not in the viewer are
    filled without being drawn), so switching views never shows a stale chip.
    """

    def __init__(self, viewer: napari.Viewer, text: CanvasText | None = None):
        self.viewer = viewer
        self.mode = SIDE_BY_SIDE
        self.active = True  # False while another view (the gallery) is on the canvas
        self.chip_id: str | None = None
        self.text = text or CanvasText(viewer)
        self.on_created: list[Callable[[object], None]] = []
        self._layers: dict[str, object] = {}
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

    def layer(self, name: str):
        """One of the chip's layers (in the viewer or not); None before the first chip."""
        return self._layers.get(name)

    @property
    def layers(self) -> list:
        return [self._layers[n] for n in LAYER_NAMES if n in self._layers]

    def _ensure(self, shape: tuple[int, int], mosaic_shape: tuple[int, ...]) -> None:
        if len(self._layers) == len(LAYER_NAMES):
            return
        from napari.layers import Image, Labels

        # Each layer gets a buffer of its own: pixels are later copied into it in place.
        def rgb(name):
            return Image(np.zeros((*shape, 3), np.uint8), name=name, rgb=True,
                         contrast_limits=(0, 255))  # fmt: skip

        def blank():
            return np.zeros(shape, np.uint8)

        made = {
            TRUE_COLOUR: lambda: rgb(TRUE_COLOUR),
            FALSE_COLOUR: lambda: rgb(FALSE_COLOUR),
            SCL_LAYER: lambda: Labels(
                blank(), name=SCL_LAYER, colormap=scl_colormap(), opacity=0.6
            ),
            LABEL: lambda: Labels(
                blank(), name=LABEL, colormap=_label_colormap(YELLOW), opacity=0.5
            ),
            PREDICTION: lambda: Image(
                np.zeros(shape, np.float32),
                name=PREDICTION,
                colormap="magma",
                contrast_limits=(0.0, 1.0),
                opacity=0.7,
                blending="additive",
            ),
            LABEL_OUTLINE: lambda: Labels(
                blank(), name=LABEL_OUTLINE, colormap=_label_colormap(YELLOW), opacity=1.0
            ),
            PRED_OUTLINE: lambda: Labels(
                blank(), name=PRED_OUTLINE, colormap=_label_colormap(MAGENTA), opacity=1.0
            ),
            SIDE_BY_SIDE_LAYER: lambda: Image(
                np.zeros(mosaic_shape, np.uint8),
                name=SIDE_BY_SIDE_LAYER,
                rgb=True,
                contrast_limits=(0, 255),
            ),
        }
        for name in LAYER_NAMES:
            if name not in self._layers:
                layer = made[name]()
                layer.editable = False
                layer.visible = name in _VISIBLE[LAYERS] or name == SIDE_BY_SIDE_LAYER
                self._layers[name] = layer
                for callback in self.on_created:
                    callback(layer)
        self._attach()

    def _attach(self) -> bool:
        """Put the current view's layers into the viewer and take the others out; True
        when anything changed (the view is then reset)."""
        v = self.viewer
        wanted = _IN_VIEWER[self.mode] if self.active else ()
        changed = False
        for name in LAYER_NAMES:
            layer = self._layers.get(name)
            if layer is None:
                continue
            inside = layer in v.layers
            if name in wanted and not inside:
                v.layers.append(layer)
                changed = True
            elif name not in wanted and inside:
                v.layers.remove(layer)
                changed = True
        if changed and self.active:
            top = self._layers.get(SIDE_BY_SIDE_LAYER if self.mode == SIDE_BY_SIDE else TRUE_COLOUR)
            if top is not None:
                v.layers.selection.active = top
        return changed

    def detach(self) -> None:
        """Take every chip layer out of the viewer (another view is on the canvas)."""
        self.active = False
        self._attach()

    def set_mode(self, mode: str) -> None:
        if mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}")
        self.mode, self.active = mode, True
        viewer_grid(self.viewer).enabled = False
        if self._attach():
            self.viewer.reset_view(margin=TEXT_MARGIN)

    def note(self, text: str = "", *, error: bool = False) -> None:
        """A line over the canvas (a chip loading, why a chip cannot be shown); "" hides it."""
        self.text.note_text, self.text.note_error = text, error
        self.text.refresh()

    def _put(self, name: str, array: np.ndarray) -> None:
        """Give a layer new pixels as cheaply as napari allows.

        Same shape and dtype: copy into the layer's own buffer and refresh it if it is
        drawn (napari then skips recomputing extents and dims, about half the cost of
        ``layer.data = …``; a layer not drawn is refreshed by napari when it is shown).
        Otherwise the layer gets a private copy, so that the loader's cached arrays are
        never written to.
        """
        layer = self._layers[name]
        old = layer.data
        if isinstance(old, np.ndarray) and old.shape == array.shape and old.dtype == array.dtype:
            old[...] = array
            if layer.visible and layer in self.viewer.layers:
                layer.refresh()
        else:
            layer.data = np.array(array, copy=True)

    def clear(self, chip_id: str, card: np.ndarray | None = None) -> None:
        """Blank every layer (for a chip that cannot be read), so no other chip shows;
        ``card`` (an RGB picture saying why) goes where the side-by-side mosaic was."""
        self.dim(False)
        for layer in self.layers:
            if isinstance(layer.data, np.ndarray):
                layer.data[...] = 0
                if layer.visible and layer in self.viewer.layers:
                    layer.refresh()
            layer.metadata["chip_id"] = chip_id
        if card is not None and SIDE_BY_SIDE_LAYER in self._layers:
            self._put(SIDE_BY_SIDE_LAYER, card)
            if self.mode == SIDE_BY_SIDE and self.active:
                self.viewer.reset_view(margin=TEXT_MARGIN)
                self._shape = None
        self.chip_id = chip_id

    def show(self, view: ChipView) -> None:
        """Put one chip's arrays into the layers (creating them the first time)."""
        self.dim(False)
        if view.chip is None:
            if not self._layers and view.mosaic is not None:
                self._ensure((64, 64), (64, 64, 3))
            self.clear(view.chip_id, view.mosaic)
            return
        shape = view.chip.shape
        self._ensure(shape, view.mosaic.shape)
        if self.active and any(
            self._layers[n] not in self.viewer.layers for n in _IN_VIEWER[self.mode]
        ):
            self._attach()  # the user removed one of them: it comes back
        zeros = np.zeros(shape, np.uint8)
        label = view.label if view.label is not None else zeros
        prob = view.prob if view.prob is not None else np.zeros(shape, np.float32)
        drawn = set(_IN_VIEWER[self.mode]) if self.active else set()
        # Layers drawn last: the others are only a memory copy each.
        order = sorted(LAYER_NAMES, key=lambda n: n in drawn)
        arrays = {
            TRUE_COLOUR: view.true_colour,
            FALSE_COLOUR: view.false_colour,
            SCL_LAYER: view.scl if view.scl is not None else zeros,
            LABEL: label,
            PREDICTION: prob,
            LABEL_OUTLINE: view.label_outline if view.label_outline is not None else zeros,
            PRED_OUTLINE: view.pred_outline if view.pred_outline is not None else zeros,
            SIDE_BY_SIDE_LAYER: view.mosaic,
        }
        for name in order:
            self._put(name, arrays[name])
            self._layers[name].metadata["chip_id"] = view.chip_id
        self.chip_id = view.chip_id
        key = (*shape, *view.mosaic.shape)
        if key != self._shape and self.active:
            self._shape = key
            self.viewer.reset_view(margin=TEXT_MARGIN)
