"""Whole scenes of any size: read them, mask them, compare with Sen2Cor's SCL, view them.

A scene is a GeoTIFF / Cloud-Optimized GeoTIFF / VRT whose bands carry their Sentinel-2
names as descriptions (or, without descriptions, four bands in B02, B03, B04, B08 order),
or a folder of the four single-band files ``B02.tif … B08.tif``. Nothing here ever reads
a scene whole: masks are predicted and written strip by strip, compared with the SCL
strip by strip, and viewed from decimated reads and lazy pyramids.

* :mod:`chipqa.scene.read`: :class:`Scene`, :func:`open_scene`, band names.
* :mod:`chipqa.scene.mask`: :func:`mask_scene` (tiled inference with blended overlaps,
  written as a Cloud-Optimized GeoTIFF) and reading its values back.
* :mod:`chipqa.scene.scl`: :func:`scl_statistics`, the mask against the SCL.
* :mod:`chipqa.scene.view`: the three-panel picture and the pyramids for napari.
"""

from chipqa.scene.mask import (
    NODATA_OUT,
    blend_weights,
    check_output,
    input_rasters,
    mask_cloud,
    mask_is_classes,
    mask_probability,
    mask_scene,
    model_bands,
)
from chipqa.scene.read import Scene, SceneError, band_name, open_scene, scale_for_resolution
from chipqa.scene.scl import scl_statistics, stats_path_for, write_scl_statistics
from chipqa.scene.view import (
    ScenePanel,
    display_shape,
    level_shapes,
    read_on_grid,
    scene_panel,
    scene_pyramid,
    write_scene_panel,
)

__all__ = [
    "NODATA_OUT",
    "Scene",
    "SceneError",
    "ScenePanel",
    "band_name",
    "blend_weights",
    "check_output",
    "display_shape",
    "input_rasters",
    "level_shapes",
    "mask_cloud",
    "mask_is_classes",
    "mask_probability",
    "mask_scene",
    "model_bands",
    "open_scene",
    "read_on_grid",
    "scale_for_resolution",
    "scene_panel",
    "scene_pyramid",
    "scl_statistics",
    "stats_path_for",
    "write_scene_panel",
    "write_scl_statistics",
]
