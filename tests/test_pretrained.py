"""The pretrained UKIS csmask cloud model: parity with onnxruntime, the CLI, bad installs."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
import torch
import torch.nn.functional as F

from chipqa.cli import main
from chipqa.errors import CheckpointError
from chipqa.predictors import PretrainedPredictor, load_predictor
from chipqa.predictors import pretrained as pretrained_mod
from chipqa.synth import generate_dataset, make_chip
from conftest import make_bands

INSTALL = "pip install ukis-csmask onnx"


@pytest.fixture(scope="module")
def predictor() -> PretrainedPredictor:
    return load_predictor("pretrained", device="cpu")


def _normalised(bands: np.ndarray, predictor: PretrainedPredictor) -> np.ndarray:
    """csmask's own preprocessing, written out: reflectance, then the .json's mean/std."""
    mean = np.asarray(predictor.config.mean, np.float32)[:, None, None]
    std = np.asarray(predictor.config.std, np.float32)[:, None, None]
    return ((bands.astype(np.float32) / 10_000 - mean) / std).astype(np.float32)


def _ort_session(float32: bool, **kwargs):
    """onnxruntime on the shipped graph, or on that graph with its float16 weights and
    activations turned into float32 (the same computation chipqa does in torch)."""
    onnx = pytest.importorskip("onnx")
    ort = pytest.importorskip("onnxruntime")
    from onnx import TensorProto, numpy_helper

    model = onnx.load(str(pretrained_mod.weights_file("l2a")))
    if float32:
        g = model.graph
        for init in g.initializer:
            if init.data_type == TensorProto.FLOAT16:
                arr = numpy_helper.to_array(init).astype(np.float32)
                init.CopyFrom(numpy_helper.from_array(arr, init.name))
        for node in g.node:
            for a in node.attribute:
                if node.op_type == "Cast" and a.name == "to" and a.i == TensorProto.FLOAT16:
                    a.i = TensorProto.FLOAT
                if a.type == onnx.AttributeProto.TENSOR and a.t.data_type == TensorProto.FLOAT16:
                    arr = numpy_helper.to_array(a.t).astype(np.float32)
                    a.t.CopyFrom(numpy_helper.from_array(arr, a.t.name))
        for v in [*g.value_info, *g.input, *g.output]:
            if v.type.tensor_type.elem_type == TensorProto.FLOAT16:
                v.type.tensor_type.elem_type = TensorProto.FLOAT
    options = ort.SessionOptions()
    options.intra_op_num_threads = 2
    return ort.InferenceSession(
        model.SerializeToString(), options, providers=["CPUExecutionProvider"], **kwargs
    )


@pytest.mark.slow
def test_the_torch_model_computes_what_the_onnx_graph_computes(predictor):
    rng = np.random.default_rng(11)
    bands = np.stack(
        [make_chip(rng, f"c{i}", 256, sky=sky).bands for i, sky in enumerate(("partial", "clear"))]
    )
    x = torch.from_numpy(bands)
    with torch.inference_mode():
        logits = predictor.logits(predictor.model, x).numpy()
        prob = predictor.predict_proba(x).numpy()
    inputs = {"input": _normalised(bands, predictor)}
    # The same weights in float32: only the order of float32 sums differs (measured 2e-5
    # on logits of standard deviation ~4); 1e-3 leaves room for other CPUs' kernels while
    # catching any real difference (a padding or normalisation slip moves logits by > 0.01).
    ref = _ort_session(float32=True).run(None, inputs)[0]
    np.testing.assert_allclose(logits, ref, atol=1e-3, rtol=0)
    ref_prob = torch.softmax(torch.from_numpy(ref), 1)[:, 1].numpy()
    np.testing.assert_allclose(prob, ref_prob, atol=2e-4, rtol=0)
    # The shipped graph computes in float16: its activations are rounded to 11 significant
    # bits between layers (measured 1.3e-3 with BatchNorm kept apart; onnxruntime's default
    # BatchNorm folding rounds the folded weights to float16 too, which gives ~0.04).
    ref16 = _ort_session(float32=False, disabled_optimizers=["ConvBNFusion"]).run(None, inputs)[0]
    np.testing.assert_allclose(logits, ref16, atol=5e-3, rtol=0)
    assert (logits.argmax(1) == ref16.argmax(1)).mean() > 0.999


@pytest.mark.slow
def test_chips_of_any_size_are_padded_and_cropped_back(predictor):
    rng = np.random.default_rng(3)
    bands = np.stack([make_chip(rng, f"s{i}", 100, sky="partial").bands for i in range(2)])
    prob = predictor.predict_numpy(bands)
    assert prob.shape == (2, 100, 100) and prob.dtype == np.float32
    # The same as the model on the chip reflected out to 128 px, cut back at the top left.
    x = torch.from_numpy(_normalised(bands, predictor))
    with torch.inference_mode():
        full = predictor.model(F.pad(x, (0, 28, 0, 28), mode="reflect"))
    expected = torch.softmax(full, 1)[:, 1, :100, :100].numpy()
    np.testing.assert_allclose(prob, expected, atol=1e-5, rtol=0)
    assert np.isfinite(prob).all() and (prob >= 0).all() and (prob <= 1).all()
    # A chip smaller than half the padding still works (replicate padding).
    assert predictor.predict_numpy(make_bands(20, None)).shape == (20, 20)


@pytest.mark.slow
def test_score_uses_the_pretrained_model_and_a_calibrated_threshold_by_default(tmp_path, capsys):
    synth = generate_dataset(tmp_path / "ds", n_chips=4, size=64, error_rate=0.0, seed=5)
    out = tmp_path / "scores.csv"
    assert main(["score", str(synth.root), "--device", "cpu", "--out", str(out)]) == 0
    scores = pd.read_csv(out, dtype={"chip_id": str}, keep_default_na=False)
    assert len(scores) == 4 and (scores["error"] == "").all()
    assert (scores["model"] == "pretrained").all()
    assert scores["iou"].between(0, 1).all()
    # The three-class model's shadow share is a column; the threshold was learnt.
    assert scores["pred_shadow_fraction"].between(0, 1).all()
    chosen = scores["threshold"].iloc[0]
    assert (scores["threshold"] == chosen).all() and 0 < chosen < 1
    printed = capsys.readouterr().out
    assert f"threshold auto: {chosen:.2f}" in printed
    assert "scored 4 chips with pretrained on cpu" in printed


def test_shadow_is_the_share_where_shadow_is_the_most_likely_class(predictor):
    bands = make_chip(np.random.default_rng(3), "c", 64, sky="partial").bands[None]
    x = torch.from_numpy(bands)
    maps = predictor.predict_maps(x)
    probs = predictor.class_probabilities(x)
    torch.testing.assert_close(maps["cloud"], probs[:, 1])
    torch.testing.assert_close(maps["shadow"], probs[:, 2])
    from chipqa.stats.batched import shadow_fraction

    valid = torch.ones(1, 64, 64, dtype=torch.bool)
    share = float(shadow_fraction(maps["cloud"], maps["shadow"], valid)[0])
    assert share == pytest.approx(float((probs.argmax(1) == 2).float().mean()))


def _damaged_copy(tmp_path, cut: int) -> object:
    src = pretrained_mod.weights_file("l2a")
    dst = tmp_path / src.name
    dst.write_bytes(src.read_bytes()[:cut])
    shutil.copy(src.with_suffix(".json"), dst.with_suffix(".json"))
    return dst


@pytest.mark.parametrize("cut", [1_000, 20_000_000])
def test_damaged_weights_say_how_to_reinstall_and_the_baseline_still_works(
    tmp_path, monkeypatch, cut
):
    damaged = _damaged_copy(tmp_path, cut)
    monkeypatch.setattr(pretrained_mod, "weights_file", lambda level="l2a": damaged)
    with pytest.raises(CheckpointError, match=f"{damaged}.*{INSTALL}"):
        load_predictor("pretrained", device="cpu")
    assert load_predictor("baseline", device="cpu").predict_numpy(make_bands(32)).shape == (32, 32)


def test_missing_weights_file_package_or_onnx_give_the_install_command(tmp_path, monkeypatch):
    missing = tmp_path / "model_4b_l2a.onnx"
    shutil.copy(
        pretrained_mod.weights_file("l2a").with_suffix(".json"), missing.with_suffix(".json")
    )
    monkeypatch.setattr(pretrained_mod, "weights_file", lambda level="l2a": missing)
    with pytest.raises(CheckpointError, match=f"{missing} are missing.*{INSTALL}"):
        load_predictor("pretrained", device="cpu")
    monkeypatch.setitem(sys.modules, "onnx", None)  # `import onnx` now fails
    with pytest.raises(CheckpointError, match=f"onnx package.*not installed: {INSTALL}"):
        load_predictor("pretrained", device="cpu")
    monkeypatch.undo()
    monkeypatch.setattr(pretrained_mod.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(CheckpointError, match=f"ukis-csmask package.*not installed: {INSTALL}"):
        load_predictor("pretrained-l1c", device="cpu")


def test_a_model_description_with_other_bands_is_refused(tmp_path):
    src = pretrained_mod.weights_file("l2a").with_suffix(".json")
    meta = json.loads(src.read_text())
    meta["data"]["dataset_statistics"]["band_names"] = ["red", "green", "blue", "nir"]
    bad = tmp_path / "model.json"
    bad.write_text(json.dumps(meta))
    with pytest.raises(CheckpointError, match=r"bands \['red', 'green', 'blue', 'nir'\].*refused"):
        pretrained_mod.read_config(bad)
    config = pretrained_mod.read_config(src)
    assert config.encoder == "efficientnet-b4" and config.classes == 3
    assert config.mean == pytest.approx((0.2668, 0.2780, 0.2881, 0.3649), abs=1e-4)


def test_importing_chipqa_does_not_load_the_pretrained_model():
    code = (
        "import sys, chipqa, chipqa.predictors, chipqa.cli\n"
        "from chipqa.predictors import available\n"
        "assert 'pretrained' in available() and 'UKIS csmask' in available()['pretrained']\n"
        "print(sorted(m for m in ('onnx', 'ukis_csmask', 'onnxruntime') if m in sys.modules))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
