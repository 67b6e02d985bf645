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
    assert (
        main(["score", str(synth_set.root), "--model", "baseline", "--out", str(out), "--top", "5"])
        == 0
    )
    df = pd.read_csv(out, keep_default_na=False)
    assert df.columns[0] == "chip_id" and len(df) == 40
    truth = pd.read_csv(synth_set.truth_csv, keep_default_na=False)
    bad = set(truth.loc[truth["corrupted"].astype(str) == "True", "chip_id"])
    constant = set(truth.loc[truth["error_kind"].isin(["all_cloud", "no_cloud"]), "chip_id"])
    assert constant and constant <= set(df["chip_id"].head(len(bad)))
    text = capsys.readouterr().out
    assert "most suspicious labels" in text and str(out) in text
    top = df.iloc[0]
    assert top["why"] and top["why"] in text  # each chip's reason, in words


def test_score_keeps_going_past_broken_chips_and_says_which(synth_set, tmp_path, capsys):
    import shutil

    root = tmp_path / "copy"
    shutil.copytree(synth_set.root, root)
    ids = sorted(p.name for p in (root / "train_features").iterdir())
    (root / "train_features" / ids[0] / "B08.tif").unlink()
    (root / "train_labels" / f"{ids[1]}.tif").write_bytes(b"\x00" * 100)
    out = tmp_path / "s.csv"
    assert main(["score", str(root), "--model", "baseline", "--out", str(out), "-q"]) == 0
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
        (["score", "{tmp}/nowhere", "--model", "baseline"], "does not exist"),
        (["score", "{tmp}", "--model", "baseline"], "is empty"),
        (["score", "{root}", "--model", "baseline", "--device", "cuda:0"], "no usable CUDA GPU"),
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


def _run_limited(args: list[str], limit: int, **kwargs) -> subprocess.CompletedProcess:
    """``chipqa ARGS`` in a child process that may write at most ``limit`` bytes per file
    (RLIMIT_FSIZE): its writes fail as on a full disk (EFBIG where a full disk gives
    ENOSPC), real failures rather than patched ones."""
    code = f"""
import resource, signal, sys
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
import chipqa.scoring, chipqa.data  # imported before the limit: Python writes no .pyc then
resource.setrlimit(resource.RLIMIT_FSIZE, ({limit}, {limit}))
from chipqa.cli import main
sys.exit(main({args!r}))
"""
    return subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=300, **kwargs
    )


def test_a_full_disk_while_writing_scores_is_one_clear_message(synth_set, tmp_path):
    out = tmp_path / "scores.csv"
    out.write_text("chip_id,suspicion\nkeepme,0.5\n")
    res = _run_limited(
        ["score", str(synth_set.root), "--model", "baseline", "--out", str(out), "-q"], limit=2000
    )
    assert res.returncode != 0
    assert "Traceback" not in res.stderr
    assert f"cannot write the scores to {out}" in res.stderr
    assert out.read_text() == "chip_id,suspicion\nkeepme,0.5\n"  # the old scores stay
    assert sorted(p.name for p in tmp_path.iterdir()) == ["scores.csv"]  # no litter


def test_scores_that_cannot_be_written_to_out_go_to_the_temp_folder(
    synth_set, tmp_path, monkeypatch, capsys
):
    import tempfile

    from chipqa.scoring import table

    out = tmp_path / "full" / "scores.csv"
    real = table.atomic_write_csv

    def disk_full_under_out(df, path, *a, **k):
        if str(path).startswith(str(out.parent)):
            raise OSError(28, "No space left on device", str(path))
        return real(df, path, *a, **k)

    monkeypatch.setattr(table, "atomic_write_csv", disk_full_under_out)
    (tmp_path / "tmp").mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "tmp"))
    assert main(["score", str(synth_set.root), "--model", "baseline", "--out", str(out), "-q"]) == 1
    err = capsys.readouterr().err
    (kept,) = (tmp_path / "tmp").glob("chipqa-scores-*.csv")
    assert f"cannot write the scores to {out}" in err and f"written to {kept} instead" in err
    assert len(pd.read_csv(kept, keep_default_na=False)) == 40  # the run's scores, whole


def test_scoring_a_dataset_of_only_unreadable_chips_fails(tmp_path, capsys):
    root = generate_dataset(tmp_path / "data", n_chips=3, size=32, seed=1).root
    for band in root.glob("train_features/*/B02.tif"):
        band.write_bytes(b"\x00" * 100)
    out = tmp_path / "s.csv"
    assert main(["score", str(root), "--model", "baseline", "--out", str(out), "-q"]) == 1
    err = capsys.readouterr().err
    assert "none of the 3 chips" in err and str(out) in err
    assert (pd.read_csv(out, keep_default_na=False)["error"] != "").all()  # rows say why


def test_a_full_disk_while_building_the_cache_is_one_clear_message(synth_set, tmp_path):
    import shutil

    root = shutil.copytree(synth_set.root, tmp_path / "data")
    res = _run_limited(["cache", str(root), "-q"], limit=20_000)
    assert res.returncode != 0
    assert "Traceback" not in res.stderr and "chipqa cache: error:" in res.stderr


def _without_display() -> dict:
    import os

    drop = {"DISPLAY", "WAYLAND_DISPLAY", "QT_QPA_PLATFORM"}
    return {k: v for k, v in os.environ.items() if k not in drop}


def test_view_without_a_display_says_so_instead_of_aborting(tmp_path):
    pytest.importorskip("napari")
    from chipqa.synth import write_scene

    scene = write_scene(tmp_path / "scene.tif", 64, block=32)
    res = subprocess.run(
        [sys.executable, "-m", "chipqa.cli", "view", str(scene)],
        capture_output=True,
        text=True,
        timeout=120,
        env=_without_display(),
    )
    assert res.returncode == 2, res.stderr
    assert "there is no display" in res.stderr and "--png" in res.stderr
    assert "xvfb-run" in res.stderr


def test_demo_view_yes_without_a_display_fails_before_doing_anything(tmp_path):
    pytest.importorskip("napari")
    res = subprocess.run(
        [sys.executable, "-m", "chipqa.cli", "demo", str(tmp_path / "d"), "--view", "yes"]
        + ["--chips", "4", "--size", "32"],
        capture_output=True,
        text=True,
        timeout=120,
        env=_without_display(),
    )
    assert res.returncode == 2, res.stderr
    assert "--view yes: cannot open napari: there is no display" in res.stderr
    assert not (tmp_path / "d").exists()


def test_demo_view_yes_without_napari_says_how_to_install_it(tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "napari", None)  # import napari raises ImportError
    folder = tmp_path / "d"
    assert (
        main(
            [
                "demo",
                str(folder),
                "--model",
                "baseline",
                "--view",
                "yes",
                "--chips",
                "4",
                "--size",
                "32",
            ]
        )
        == 2
    )
    err = capsys.readouterr().err
    assert "napari is not installed" in err and 'pip install "chipqa[napari]"' in err
    assert not folder.exists()
