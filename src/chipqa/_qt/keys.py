"""The review keys: one table of (key, what it does, action), shown in the widget and
bound in the viewer and on every layer."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Protocol

from chipqa.review.blocklist import REASONS

if TYPE_CHECKING:
    import napari

KeyAction = tuple[str, str, Callable[[], object]]


class ReviewActions(Protocol):
    """What the keys do (the review widget provides these)."""

    def next_chip(self) -> None: ...
    def previous_chip(self) -> None: ...
    def keep(self) -> None: ...
    def block(self, reason: str | None = None) -> None: ...
    def unsure(self) -> None: ...
    def undo(self) -> None: ...
    def next_undecided(self) -> None: ...
    def toggle_mode(self) -> None: ...


def key_table(actions: ReviewActions) -> list[KeyAction]:
    """(key, what it does, action) for every review key."""
    keys: list[KeyAction] = [
        ("Right", "next chip", actions.next_chip),
        ("n", "next chip", actions.next_chip),
        ("Left", "previous chip", actions.previous_chip),
        ("p", "previous chip", actions.previous_chip),
        ("k", "keep (label is right)", actions.keep),
        ("b", "block with the reason shown", actions.block),
        ("u", "unsure", actions.unsure),
        ("z", "undo last decision", actions.undo),
        ("j", "jump to next undecided", actions.next_undecided),
        ("g", "side by side / layers", actions.toggle_mode),
    ]
    for i, reason in enumerate(REASONS, start=1):
        keys.append((str(i), f"block: {reason}", lambda r=reason: actions.block(r)))
    return keys


def keys_help(table: list[KeyAction]) -> str:
    """The key table as one line of rich text (keys doing the same thing grouped)."""
    seen: dict[str, list[str]] = {}
    for key, what, _ in table:
        seen.setdefault(what, []).append(key.replace("Right", "→").replace("Left", "←"))
    items = [f"<b>{'/'.join(k)}</b> {w}" for w, k in seen.items()]
    return "Keys: " + " · ".join(items)


def _callback(action: Callable[[], object]) -> Callable:
    def callback(_viewer_or_layer=None):
        action()

    return callback


class KeyBindings:
    """Binds a key table in a viewer, and on each of its layers, until :meth:`unbind`.

    A selected layer's own keymap is searched before the viewer's (napari #2799), so the
    keys are bound on every layer too, including layers added later; they then work
    whichever layer is selected.
    """

    def __init__(self, viewer: napari.Viewer, table: list[KeyAction]):
        self.viewer = viewer
        self.table = table
        self._layers: list = []

    def bind(self) -> None:
        for key, _, action in self.table:
            self.viewer.bind_key(key, _callback(action), overwrite=True)
        for layer in self.viewer.layers:
            self._bind_layer(layer)
        self.viewer.layers.events.inserted.connect(self._on_layer_inserted)

    def _bind_layer(self, layer) -> None:
        for key, _, action in self.table:
            layer.bind_key(key, _callback(action), overwrite=True)
        self._layers.append(layer)

    def _on_layer_inserted(self, event) -> None:
        self._bind_layer(event.value)

    def unbind(self) -> None:
        for key, _, _ in self.table:
            self.viewer.keymap.pop(key, None)
            for layer in self._layers:
                layer.keymap.pop(key, None)
        self._layers.clear()
        try:
            self.viewer.layers.events.inserted.disconnect(self._on_layer_inserted)
        except (TypeError, ValueError, RuntimeError):
            pass
