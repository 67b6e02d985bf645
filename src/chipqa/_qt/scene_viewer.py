"""A whole scene in napari: true colour | SCL cloud classes | model mask, multiscale and lazy.

The layers hold the pyramids of :func:`chipqa.scene.scene_pyramid`: napari draws
the level that fits the zoom and computes only the chunks in view, so a scene of
10 000 × 10 000 pixels or more pans without ever being read whole.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from chipqa._qt.chip_layers import scl_colormap, viewer_grid
from chipqa.render import PRED_COLOUR
from chipqa.scene import Scene, mask_is_classes, open_scene, scene_pyramid

if TYPE_CHECKING:
    import napari

SCENE_RGB = "true colour"
SCENE_SCL = "SCL cloud classes"
SCENE_MASK = "model mask"
LAYOUTS = ("side by side", "grid")


def _mask_colormap():
    from napari.utils.colormaps import Colormap

    end = [c / 255 for c in PRED_COLOUR]
    return Colormap([[0.0, 0.0, 0.0, 1.0], [*end, 1.0]], name="chipqa cloud probability")


def open_scene_in_viewer(
    viewer: napari.Viewer,
    scene: str | Path | Scene,
    *,
    mask: str | Path | None = None,
    scl: str | Path | None = None,
    layout: str = "side by side",
    smallest: int = 1024,
) -> list:
    """Add a scene's panels to ``viewer`` as multiscale layers; returns the layers.

    ``layout``: ``"side by side"`` places the panels next to each other (translated by
    the scene's width plus a small gap), ``"grid"`` uses napari's grid mode.
    ``smallest``: the longer side of the coarsest level (a scene that small is one level).
    """
    if layout not in LAYOUTS:
        raise ValueError(f"layout must be one of {LAYOUTS}")
    sc = scene if isinstance(scene, Scene) else open_scene(scene)
    pyr = scene_pyramid(sc, mask=mask, scl=scl, smallest=smallest)
    multi = len(pyr["rgb"]) > 1
    if not multi:  # napari wants a single array, not a one-level pyramid
        pyr = {k: v[0] for k, v in pyr.items()}
    step = sc.width + max(8, sc.width // 50) if layout == "side by side" else 0
    layers = [
        viewer.add_image(
            pyr["rgb"], multiscale=multi, rgb=True, contrast_limits=(0, 255), name=SCENE_RGB
        )
    ]
    if scl is not None:
        layers.append(
            viewer.add_labels(
                pyr["scl"],
                multiscale=multi,
                name=SCENE_SCL,
                colormap=scl_colormap(),
                opacity=1.0,
                translate=(0, step),
            )
        )
    if mask is not None:
        top = 1 if mask_is_classes(mask) else 100
        layers.append(
            viewer.add_image(
                pyr["mask"],
                multiscale=multi,
                name=SCENE_MASK,
                colormap=_mask_colormap(),
                contrast_limits=(0, top),
                translate=(0, step * (len(layers))),
            )
        )
    for layer in layers:
        layer.editable = False
        layer.metadata["scene"] = str(sc.path)
    viewer_grid(viewer).enabled = layout == "grid"
    viewer.reset_view()
    return layers
