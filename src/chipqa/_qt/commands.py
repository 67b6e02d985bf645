"""The review actions as napari commands (declared in ``napari.yaml`` with their keys).

Each command runs its action in the Chip QA panel docked in the viewer, and does nothing
when there is none, so a key never acts on a closed panel. napari lists the commands in
its command palette; a napari that takes key bindings from plugin manifests binds the
manifest's keys to them and lets the user change them in its preferences.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from chipqa._qt.keys import ACTIONS

if TYPE_CHECKING:
    import napari

__all__ = [f"key_{name}" for name in ACTIONS]


def live_widget(viewer: napari.Viewer):
    """The Chip QA panel docked in ``viewer`` (None when it is not open)."""
    from chipqa._qt.shortcuts import panels

    live = panels(viewer)
    return next((w for w in viewer.window.dock_widgets.values() if w in live), None)


def _command(name: str):
    def command(viewer: napari.Viewer) -> None:
        w = live_widget(viewer)
        if w is not None:
            w.run(name)

    command.__name__ = command.__qualname__ = f"key_{name}"
    command.__doc__ = f"Chip QA: {ACTIONS[name].single or ACTIONS[name].gallery}."
    return command


for _name in ACTIONS:  # one module-level function per action: key_next, key_keep, …
    globals()[f"key_{_name}"] = _command(_name)
