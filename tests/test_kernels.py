"""The fused CPU kernels compute what the torch code computes, on awkward chips too."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from rasterio.transform import from_origin
from rasterio.warp import Resampling, reproject

from chipqa.data import open_dataset
from chipqa.data.tiff import _scl_on_grid
from chipqa.predictors import SpectralBaseline
from chipqa.scoring.pipeline import _batch_stats_on_device, default_workers, score_dataset
from chipqa.stats import kernels
from chipqa.stats.batched import chip_stats, scl_stats
from chipqa.synth import generate_dataset, make_chip


def _chips(size: int, n: int = 6, seed: int = 3):
    """Synthetic chips of every sky, with a nodata edge and SCL-like codes."""
    rng = np.random.default_rng(seed)
    bands, labels, valid, scl = [], [], [], []
    for i in range(n):
        c = make_chip(rng, f"c{i}", size, sky=("overcast", "clear", "partial")[i % 3])
        bands.append(c.bands)
        v = c.bands.min(0) > 0
        v[:, : size // 7] = False  # a swath edge
        lab = np.where(v, c.label, 255).astype(np.uint8)
        if i == 4:
            lab[v] = 1  # an all-cloud label
        labels.append(lab)
        valid.append(v & (lab != 255))
        scl.append(rng.choice(np.array([0, 3, 4, 5, 8, 9, 10], np.uint8), (size, size)))
    if n > 5:
        valid[5][:] = False  # a chip without one valid pixel
    return [np.stack(x) for x in (bands, labels, valid, scl)]


@pytest.mark.parametrize("size", [64, 37, 4])  # even, odd, and smaller than the 5×5 window
def test_baseline_kernel_equals_the_torch_baseline(size):
    bands = np.ascontiguousarray(_chips(max(size, 16))[0][..., :size, :size])
    base = SpectralBaseline()
    want = base.predict_proba_torch(torch.from_numpy(bands)).numpy()
    got = np.empty_like(want)
    c = np.asarray(base.coefficients, np.float64)
    for i in range(len(bands)):
        kernels.baseline_proba(bands[i], c, base.smooth_px, got[i])
    np.testing.assert_allclose(got, want, atol=1e-5, rtol=0)
    # predict_proba on a CPU tensor takes the kernel path
    np.testing.assert_allclose(
        base.predict_proba(torch.from_numpy(bands)).numpy(), want, atol=1e-5, rtol=0
    )


def test_kernel_statistics_equal_the_torch_statistics():
    bands, labels, valid, scl = _chips(48)
    base = SpectralBaseline()
    prob = base.predict_proba_torch(torch.from_numpy(bands))
    t = torch.from_numpy
    want = chip_stats(prob, t(labels), t(valid))
    want.update(scl_stats(prob >= 0.5, t(labels) == 1, t(scl), t(valid)))
    c = np.asarray(base.coefficients, np.float64)
    for i in range(len(bands)):
        fused = kernels.score_chip_baseline(
            bands[i], c, base.smooth_px, labels[i], valid[i], scl[i], 0.5, 0.1
        )
        from_prob = kernels.score_chip_prob(prob[i].numpy(), labels[i], valid[i], scl[i], 0.5, 0.1)
        for key, values in want.items():
            expected = float(values[i])
            for got in (fused[key], from_prob[key]):
                if np.isnan(expected):
                    assert np.isnan(got), (i, key)
                else:
                    assert got == pytest.approx(expected, abs=1e-4), (i, key)
    # The cases the conventions are about.
    assert fused["valid_fraction"] == 0 and np.isnan(fused["iou"])  # chip 5: no valid pixel
    row4 = kernels.score_chip_prob(prob[4].numpy(), labels[4], valid[4], scl[4], 0.5, 0.1)
    assert row4["label_cloud_fraction"] == 1.0
    assert 0 < row4["scl_shadow_fraction"] < 1  # class 3 is counted apart from cloud


def test_chips_without_label_or_scl_get_only_what_can_be_computed():
    bands, labels, valid, _ = _chips(32, n=2)
    row = kernels.score_chip_prob(
        np.full((32, 32), 0.7, np.float32), None, valid[0], None, 0.5, 0.1
    )
    assert set(row) == {"valid_fraction", "pred_cloud_fraction"}
    assert row["pred_cloud_fraction"] == 1.0
    row = kernels.score_chip_prob(
        np.zeros((32, 32), np.float32), labels[0], valid[0], None, 0.5, 0.1
    )
    assert "iou" in row and "iou_label_scl" not in row


def test_exponential_and_tanh_approximations_are_accurate():
    # Through the soft minimum: one pixel of agreement a among pixels of agreement 1.
    for a in (0.0, 0.3, 0.9, 1.0):
        prob = np.array([[a, 1.0]], np.float32)
        row = kernels.score_chip_prob(
            prob, np.ones((1, 2), np.uint8), np.ones((1, 2), bool), None, 0.5, 0.02
        )
        w = np.exp(-np.array([a, 1.0]) / 0.02)
        want = (np.array([a, 1.0]) * w).sum() / w.sum()
        assert row["label_quality"] == pytest.approx(want, rel=1e-5)


def test_scoring_a_dataset_on_the_cpu_equals_the_batched_torch_path(tmp_path):
    generate_dataset(tmp_path / "d", n_chips=10, size=48, seed=5)
    ds = open_dataset(tmp_path / "d")
    fused = score_dataset(ds, SpectralBaseline()).set_index("chip_id")
    base = SpectralBaseline()
    chips = [ds.read(cid) for cid in ds.chip_ids]
    prob = base.predict_proba_torch(torch.from_numpy(np.stack([c.bands for c in chips])))
    valid = torch.from_numpy(np.stack([c.valid for c in chips]))
    rows = _batch_stats_on_device(prob, chips, valid, 0.5)
    for chip, row in zip(chips, rows, strict=True):
        for key, value in row.items():
            assert fused.loc[chip.chip_id, key] == pytest.approx(value, abs=1e-4, nan_ok=True)
    assert default_workers(True) >= 2 and default_workers(False) == 2


def test_scl_fast_resampling_equals_gdal_nearest():
    rng = np.random.default_rng(0)
    for _ in range(60):
        src_res = float(rng.choice([10.0, 20.0, 60.0, 15.0]))
        dst_res = float(rng.choice([10.0, 20.0, 7.0]))
        src_t = from_origin(
            300_000 + rng.uniform(-300, 300), 5e6 + rng.uniform(-300, 300), src_res, src_res
        )
        dst_t = from_origin(300_000.0, 5e6, dst_res, dst_res)
        data = rng.integers(1, 12, (int(rng.integers(5, 40)), int(rng.integers(5, 40))))
        data = data.astype(np.uint8)
        shape = (int(rng.integers(5, 50)), int(rng.integers(5, 50)))
        want = np.zeros(shape, np.uint8)
        reproject(
            source=data,
            destination=want,
            src_transform=src_t,
            src_crs="EPSG:32633",
            src_nodata=0,
            dst_transform=dst_t,
            dst_crs="EPSG:32633",
            dst_nodata=0,
            resampling=Resampling.nearest,
        )
        got = _scl_on_grid(data, src_t, dst_t, shape)
        assert got is not None  # these grids have no ties: the fast path is taken
        np.testing.assert_array_equal(got, want)
    # A chip grid twice as coarse as the SCL puts every centre on an SCL pixel edge: the
    # tie is left to GDAL rather than broken another way.
    coarse = from_origin(300_000.0, 5e6, 40.0, 40.0)
    fine = from_origin(300_000.0, 5e6, 20.0, 20.0)
    assert _scl_on_grid(np.ones((8, 8), np.uint8), fine, coarse, (4, 4)) is None


@pytest.mark.slow
def test_scoring_works_where_the_compiled_kernels_cannot_be_cached(tmp_path):
    # A cache folder that cannot take the compiled code (here: files limited to 2 kB, as
    # on a full disk): the kernels are compiled without a cache, with a warning, and
    # every chip is scored.
    import os
    import subprocess
    import sys

    generate_dataset(tmp_path / "d", n_chips=4, size=32, seed=1)
    code = f"""
import resource, signal, sys, warnings
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
resource.setrlimit(resource.RLIMIT_FSIZE, (2048, 2048))
from chipqa.data import open_dataset
from chipqa.predictors import SpectralBaseline
from chipqa.scoring import score_dataset
with warnings.catch_warnings(record=True) as caught:
    warnings.simplefilter("always")
    df = score_dataset(open_dataset({str(tmp_path / "d")!r}), SpectralBaseline())
print(int((df["error"].fillna("") != "").sum()), int(df["iou"].notna().sum()))
print(*[str(w.message) for w in caught], sep="\\n")
"""
    env = os.environ | {
        "NUMBA_CACHE_DIR": str(tmp_path / "nbcache"),
        "PYTHONDONTWRITEBYTECODE": "1",
    }
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env)
    assert res.returncode == 0, res.stderr[-2000:]
    errors, scored = map(int, res.stdout.splitlines()[0].split())
    assert errors == 0 and scored == 4
    assert "cannot be cached" in res.stdout and "compiled anew" in res.stdout


def test_a_failing_scorer_stops_the_run_instead_of_blaming_every_chip(tmp_path, monkeypatch):
    from chipqa.errors import ChipqaError

    generate_dataset(tmp_path / "d", n_chips=3, size=32, seed=1)

    def broken(self, threshold, temperature):
        def score(chip):
            raise RuntimeError("kernel exploded")

        return score

    monkeypatch.setattr(SpectralBaseline, "chip_scorer", broken)
    with pytest.raises(ChipqaError, match="scoring failed on chip .* kernel exploded"):
        score_dataset(open_dataset(tmp_path / "d"), SpectralBaseline())


def test_temperatures_below_what_the_kernels_support_are_refused():
    with pytest.raises(ValueError, match="temperature 0.001"):
        kernels.score_chip_prob(np.ones((2, 2), np.float32), np.ones((2, 2), np.uint8),
                                 np.ones((2, 2), bool), None, 0.5, 0.001)  # fmt: skip
