"""The fast CPU path: onnxruntime on a cached ONNX export of the network, or torch."""

from __future__ import annotations

import os
import resource
import sys
import warnings

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from chipqa.data import open_dataset
from chipqa.predictors import ModelConfig, UNetPredictor, available, load_predictor, registry
from chipqa.predictors import fast_cpu as fast_mod
from chipqa.scoring import score_dataset
from chipqa.synth import generate_dataset, make_chip
from conftest import make_bands

pytest.importorskip("onnxruntime")


class TinyUNet(nn.Module):
    """Two levels of a U-Net whose decoder upsamples to the skip's size, as smp's does."""

    def __init__(self, seed: int = 0):
        super().__init__()
        torch.manual_seed(seed)
        self.down = nn.Sequential(nn.Conv2d(4, 8, 3, stride=2, padding=1), nn.SiLU())
        self.mid = nn.Sequential(nn.Conv2d(8, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU())
        self.head = nn.Conv2d(8 + 4, 3, 3, padding=1)
        with torch.no_grad():  # BatchNorm statistics other than the identity
            self.mid[1].running_mean.uniform_(-0.5, 0.5)
            self.mid[1].running_var.uniform_(0.5, 2.0)

    def forward(self, x):
        y = F.interpolate(self.mid(self.down(x)), size=x.shape[-2:], mode="nearest")
        return self.head(torch.cat([y, x], 1))


def _tiny(seed: int = 0) -> UNetPredictor:
    return UNetPredictor(TinyUNet(seed).eval(), ModelConfig(classes=3), name="tiny")


def _torch_logits(predictor: UNetPredictor, bands: torch.Tensor) -> torch.Tensor:
    """What the torch model computes, with chipqa's adapter, cropped back."""
    with torch.inference_mode():
        h, w = bands.shape[-2:]
        return predictor.model(predictor.adapter(bands))[..., :h, :w]


def _bands(n: int, h: int, w: int, seed: int = 0) -> torch.Tensor:
    rng = np.random.default_rng(seed)
    return torch.from_numpy(rng.integers(1, 12_000, (n, 4, h, w)).astype(np.uint16))


@pytest.fixture
def no_warned(monkeypatch):
    monkeypatch.setattr(fast_mod, "_warned", set())


def test_the_export_is_made_once_and_computes_what_torch_computes(tmp_path, monkeypatch):
    monkeypatch.setenv("CHIPQA_CACHE_DIR", str(tmp_path / "cache"))
    pred = _tiny().fast_cpu()
    assert pred.cpu_runner is not None
    path = pred.cpu_runner.path
    assert path.parent == tmp_path / "cache" and path.name.startswith("tiny-")
    # Any batch and any chip size (padded to multiples of 32 in torch, cropped back).
    for n, h, w in ((1, 64, 64), (3, 96, 160), (2, 100, 37)):
        bands = _bands(n, h, w, seed=h)
        with torch.inference_mode():
            got = pred.forward_logits(bands)
        assert got.shape == (n, 3, h, w)
        torch.testing.assert_close(got, _torch_logits(pred, bands), atol=1e-4, rtol=0)
    # The second predictor of these weights opens the same file: not exported again.
    mtime = path.stat().st_mtime_ns
    again = _tiny().fast_cpu()
    assert again.cpu_runner.path == path and path.stat().st_mtime_ns == mtime
    assert len(list(path.parent.iterdir())) == 1
    # Other weights get their own export; going back to torch is one call.
    assert _tiny(seed=1).fast_cpu().cpu_runner.path != path
    assert pred.fast_cpu(False).cpu_runner is None


def _cut(path):
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


def _scribble(path):
    data = bytearray(path.read_bytes())
    mid = len(data) // 3
    data[mid : mid + 256] = np.random.default_rng(0).integers(0, 256, 256, np.uint8).tobytes()
    path.write_bytes(bytes(data))


@pytest.mark.parametrize(
    ("damage", "why"),
    [(_cut, "damaged"), (_scribble, "(damaged|wrong)"), ("other", "made from other weights")],
)
def test_a_damaged_or_foreign_cached_export_is_built_again(tmp_path, damage, why):
    pred = _tiny().fast_cpu(folder=tmp_path)
    path = pred.cpu_runner.path
    if damage == "other":  # another model's export under this model's name
        other = _tiny(seed=7).fast_cpu(folder=tmp_path / "other").cpu_runner.path
        path.write_bytes(other.read_bytes())
    else:
        damage(path)
    with pytest.warns(UserWarning, match=f"{path} is {why}.*building it again"):
        rebuilt = _tiny().fast_cpu(folder=tmp_path)
    assert rebuilt.cpu_runner is not None and rebuilt.cpu_runner.path == path
    bands = _bands(2, 64, 96)
    with torch.inference_mode():
        got = rebuilt.forward_logits(bands)
    torch.testing.assert_close(got, _torch_logits(rebuilt, bands), atol=1e-4, rtol=0)
    with warnings.catch_warnings():  # and the rebuilt file is fine from now on
        warnings.simplefilter("error")
        assert _tiny().fast_cpu(folder=tmp_path).cpu_runner.path == path


class Untraceable(TinyUNet):
    """A model whose export is wrong: tracing bakes the Python number in as a constant."""

    def forward(self, x):
        return super().forward(x) + float(x.abs().mean())


def test_a_model_whose_export_is_wrong_stays_on_torch_with_a_warning(tmp_path):
    pred = UNetPredictor(Untraceable().eval(), ModelConfig(classes=3), name="odd")
    with pytest.warns(UserWarning, match="'odd'.*export is wrong.*differ.*runs in torch"):
        pred.fast_cpu(folder=tmp_path)
    assert pred.cpu_runner is None and not list(tmp_path.iterdir())
    bands = _bands(1, 64, 64)
    with torch.inference_mode():
        torch.testing.assert_close(pred.forward_logits(bands), _torch_logits(pred, bands))


def _not_a_folder(tmp_path):
    spot = tmp_path / "cache"
    spot.write_text("a file where the cache folder should be")
    return spot, None


def _full(tmp_path):
    # A file-size limit: writing the export (~70 kB) fails like a full disk does.
    limit = resource.getrlimit(resource.RLIMIT_FSIZE)
    resource.setrlimit(resource.RLIMIT_FSIZE, (30_000, limit[1]))
    return tmp_path / "cache", lambda: resource.setrlimit(resource.RLIMIT_FSIZE, limit)


def _read_only(tmp_path):
    spot = tmp_path / "cache"
    spot.mkdir()
    spot.chmod(0o555)
    return spot, lambda: spot.chmod(0o755)


@pytest.mark.parametrize(
    "make",
    [
        _not_a_folder,
        _full,
        pytest.param(
            _read_only,
            marks=pytest.mark.skipif(os.geteuid() == 0, reason="root writes anyway"),
        ),
    ],
)
def test_an_unwritable_cache_folder_leaves_the_model_on_torch_with_a_warning(
    tmp_path, monkeypatch, no_warned, make
):
    spot, undo = make(tmp_path)
    monkeypatch.setenv("CHIPQA_CACHE_DIR", str(spot))
    try:
        with pytest.warns(UserWarning, match=f"{spot} cannot take.*runs in torch.*CHIPQA_CACHE"):
            pred = _tiny().fast_cpu()
    finally:
        if undo is not None:
            undo()
    assert pred.cpu_runner is None
    bands = _bands(2, 64, 64)
    with torch.inference_mode():
        got = pred.forward_logits(bands)
    torch.testing.assert_close(got, _torch_logits(pred, bands), atol=0, rtol=0)
    assert not list(tmp_path.glob("**/*.onnx")) and not list(tmp_path.glob("**/.*.tmp"))


def test_without_onnxruntime_the_model_runs_in_torch_with_one_warning(
    tmp_path, monkeypatch, no_warned
):
    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # what an absent package gives
    with pytest.warns(UserWarning, match="onnxruntime is not installed.*pip install") as rec:
        first = _tiny().fast_cpu(folder=tmp_path)
        second = _tiny().fast_cpu(folder=tmp_path)
    assert len([w for w in rec if "onnxruntime" in str(w.message)]) == 1
    assert first.cpu_runner is None and second.cpu_runner is None
    assert first.predict_numpy(make_bands(32)).shape == (32, 32)


def test_registered_u_nets_take_the_fast_path_on_a_cpu_unless_told_not_to(tmp_path, monkeypatch):
    monkeypatch.setenv("CHIPQA_CACHE_DIR", str(tmp_path))
    monkeypatch.setitem(registry._REGISTRY, "tiny", (lambda device: _tiny().to(device), ""))
    assert load_predictor("tiny", device="cpu").cpu_runner is not None
    assert load_predictor("tiny", device="cpu", fast=False).cpu_runner is None
    compiled = load_predictor("tiny", device="cpu", compile=True)
    assert compiled.cpu_runner is None and compiled._eager is not None


def test_compiling_replaces_the_onnxruntime_path(tmp_path):
    pred = _tiny().fast_cpu(folder=tmp_path)
    assert pred.cpu_runner is not None
    with pytest.warns(UserWarning, match="torch.compile is unavailable"):
        pred.compile(mode="no-such-mode")  # fails: the runner stays
    assert pred.cpu_runner is not None
    pred.compile()
    assert pred.cpu_runner is None


# The pretrained model (efficientnet-b4): exported once per module into a temporary cache.


@pytest.fixture(scope="module")
def pretrained(tmp_path_factory):
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("CHIPQA_CACHE_DIR", str(tmp_path_factory.mktemp("chipqa-cache")))
        yield load_predictor("pretrained", device="cpu")


@pytest.mark.slow
def test_the_pretrained_model_on_the_fast_path_predicts_what_torch_predicts(pretrained):
    assert pretrained.cpu_runner is not None
    rng = np.random.default_rng(4)
    for size, skies in ((64, ("partial", "clear", "overcast")), (100, ("partial",))):
        bands = torch.from_numpy(
            np.stack([make_chip(rng, f"c{i}", size, sky=s).bands for i, s in enumerate(skies)])
        )
        ref = _torch_logits(pretrained, bands)
        with torch.inference_mode():
            logits = pretrained.forward_logits(bands)
            maps = pretrained.predict_maps(bands)
        # The tolerances of the parity test against onnxruntime (tests/test_pretrained.py).
        torch.testing.assert_close(logits, ref, atol=1e-3, rtol=0)
        probs = torch.softmax(ref, 1)
        torch.testing.assert_close(maps["cloud"], probs[:, 1], atol=2e-4, rtol=0)
        torch.testing.assert_close(maps["shadow"], probs[:, 2], atol=2e-4, rtol=0)


@pytest.mark.slow
def test_scoring_on_the_fast_path_gives_the_torch_path_s_scores(pretrained, tmp_path):
    synth = generate_dataset(tmp_path / "ds", n_chips=4, size=64, error_rate=0.0, seed=2)
    dataset = open_dataset(synth.root)
    fast = score_dataset(dataset, pretrained).set_index("chip_id").sort_index()
    runner, pretrained.cpu_runner = pretrained.cpu_runner, None
    try:
        slow = score_dataset(dataset, pretrained).set_index("chip_id").sort_index()
    finally:
        pretrained.cpu_runner = runner
    cols = ["iou", "pred_cloud_fraction", "pred_shadow_fraction"]
    assert all(c in fast and c in slow for c in cols)  # the shadow half is compared too
    # One pixel of 4096 flipping at the threshold moves a fraction by 2.4e-4.
    np.testing.assert_allclose(fast[cols].to_numpy(), slow[cols].to_numpy(), atol=1e-3)


@pytest.mark.slow
def test_the_csmask_alias_is_the_same_model_and_reuses_its_export(pretrained):
    # Built anew (the weights the graph does not hold included), it hashes the same.
    alias = load_predictor("csmask-l2a", device="cpu")
    assert alias.cpu_runner is not None and alias.cpu_runner.path == pretrained.cpu_runner.path
    assert len(list(alias.cpu_runner.path.parent.glob("*.onnx"))) == 1
    assert "csmask-l1c" in available()
