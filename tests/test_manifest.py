"""The napari manifest: valid, every python_name importable, shipped with the package."""

from __future__ import annotations

import subprocess
import sys
from importlib import resources
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_manifest_validates_with_imports():
    res = subprocess.run(
        [sys.executable, "-m", "npe2", "validate", "--imports", str(ROOT / "napari.yaml")],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert res.returncode == 0, res.stdout + res.stderr
    assert "valid" in res.stdout


def test_installed_package_carries_the_manifest_napari_finds():
    shipped = resources.files("chipqa").joinpath("napari.yaml").read_text()
    assert shipped == (ROOT / "napari.yaml").read_text()
    from npe2 import PluginManager

    pm = PluginManager()
    pm.discover()
    manifest = pm.get_manifest("chipqa")
    assert [w.display_name for w in manifest.contributions.widgets] == ["Chip QA"]
    assert [s.key for s in manifest.contributions.sample_data] == ["synthetic", "real_oncloudn"]


def test_the_reader_declines_what_is_not_a_dataset(tmp_path, tiny_dataset):
    from chipqa._reader import get_reader

    assert get_reader(str(tiny_dataset)) is not None
    assert get_reader(str(tmp_path / "nothing")) is None
    (tmp_path / "notes").mkdir()
    (tmp_path / "notes" / "a.txt").write_text("x")
    assert get_reader(str(tmp_path / "notes")) is None
    assert get_reader(str(tiny_dataset / "train_labels" / "aaaa.tif")) is None


def test_the_manifest_keybindings_are_the_keys_the_panel_binds():
    # The manifest lists the default keys for napari; the panel binds KEY_ACTIONS and
    # PAINT_KEYS itself. A key changed in one place only would show one key in
    # napari's preferences and bind another.
    import yaml

    from chipqa._qt.keys import KEY_ACTIONS, PAINT_KEYS

    manifest = yaml.safe_load((ROOT / "napari.yaml").read_text())["contributions"]
    listed = {kb["command"]: kb["key"] for kb in manifest["keybindings"]}
    bound = {a.command: a.keys[0] for a in (*KEY_ACTIONS, *PAINT_KEYS)}
    assert listed == bound
    commands = {c["id"] for c in manifest["commands"] if c["id"].startswith("chipqa.key_")}
    assert commands == set(bound)


def test_each_key_is_listed_in_napari_with_what_it_does_in_single_chip_review():
    import yaml

    from chipqa._qt.keys import ACTIONS

    manifest = yaml.safe_load((ROOT / "napari.yaml").read_text())["contributions"]
    titles = {c["id"]: c["title"] for c in manifest["commands"]}
    for a in ACTIONS.values():
        if a.single:
            assert titles[a.command] == f"Chip QA: {a.single}", a.name
    # o shows the gallery: "back to" it would be wrong when the review started side by side.
    assert "back" not in ACTIONS["open"].single
