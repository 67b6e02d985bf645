"""DN offsets: the same rules in train, score and mask; an offset that leaves the chips
in the dark is named; overriding a checkpoint's offset is said."""

from __future__ import annotations

import pytest

from chipqa.cli import main
from chipqa.synth import generate_dataset
from chipqa.training import TrainConfig, TrainingError, train


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return generate_dataset(tmp_path_factory.mktemp("dn") / "data", n_chips=4, size=32, seed=3)


def test_an_offset_that_darkens_most_pixels_is_named(data, tmp_path, capsys):
    out = tmp_path / "s.csv"
    args = ["score", str(data.root), "--model", "baseline", "--threshold", "0.5", "-q"]
    assert main([*args, "--dn-offset", "9999", "--out", str(out)]) == 0
    err = capsys.readouterr().err
    assert "with --dn-offset 9999" in err and "at or below zero reflectance" in err
    assert "median DN is" in err and "Check the offset" in err
    assert main([*args, "--dn-offset", "100", "--out", str(out)]) == 0  # a small one: quiet
    assert "reflectance" not in capsys.readouterr().err


@pytest.mark.parametrize("offset", ["-500", "20000", "10000"])
@pytest.mark.parametrize("command", ["train", "score"])
def test_train_and_score_refuse_the_same_offsets(data, tmp_path, capsys, command, offset):
    out = tmp_path / ("m.ckpt" if command == "train" else "s.csv")
    args = [command, str(data.root), "--out", str(out), f"--dn-offset={offset}", "-q"]
    if command == "train":
        args += ["--encoder", "resnet18", "--epochs", "1", "--max-steps", "1", "--workers", "0"]
    with pytest.raises(SystemExit) as exit_:
        main(args)
    assert exit_.value.code == 2
    assert "a DN offset must be between 0 and 9 999" in capsys.readouterr().err
    assert not out.exists()


def test_training_code_refuses_an_offset_that_cannot_be_reflectance(data, tmp_path):
    with pytest.raises(TrainingError, match="between 0 and 9 999"):
        train(
            data.root,
            tmp_path / "m.ckpt",
            config=TrainConfig(
                dn_offset=20000, workers=0, encoder="resnet18", epochs=1, max_steps=1
            ),
        )
    assert not (tmp_path / "m.ckpt").exists()


def test_overriding_a_checkpoints_offset_is_said(data, tmp_path, capsys):
    from chipqa.predictors import ModelConfig, build_model, save_checkpoint

    cfg = ModelConfig(encoder="resnet18", dn_offset=1000)
    ckpt = save_checkpoint(tmp_path / "m.ckpt", build_model(cfg), cfg)
    args = ["score", str(data.root), "--model", str(ckpt), "--threshold", "0.5", "-q"]
    assert main([*args, "--dn-offset", "0", "--out", str(tmp_path / "a.csv")]) == 0
    err = capsys.readouterr().err
    assert "was trained on chips with DN offset 1000" in err and "--dn-offset 0" in err
    assert main([*args, "--dn-offset", "1000", "--out", str(tmp_path / "b.csv")]) == 0
    assert "was trained" not in capsys.readouterr().err  # the same offset: nothing to say
