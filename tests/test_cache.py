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
from conftest import make_bands, write_chip


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
    assert main(["score", str(data), "--out", str(tmp_path / "a.csv"), "--cache", "off", "-q"]) == 0
    assert main(["cache", str(data), "-q"]) == 0
    assert main(["score", str(data), "--out", str(tmp_path / "b.csv"), "-q"]) == 0
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
    assert main(["score", str(res.root), "--out", str(tmp_path / "a.csv"), "-q"]) == 0
    assert main(["score", str(res.root), "--out", str(tmp_path / "b.csv"), "--cache", "build",
                 "-q"]) == 0  # fmt: skip
    cache = ChipCache.open(res.root)
    ds = open_dataset(res.root)
    assert all(cache.holds(r) for r in ds)
    assert (cache_dir_for(res.root) / "scl.npy").stat().st_size < 32 * 32 + 1024
    a, b = pd.read_csv(tmp_path / "a.csv"), pd.read_csv(tmp_path / "b.csv")
    pd.testing.assert_frame_equal(a, b)
    assert a["iou_label_scl"].isna().all()
