"""`chipqa view` in a real napari window (Xvfb): three multiscale panels side by side."""

from __future__ import annotations

import pytest

from chipqa._qt.scene_viewer import SCENE_MASK, SCENE_RGB, SCENE_SCL, open_scene_in_viewer
from chipqa.cli import main
from chipqa.synth import write_scene

pytestmark = pytest.mark.gui


@pytest.mark.slow
def test_a_scene_opens_as_three_lazy_multiscale_panels(make_napari_viewer, qtbot, tmp_path):
    scene = write_scene(
        tmp_path / "scene.tif", (256, 384), block=128, scl_path=tmp_path / "SCL.tif"
    )
    mask = tmp_path / "mask.tif"
    assert (
        main(["mask", str(scene), "--out", str(mask), "--tile", "128", "--overlap", "16", "-q"])
        == 0
    )
    viewer = make_napari_viewer(show=True)
    scl = tmp_path / "SCL.tif"
    layers = open_scene_in_viewer(viewer, scene, mask=mask, scl=scl, smallest=128)
    assert [ly.name for ly in layers] == [SCENE_RGB, SCENE_SCL, SCENE_MASK]
    assert all(ly.multiscale and len(ly.data) == 3 for ly in layers)  # 384, 192, 96 px wide
    assert type(layers[0].data[0]).__module__.startswith("dask")  # lazy, not numpy
    # Side by side: each panel one scene width (plus a gap) to the right of the last.
    xs = [float(ly.translate[1]) for ly in layers]
    assert xs[0] == 0 and 384 < xs[1] < 400 and xs[2] == 2 * xs[1]

    def three_panels_drawn():  # the lazy chunks arrive over a few frames
        shot = viewer.screenshot(canvas_only=True, flash=False)[..., :3].astype(int)
        third = shot.shape[1] // 3
        left, middle, right = shot[:, :third], shot[:, third : 2 * third], shot[:, 2 * third :]
        red = (middle[..., 0] > 180) & (middle[..., 1] < 110) & (middle[..., 2] < 90)
        magenta = (right[..., 0] > 150) & (right[..., 1] < 80) & (right[..., 2] > 120)
        assert red.mean() > 0.02  # SCL high-probability cloud in the middle panel
        assert magenta.mean() > 0.02  # the model's cloud on the right
        white = (left > 200).all(-1)
        assert white.mean() > 0.02  # clouds in true colour on the left

    qtbot.waitUntil(three_panels_drawn, timeout=15_000)
    # Grid mode instead of translation.
    viewer.layers.clear()
    layers = open_scene_in_viewer(viewer, scene, mask=mask, layout="grid")
    assert all(float(ly.translate[1]) == 0 for ly in layers)
