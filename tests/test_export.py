"""``chipqa fix`` and ``chipqa export`` on both layouts; bad input; a full disk."""

from __future__ import annotations

import errno
import os

import numpy as np
import pandas as pd
import pytest
import rasterio

from chipqa.blocklist.csvread import read_blocklist
from chipqa.blocklist.store import BlocklistStore
from chipqa.cli import main
from chipqa.data import open_dataset
from chipqa.io import layout as L
from chipqa.io.paths import side_paths
from chipqa.synth import generate_dataset


@pytest.fixture(scope="module", params=["oncloudn", "flat"])
def synth(request, tmp_path_factory):
    root = tmp_path_factory.mktemp(request.param) / "data"
    return generate_dataset(root, n_chips=6, size=32, seed=5, layout=request.param).root


@pytest.fixture
def data(synth, tmp_path):
    """A private copy of the module's dataset (fixes and blocklists stay in the test)."""
    import shutil

    root = tmp_path / "data"
    shutil.copytree(synth, root)
    return root


def _inverted_label_file(root, chip_id, out):
    layout = L.detect_layout(root)
    with rasterio.open(L.label_path(root, layout, chip_id)) as src:
        label, profile = src.read(1), src.profile
    inverted = np.where(label == 255, 255, 1 - np.minimum(label, 1)).astype(np.uint8)
    with rasterio.open(out, "w", **profile) as dst:
        dst.write(inverted, 1)
    return inverted


def test_fix_then_export_a_cleaned_copy_in_the_same_layout(data, tmp_path, capsys):
    ids = open_dataset(data, fixes=False).chip_ids
    from_model, from_file, blocked = ids[0], ids[1], ids[2]
    assert main(["fix", str(data), from_model, "--from-model", "--model", "baseline"]) == 0
    inverted = _inverted_label_file(data, from_file, tmp_path / "mine.tif")
    assert main(["fix", str(data), from_file, "--label", str(tmp_path / "mine.tif")]) == 0
    BlocklistStore(side_paths(data).blocklist).decide(blocked, "block", "wrong_chip")
    rows = read_blocklist(side_paths(data).blocklist)
    assert (rows[from_model].fix_source, rows[from_model].model) == ("model", "baseline")
    assert rows[from_file].fix_source == "file"
    capsys.readouterr()

    clean = tmp_path / "clean"
    assert main(["export", str(data), "--out", str(clean)]) == 0
    text = capsys.readouterr().out
    assert f"exported {len(ids) - 1} of {len(ids)} chips" in text
    assert f"left out, blocked: 1 ({blocked})" in text
    assert "labels replaced by fixes: 2" in text

    original, exported = open_dataset(data, fixes=False), open_dataset(clean, fixes=False)
    fixed = open_dataset(data)
    assert exported.layout == original.layout
    assert exported.chip_ids == [c for c in ids if c != blocked]
    for cid in exported.chip_ids:
        got = exported.read(cid)
        np.testing.assert_array_equal(got.label, fixed.read(cid).label)
        np.testing.assert_array_equal(got.bands, original.read(cid).bands)
        for src, dst in zip(original[cid].band_paths, exported[cid].band_paths, strict=True):
            assert os.stat(src).st_ino != os.stat(dst).st_ino  # its own file (a reflink or copy)
        scl = L.scl_path(original[cid].folder)
        assert scl.is_file() == L.scl_path(exported[cid].folder).is_file()
    with rasterio.open(exported[from_file].label_path) as src:
        np.testing.assert_array_equal(src.read(1), inverted)
    assert open_dataset(data, fixes=False).read(from_file).label is not None  # untouched
    assert not (original.read(from_file).label == inverted).all()
    if original.layout == L.ONCLOUDN:
        meta = pd.read_csv(L.metadata_path(clean), dtype=str, keep_default_na=False)
        before = pd.read_csv(L.metadata_path(data), dtype=str, keep_default_na=False)
        assert list(meta.columns) == list(before.columns)
        kept = before[before["chip_id"] != blocked].reset_index(drop=True)
        pd.testing.assert_frame_equal(meta, kept)  # the original rows, in their order


def test_export_with_copy_writes_independent_files(data, tmp_path):
    clean = tmp_path / "clean"
    clean.mkdir()  # an empty folder is fine
    assert main(["export", str(data), "--out", str(clean), "--copy", "-q"]) == 0
    original, exported = open_dataset(data), open_dataset(clean)
    rec, got = original.records[0], exported.records[0]
    assert os.stat(rec.band_paths[0]).st_ino != os.stat(got.band_paths[0]).st_ino
    assert rec.band_paths[0].read_bytes() == got.band_paths[0].read_bytes()


def test_export_into_a_folder_that_is_not_empty_is_refused(data, tmp_path, capsys):
    out = tmp_path / "clean"
    out.mkdir()
    (out / "mine.txt").write_text("keep me")
    assert main(["export", str(data), "--out", str(out)]) == 2
    assert "exists and is not an empty folder" in capsys.readouterr().err
    assert [p.name for p in out.iterdir()] == ["mine.txt"]
    assert main(["export", str(data), "--out", str(data / "inside")]) == 2
    assert "inside the dataset" in capsys.readouterr().err


@pytest.mark.parametrize("fails", ["copy", "rename"])
def test_a_full_disk_during_export_leaves_nothing_under_the_name(
    data, tmp_path, capsys, monkeypatch, fails
):
    import shutil

    out = tmp_path / "clean"
    out.mkdir()
    real_copy = shutil.copyfile
    calls = []

    def copy_until_full(src, dst, **kw):
        calls.append(src)
        if len(calls) > 5:  # some files went in, then the disk is full
            with open(dst, "wb") as f:
                f.write(b"half")
            raise OSError(errno.ENOSPC, "No space left on device", str(dst))
        return real_copy(src, dst, **kw)

    def rename_fails(src, dst):
        raise OSError(errno.ENOSPC, "No space left on device")

    if fails == "copy":
        monkeypatch.setattr("chipqa.review.export.shutil.copyfile", copy_until_full)
    else:
        monkeypatch.setattr("chipqa.review.export.os.rename", rename_fails)
    before = sorted(p.relative_to(data) for p in data.rglob("*"))
    assert main(["export", str(data), "--out", str(out), "--copy"]) == 2
    monkeypatch.undo()
    err = capsys.readouterr().err
    assert "No space left" in err and "Nothing was written under" in err
    assert out.is_dir() and not any(out.iterdir())  # the empty folder, as it was
    assert sorted(p.name for p in tmp_path.iterdir()) == ["clean", "data"]  # no temp folder
    assert sorted(p.relative_to(data) for p in data.rglob("*")) == before


def test_fix_refuses_an_unknown_chip_and_a_label_off_the_chip_grid(data, tmp_path, capsys):
    cid = open_dataset(data).chip_ids[0]
    assert main(["fix", str(data), "nope", "--from-model", "--model", "baseline"]) == 2
    assert "no chip 'nope'" in capsys.readouterr().err
    layout = L.detect_layout(data)
    with rasterio.open(L.label_path(data, layout, cid)) as src:
        profile = src.profile | {"crs": "EPSG:4326"}
        label = src.read(1)
    bad = tmp_path / "bad.tif"
    with rasterio.open(bad, "w", **profile) as dst:
        dst.write(label, 1)
    assert main(["fix", str(data), cid, "--label", str(bad)]) == 2
    err = capsys.readouterr().err
    assert f"'{cid}'" in err and str(bad) in err and "EPSG:4326" in err
    assert not side_paths(data).blocklist.exists() and not side_paths(data).fixes.exists()
