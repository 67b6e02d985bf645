"""Which per-chip statistics backend runs on a CPU: the fused numba kernels, or torch.

:func:`cpu_kernels` compiles the kernels of :mod:`chipqa.stats.kernels` once per process
(or loads them from numba's on-disk cache) and degrades gracefully where that is
impossible.
"""

from __future__ import annotations

import threading
import warnings
from typing import Any

_kernels_lock = threading.Lock()
_kernels_state: dict[str, Any] = {}


def cpu_kernels():
    """The fused CPU kernels (:mod:`chipqa.stats.kernels`), ready to run, or None.

    The first call compiles them (or loads them from numba's on-disk cache). Where the
    cache cannot be written (a read-only install without a writable home, a full disk)
    they are compiled without it, with a warning; where they cannot be built at all
    (numba missing for the platform) scoring falls back to torch, with a warning.
    """
    with _kernels_lock:
        if "module" not in _kernels_state:
            _kernels_state["module"] = _load_kernels()
        return _kernels_state["module"]


def _load_kernels():
    import importlib
    import os
    import sys

    try:
        module = importlib.import_module("chipqa.stats.kernels")
        module.warm_up()
        importlib.import_module("chipqa.stats.detector_kernels").warm_up()
        return module
    except ImportError as exc:  # numba is a dependency, but a platform may lack its wheels
        warnings.warn(
            f"numba is unavailable ({exc}); CPU scoring uses torch (slower)", stacklevel=2
        )
        return None
    except Exception as exc:  # most likely the on-disk cache: try once without it
        first = exc
    os.environ["CHIPQA_KERNEL_CACHE"] = "0"
    sys.modules.pop("chipqa.stats.kernels", None)
    sys.modules.pop("chipqa.stats.detector_kernels", None)
    try:
        module = importlib.import_module("chipqa.stats.kernels")
        module.warm_up()
        importlib.import_module("chipqa.stats.detector_kernels").warm_up()
    except Exception as exc:
        warnings.warn(
            f"the CPU kernels cannot be built ({type(exc).__name__}: {exc}); CPU scoring "
            "uses torch (slower)",
            stacklevel=2,
        )
        return None
    warnings.warn(
        f"the CPU kernels cannot be cached ({type(first).__name__}: {first}); they are "
        "compiled anew in each run (about 10 s). Make the package folder or ~/.cache "
        "writable, or set NUMBA_CACHE_DIR to a writable folder",
        stacklevel=2,
    )
    return module
