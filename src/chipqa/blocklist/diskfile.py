"""Keeping a blocklist CSV in step with the disk: locking, reading what other writers
appended, appending rows, rewriting the file atomically.

:class:`BlocklistFile` is the part of :class:`~chipqa.blocklist.store.BlocklistStore`
that knows the file; the store adds the decisions, bulk decisions, label fixes and
undo on top. The rules kept here are those of ``labels/README.md``: rows are appended
and fsynced under an exclusive lock on ``<name>.lock``; before writing, the rows other
processes appended are taken in (only those bytes, or the whole file when it was
replaced); a row cut short by a crash is cut off before appending; the file is created
and compacted atomically.
"""

from __future__ import annotations

import contextlib
import os
import re
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from chipqa.blocklist.csvformat import COLUMNS, UNDONE, BlocklistError, Decision, supersedes
from chipqa.blocklist.csvread import Chunk, parse_chunk
from chipqa.blocklist.csvwrite import header_for, render, render_rows
from chipqa.io.atomic import atomic_write_text
from chipqa.io.chunked import FileBytes

try:  # POSIX advisory locks; on Windows the lock is skipped (single writer assumed)
    import fcntl
except ImportError:  # pragma: no cover
    fcntl = None  # type: ignore[assignment]

COMPACT_AFTER = 1000
"""On opening or exporting, the file is compacted when it holds at least this many
superseded rows, and more of them than current ones."""
STALE_TEMP_SECONDS = 60.0
"""Temporary files of this blocklist older than this, found while holding its lock, are
left over from a crash and are removed on opening."""


@dataclass
class _FileState:
    """What this store last saw of the file: which file (device, inode), how many of its
    bytes and lines it has read, whether those end with a line end, whether a torn row
    follows them, and the last bytes read (to notice a file rewritten in place)."""

    dev: int
    ino: int
    used: int
    lines: int
    header: list[str]
    n_rows: int
    ends_with_newline: bool
    torn: bool
    last_bytes: bytes

    def took(self, chunk: Chunk, data: bytes | FileBytes) -> None:
        """Account for ``chunk``, parsed from ``data``, which followed what was read."""
        end = data[max(0, chunk.used - 64) : chunk.used]  # the last bytes of the whole rows
        self.used += chunk.used
        self.lines += chunk.lines
        self.n_rows += chunk.n_rows
        if end:
            self.ends_with_newline = end.endswith(b"\n")
            self.last_bytes = (self.last_bytes + end)[-64:]
        self.torn = chunk.used < len(data)


def _appendable(header: list[str], rows: Sequence[Decision]) -> bool:
    """Whether ``rows`` can be appended to a file with ``header``: chipqa's columns first,
    in order, and a column for every extra cell of the rows (else the file is rewritten,
    its extra columns kept)."""
    if tuple(header[: len(COLUMNS)]) != COLUMNS:
        return False
    return all(name in header for d in rows for name in d.extra)


@dataclass
class BlocklistFile:
    """The rows of a blocklist CSV as this process knows them, and the file's state.

    Args:
        path: the CSV (a symbolic link is followed: its target is written). Its folder
            must exist and be writable; the file is created on the first write.

    Raises:
        BlocklistError: the existing file is not a blocklist (the message names the
            line), or the folder cannot be written.
    """

    path: Path
    _rows: dict[str, Decision] = field(default_factory=dict, init=False, repr=False)
    merged_from_elsewhere: int = field(default=0, init=False)
    _file: _FileState | None = field(default=None, init=False, repr=False)
    _target: Path = field(default=Path(), init=False, repr=False)

    def __post_init__(self) -> None:
        self.path = Path(self.path).expanduser()
        self._target = Path(os.path.realpath(self.path))
        folder = self._target.parent
        if not folder.is_dir():
            raise BlocklistError(
                f"cannot keep a blocklist at {self.path}: folder {folder} does not exist"
            )
        if not os.access(folder, os.W_OK):
            raise BlocklistError(
                f"cannot write a blocklist in {folder} (no write permission). "
                "Choose another blocklist path; no decision has been made yet."
            )
        with self._locked():
            self._remove_stale_temp_files()
            self._sync(count=False)
            self._compact_if_worth_it()

    def _error(self, action: str, exc: OSError, after: str) -> BlocklistError:
        return BlocklistError(
            f"cannot {action} the blocklist {self.path} ({exc.strerror or exc}). {after}"
        )

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        lock_path = self._target.with_name(self._target.name + ".lock")
        try:
            fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as exc:
            raise self._error(
                "write", exc, "Choose another blocklist path; decisions already on disk are kept."
            ) from exc
        try:
            if fcntl is not None:
                fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            if fcntl is not None:
                fcntl.flock(fd, fcntl.LOCK_UN)
            os.close(fd)

    def _remove_stale_temp_files(self) -> None:
        """Remove this blocklist's temporary files left by a crashed writer. Called under
        the lock, so no writer of this blocklist is between writing one and renaming it;
        the age limit also spares those of a writer that does not take the lock."""
        name = re.compile(rf"\.{re.escape(self._target.name)}\.[a-z0-9_]{{8}}\.tmp")
        now = time.time()
        with contextlib.suppress(OSError), os.scandir(self._target.parent) as entries:
            for e in entries:
                with contextlib.suppress(OSError):
                    if (
                        name.fullmatch(e.name)
                        and e.is_file(follow_symlinks=False)
                        and now - e.stat(follow_symlinks=False).st_mtime > STALE_TEMP_SECONDS
                    ):
                        os.unlink(e.path)

    def _sync(self, count: bool = True) -> None:
        """Take in the rows other processes wrote since this store last looked: only the
        appended bytes when the file is the same one, else the whole file. Per chip the
        later row wins; undos travel as ``undone`` rows, so they win over older ones."""
        try:
            f = open(self._target, "rb")  # noqa: SIM115 (closed below)
        except FileNotFoundError:
            self._file = None  # created again, with every known decision, on writing
            return
        except OSError as exc:
            raise self._error("read", exc, "Fix its permissions or choose another path.") from exc
        with f:
            st = os.fstat(f.fileno())
            seen = self._file
            if (
                seen is not None
                and (seen.dev, seen.ino) == (st.st_dev, st.st_ino)
                and st.st_size >= seen.used
                and os.pread(f.fileno(), len(seen.last_bytes), seen.used - len(seen.last_bytes))
                == seen.last_bytes
            ):
                if st.st_size == seen.used:
                    return
                data = FileBytes(f.fileno(), seen.used, st.st_size - seen.used)
                chunk = parse_chunk(data, self.path, seen.header, seen.lines + 1)
                seen.took(chunk, data)
            else:
                data = FileBytes(f.fileno(), 0, st.st_size)
                chunk = parse_chunk(data, self.path)
                self._file = _FileState(
                    st.st_dev, st.st_ino, 0, 0, chunk.header, 0, True, False, b""
                )
                self._file.took(chunk, data)
        self._merge(chunk.latest, count)

    def _merge(self, rows: Mapping[str, Decision], count: bool) -> None:
        for cid, d in rows.items():
            mine = self._rows.get(cid)
            if d != mine and supersedes(d, mine):
                self._rows[cid] = d
                self.merged_from_elsewhere += count

    def _compact_if_worth_it(self) -> None:
        f = self._file
        superseded = f.n_rows - len(self._rows) if f is not None else 0
        if superseded >= COMPACT_AFTER and superseded > len(self._rows):
            self._rewrite(self._rows)

    def _rewrite(self, rows: Mapping[str, Decision]) -> None:
        """Write ``rows`` as the whole file, atomically (creating or compacting it)."""
        text = render(rows)
        try:
            atomic_write_text(self._target, text)
            st = os.stat(self._target)
        except OSError as exc:
            raise self._error(
                "write", exc, "Choose another blocklist path; the decisions on disk are unchanged."
            ) from exc
        data = text.encode("utf-8")
        header = header_for(rows.values())
        self._file = _FileState(st.st_dev, st.st_ino, 0, 0, header, 0, True, False, b"")
        self._file.took(Chunk({}, len(rows), header, len(data), data.count(b"\n")), data)

    def _append(self, rows: Sequence[Decision]) -> None:
        """Append ``rows`` in one write and fsync them; on failure the file is cut back to
        what it was (none of the rows is on disk then)."""
        f = self._file
        assert f is not None
        data = render_rows(rows, f.header)
        if not f.ends_with_newline:
            data = b"\n" + data
        try:
            fd = os.open(self._target, os.O_WRONLY | os.O_APPEND)
        except OSError as exc:
            raise self._error(
                "write", exc, "Choose another blocklist path; the decisions on disk are unchanged."
            ) from exc
        try:
            if f.torn:  # a row cut short by a crashed writer: never acknowledged
                os.ftruncate(fd, f.used)
            done = 0
            while done < len(data):
                done += os.write(fd, data[done:])
            os.fsync(fd)
        except OSError as exc:
            with contextlib.suppress(OSError):
                os.ftruncate(fd, f.used)
            f.torn = False
            raise self._error(
                "write", exc, "Choose another blocklist path; the decisions on disk are unchanged."
            ) from exc
        finally:
            os.close(fd)
        f.used += len(data)
        f.lines += data.count(b"\n")
        f.n_rows += len(rows)
        f.ends_with_newline, f.torn = True, False
        f.last_bytes = (f.last_bytes + data)[-64:]

    def _write_rows(self, rows: Sequence[Decision]) -> None:
        """Put ``rows`` (already stamped, in order) into the file and into memory: one
        append, or one atomic rewrite for a new or hand-written file. Call under the lock."""
        f = self._file
        if f is None or not _appendable(f.header, rows):  # new file, or a hand-written one
            latest = dict(self._rows)
            for d in rows:
                latest[d.chip_id] = d
            self._rewrite(latest)
        else:
            self._append(rows)
        for d in rows:
            self._rows.pop(d.chip_id, None)  # keeps the order of the file's rows
            self._rows[d.chip_id] = d

    def current(self, chip_id: str) -> Decision | None:
        """The chip's latest row as this store knows it (None: never decided or undone)."""
        d = self._rows.get(chip_id)
        return None if d is None or d.decision == UNDONE else d
