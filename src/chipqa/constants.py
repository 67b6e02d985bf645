"""The facts of the data that every part of chipqa shares, defined once.

Bands, nodata values, label values and the Sen2Cor Scene Classification codes are read
off real Sentinel-2 L2A chips (On Cloud N) and Sen2Cor's documentation; the default
threshold and temperature are the scoring conventions of :mod:`chipqa.stats`.
"""

from __future__ import annotations

BANDS: tuple[str, ...] = ("B02", "B03", "B04", "B08")
"""Band names in the order chipqa stacks them: blue, green, red, near-infrared."""

BAND_NODATA = 0
"""Band value meaning "no data" (Sentinel-2 L2A's nodata, declared in each band TIFF)."""

REFLECTANCE_SCALE = 10_000
"""Band DNs are surface reflectance × this factor."""

LABEL_CLEAR = 0
LABEL_CLOUD = 1
LABEL_NODATA = 255
"""Label value of pixels without a label; left out of every statistic."""
LABEL_VALUES = (LABEL_CLEAR, LABEL_CLOUD, LABEL_NODATA)

SCL_NAME = "SCL.tif"
"""File name of a chip's optional Sen2Cor Scene Classification Layer, beside its bands."""

SCL_CLASSES: dict[str, int] = {
    "no_data": 0,
    "cloud_shadow": 3,
    "vegetation": 4,
    "not_vegetated": 5,
    "water": 6,
    "cloud_medium": 8,
    "cloud_high": 9,
    "thin_cirrus": 10,
    "snow": 11,
}
"""Sen2Cor Scene Classification codes chipqa uses (a subset of Sen2Cor's twelve)."""

SCL_NODATA = SCL_CLASSES["no_data"]
SCL_SHADOW = SCL_CLASSES["cloud_shadow"]
"""SCL class of cloud shadows (counted apart from cloud)."""
SCL_CLOUD: tuple[int, ...] = (
    SCL_CLASSES["cloud_medium"],
    SCL_CLASSES["cloud_high"],
    SCL_CLASSES["thin_cirrus"],
)
"""SCL classes counted as cloud: medium and high probability, thin cirrus."""

DEFAULT_THRESHOLD = 0.5
"""Cloud probability at or above which a pixel is predicted cloud."""
DEFAULT_TEMPERATURE = 0.1
"""Temperature of the soft minimum behind ``label_quality`` (see :mod:`chipqa.stats`)."""
PANEL_TITLE_PX = 18
"""Least height of the title strip above each panel of the side-by-side mosaic."""


def panel_title_px(width: int) -> int:
    """Height of the title strip above each panel of the side-by-side mosaic of a chip
    ``width`` pixels wide: the true-colour panel's top-left pixel is at this row, column
    0. It grows with the panel so that the title stays legible when the viewer shrinks a
    large chip's mosaic to fit (14 px letters over a 512 px panel, shown at half size,
    lost their thin strokes: "NIR fa se colcur")."""
    return max(PANEL_TITLE_PX, round(width * 0.05))
