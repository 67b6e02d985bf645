"""The command line end to end on small generated datasets."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

from chipqa.cli import main
from chipqa.synth import generate_dataset


@pytest.fixture(scope="module")
def synth_set(tmp_path_factory):
    root = tmp_path_factory.mktemp("cli") / "data"
    return generate_dataset(root, n_chips=40, size=48, error_rate=0.25, seed=3)


def test_score_writes_a_ranked_table_with_planted_errors_on_top(synth_set, tmp_path, capsys):
    out = tmp_path / "scores.csv"
    assert main(["score", str(synth_set.root), "--out", str(out), "--top", "5"]) == 0
    df = pd.read_csv(out, keep_default_na=False)
    assert df.columns[0] == "chip_id" and len(df) == 40
    truth = pd.read_csv(synth_set.truth_csv, keep_default_na=False)
    bad = set(truth.loc[truth["corrupted"].astype(str) == "True", "chip_id"])
    constant = set(truth.loc[truth["error_kind"].isin(["all_cloud", "no_cloud"]), "chip_id"])
    assert constant and constant <= set(df["chip_id"].head(len(bad)))
    text = capsys.readouterr().out
    assert "most suspicious labels" in text and str(out) in text


def test_score_keeps_going_past_broken_chips_and_says_which(synth_set, tmp_path, capsys):
    import shutil

    root = tmp_path / "copy"
    shutil.copytree(synth_set.root, root)
    ids = sorted(p.name for p in (root / "train_features").iterdir())
    (root / "train_features" / ids[0] / "B08.tif").unlink()
    (root / "train_labels" / f"{ids[1]}.tif").write_bytes(b"\x00" * 100)
    out = tmp_path / "s.csv"
    assert main(["score", str(root), "--out", str(out), "-q"]) == 0
    df = pd.read_csv(out, keep_default_na=False).set_index("chip_id")
    assert len(df) == 40
    assert "B08.tif" in df.loc[ids[0], "error"] and f"{ids[1]}.tif" in df.loc[ids[1], "error"]
    assert (df.drop(index=ids[:2])["error"] == "").all()
    err = capsys.readouterr().err
    assert "2 chip(s) could not be read" in err and ids[0] in err


def test_a_failed_run_leaves_an_existing_scores_file_untouched(synth_set, tmp_path, capsys):
    out = tmp_path / "scores.csv"
    out.write_text("chip_id,suspicion\nkeepme,0.5\n")
    bad_ckpt = tmp_path / "model.ckpt"
    bad_ckpt.write_bytes(b"\x80\x04K\x01.")  # a pickle, not a chipqa checkpoint
    assert main(["score", str(synth_set.root), "--model", str(bad_ckpt), "--out", str(out)]) == 2
    assert out.read_text() == "chip_id,suspicion\nkeepme,0.5\n"
    assert "model.ckpt" in capsys.readouterr().err


@pytest.mark.parametrize(
    "args, message",
    [
        (["score", "{tmp}/nowhere"], "does not exist"),
        (["score", "{tmp}"], "is empty"),
        (["score", "{root}", "--device", "cuda:0"], "no usable CUDA GPU"),
    ],
)
def test_bad_arguments_end_in_one_clear_line(synth_set, tmp_path, capsys, args, message):
    if "cuda" in " ".join(args):
        import torch

        if torch.cuda.is_available():
            pytest.skip("this machine has a GPU")
    args = [a.format(tmp=tmp_path, root=synth_set.root) for a in args]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err


def test_synth_refuses_a_folder_that_is_not_empty(tmp_path, capsys):
    (tmp_path / "x").mkdir()
    (tmp_path / "x" / "precious.txt").write_text("data")
    assert main(["synth", str(tmp_path / "x"), "--chips", "2", "--size", "32"]) == 2
    assert (tmp_path / "x" / "precious.txt").read_text() == "data"
    assert "empty" in capsys.readouterr().err


@pytest.mark.slow
def test_demo_runs_from_the_console_script(tmp_path):
    cmd = [
        sys.executable,
        "-m",
        "chipqa.cli",
        "demo",
        str(tmp_path / "demo"),
        "--chips",
        "30",
        "--size",
        "64",
        "--error-rate",
        "0.2",
        "--sheet",
        "6",
    ]
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr
    assert "average precision" in res.stdout and "precision@k" in res.stdout
    sheet = tmp_path / "demo" / "contact_sheet.png"
    from PIL import Image

    img = np.asarray(Image.open(sheet))
    assert img.shape[0] > 200 and img.shape[2] == 3 and img.std() > 10
    scores = pd.read_csv(tmp_path / "demo" / "scores.csv")
    assert len(scores) == 30
    # Running it again reuses the data instead of failing or regenerating.
    again = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert again.returncode == 0 and "reusing" in again.stdout
