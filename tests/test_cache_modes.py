"""A damaged cache entry is rebuilt with the permissions of a new file, whatever it was."""

from __future__ import annotations

import os
import stat

import pytest

from test_fast_cpu import _tiny

pytest.importorskip("onnxruntime")


def test_an_onnx_export_linked_to_dev_zero_is_rebuilt_private_to_its_owner(tmp_path, monkeypatch):
    monkeypatch.setenv("CHIPQA_CACHE_DIR", str(tmp_path))
    first = _tiny().fast_cpu().cpu_runner.path
    mode = stat.S_IMODE(first.stat().st_mode)
    assert not mode & 0o002  # a new export is not world-writable
    first.unlink()
    first.symlink_to("/dev/zero")  # damaged (or planted) entry
    again = _tiny().fast_cpu().cpu_runner.path
    assert again == first and not again.is_symlink() and again.is_file()
    assert stat.S_IMODE(os.lstat(again).st_mode) == mode  # not /dev/zero's 0666
    assert stat.S_IMODE(os.stat("/dev/zero").st_mode) == 0o666
