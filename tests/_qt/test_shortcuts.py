"""The review keys in napari's Preferences → Shortcuts, in a real napari window (Xvfb):
listed with their defaults, changed there (at once, in the open panel), kept in napari's
settings for later sessions, back to the defaults with the preferences' restore and
cancel, and gone with the panel."""

from __future__ import annotations

import copy

import pytest
from tests._qt.test_citizen import _drawn, _open, _press
from tests._qt.test_fix_keys import _press_named

from chipqa._qt import shortcuts
from chipqa._qt.keys import ACTIONS
from chipqa._qt.review_widget import ChipQAWidget
from chipqa.blocklist.csvread import read_blocklist
from chipqa.synth import generate_dataset

pytestmark = pytest.mark.gui

FREE = "W"  # a key no napari action and no review action has by default


@pytest.fixture(scope="module")
def source_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("shortcuts") / "data"
    generate_dataset(root, n_chips=6, size=40, error_rate=0.3, seed=3)
    return root


@pytest.fixture
def root(source_root, tmp_path):
    import shutil

    out = tmp_path / "data"
    shutil.copytree(source_root, out)
    return out


@pytest.fixture(autouse=True)
def napari_state(monkeypatch):
    """napari's settings are never written to the user's config here, and its saved
    shortcuts and chipqa's keys are as before the test afterwards."""
    from napari._qt.widgets.qt_keyboard_settings import ShortcutEditor
    from napari.settings import NapariSettings, get_settings

    monkeypatch.setattr(NapariSettings, "save", lambda *a, **k: None)
    monkeypatch.setattr(NapariSettings, "_maybe_save", lambda *a, **k: None)

    def no_modal(*_a, **_k):
        raise AssertionError("the shortcut editor wanted to warn (a modal dialog)")

    monkeypatch.setattr(ShortcutEditor, "_show_warning", no_modal)
    settings = get_settings().shortcuts
    saved = copy.deepcopy(settings.shortcuts)
    yield settings
    settings.shortcuts = saved
    if shortcuts._registered:
        shortcuts._apply(force=True)


def _rows(editor) -> dict[str, tuple[str, str, str]]:
    """The shortcut editor's table: action → (description, key, alternative key)."""
    t = editor._table
    out = {}
    for row in range(t.rowCount()):
        name = t.item(row, editor._action_col)
        if name is not None:
            out[name.text()] = tuple(
                t.item(row, c).text()
                for c in (editor._action_name_col, editor._shortcut_col, editor._shortcut_col2)
            )
    return out


def _edit(editor, action: str, key: str) -> None:
    """Type ``key`` into the action's Keybinding cell, as the editor's key field does."""
    t = editor._table
    row = next(r for r in range(t.rowCount()) if t.item(r, editor._action_col).text() == action)
    t.item(row, editor._shortcut_col).setText(key)


def _button(w: ChipQAWidget, label: str):
    return next(b for b in w.decisions.key_buttons if b.key_text == label)


def test_the_preferences_list_the_review_keys_with_their_defaults(make_napari_viewer, qtbot):
    from napari._qt.widgets.qt_keyboard_settings import ShortcutEditor
    from napari.utils.interactions import Shortcut

    viewer = make_napari_viewer(show=True)
    w = ChipQAWidget(viewer)
    viewer.window.add_dock_widget(w, name="Chip QA")
    editor = ShortcutEditor()
    qtbot.addWidget(editor)
    assert editor.layer_combo_box.currentText() == ShortcutEditor.VIEWER_KEYBINDINGS
    rows = _rows(editor)
    for a in ACTIONS.values():
        description, key, alternative = rows[f"chipqa:{a.name}"]
        assert description == a.description and description.startswith("Chip QA: ")
        assert key == Shortcut(a.keys[0]).platform, a.name
        assert alternative == ""
    assert "gallery: keep every undecided chip" in rows["chipqa:keep"][0]
    # … and nowhere else: not in a layer's group.
    for group, actions in editor.key_bindings_strs.items():
        if group != ShortcutEditor.VIEWER_KEYBINDINGS:
            assert not [n for n in actions if n.startswith("chipqa:")], group
    assert _button(w, "Keep").text() == "Keep (k)"
    # napari's own binding of them is inert (the panel binds the keys, on the viewer):
    # its keymap provider is nobody's.
    assert shortcuts.ChipQAKeymap.class_keymap  # where napari bound them
    assert not any(isinstance(x, shortcuts.ChipQAKeymap) for x in (viewer, *viewer.layers))
    # Triggered by name, an action runs in the panel of the current viewer.
    from napari.utils.action_manager import action_manager

    action_manager.trigger("chipqa:help")
    assert w.canvas.help_on and "chipqa keys" in w.canvas_text.help_text


def test_a_key_changed_in_the_preferences_works_at_once(
    make_napari_viewer, qtbot, root, napari_state
):
    from napari._qt.dialogs.preferences_dialog import PreferencesDialog
    from napari._qt.widgets.qt_keyboard_settings import ShortcutEditor
    from napari.layers import Labels

    viewer = make_napari_viewer(show=True)
    w = _open(viewer, qtbot, root)
    order = list(w.session.order)
    dialog = PreferencesDialog()
    qtbot.addWidget(dialog)
    (editor,) = dialog.findChildren(ShortcutEditor)
    _edit(editor, "chipqa:keep", FREE)
    assert _rows(editor)["chipqa:keep"][1] == FREE
    assert [str(k) for k in napari_state.shortcuts["chipqa:keep"]] == [FREE]  # saved
    assert "chipqa:next" not in napari_state.shortcuts  # unchanged keys are not saved
    assert _button(w, "Keep").text() == "Keep (w)"
    assert "<b>w</b> keep" in w.decisions.keys_label.text()
    _press(viewer, qtbot, "h")
    assert "      w  keep" in w.canvas_text.help_text
    _press(viewer, qtbot, "k")  # the old key does nothing now
    assert not w.store.path.exists() or not read_blocklist(w.store.path)
    _press(viewer, qtbot, "w")
    assert read_blocklist(w.store.path)[order[0]].decision == "keep"

    # A paint key too: q cancels a painting, Escape no longer does.
    _edit(editor, "chipqa:cancel_paint", "Q")
    _drawn(w, qtbot)
    _press(viewer, qtbot, "e")
    assert [ly for ly in viewer.layers if isinstance(ly, Labels)]
    assert "q cancels" in w.status.text()
    _press_named(viewer, qtbot, "Escape")
    assert [ly for ly in viewer.layers if isinstance(ly, Labels)]
    _press(viewer, qtbot, "q")
    assert not [ly for ly in viewer.layers if isinstance(ly, Labels)]

    # Cancel in the preferences: the keys are the defaults again, at once.
    dialog.reject()
    assert "chipqa:keep" not in napari_state.shortcuts
    assert _button(w, "Keep").text() == "Keep (k)"
    assert "      k  keep" in w.canvas_text.help_text
    rows = read_blocklist(w.store.path)
    _press(viewer, qtbot, "w")
    assert read_blocklist(w.store.path) == rows
    _press(viewer, qtbot, "k")
    assert len(read_blocklist(w.store.path)) == len(rows) + 1


# napari applies the saved keys when the viewer opens and warns about an action not
# registered yet (when no panel opened before in this process): the key is applied later.
@pytest.mark.filterwarnings("ignore:Attempting to unbind an action which does not exist")
def test_saved_keys_are_honoured_restored_and_gone_with_the_panel(
    make_napari_viewer, qtbot, root, napari_state
):
    from napari._qt.widgets.qt_keyboard_settings import ShortcutEditor

    # Saved in napari's settings in an earlier session: keep is W.
    napari_state.shortcuts = {**napari_state.shortcuts, "chipqa:keep": [FREE]}
    viewer = make_napari_viewer(show=True)
    w = _open(viewer, qtbot, root)
    order = list(w.session.order)
    assert _button(w, "Keep").text() == "Keep (w)"
    _press(viewer, qtbot, "k")
    assert not w.store.path.exists() or not read_blocklist(w.store.path)
    _press(viewer, qtbot, "w")
    assert read_blocklist(w.store.path)[order[0]].decision == "keep"

    # The preferences' "Restore All Keybindings": k again.
    editor = ShortcutEditor()
    qtbot.addWidget(editor)
    editor._reset_shortcuts()
    assert _button(w, "Keep").text() == "Keep (k)"
    _press(viewer, qtbot, "k")
    assert read_blocklist(w.store.path)[order[1]].decision == "keep"

    # Changed again, then the panel closes: neither key changes anything.
    _edit(editor, "chipqa:keep", FREE)
    assert _button(w, "Keep").text() == "Keep (w)"
    rows = read_blocklist(w.store.path)
    viewer.window.remove_dock_widget(w)
    qtbot.waitUntil(lambda: not w.alive, timeout=5_000)
    for key in ("w", "k", "n", "b"):
        _press(viewer, qtbot, key)
    assert read_blocklist(w.store.path) == rows
    assert not list(viewer.keymap)
    for layer in viewer.layers:
        assert not list(layer.keymap), layer.name
    # The actions stay listed (their keys bind nothing without a panel).
    listed = ShortcutEditor()
    qtbot.addWidget(listed)
    assert _rows(listed)["chipqa:keep"][1] == FREE


def test_the_first_panel_of_a_session_shows_the_saved_keys(tmp_path):
    """A key saved in an earlier session (keep is W) is on the buttons and the keys line
    of the first panel a new napari session opens, not only on the keyboard."""
    import os
    import subprocess
    import sys

    script = """
import napari
from napari.settings import get_settings

settings = get_settings().shortcuts
settings.shortcuts = {**settings.shortcuts, "chipqa:keep": ["W"]}
viewer = napari.Viewer(show=False)
from chipqa._qt.review_widget import ChipQAWidget

w = ChipQAWidget(viewer)
print(next(b.text() for b in w.decisions.key_buttons if b.key_text == "Keep"))
print(w.decisions.keys_label.text())
viewer.close()
"""
    env = {**os.environ, "NAPARI_CONFIG": str(tmp_path / "napari.yaml")}  # not the user's
    out = subprocess.run(
        [sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=300
    )
    assert out.returncode == 0, out.stderr[-2000:]
    button, keys_line = out.stdout.strip().splitlines()[-2:]
    assert button == "Keep (w)"
    assert "<b>w</b> keep" in keys_line
