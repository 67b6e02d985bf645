"""Import segmentation-models-pytorch where torchvision's compiled ops cannot load.

segmentation-models-pytorch (through timm) imports torchvision at import time. On a
machine with a CPU-only torch build and a torchvision wheel built for CUDA, importing
torchvision fails with ``RuntimeError: operator torchvision::nms does not exist``: its
compiled operator library does not load, and its Python side then tries to register
fake kernels for two operators whose schemas were never declared.

:func:`import_smp` handles exactly that case: it declares the two missing schemas
(``torchvision::nms`` and ``torchvision::qnms``) with :mod:`torch.library`, drops the
half-imported torchvision modules from :data:`sys.modules` and imports again. The pure
Python parts of torchvision (model definitions, transforms) then work; its compiled ops
(NMS, RoI align, …) stay unavailable, and the U-Net never calls them. Where torchvision
imports normally (a user's machine, a GPU box) nothing is changed.
"""

from __future__ import annotations

import importlib
import sys
from types import ModuleType

_MISSING_OP = "operator torchvision::nms does not exist"
_SCHEMAS = (
    "nms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor",
    "qnms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor",
)
# torch.library deregisters the schemas when this object is garbage-collected: keep it.
_torchvision_lib = None
patched = False
"""True once the compatibility step has run in this process."""


def _declare_missing_schemas() -> None:
    global _torchvision_lib, patched
    import torch

    if _torchvision_lib is None:
        _torchvision_lib = torch.library.Library("torchvision", "DEF")  # noqa: TOR901
        for schema in _SCHEMAS:
            _torchvision_lib.define(schema)
    patched = True


def _drop_modules(prefixes: tuple[str, ...]) -> None:
    for name in list(sys.modules):
        if name in prefixes or name.startswith(tuple(p + "." for p in prefixes)):
            del sys.modules[name]


def import_torchvision() -> ModuleType:
    """Import torchvision, applying the compatibility step only when it is needed."""
    try:
        return importlib.import_module("torchvision")
    except RuntimeError as exc:
        if _MISSING_OP not in str(exc):
            raise
    _drop_modules(("torchvision",))
    _declare_missing_schemas()
    return importlib.import_module("torchvision")


def import_smp() -> ModuleType:
    """Import and return ``segmentation_models_pytorch`` (see the module docstring)."""
    if "segmentation_models_pytorch" in sys.modules:
        return sys.modules["segmentation_models_pytorch"]
    try:
        import_torchvision()
    except RuntimeError:
        # smp, timm or torchvision half-imported before the failure: start clean.
        _drop_modules(("segmentation_models_pytorch", "timm", "torchvision"))
        raise
    return importlib.import_module("segmentation_models_pytorch")
