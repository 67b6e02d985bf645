"""Label fixes: written beside the dataset, recorded in the blocklist, read by every reader;
bulk decisions; bad input refused, nothing lost on a full disk."""

from __future__ import annotations

import errno
import os
import time

import numpy as np
import pytest
import rasterio
from rasterio.transform import from_origin

from chipqa.blocklist.csvformat import COLUMNS, BlocklistError
from chipqa.blocklist.csvread import read_blocklist
from chipqa.blocklist.store import BlocklistStore
from chipqa.data import open_dataset
from chipqa.data.cache import build_cache
from chipqa.errors import ChipReadError
from chipqa.io.paths import side_paths
from chipqa.review.fixes import FixError
from conftest import make_bands, write_chip, write_tif

SIZE = 32


@pytest.fixture
def root(tmp_path):
    """Three 32 px chips: 'over' is labelled 100 % cloud over a clear image with a band
    nodata stripe and a no-label corner; 'half' is right; 'clear' is right."""
    root = tmp_path / "ds"
    half = np.zeros((SIZE, SIZE), bool)
    half[:, : SIZE // 2] = True
    bands = make_bands(SIZE)
    bands[:, :2, :] = 0  # two rows without data
    wrong = np.ones((SIZE, SIZE), np.uint8)
    wrong[-4:, -4:] = 255  # a corner without a label
    write_chip(root, "over", bands, wrong)
    write_chip(root, "half", make_bands(SIZE, half, seed=1), half.astype(np.uint8))
    write_chip(root, "clear", make_bands(SIZE, seed=2), np.zeros((SIZE, SIZE), np.uint8))
    return root


def _store(root, **kw) -> BlocklistStore:
    return BlocklistStore(side_paths(root).blocklist, reviewer="ana", **kw)


def _fix_files(root) -> list[str]:
    folder = side_paths(root).fixes
    return sorted(p.name for p in folder.iterdir()) if folder.exists() else []


def test_a_fix_is_a_geotiff_beside_the_dataset_and_a_decision_naming_it(root):
    original = (root / "train_labels" / "over.tif").read_bytes()
    store = _store(root)
    d = store.fix("over", np.zeros((SIZE, SIZE), np.uint8), source="model", model="baseline")
    assert (d.decision, d.fix_source, d.model, d.reviewer) == ("fix", "model", "baseline", "ana")
    path = side_paths(root).fixes / d.fix_file
    assert path.is_file() and _fix_files(root) == [d.fix_file]
    assert d.fix_file.startswith("over.") and d.fix_file.endswith(".tif")
    with rasterio.open(path) as fix, rasterio.open(root / "train_labels" / "over.tif") as orig:
        assert (fix.crs, fix.transform, fix.shape) == (orig.crs, orig.transform, orig.shape)
        assert (fix.dtypes[0], fix.nodata, fix.count) == ("uint8", 255, 1)
        label = fix.read(1)
    # the chip's no-data pixels stay no data: band nodata rows and the no-label corner
    assert (label[:2] == 255).all() and (label[-4:, -4:] == 255).all()
    assert (label[2:-4] == 0).all()
    assert (root / "train_labels" / "over.tif").read_bytes() == original  # never touched
    row = read_blocklist(store.path)["over"]
    assert row == d and row.fix_file == d.fix_file


def test_every_reader_uses_the_fixed_label_and_undo_brings_the_original_back(root):
    store = _store(root)
    store.decide("half", "keep")
    store.fix("over", np.zeros((SIZE, SIZE), np.uint8), source="painted")
    ds = open_dataset(root, cache="off")
    rec = ds["over"]
    assert rec.label_source == "fixed" and ds["half"].label_source == "original"
    assert rec.original_label_path == root / "train_labels" / "over.tif"
    chip = ds.read("over")
    assert chip.label[chip.valid].max() == 0  # 0 % cloud, as fixed
    assert not open_dataset(root, fixes=False)["over"].fixed

    from chipqa.predictors import SpectralBaseline
    from chipqa.scoring import score_dataset

    scores = score_dataset(ds, SpectralBaseline()).set_index("chip_id")
    assert scores.loc["over", "label_cloud_fraction"] == 0.0

    fix_file = store.get("over").fix_file
    assert store.undo() == "over"
    assert store.get("over") is None and _fix_files(root) == [fix_file]  # the file stays
    again = open_dataset(root, cache="off")
    assert not again["over"].fixed
    assert again.read("over").label[again.read("over").valid].min() == 1


def test_keep_block_or_unsure_after_a_fix_keep_the_fixed_label(root):
    store = _store(root)
    d = store.fix("over", np.zeros((SIZE, SIZE), np.uint8), source="painted")
    store.decide("over", "keep")
    assert open_dataset(root, cache="off")["over"].fixed
    store.decide("over", "block", "other")
    assert read_blocklist(store.path)["over"].fix_file == d.fix_file
    assert store.fixed() == {"over": d.fix_file}
    store.undo()
    store.undo()
    store.undo()  # back past the fix: the original label again
    assert store.fixed() == {} and not open_dataset(root, cache="off")["over"].fixed


def test_two_windows_fixing_one_chip_the_later_fix_wins_and_both_files_stay(root):
    a, b = _store(root), BlocklistStore(side_paths(root).blocklist, reviewer="bo")
    first = a.fix("over", np.zeros((SIZE, SIZE), np.uint8), source="painted")
    second = b.fix("over", np.ones((SIZE, SIZE), np.uint8), source="model", model="m")
    assert first.fix_file != second.fix_file
    assert _fix_files(root) == sorted([first.fix_file, second.fix_file])
    assert read_blocklist(a.path)["over"].fix_file == second.fix_file
    ds = open_dataset(root, cache="off")
    assert ds["over"].label_path.name == second.fix_file
    with pytest.raises(BlocklistError, match="decided again by bo"):
        a.undo()  # never takes back the other window's later fix


def test_the_cache_serves_a_fixed_chip_without_a_rebuild(root, monkeypatch):
    build_cache(open_dataset(root, cache="off"))
    _store(root).fix("over", np.zeros((SIZE, SIZE), np.uint8), source="painted")
    ds = open_dataset(root)  # cache "auto"
    assert ds.cache is not None and ds.cache.holds(ds["over"])
    tiff = open_dataset(root, cache="off").read("over")
    import chipqa.data.dataset as dataset_module

    def no_tiffs(record, **kw):
        raise AssertionError(f"read {record.chip_id} from its TIFFs")

    monkeypatch.setattr(dataset_module, "read_chip", no_tiffs)
    cached = ds.read("over")  # bands from the cache, the label from the fix
    np.testing.assert_array_equal(cached.label, tiff.label)
    np.testing.assert_array_equal(cached.valid, tiff.valid)
    np.testing.assert_array_equal(cached.bands, tiff.bands)


def test_a_fix_labelling_pixels_the_original_left_unlabelled_is_read_right_from_the_cache(
    root, tmp_path
):
    build_cache(open_dataset(root, cache="off"))
    label = np.ones((SIZE, SIZE), np.uint8)  # labels the original's no-label corner too
    fix = tmp_path / "mine.tif"
    write_tif(fix, label, nodata=255)
    from chipqa.data.listing import find_chip
    from chipqa.review.fixes import label_profile, read_label_file

    profile, ref = label_profile(find_chip(root, "over"))
    _store(root).fix("over", read_label_file("over", fix, profile, ref), source="file")
    cached, tiff = open_dataset(root).read("over"), open_dataset(root, cache="off").read("over")
    assert tiff.valid[-4:, -4:].all()  # a file fix is written as given
    np.testing.assert_array_equal(cached.label, tiff.label)
    np.testing.assert_array_equal(cached.valid, tiff.valid)


def test_a_chip_without_a_label_gets_one_on_its_bands_grid(root):
    write_chip(root, "nolabel", make_bands(SIZE, seed=4), None)
    build_cache(open_dataset(root, cache="off"))
    label = np.zeros((SIZE, SIZE), np.uint8)
    label[:8] = 1
    _store(root).fix("nolabel", label, source="painted")
    cached, tiff = (
        open_dataset(root).read("nolabel"),
        open_dataset(root, cache="off").read("nolabel"),
    )
    assert tiff.label is not None and (tiff.label[:8] == 1).all()
    np.testing.assert_array_equal(cached.label, tiff.label)
    np.testing.assert_array_equal(cached.valid, tiff.valid)


def test_a_missing_fix_file_is_named_when_the_chip_is_read(root):
    d = _store(root).fix("over", np.zeros((SIZE, SIZE), np.uint8), source="painted")
    (side_paths(root).fixes / d.fix_file).unlink()
    ds = open_dataset(root, cache="off")
    with pytest.raises(ChipReadError, match="label fix.*missing") as err:
        ds.read("over")
    assert d.fix_file in str(err.value)
    assert ds.read("half").label is not None  # the others are read as before


# -- bad input -----------------------------------------------------------------------------
def _other_grid_file(tmp_path, **kw):
    return write_tif(tmp_path / "bad.tif", np.zeros((SIZE, SIZE), np.uint8), nodata=255, **kw)


@pytest.mark.parametrize(
    "make, message",
    [
        (lambda t: write_tif(t / "bad.tif", np.zeros((16, 16), np.uint8), nodata=255), "16×16"),
        (lambda t: _other_grid_file(t, crs="EPSG:32633"), "EPSG:32633"),
        (
            lambda t: _other_grid_file(t, transform=from_origin(0.0, 0.0, 10.0, 10.0)),
            "georeference",
        ),
        (lambda t: write_tif(t / "bad.tif", np.full((SIZE, SIZE), 2, np.uint8), nodata=255), "2"),
    ],
    ids=["size", "crs", "transform", "values"],
)
def test_a_label_file_that_does_not_fit_the_chip_is_refused(root, tmp_path, make, message):
    from chipqa.data.listing import find_chip
    from chipqa.review.fixes import label_profile, read_label_file

    bad = make(tmp_path)
    store = _store(root)
    profile, ref = label_profile(find_chip(root, "over"))
    with pytest.raises(FixError, match=message) as err:
        store.fix("over", read_label_file("over", bad, profile, ref), source="file")
    assert "'over'" in str(err.value) and str(bad) in str(err.value)
    assert _fix_files(root) == [] and not store.path.exists()


@pytest.mark.parametrize(
    "label, message",
    [
        (np.zeros((SIZE, SIZE + 1), np.uint8), "32×33 pixels"),
        (np.full((SIZE, SIZE), 7, np.uint8), "holds values 7"),
        (np.full((SIZE, SIZE), 0.5, np.float32), "holds values 0.5"),
    ],
)
def test_a_painted_or_model_label_that_does_not_fit_is_refused(root, label, message):
    store = _store(root)
    with pytest.raises(FixError, match=message) as err:
        store.fix("over", label, source="painted")
    assert "'over'" in str(err.value)
    assert _fix_files(root) == [] and len(store) == 0


def test_a_fix_for_an_unknown_chip_is_refused(root):
    store = _store(root)
    with pytest.raises(FixError, match="no chip 'nope'"):
        store.fix("nope", np.zeros((SIZE, SIZE), np.uint8), source="painted")
    assert _fix_files(root) == [] and len(store) == 0


@pytest.mark.parametrize("where", ["write", "replace"])
def test_a_full_disk_during_a_fix_leaves_no_file_and_loses_nothing(root, monkeypatch, where):
    store = _store(root)
    earlier = store.fix("over", np.zeros((SIZE, SIZE), np.uint8), source="painted")
    earlier_bytes = (side_paths(root).fixes / earlier.fix_file).read_bytes()
    blocklist = store.path.read_bytes()

    def full(*a, **k):
        raise OSError(errno.ENOSPC, "No space left on device")

    if where == "replace":
        monkeypatch.setattr("chipqa.io.atomic.os.replace", full)
    else:  # GDAL writes the pixels: make the file it writes unwritable mid-way
        import rasterio.io

        monkeypatch.setattr(rasterio.io.DatasetWriter, "write", full)
    with pytest.raises(FixError, match="No space left") as err:
        store.fix("over", np.ones((SIZE, SIZE), np.uint8), source="painted")
    monkeypatch.undo()
    assert "'over'" in str(err.value)
    folder = side_paths(root).fixes
    assert sorted(os.listdir(folder)) == [earlier.fix_file]  # no temporary, no new fix
    assert (folder / earlier.fix_file).read_bytes() == earlier_bytes
    assert store.path.read_bytes() == blocklist and store.get("over") == earlier


def test_a_fix_whose_decision_cannot_be_written_leaves_no_file(root, monkeypatch):
    store = _store(root)
    store.decide("half", "keep")

    def full(fd, data):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr("chipqa.blocklist.diskfile.os.write", full)
    with pytest.raises(BlocklistError, match="No space left"):
        store.fix("over", np.zeros((SIZE, SIZE), np.uint8), source="painted")
    monkeypatch.undo()
    assert _fix_files(root) == [] and store.get("over") is None


# -- bulk decisions and the format ---------------------------------------------------------
def test_many_decisions_go_in_one_append_and_one_undo_takes_them_back(tmp_path):
    path = tmp_path / "bl.csv"
    store = BlocklistStore(path, reviewer="ana")
    store.decide("c0", "keep")
    before, inode = path.read_bytes(), path.stat().st_ino
    items = [
        (f"c{i}", "block", "no_cloud_wrong", {"flags": "no_cloud_label"}) for i in range(10_000)
    ]
    t0 = time.perf_counter()
    made = store.decide_many(items, rule="flag=no_cloud_label")
    seconds = time.perf_counter() - t0
    after = path.read_bytes()
    assert path.stat().st_ino == inode and after.startswith(before)
    assert after[len(before) :].count(b"\n") == 10_000 and len(made) == 10_000
    assert seconds < 3.0, f"10 000 decisions took {seconds:.1f} s"
    rows = read_blocklist(path)
    assert rows["c9999"].rule == "flag=no_cloud_label" and rows["c0"].decision == "block"
    assert store.undo() == "c0" and len(store.last_undone) == 10_000
    assert {k: d.decision for k, d in read_blocklist(path).items()} == {"c0": "keep"}


def test_a_bad_item_in_a_group_records_nothing(tmp_path):
    store = BlocklistStore(tmp_path / "bl.csv")
    with pytest.raises(BlocklistError, match="formula"):
        store.decide_many([("ok", "block", "", None), ("=bad", "block", "", None)])
    with pytest.raises(ValueError, match="BlocklistStore.fix"):
        store.decide_many([("ok", "fix", "", None)])
    assert not store.path.exists() and not store.can_undo


def test_a_group_undo_leaves_chips_another_window_decided_since(tmp_path):
    path = tmp_path / "bl.csv"
    a, b = BlocklistStore(path, reviewer="a"), BlocklistStore(path, reviewer="b")
    a.decide_many([("x", "block", "", None), ("y", "block", "", None)], rule="page 1")
    b.decide("y", "keep")
    assert a.undo() == "x" and a.last_undo_skipped == ["y"]
    rows = read_blocklist(path)
    assert "x" not in rows and (rows["y"].decision, rows["y"].reviewer) == ("keep", "b")


def test_an_older_blocklist_without_the_new_columns_is_read_and_upgraded(tmp_path):
    path = tmp_path / "bl.csv"
    old = ",".join(COLUMNS[:11])
    path.write_text(f"{old}\naaaa,block,shifted,,,,,,,ana,2026-01-01T00:00:00.000000Z\n")
    assert read_blocklist(path)["aaaa"].fix_file == ""
    BlocklistStore(path).decide("bbbb", "keep")
    assert path.read_text().splitlines()[0] == ",".join(COLUMNS)
    assert set(read_blocklist(path)) == {"aaaa", "bbbb"}


def test_a_fix_row_cut_short_by_a_crash_is_ignored(root):
    store = _store(root)
    store.decide("half", "keep")
    whole = store.path.read_bytes()
    d = store.fix("over", np.zeros((SIZE, SIZE), np.uint8), source="painted")
    row = store.path.read_bytes()[len(whole) :].rstrip(b"\n")
    cuts = [len(row) - 3, row.rfind(b",") + 1, row.rfind(b","), row.rfind(b".tif")]
    for cut in cuts:
        store.path.write_bytes(whole + row[:cut])
        assert "over" not in read_blocklist(store.path), row[:cut]
        assert not open_dataset(root, cache="off")["over"].fixed
    store.path.write_bytes(whole + row)  # whole, only its line end missing
    assert read_blocklist(store.path)["over"].fix_file == d.fix_file


def test_a_fix_file_cell_pointing_outside_the_fixes_folder_is_refused(root):
    path = side_paths(root).blocklist
    path.write_text(f"{','.join(COLUMNS)}\nover,fix,,,,,,,,ana,,,../../etc/x.tif,file\n")
    with pytest.raises(BlocklistError, match="line 2: fix file '../../etc/x.tif'"):
        open_dataset(root)
