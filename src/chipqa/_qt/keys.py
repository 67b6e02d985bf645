"""The review keys: one table, shown on the buttons and in the help overlay, listed in
napari's keyboard preferences and bound in the viewer only while the Chip QA panel lives.

Where the user sees and changes them: napari's **Preferences → Shortcuts**, group
"Viewer key bindings", where each action is listed as ``chipqa:<name>`` (``chipqa:keep``,
``chipqa:block_1``, …) with what it does (:mod:`chipqa._qt.shortcuts` registers them
there when a Chip QA panel first opens in a napari session). A key changed there works
at once in the open panel (the old one no longer does), shows on its buttons, in the
keys line and in the help overlay, and napari keeps it in its settings for the next
sessions. The paint keys (``Enter`` saves a painted label, ``Escape`` cancels it) are
listed and changed there too. The manifest (``napari.yaml``) declares the same default
keys as ``keybindings``; napari does not read plugin key bindings from manifests yet.

How the keys live beside napari's own:

* They are bound on the **viewer** (and on the layers chipqa draws), never on the user's
  layers. napari looks up a key in the selected layer's keymap before the viewer's, so
  while the user works in a Shapes or Labels layer of their own, its keys (``p``, ``2``,
  ``e``, …) stay napari's; chipqa's other keys still work there.
* A key the user has bound on the viewer themselves is left alone (and shown as such).
* ``←``/``→`` step napari's dims slider as usual when a layer has more dimensions than
  are shown; only when there is nothing to step do they move through the chips.
* Everything bound is unbound when the panel closes.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from chipqa.blocklist.store import REASONS

if TYPE_CHECKING:
    import napari


@dataclass(frozen=True)
class KeyAction:
    """One action: its manifest command, its default keys (the manifest's) and what it
    does in each view. The keys in force are :func:`keys_of`'s."""

    name: str
    keys: tuple[str, ...]
    single: str
    gallery: str = ""

    @property
    def command(self) -> str:
        return f"chipqa.key_{self.name}"

    @property
    def description(self) -> str:
        """What it does, in single-chip review and in the gallery (one line)."""
        gallery = self.single if self.gallery == "the same" else self.gallery
        if not self.single:
            return f"Chip QA: gallery: {gallery}"
        if gallery and gallery != self.single:
            return f"Chip QA: {self.single}; gallery: {gallery}"
        return f"Chip QA: {self.single}"


KEY_ACTIONS: tuple[KeyAction, ...] = (
    KeyAction("next", ("n",), "next chip", "next page"),
    KeyAction("previous", ("p",), "previous chip", "previous page"),
    KeyAction("right", ("Right",), "next chip", "cursor right"),
    KeyAction("left", ("Left",), "previous chip", "cursor left"),
    KeyAction("up", ("Up",), "", "cursor up"),
    KeyAction("down", ("Down",), "", "cursor down"),
    KeyAction(
        "keep",
        ("k",),
        "keep (the label is right)",
        "keep every undecided chip of the page, save the page, next page",
    ),
    KeyAction(
        "block",
        ("b",),
        "block (reason from the chip's flag)",
        "block / unblock the cursor chip (reason from its flag)",
    ),
    *(
        KeyAction(f"block_{i}", (str(i),), f"block: {r}", f"block / unblock: {r}")
        for i, r in enumerate(REASONS, start=1)
    ),
    KeyAction("unsure", ("u",), "unsure", "mark the cursor chip unsure"),
    KeyAction("undo", ("z",), "undo the last decision", "undo the last decision or page"),
    KeyAction(
        "next_undecided", ("j",), "next chip without a decision", "page of the next undecided"
    ),
    KeyAction("open", ("o",), "the gallery (pages of chips)", "open the cursor chip side by side"),
    KeyAction("toggle_layers", ("g",), "side by side / layers", ""),
    KeyAction("stretch", ("c",), "true colour: fixed / per-chip stretch", "the same"),
    KeyAction("accept_model", ("a",), "fix: take the model's mask as the label", ""),
    KeyAction("paint", ("e",), "fix: paint the label", ""),
    KeyAction("help", ("h",), "show / hide these keys over the canvas", "the same"),
)
"""Every review key. While a label is being painted only the paint keys (``Return``
saves, ``Escape`` cancels) are chipqa's; the rest are out of the way."""

PAINT_KEYS: tuple[KeyAction, ...] = (
    KeyAction("save_paint", ("Enter",), "fix: save the painted label"),
    KeyAction("cancel_paint", ("Escape",), "fix: cancel painting"),
)

ACTIONS = {a.name: a for a in (*KEY_ACTIONS, *PAINT_KEYS)}

_current: dict[str, tuple[str, ...]] = {}
"""The keys in force (an action missing here has its defaults): kept by
:mod:`chipqa._qt.shortcuts` as napari's keyboard preferences change them."""


def keys_of(name: str) -> tuple[str, ...]:
    """The keys in force for an action (none when the user cleared them)."""
    return _current.get(name, ACTIONS[name].keys)


def set_keys(name: str, keys: tuple[str, ...]) -> None:
    """Record the keys in force for an action (the panels rebind them)."""
    _current[name] = tuple(keys)


def key_table(actions: tuple[KeyAction, ...]) -> dict[str, str]:
    """``key → action name`` for the keys in force of ``actions``."""
    return {k: a.name for a in actions for k in keys_of(a.name)}


def shown_key(key: str) -> str:
    named = {"Right": "→", "Left": "←", "Up": "↑", "Down": "↓", "Enter": "Return"}
    if key in named:
        return named[key]
    return key.lower() if len(key) == 1 else key


def key_of(name: str) -> str:
    """The key(s) of an action as shown on a button, e.g. ``k`` or ``→`` (empty when
    it has none)."""
    return "/".join(shown_key(k) for k in keys_of(name))


def paint_keys_text() -> str:
    """What the paint keys do, e.g. ``Return saves, Escape cancels``."""
    save, cancel = key_of("save_paint") or "no key", key_of("cancel_paint") or "no key"
    return f"{save} saves, {cancel} cancels"


def keys_help(gallery: bool = False) -> str:
    """The keys of one view as one line of rich text."""
    items = []
    for a in KEY_ACTIONS:
        what = a.gallery if gallery else a.single
        what = a.single if what == "the same" else what
        if what and key_of(a.name):
            items.append(f"<b>{key_of(a.name)}</b> {what}")
    return "Keys: " + " · ".join(items)


def help_text(gallery: bool, taken: set[str] = frozenset()) -> str:
    """The help overlay: one line per key of the view (plain text)."""
    hide = f" ({key_of('help')} hides this)" if key_of("help") else ""
    lines = [f"chipqa keys{hide}" + (" — gallery" if gallery else " — single chip")]
    for a in (*KEY_ACTIONS, *PAINT_KEYS):
        what = a.gallery if gallery else a.single
        what = a.single if what == "the same" else what
        if not what or not key_of(a.name):
            continue
        note = " (taken by your own binding)" if set(keys_of(a.name)) & taken else ""
        lines.append(f"{key_of(a.name):>7}  {what}{note}")
    lines.append(
        "Keys of a layer of your own (Shapes, Labels…) stay napari's while it is selected."
    )
    lines.append("Change the keys in Preferences → Shortcuts (Viewer key bindings, chipqa:…).")
    return "\n".join(lines)


def dims_step(viewer: napari.Viewer, delta: int) -> bool:
    """Step napari's dims slider as its own ←/→ do, when there is one to step (a layer
    with more dimensions than are shown); False when there is nothing to step."""
    dims = viewer.dims
    axes = [a for a in dims.not_displayed if dims.nsteps[a] > 1]
    if not axes:
        return False
    axis = dims.last_used if dims.last_used in axes else axes[-1]
    dims.set_current_step(axis, dims.current_step[axis] + delta)
    return True


def _coerce(key: str):
    from napari.utils.key_bindings import coerce_keybinding

    return coerce_keybinding(key)


class KeyBindings:
    """Binds each key of ``table`` (``key → action name``) to ``run(name)`` on a viewer
    (and on chipqa's own layers) until :meth:`unbind`; never overwrites a binding it did
    not make. :meth:`set_table` swaps the keys (after a change in napari's keyboard
    preferences), rebinding them if they are bound."""

    def __init__(self, viewer: napari.Viewer, table: dict[str, str], run: Callable[[str], object]):
        self.viewer = viewer
        self.table = dict(table)
        self.run = run
        self._funcs: dict[str, Callable] = {}
        self._layers: list = []
        self.taken: set[str] = set()
        self.bound = False

    def _func(self, key: str) -> Callable:
        if key not in self._funcs:
            name, run = self.table[key], self.run

            def callback(_viewer_or_layer=None):
                run(name)

            self._funcs[key] = callback
        return self._funcs[key]

    def bind(self) -> None:
        if self.bound:
            return
        self.taken = set()
        keymap = self.viewer.keymap
        for key in self.table:
            existing = keymap.get(_coerce(key))
            if existing is not None and existing is not self._funcs.get(key):
                self.taken.add(key)  # the user's own viewer binding: left alone
                continue
            self.viewer.bind_key(key, self._func(key), overwrite=True)
        for layer in list(self._layers):
            self._bind_layer(layer)
        self.bound = True

    def _bind_layer(self, layer) -> None:
        for key in self.table:
            layer.bind_key(key, self._func(key), overwrite=True)

    def add_layer(self, layer) -> None:
        """Bind the keys on one of chipqa's own layers too (they then beat napari's layer
        keys such as ``1``…``7`` there, and only there)."""
        if layer in self._layers:
            return
        self._layers.append(layer)
        if self.bound:
            self._bind_layer(layer)

    def set_table(self, table: dict[str, str]) -> None:
        """Use these keys from now on: the old ones are unbound, the new ones bound
        (when the keys are bound now)."""
        if table == self.table:
            return
        bound = self.bound
        self.unbind()
        self._funcs.clear()
        self.table = dict(table)
        if bound:
            self.bind()

    def _pop(self, keymap) -> None:
        for key, func in self._funcs.items():
            kb = _coerce(key)
            if keymap.get(kb) is func:
                del keymap[kb]

    def unbind(self) -> None:
        """Remove every binding this object made (viewer and layers)."""
        self._pop(self.viewer.keymap)
        for layer in self._layers:
            self._pop(layer.keymap)
        self.bound = False

    def forget_layers(self) -> None:
        for layer in self._layers:
            self._pop(layer.keymap)
        self._layers.clear()
