"""Atomic file writes: a reader sees the old file or the new one, never half of one."""

from __future__ import annotations

import contextlib
import os
import stat
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import IO


def _umask() -> int:
    """The process's umask, read without changing it (os.umask would, for every thread)."""
    try:
        with open("/proc/self/status", encoding="ascii") as f:
            for line in f:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    return 0o022


def _mode_for(path: Path) -> int:
    """The permissions a rewrite of ``path`` gets: the old file's, else 0666 less umask.
    Only a regular file's count: a link at ``path`` is replaced, not followed (a cache
    entry linked to ``/dev/zero`` must not make the new file world-writable)."""
    try:
        st = os.lstat(path)
    except OSError:
        st = None
    if st is not None and stat.S_ISREG(st.st_mode):
        return st.st_mode & 0o7777
    return 0o666 & ~_umask()


def _fsync_dir(folder: Path) -> None:
    with contextlib.suppress(OSError):
        dfd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(dfd)
        finally:
            os.close(dfd)


def atomic_replace(src: str | Path, dst: str | Path) -> Path:
    """Publish a finished file ``src`` under ``dst`` (same file system): fsync it, give it
    the permissions a rewrite of ``dst`` gets, rename it over ``dst``, fsync the folder.

    For files another library wrote (GDAL's COGs): no byte is copied."""
    src, dst = Path(src), Path(dst)
    fd = os.open(src, os.O_RDONLY)
    try:
        os.fsync(fd)
        os.fchmod(fd, _mode_for(dst))
    finally:
        os.close(fd)
    os.replace(src, dst)
    _fsync_dir(dst.parent)
    return dst


@contextlib.contextmanager
def atomic_open(path: str | Path, mode: str = "w", **kwargs) -> Iterator[IO]:
    """Open a temporary file beside ``path``; on success fsync it and rename it over ``path``.

    On any error the temporary file is removed and ``path`` is left as it was. The
    folder is fsynced after the rename so that the rename itself survives a power cut.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        # mkstemp makes the file private (0600); the result should be readable like any
        # file the user writes (a team's blocklist, scores read by a training job).
        os.fchmod(fd, _mode_for(path))
        with os.fdopen(fd, mode, **kwargs) as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    _fsync_dir(path.parent)


def atomic_write_text(path: str | Path, text: str) -> Path:
    """Write ``text`` to ``path`` atomically (UTF-8, newlines as given)."""
    path = Path(path)
    with atomic_open(path, "w", encoding="utf-8", newline="") as f:
        f.write(text)
    return path


def atomic_write_csv(df, path: str | Path) -> Path:
    """Write a pandas table as CSV atomically (no index; floats to 6 significant digits)."""
    path = Path(path)
    with atomic_open(path, "w", newline="", encoding="utf-8") as f:
        df.to_csv(f, index=False, float_format="%.6g")
    return path
