"""chipqa: find and fix wrong cloud masks in Sentinel-2 chip datasets.

The numerical and I/O core (reading chips, the synthetic generator, predictors,
scoring) lives in plain Python modules that never import Qt or napari; the napari
plugin and the command line are thin layers on top of it.
"""

__version__ = "0.1.0"
