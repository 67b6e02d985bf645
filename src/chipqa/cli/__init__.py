"""The ``chipqa`` command line: the same core as the napari plugin, for pipelines.

Subcommands, one module each: ``synth`` (make a synthetic dataset with planted label
errors), ``cache`` (a memory-mapped chip cache), ``score`` (rank every chip of a dataset
by how suspicious its label is), ``train`` (a U-Net on the chips not blocked), ``mask``
(the cloud mask of a whole scene), ``view`` (a scene with its SCL and mask) and ``demo``
(a fresh synthetic dataset scored, with a report of how many planted errors were found
and a contact sheet PNG of the most suspicious chips). Options that several commands
share, and their progress bars, live in :mod:`chipqa.cli.options`.

Building the parser imports only the standard library: heavy packages (torch, rasterio,
napari) are imported by the command that runs.
"""

from chipqa.cli.main import build_parser, main

__all__ = ["build_parser", "main"]
