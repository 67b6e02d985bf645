"""Lightning and torchmetrics, imported in the order a CPU-only torch build needs.

Both import torchvision, which on some CPU machines only imports after
:func:`chipqa._compat.import_torchvision`. Importing :mod:`chipqa.training` itself does
not import this module; the LightningModule and the callbacks do.
"""

from chipqa._compat import import_torchvision

import_torchvision()

import lightning.pytorch as pl  # noqa: E402
import torchmetrics  # noqa: E402

__all__ = ["pl", "torchmetrics"]
