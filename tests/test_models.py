"""Predictors, the model factory and safe checkpoint loading."""

from __future__ import annotations

import pickle

import numpy as np
import pytest
import torch
from torch import nn

from chipqa.errors import CheckpointError
from chipqa.predictors import (
    ModelConfig,
    SpectralBaseline,
    UNetPredictor,
    build_model,
    load_checkpoint,
    load_predictor,
    resolve_device,
    save_checkpoint,
)
from conftest import make_bands


def test_baseline_finds_bright_white_cloud_over_vegetation():
    cloud = np.zeros((64, 64), bool)
    cloud[10:40, 5:50] = True
    prob = SpectralBaseline().predict_numpy(make_bands(64, cloud))
    assert prob.shape == (64, 64) and prob.dtype == np.float32
    assert prob[15:35, 10:45].mean() > 0.9
    assert prob[50:, :].mean() < 0.1


def test_fast_baseline_computes_the_documented_model():
    rng = np.random.default_rng(4)
    bands = torch.from_numpy(rng.integers(0, 15000, (3, 4, 37, 41)).astype(np.uint16))
    base = SpectralBaseline()
    fast, ref = base.predict_proba(bands), base.predict_proba_reference(bands)
    torch.testing.assert_close(fast, ref, atol=2e-6, rtol=0)


@pytest.mark.slow
@pytest.mark.parametrize("encoder", ["resnet34", "mobilenet_v2", "inceptionv4"])
def test_factory_builds_four_band_unets_without_downloading(encoder):
    model = build_model(ModelConfig(encoder=encoder))
    with torch.no_grad():
        y = model(torch.zeros(1, 4, 64, 64))
    assert y.shape == (1, 1, 64, 64)


def test_unknown_encoder_lists_the_valid_ones():
    with pytest.raises(ValueError, match="unknown encoder 'resnet999'.*resnet34.*mobilenet_v2"):
        build_model(ModelConfig(encoder="resnet999"))


def _tiny_checkpoint(tmp_path, encoder="resnet18"):
    config = ModelConfig(encoder=encoder, mean=(0.1, 0.1, 0.1, 0.3), std=(0.2, 0.2, 0.2, 0.2))
    torch.manual_seed(0)
    model = build_model(config)
    path = save_checkpoint(
        tmp_path / "m.ckpt", model, config, train_chips=["aaaa", "bbbb"], blocklist=["cccc"]
    )
    return path, model, config


def test_checkpoint_round_trip_predicts_like_the_saved_model(tmp_path):
    path, model, config = _tiny_checkpoint(tmp_path)
    loaded, info = load_checkpoint(path)
    assert info.config == config
    assert info.train_chips == ["aaaa", "bbbb"] and info.blocklist == ["cccc"]
    bands = make_bands(40)  # not a multiple of 32: padded and cropped back
    want = UNetPredictor(model, config).predict_numpy(bands)
    got = load_predictor(path, device="cpu").predict_numpy(bands)
    assert got.shape == (40, 40)
    np.testing.assert_allclose(got, want, atol=1e-6)
    assert not list(tmp_path.glob("*.tmp"))  # atomic write leaves no temporary file


def test_a_pickle_with_code_is_refused(tmp_path):
    path = tmp_path / "evil.ckpt"

    class Boom:
        def __reduce__(self):
            return (print, ("this must never run",))

    with open(path, "wb") as f:
        pickle.dump({"format": "chipqa-checkpoint", "payload": Boom()}, f)
    with pytest.raises(CheckpointError, match="will not unpickle"):
        load_predictor(path, device="cpu")


def test_a_checkpoint_of_another_architecture_is_explained(tmp_path):
    path, model, config = _tiny_checkpoint(tmp_path)
    obj = torch.load(path, weights_only=True)
    obj["config"]["encoder"] = "mobilenet_v2"  # weights are a resnet18's
    torch.save(obj, tmp_path / "other.ckpt")
    with pytest.raises(CheckpointError, match="do not fit a unet with encoder 'mobilenet_v2'"):
        load_predictor(tmp_path / "other.ckpt", device="cpu")


def test_a_bare_state_dict_and_a_newer_format_are_explained(tmp_path):
    path, model, _ = _tiny_checkpoint(tmp_path)
    torch.save(model.state_dict(), tmp_path / "bare.pt")
    with pytest.raises(CheckpointError, match="bare state_dict"):
        load_predictor(tmp_path / "bare.pt", device="cpu")
    obj = torch.load(path, weights_only=True)
    obj["format_version"] = 99
    torch.save(obj, tmp_path / "future.ckpt")
    with pytest.raises(CheckpointError, match="Upgrade chipqa"):
        load_predictor(tmp_path / "future.ckpt", device="cpu")
    (tmp_path / "text.ckpt").write_text("not a checkpoint")
    with pytest.raises(CheckpointError, match="is a text file .*not a PyTorch checkpoint"):
        load_predictor(tmp_path / "text.ckpt", device="cpu")
    with pytest.raises(CheckpointError, match="does not exist"):
        load_predictor(tmp_path / "missing.ckpt", device="cpu")


@pytest.mark.parametrize(
    "content, message",
    [
        (b"epoch,loss\n1,0.5\n", "is a text file \\(it begins 'epoch,loss'\\)"),
        (b"hello world\n", "is a text file"),
        (b"", "is empty"),
        (pickle.dumps({"format": "chipqa-checkpoint"}, protocol=0), "plain Python pickle"),
        (pickle.dumps({"format": "chipqa-checkpoint"}, protocol=2), "plain Python pickle"),
    ],
)
def test_a_file_that_is_no_checkpoint_gets_chipqas_message(tmp_path, content, message):
    path = tmp_path / "model.ckpt"
    path.write_bytes(content)
    with pytest.raises(CheckpointError, match=message) as info:
        load_predictor(path, device="cpu")
    text = str(info.value)
    assert str(path) in text and "chipqa train" in text
    for leak in ("IndexError", "pop from empty list", "Weights only", "weights_only", "\x1b"):
        assert leak not in text


@pytest.mark.parametrize("bad", [float("nan"), float("inf")])
def test_a_checkpoint_with_nan_or_infinite_weights_is_refused(tmp_path, bad):
    path, model, config = _tiny_checkpoint(tmp_path)
    obj = torch.load(path, weights_only=True)
    obj["state_dict"]["encoder.layer2.0.conv1.weight"][0, 0, 0, 0] = bad
    torch.save(obj, tmp_path / "diverged.ckpt")
    with pytest.raises(CheckpointError, match="NaN or infinite weights") as info:
        load_predictor(tmp_path / "diverged.ckpt", device="cpu")
    assert "diverged.ckpt" in str(info.value) and "encoder.layer2.0.conv1.weight" in str(info.value)


@pytest.mark.parametrize(
    "key, value, message",
    [
        ("mean", [0.1, 0.1, 0.1], "input mean has 3 values for a model of 4 bands"),
        ("std", [0.2] * 5, "input std has 5 values for a model of 4 bands"),
        ("std", [0.2, 0.0, 0.2, 0.2], "std .* is not positive and finite"),
        ("mean", [0.1, float("nan"), 0.1, 0.1], "mean .* is not finite"),
    ],
)
def test_a_checkpoint_whose_statistics_do_not_fit_its_bands_is_refused(
    tmp_path, key, value, message
):
    path, _, _ = _tiny_checkpoint(tmp_path)
    obj = torch.load(path, weights_only=True)
    obj["config"][key] = value
    torch.save(obj, tmp_path / "edited.ckpt")
    with pytest.raises(CheckpointError, match=message) as info:
        load_predictor(tmp_path / "edited.ckpt", device="cpu")
    assert "edited.ckpt" in str(info.value)


def test_asking_for_cuda_without_a_gpu_says_so():
    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU")  # the check is for machines without one
    assert resolve_device("auto").type == "cpu"
    with pytest.raises(ValueError, match="no usable CUDA GPU"):
        resolve_device("cuda")


def test_local_rgb_encoder_weights_are_adapted_to_four_bands(tmp_path):
    from chipqa._compat import import_smp

    smp = import_smp()
    rgb = smp.create_model("unet", encoder_name="resnet18", encoder_weights=None, in_channels=3)
    torch.save(rgb.encoder.state_dict(), tmp_path / "resnet18_rgb.pth")
    model = build_model(ModelConfig(encoder="resnet18"), tmp_path / "resnet18_rgb.pth")
    w_rgb = rgb.encoder.conv1.weight.detach()
    w = model.encoder.conv1.weight.detach()
    assert w.shape[1] == 4
    torch.testing.assert_close(w[:, :3], w_rgb * 3 / 4)
    torch.testing.assert_close(w[:, 3], w_rgb.mean(1) * 3 / 4)
    torch.testing.assert_close(
        model.encoder.layer4[0].conv1.weight, rgb.encoder.layer4[0].conv1.weight
    )
    with pytest.raises(ValueError, match="does not fit encoder"):
        build_model(ModelConfig(encoder="mobilenet_v2"), tmp_path / "resnet18_rgb.pth")


def _tiny_unet_predictor():
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(4, 8, 3, padding=1), nn.ReLU(), nn.Conv2d(8, 1, 1))
    return UNetPredictor(net, ModelConfig())


@pytest.mark.slow
def test_a_compiled_model_predicts_like_the_eager_one():
    x = torch.from_numpy(make_bands(32)[None].repeat(2, 0))
    with torch.inference_mode():
        eager = _tiny_unet_predictor().predict_proba(x)
        compiled = _tiny_unet_predictor().compile()
        got = compiled.predict_proba(x)
    assert isinstance(compiled.model, torch._dynamo.eval_frame.OptimizedModule)
    torch.testing.assert_close(got, eager, atol=1e-5, rtol=0)
    with torch.inference_mode():  # a short last batch is padded, and cut back
        short = compiled.predict_proba(x[1:])
    assert short.shape == (1, 32, 32)
    torch.testing.assert_close(short, eager[1:], atol=1e-5, rtol=0)


def test_when_compiling_is_impossible_the_eager_model_runs_with_a_warning():
    x = torch.from_numpy(make_bands(32)[None])
    with pytest.warns(UserWarning, match="torch.compile is unavailable"):
        pred = _tiny_unet_predictor().compile(mode="no-such-mode")
    assert isinstance(pred.model, nn.Sequential)
    with torch.inference_mode():
        torch.testing.assert_close(
            pred.predict_proba(x), _tiny_unet_predictor().predict_proba(x), atol=0, rtol=0
        )
