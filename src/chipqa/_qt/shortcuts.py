"""chipqa's review keys in napari's keyboard preferences (Preferences → Shortcuts).

Each action of :data:`~chipqa._qt.keys.KEY_ACTIONS` and
:data:`~chipqa._qt.keys.PAINT_KEYS` is registered in napari's action manager as
``chipqa:<name>`` with what it does, so it is listed in the "Viewer key bindings" group
with its key(s), and the user can change them there; napari keeps the change in its
settings and applies it again in later sessions.

napari binds an action's keys on the keymap of the action's keymap provider. chipqa's
provider, :class:`ChipQAKeymap`, is one no viewer or layer ever consults, so napari's
own binding has no effect: the panel binds the keys in force itself, on the viewer and
on its own layers, only while it lives and never over a binding of the user's
(:class:`chipqa._qt.keys.KeyBindings`). This module only keeps the keys in force
(:func:`chipqa._qt.keys.keys_of`) following napari's changes and tells the open panels,
which rebind them and show them on their buttons.

:func:`register` runs when a panel opens and registers the actions once per process.
They stay registered after the panels close: that is harmless, as nothing is bound on a
viewer then (the provider's keymap is consulted by no one) and an action of a closed
panel does nothing; it also keeps the user's keys listed and their changes kept. The
keys in force are the user's saved ones where napari's settings hold some for an action
(a change in the preferences, "Restore All Keybindings" and a cancelled preferences
dialog included), else the defaults; only the keys the user changed are kept there.

napari (0.9) applies the saved keys when a viewer opens, before any Chip QA panel has
registered its actions, and warns about each saved action it does not know yet: a user
who changed a chipqa key sees that warning ("Attempting to unbind an action which does
not exist (chipqa:…)") at start-up; the key is applied all the same.
"""

from __future__ import annotations

import weakref
from collections.abc import Callable, Iterable
from typing import Protocol

from napari.utils.key_bindings import KeymapProvider

from chipqa._qt.keys import ACTIONS, keys_of, set_keys


class Panel(Protocol):
    """A review panel the keys reach: it runs actions and shows the keys in force."""

    viewer: object
    alive: bool

    def run(self, name: str) -> None: ...

    def keys_changed(self, action: str = "") -> None: ...


PREFIX = "chipqa:"


class ChipQAKeymap(KeymapProvider):
    """The keymap provider of chipqa's actions: napari binds their keys on this class's
    keymap, which no viewer or layer consults (the panel binds the keys itself)."""


_registered = False
_panels: weakref.WeakSet[Panel] = weakref.WeakSet()


def action_id(name: str) -> str:
    """The action manager's name of an action: ``chipqa:keep``, …"""
    return PREFIX + name


def _canonical(key) -> str | None:
    """napari's spelling of a key (``N``, ``Right``, ``Ctrl+K``); None if not a key."""
    from napari.utils.key_bindings import coerce_keybinding

    try:
        return str(coerce_keybinding(key)) or None
    except (TypeError, ValueError):
        return None


def _canonical_all(keys: Iterable) -> tuple[str, ...]:
    out: list[str] = []
    for k in keys:
        c = _canonical(k)
        if c and c not in out:
            out.append(c)
    return tuple(out)


def _command(name: str) -> Callable[[], None]:
    def command() -> None:
        from napari import current_viewer

        for panel in panels(current_viewer()):
            panel.run(name)

    command.__name__ = command.__qualname__ = f"chipqa_{name}"
    command.__doc__ = f"Run {name!r} in the Chip QA panel of the current viewer, if one is open."
    return command


def attach(panel: Panel) -> None:
    """Register chipqa's actions (once) and tell ``panel.keys_changed(action name)``
    whenever the keys of an action change, until :func:`detach` (or its end)."""
    register()
    _panels.add(panel)


def detach(panel: Panel) -> None:
    _panels.discard(panel)


def panels(viewer) -> list[Panel]:
    """The live panels of ``viewer``."""
    return [p for p in list(_panels) if p.alive and p.viewer is viewer]


def register() -> None:
    """List chipqa's actions in napari's keyboard preferences (once per process) with
    the keys the user saved there, else the defaults."""
    global _registered
    if _registered:
        return
    from napari.settings import get_settings
    from napari.utils.action_manager import action_manager

    for a in ACTIONS.values():
        action_manager.register_action(
            action_id(a.name), _command(a.name), a.description, ChipQAKeymap
        )
    action_manager.events.shortcut_changed.connect(_on_shortcut_changed)
    get_settings().shortcuts.events.shortcuts.connect(_on_settings_changed)
    _registered = True
    _apply(force=True)


def _apply(*, force: bool = False) -> None:
    """Bind the saved keys of each action (the defaults where napari's settings hold
    none) in the action manager, where they differ from the keys in force."""
    from napari.settings import get_settings
    from napari.utils.action_manager import action_manager

    saved = get_settings().shortcuts.shortcuts
    for a in ACTIONS.values():
        name = action_id(a.name)
        wanted = _canonical_all(saved[name] if name in saved else a.keys)
        if not force and wanted == keys_of(a.name):
            continue
        action_manager.unbind_shortcut(name)  # the keys in force follow its events
        for key in wanted:
            action_manager.bind_shortcut(name, key)


def _on_settings_changed(_event=None) -> None:
    """napari's saved keys changed (a change in the preferences, their restore buttons, a
    cancelled dialog): the keys in force follow them."""
    _apply()
    _forget_defaults()


def _forget_defaults() -> None:
    """Keep chipqa's keys in napari's settings only where the user changed them.

    napari's preferences save the keys of every listed action on any change. A later
    session applies them before a Chip QA panel registers the actions, and warns about
    each saved action it does not know yet: with only the changed keys saved, a user
    who changed none of chipqa's keys sees no such warning."""
    from napari.settings import get_settings

    settings = get_settings().shortcuts
    saved = settings.shortcuts
    drop = {
        action_id(a.name)
        for a in ACTIONS.values()
        if action_id(a.name) in saved
        and _canonical_all(saved[action_id(a.name)]) == _canonical_all(a.keys)
    }
    if drop:
        settings.shortcuts = {n: keys for n, keys in saved.items() if n not in drop}


def _on_shortcut_changed(event) -> None:
    """napari bound or unbound a key of an action (the preferences do so on every
    change): keep the keys in force and tell the panels."""
    name = getattr(event, "name", "")
    action = name[len(PREFIX) :] if name.startswith(PREFIX) else ""
    if action not in ACTIONS:
        return
    shortcut = getattr(event, "shortcut", "")
    if not shortcut:  # every key of the action was unbound
        keys: tuple[str, ...] = ()
    else:
        keys = _canonical_all((*keys_of(action), shortcut))
    if keys != keys_of(action):
        set_keys(action, keys)
        for panel in list(_panels):
            try:
                panel.keys_changed(action)
            except RuntimeError:  # its Qt widgets are gone (closed with its window)
                detach(panel)
