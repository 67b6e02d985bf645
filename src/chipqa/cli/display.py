"""Whether napari can open a window here, asked before it tries.

Without a usable display, Qt aborts the whole process (exit 134) with a message about
platform plugins. :func:`viewer_problem` finds that out first, in a child process, so
that ``chipqa view`` and ``chipqa demo`` can say what to do instead.
"""

from __future__ import annotations

import os
import subprocess
import sys

_PROBE = """
import sys
from qtpy.QtWidgets import QApplication
app = QApplication(sys.argv[:1])
print(app.platformName())
"""

NO_DISPLAY_HINT = "run it on a machine with a display, or under a virtual one: xvfb-run -a chipqa …"


def napari_missing() -> str | None:
    """Why napari cannot be imported (not installed), or None when it can."""
    try:
        import napari  # noqa: F401
    except ImportError as exc:
        return f'napari is not installed ({exc}): pip install "chipqa[napari]"'
    return None


def display_problem(timeout: float = 60.0) -> str | None:
    """Why Qt cannot open a window here, or None when it can.

    On Linux a window needs ``DISPLAY`` (X11) or ``WAYLAND_DISPLAY``, unless
    ``QT_QPA_PLATFORM`` names a platform (``offscreen``, ``vnc``, …). Even then Qt may fail
    to load its platform plugin (a missing system library): that is tried in a child
    process, where Qt's abort cannot take this process down.
    """
    linux = sys.platform.startswith("linux")
    env = os.environ
    if linux and not (
        env.get("DISPLAY") or env.get("WAYLAND_DISPLAY") or env.get("QT_QPA_PLATFORM")
    ):
        return "there is no display (neither DISPLAY nor WAYLAND_DISPLAY is set)"
    try:
        res = subprocess.run(
            [sys.executable, "-c", _PROBE],
            capture_output=True,
            text=True,
            timeout=timeout,
        )
    except subprocess.TimeoutExpired:
        return f"Qt did not start within {timeout:.0f} s"
    if res.returncode == 0:
        return None
    lines = [ln.strip() for ln in (res.stderr or "").splitlines() if ln.strip()]
    useful = [ln for ln in lines if "plugin" in ln.lower() or "display" in ln.lower()]
    detail = (useful or lines or [f"exit status {res.returncode}"])[0]
    return f"Qt cannot open a window here ({detail})"
