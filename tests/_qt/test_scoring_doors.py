"""The plugin and ``chipqa score`` give the same answer on the same data."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from chipqa._qt.review_widget import ChipQAWidget, scores_path_for
from chipqa.cli.main import main
from chipqa.scoring import STAT_COLUMNS, read_scores
from chipqa.scoring.settings import read_settings
from chipqa.synth import generate_dataset

pytestmark = pytest.mark.gui


def test_the_plugin_calibrates_and_scores_as_chipqa_score_does(make_napari_viewer, qtbot, tmp_path):
    root = tmp_path / "data"
    generate_dataset(root, n_chips=12, size=48, error_rate=0.25, seed=11)
    out = tmp_path / "cli_scores.csv"
    assert main(["score", str(root), "--model", "baseline", "--out", str(out), "-q"]) == 0
    cli = read_scores(out).sort_values("chip_id").reset_index(drop=True)
    viewer = make_napari_viewer(show=True)
    w = ChipQAWidget(viewer)
    viewer.window.add_dock_widget(w, name="Chip QA")
    w.open_dataset(root, "baseline")
    qtbot.waitUntil(lambda: w.session is not None and not w.scoring_running, timeout=60_000)
    plugin = read_scores(scores_path_for(root)).sort_values("chip_id").reset_index(drop=True)
    assert cli["threshold"].iloc[0] != 0.5  # calibrated: not the default
    pd.testing.assert_series_equal(plugin["threshold"], cli["threshold"])
    for col in STAT_COLUMNS:
        np.testing.assert_allclose(plugin[col], cli[col], rtol=1e-5, equal_nan=True, err_msg=col)
    assert list(plugin["flags"]) == list(cli["flags"])
    assert w.loader.threshold == cli["threshold"].iloc[0]  # outlines at that threshold
    saved, _ = read_settings(scores_path_for(root))
    assert saved.model == "baseline" and saved.threshold == cli["threshold"].iloc[0]
    w.close()
