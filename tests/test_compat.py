"""The torchvision compatibility step: patches only when torchvision's ops cannot load."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest


def _run(code: str, extra_path: Path | None = None) -> dict:
    prelude = f"import sys; sys.path.insert(0, {str(extra_path)!r})\n" if extra_path else ""
    out = subprocess.run(
        [sys.executable, "-c", prelude + textwrap.dedent(code)],
        capture_output=True,
        text=True,
        timeout=300,
        check=True,
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


@pytest.mark.slow
def test_smp_imports_and_builds_a_unet_in_a_fresh_process():
    res = _run("""
        import json, torch
        from chipqa._compat import import_smp
        import chipqa._compat as compat
        smp = import_smp()
        m = smp.create_model("unet", encoder_name="resnet18", encoder_weights=None,
                             in_channels=4, classes=1)
        y = m(torch.zeros(1, 4, 64, 64))
        print(json.dumps({"shape": list(y.shape)}))
    """)
    assert res["shape"] == [1, 1, 64, 64]


def test_a_torchvision_that_loads_normally_is_left_alone(tmp_path):
    fake = tmp_path / "torchvision"
    fake.mkdir()
    (fake / "__init__.py").write_text("LOADED_NORMALLY = True\n")
    res = _run(
        """
        import json, torch
        import chipqa._compat as compat
        tv = compat.import_torchvision()
        print(json.dumps({"normal": getattr(tv, "LOADED_NORMALLY", False),
                          "patched": compat.patched,
                          "declared": hasattr(torch.ops.torchvision, "nms")}))
    """,
        extra_path=tmp_path,
    )
    assert res == {"normal": True, "patched": False, "declared": False}


def test_an_unrelated_runtime_error_is_not_swallowed(tmp_path):
    fake = tmp_path / "torchvision"
    fake.mkdir()
    (fake / "__init__.py").write_text("raise RuntimeError('CUDA driver too old')\n")
    res = _run(
        """
        import json
        import chipqa._compat as compat
        try:
            compat.import_smp()
            print(json.dumps({"raised": None}))
        except RuntimeError as exc:
            print(json.dumps({"raised": str(exc), "patched": compat.patched}))
    """,
        extra_path=tmp_path,
    )
    assert res == {"raised": "CUDA driver too old", "patched": False}
