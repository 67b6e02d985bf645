"""The chip cache: same pixels as the TIFFs, never stale, never required."""

from __future__ import annotations

import os
import pickle

import numpy as np
import pandas as pd
import pytest

from chipqa.cli import main
from chipqa.data import open_dataset, read_chip
from chipqa.data.cache import ChipCache, build_cache, cache_dir_for
from chipqa.synth import generate_dataset
from conftest import BANDS, make_bands, write_chip, write_tif


@pytest.fixture
def data(tmp_path):
    res = generate_dataset(tmp_path / "data", n_chips=10, size=32, seed=2, nodata_rate=0.3)
    write_chip(res.root, "zzunlabelled", make_bands(32), None)  # predicted, not scored
    write_chip(res.root, "zzbigger", make_bands(48), np.zeros((48, 48), np.uint8))  # other size
    return res.root


def test_cached_chips_are_the_tiff_chips(data):
    ds = open_dataset(data)
    cache = build_cache(ds)
    assert cache.folder == cache_dir_for(data) and len(cache) == 11  # all but the 48 px chip
    for rec in ds:
        from_cache = cache.read(rec)
        if rec.chip_id == "zzbigger":
            assert from_cache is None
            continue
        tiff = read_chip(rec)
        np.testing.assert_array_equal(from_cache.bands, tiff.bands)
        np.testing.assert_array_equal(from_cache.valid, tiff.valid)
        if tiff.label is None:
            assert from_cache.label is None
        else:
            np.testing.assert_array_equal(from_cache.label, tiff.label)


def test_an_unlabelled_chip_with_its_own_band_nodata_has_the_same_valid_pixels(tmp_path):
    """Bands that declare nodata 65535 (not Sentinel-2's 0) and carry no label: the cache
    must leave out exactly the pixels the TIFF reader leaves out."""
    root = tmp_path / "ds"
    write_chip(root, "labelled", make_bands(32), np.zeros((32, 32), np.uint8))
    bands = make_bands(32, seed=3)
    bands[:, :4, :] = 65535  # four rows without data: 1 024 - 128 = 896 valid pixels
    for i, b in enumerate(BANDS):
        write_tif(root / "train_features" / "nolabel" / f"{b}.tif", bands[i], nodata=65535)
    ds = open_dataset(root, cache="off")
    tiff = ds.read("nolabel")
    assert tiff.label is None and int(tiff.valid.sum()) == 896
    cached = build_cache(ds).read(ds["nolabel"])
    assert cached is not None and cached.label is None
    np.testing.assert_array_equal(cached.valid, tiff.valid)


def test_open_dataset_reads_through_a_built_cache_unless_told_not_to(data, monkeypatch):
    build_cache(open_dataset(data))
    import chipqa.data.dataset

    def no_tiffs(rec, **kw):
        raise AssertionError(f"read {rec.chip_id} from its TIFFs")

    monkeypatch.setattr(chipqa.data.dataset, "read_chip", no_tiffs)
    ds = open_dataset(data)  # cache="auto": the built cache is found
    assert ds.cache is not None
    assert ds.read(ds.chip_ids[0]).bands.shape == (4, 32, 32)
    with pytest.raises(AssertionError, match="from its TIFFs"):
        open_dataset(data, cache="off").read(ds.chip_ids[0])


def test_a_changed_source_file_is_read_from_the_tiff_again(data):
    ds = open_dataset(data)
    build_cache(ds)
    rec = ds[0]
    cache = ChipCache.open(data)
    assert cache.holds(rec)
    import rasterio

    with rasterio.open(rec.band_paths[2]) as src:
        profile = src.profile
    new = np.full((32, 32), 1234, np.uint16)
    with rasterio.open(rec.band_paths[2], "w", **profile) as dst:
        dst.write(new, 1)
    st = os.stat(rec.band_paths[2])
    os.utime(rec.band_paths[2], ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))
    assert not cache.holds(rec) and cache.read(rec) is None
    ds.use_cache()
    np.testing.assert_array_equal(ds.read(rec.chip_id).bands[2], new)


def test_scores_from_the_cache_equal_scores_from_tiffs_and_it_pickles(data, tmp_path):
    assert (
        main(
            [
                "score",
                str(data),
                "--model",
                "baseline",
                "--out",
                str(tmp_path / "a.csv"),
                "--cache",
                "off",
                "-q",
            ]
        )
        == 0
    )
    assert main(["cache", str(data), "-q"]) == 0
    assert (
        main(["score", str(data), "--model", "baseline", "--out", str(tmp_path / "b.csv"), "-q"])
        == 0
    )
    a, b = pd.read_csv(tmp_path / "a.csv"), pd.read_csv(tmp_path / "b.csv")
    pd.testing.assert_frame_equal(a, b)
    cache = ChipCache.open(data)
    cache.read(open_dataset(data)[0])  # maps opened
    clone = pickle.loads(pickle.dumps(cache))
    assert clone._mm is None and clone.read(open_dataset(data)[0]) is not None


def test_many_reader_threads_open_the_maps_safely(data):
    from concurrent.futures import ThreadPoolExecutor

    ds = open_dataset(data)
    build_cache(ds)
    for _ in range(5):
        cache = ChipCache.open(data)
        with ThreadPoolExecutor(8) as pool:
            chips = list(pool.map(cache.read, list(ds)[:10]))
        assert all(c is not None for c in chips)


def test_an_interrupted_rebuild_keeps_the_old_cache(data, monkeypatch):
    ds = open_dataset(data)
    build_cache(ds)

    def boom(*a, **k):
        raise KeyboardInterrupt

    monkeypatch.setattr("chipqa.data.cache._signature", boom)
    with pytest.raises(KeyboardInterrupt):
        build_cache(ds)
    monkeypatch.undo()
    assert ChipCache.open(data).holds(ds[0])


def test_a_disk_too_small_for_the_cache_says_so_and_keeps_the_old_cache(data, tmp_path):
    # The caching process may write at most 40 kB per file (RLIMIT_FSIZE): the new cache
    # cannot get its room, as on a full disk; the old cache must survive, whole.
    import subprocess
    import sys

    ds = open_dataset(data)
    build_cache(ds)
    code = f"""
import resource, signal, sys
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
resource.setrlimit(resource.RLIMIT_FSIZE, (40_000, 40_000))
from chipqa.cli import main
sys.exit(main(["cache", {str(data)!r}, "-q"]))
"""
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert res.returncode != 0 and "Traceback" not in res.stderr
    assert "cannot make room for the cache" in res.stderr and "--cache off" in res.stderr
    assert ChipCache.open(data).holds(ds[0])
    assert not list(cache_dir_for(data).parent.glob("*.building"))


def test_a_dataset_without_scl_files_is_cached_and_scored_from_the_cache(tmp_path):
    # On Cloud N ships no SCL: the cache must hold such chips (with a one-row SCL stand-in).
    res = generate_dataset(tmp_path / "d", n_chips=6, size=32, seed=4)
    for scl in res.root.rglob("SCL.tif"):
        scl.unlink()
    assert (
        main(
            ["score", str(res.root), "--model", "baseline", "--out", str(tmp_path / "a.csv"), "-q"]
        )
        == 0
    )
    args = ["score", str(res.root), "--model", "baseline", "--out", str(tmp_path / "b.csv")]
    assert main([*args, "--cache", "build", "-q"]) == 0
    cache = ChipCache.open(res.root)
    ds = open_dataset(res.root)
    assert all(cache.holds(r) for r in ds)
    assert (cache_dir_for(res.root) / "scl.npy").stat().st_size < 32 * 32 + 1024
    a, b = pd.read_csv(tmp_path / "a.csv"), pd.read_csv(tmp_path / "b.csv")
    pd.testing.assert_frame_equal(a, b)
    assert a["iou_label_scl"].isna().all()


def test_score_cache_off_reads_the_tiffs_even_with_a_cache_built(data, tmp_path):
    """--cache off must mean it: a cache whose pixels differ from the TIFFs (here made
    stale by hand) must not be read, while --cache auto reads it."""
    assert main(["cache", str(data), "-q"]) == 0
    cache = ChipCache.open(data)
    bands = np.load(cache.folder / "bands.npy", mmap_mode="r+")
    bands[:] = 9000  # bright white everywhere: the baseline would call every chip cloud
    bands.flush()
    del bands
    off, auto = tmp_path / "off.csv", tmp_path / "auto.csv"
    assert (
        main(["score", str(data), "--model", "baseline", "--out", str(off), "--cache", "off", "-q"])
        == 0
    )
    assert (
        main(
            ["score", str(data), "--model", "baseline", "--out", str(auto), "--cache", "auto", "-q"]
        )
        == 0
    )
    read = {p: pd.read_csv(p).set_index("chip_id")["pred_cloud_fraction"] for p in (off, auto)}
    cached = [c for c in read[off].index if cache.holds(open_dataset(data)[c])]
    assert (read[auto][cached] > 0.99).all()  # auto: the (doctored) cache
    assert (read[off][cached] < 0.99).any()  # off: the real pixels


def test_score_writes_its_default_table_beside_the_dataset_from_any_folder(data, monkeypatch):
    monkeypatch.chdir(data)
    assert main(["score", ".", "--model", "baseline", "-q"]) == 0
    assert (data.parent / f"{data.name}_scores.csv").is_file()
    assert not (data / "_scores.csv").exists()


@pytest.mark.parametrize("damage", ["truncate bands", "truncate labels", "garbage index"])
def test_a_damaged_cache_is_ignored_with_one_warning_and_chips_come_from_the_tiffs(
    data, tmp_path, damage
):
    from chipqa.data import DataWarning

    ds = open_dataset(data)
    build_cache(ds)
    folder = cache_dir_for(data)
    if damage == "garbage index":
        (folder / "index.json").write_text('{"version": 4, "chips": ')
    else:
        npy = folder / ("bands.npy" if damage == "truncate bands" else "labels.npy")
        with open(npy, "r+b") as f:
            f.truncate(npy.stat().st_size // 2)
    with pytest.warns(DataWarning) as record:
        damaged = open_dataset(data)
        scores = [damaged.read(c) for c in damaged.chip_ids[:3]]
    assert len(record) == 1
    msg = str(record[0].message)
    assert str(folder) in msg and "chipqa cache" in msg
    assert damaged.cache is None
    tiff = open_dataset(data, cache="off")
    for chip in scores:
        np.testing.assert_array_equal(chip.bands, tiff.read(chip.chip_id).bands)
    out = tmp_path / "s.csv"
    with pytest.warns(DataWarning, match="rebuild the cache"):
        assert main(["score", str(data), "--model", "baseline", "--out", str(out), "-q"]) == 0
    errors = pd.read_csv(out, keep_default_na=False)["error"]
    assert not errors.str.contains("mmap|unexpected").any()
    assert main(["cache", str(data), "-q"]) == 0  # rebuilding repairs it
    assert ChipCache.open(data).holds(ds[0])


def test_an_index_that_does_not_fit_on_the_disk_leaves_nothing_and_says_so(tmp_path):
    # Many tiny chips: the arrays are small but the index (file signatures) is not, so
    # a 12 kB per-file limit (RLIMIT_FSIZE, as a nearly full disk) stops only the index.
    import subprocess
    import sys

    root = tmp_path / "tiny"
    for i in range(40):
        write_chip(root, f"c{i:03d}", make_bands(4, seed=i), np.zeros((4, 4), np.uint8))
    code = f"""
import resource, signal, sys
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
resource.setrlimit(resource.RLIMIT_FSIZE, (12_000, 12_000))
from chipqa.cli import main
sys.exit(main(["cache", {str(root)!r}, "-q"]))
"""
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert res.returncode != 0 and "Traceback" not in res.stderr, res.stderr
    assert "cache index" in res.stderr and "--cache off" in res.stderr
    assert not list(tmp_path.glob("*.building")) and not cache_dir_for(root).exists()
    assert ChipCache.open(root) is None
