"""The napari face of chipqa: dock widget, layers, key bindings, workers.

Everything here is thin: the logic lives in :mod:`chipqa.review`,
:mod:`chipqa.blocklist` and :mod:`chipqa.scoring`, which never import Qt.
"""
