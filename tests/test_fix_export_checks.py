"""Label fixes and the cleaned export, round 2: nothing recorded that is not on disk and
readable; nothing exported from a fix file that is not this chip's label; links and the
copy never tie the clean copy to the original."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import rasterio

from chipqa.blocklist.csvformat import BlocklistError
from chipqa.blocklist.csvread import read_blocklist
from chipqa.cli import main
from chipqa.data import open_dataset
from chipqa.io.paths import side_paths
from conftest import make_bands, write_chip
from test_cli import _run_limited

SIZE = 64


@pytest.fixture
def root(tmp_path):
    """Three 64 px chips with labels; 'over' is labelled all cloud over a clear image."""
    root = tmp_path / "ds"
    write_chip(root, "over", make_bands(SIZE), np.ones((SIZE, SIZE), np.uint8))
    write_chip(root, "bfua", make_bands(SIZE, seed=1), np.zeros((SIZE, SIZE), np.uint8))
    write_chip(root, "clear", make_bands(SIZE, seed=2), np.zeros((SIZE, SIZE), np.uint8))
    return root


def _fixes(root) -> list[str]:
    folder = side_paths(root).fixes
    return sorted(p.name for p in folder.iterdir()) if folder.exists() else []


@pytest.mark.slow
def test_a_fix_on_a_full_disk_fails_and_records_nothing(root):
    """GDAL only logs the failed write: the fix must be read back before it is recorded."""
    res = _run_limited(["fix", str(root), "over", "--from-model", "-q"], limit=2048)
    assert res.returncode != 0, res.stdout + res.stderr
    assert "Traceback" not in res.stderr
    assert "cannot write the fixed label of chip 'over'" in res.stderr
    assert "fix the chip again" in res.stderr
    bl = side_paths(root).blocklist
    assert not bl.exists() or "over" not in read_blocklist(bl)  # nothing recorded
    assert _fixes(root) == []  # and no file left under a fix's name
    # the same command with room to write succeeds and its fix reads back whole
    assert main(["fix", str(root), "over", "--from-model", "-q"]) == 0
    (name,) = _fixes(root)
    with rasterio.open(side_paths(root).fixes / name) as src:
        assert src.read(1).shape == (SIZE, SIZE)


def _fix(root, chip_id="over") -> Path:
    assert main(["fix", str(root), chip_id, "--from-model", "-q"]) == 0
    return side_paths(root).fixes / read_blocklist(side_paths(root).blocklist)[chip_id].fix_file


def _damage_truncate(path, tmp_path):
    path.write_bytes(path.read_bytes()[:300])


def _damage_random(path, tmp_path):
    path.write_bytes(np.random.default_rng(0).bytes(5000))


def _damage_link_outside(path, tmp_path):
    private = tmp_path / "private.txt"
    private.write_text("my private notes\n")
    path.unlink()
    path.symlink_to(private)


def _damage_missing(path, tmp_path):
    path.unlink()


def _damage_all_nodata(path, tmp_path):
    with rasterio.open(path, "r+") as dst:
        dst.write(np.full((SIZE, SIZE), 255, np.uint8), 1)


@pytest.mark.parametrize(
    "damage, message",
    [
        (_damage_truncate, "cannot be read as a GeoTIFF"),
        (_damage_random, "cannot be read as a GeoTIFF"),
        (_damage_link_outside, "outside the fixes folder"),
        (_damage_missing, "is missing"),
        (_damage_all_nodata, "labels no pixel"),
    ],
)
def test_export_refuses_a_fix_file_that_is_not_a_label_of_its_chip(
    root, tmp_path, capsys, damage, message
):
    fix = _fix(root)
    damage(fix, tmp_path)
    out = tmp_path / "clean"
    assert main(["export", str(root), "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert "chip 'over'" in err and str(fix.name) in err and message in err
    assert "Fix each chip again" in err and f"Nothing was written under {out}" in err
    assert not out.exists() and "my private notes" not in str(list(tmp_path.rglob("*")))
    assert not [p for p in tmp_path.iterdir() if "chipqa-export" in p.name]


def test_a_row_naming_another_chips_fix_file_is_not_exported(root, tmp_path, capsys):
    fix = _fix(root, "over")
    bl = side_paths(root).blocklist
    bl.write_text(
        bl.read_text() + f"bfua,fix,,,,,,,,me,2030-01-01T00:00:00.000000Z,,{fix.name},file\n"
    )
    out = tmp_path / "clean"
    assert main(["export", str(root), "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert f"fix file {fix.name!r} is not a fix of this chip" in err and "(chip 'bfua')" in err
    assert not out.exists()
    with pytest.raises(BlocklistError, match="is not a fix of this chip"):
        open_dataset(root)  # score and train refuse it too


def test_relative_symlinks_are_exported_as_their_files(root, tmp_path):
    """Band files kept elsewhere (git-annex, a shared store) behind relative links."""
    store = tmp_path / "store"
    store.mkdir()
    for band in sorted(root.glob("train_features/*/*.tif")):
        target = store / f"{band.parent.name}-{band.name}"
        band.rename(target)
        band.symlink_to(os.path.relpath(target, band.parent))
    out = tmp_path / "clean"
    assert main(["export", str(root), "--out", str(out), "-q"]) == 0
    for band in out.glob("train_features/*/*.tif"):
        assert not band.is_symlink()
    res = main(["score", str(out), "--model", "baseline", "--out", str(tmp_path / "s.csv"), "-q"])
    assert res == 0
    import pandas as pd

    assert (pd.read_csv(tmp_path / "s.csv", keep_default_na=False)["error"] == "").all()


def test_editing_the_clean_copy_never_changes_the_original(root, tmp_path, capsys):
    original = root / "train_labels" / "bfua.tif"
    before = original.read_bytes()
    out = tmp_path / "clean"
    assert main(["export", str(root), "--out", str(out)]) == 0
    text = capsys.readouterr().out
    assert "hard-linked" not in text and "reflinked" in text
    with rasterio.open(out / "train_labels" / "bfua.tif", "r+") as dst:  # a curator's edit
        dst.write(np.ones((SIZE, SIZE), np.uint8), 1)
    assert original.read_bytes() == before
    for band in root.glob("train_features/bfua/*.tif"):
        assert os.stat(band).st_nlink == 1


def test_hard_links_only_when_asked_and_the_help_says_the_risk(root, tmp_path, capsys):
    out = tmp_path / "clean"
    assert main(["export", str(root), "--out", str(out), "--hardlink"]) == 0
    assert "hard-linked (shared with the original: do not edit them)" in capsys.readouterr().out
    band = next(root.glob("train_features/bfua/*.tif"))
    assert os.stat(band).st_ino == os.stat(out / band.relative_to(root)).st_ino
    with pytest.raises(SystemExit):
        main(["export", "--help"])
    assert "changes the original dataset too" in " ".join(capsys.readouterr().out.split())


@pytest.mark.slow
def test_the_leftovers_of_a_killed_export_are_removed_by_the_next(root, tmp_path):
    """kill -9 in the middle of an export, then export again beside it."""
    marker = tmp_path / "started"
    code = f"""
import pathlib, time
from chipqa.review import export
def progress(done, total):
    if done == 2:
        pathlib.Path({str(marker)!r}).touch()
        time.sleep(120)
export.export_dataset({str(root)!r}, {str(tmp_path / "clean")!r}, progress=progress)
"""
    proc = subprocess.Popen([sys.executable, "-c", code])
    try:
        for _ in range(600):
            if marker.exists() or proc.poll() is not None:
                break
            time.sleep(0.1)
        assert marker.exists()
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.wait(timeout=60)
    (left,) = [p for p in tmp_path.iterdir() if "chipqa-export" in p.name]
    assert any(left.rglob("*.tif"))  # the killed export's half copy
    assert main(["export", str(root), "--out", str(tmp_path / "clean"), "-q"]) == 0
    assert not left.exists()
    assert not [p for p in tmp_path.iterdir() if "chipqa-export" in p.name]
