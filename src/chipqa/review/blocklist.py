"""The blocklist: a reviewer's decisions on chips, on disk after every decision.

The file format is documented in ``labels/README.md`` and read by
:mod:`chipqa.review.blocklist_csv`: a CSV with ``chip_id`` first, then the decision
(``keep``, ``block``, ``unsure``), the reason, the flags and numbers that were on screen,
the model that produced them, who decided and when.

Each decision appends one row to the file and fsyncs it before :meth:`BlocklistStore.decide`
returns, so a decision costs the same whether the file holds a hundred rows or ten
thousand. The later ``decided_at`` wins, so the file always reads as the current
decisions; a row cut short by a crash is left out by readers and removed by the next
writer. The file is created, and rewritten without its superseded rows ("compacted"),
atomically (temporary file in the same folder, flush, fsync, rename), so it is always
whole.

Several processes may hold the same blocklist open (two napari windows, a script): each
write takes an exclusive lock on a ``.lock`` file beside the CSV, reads the rows another
process appended since this one last looked (only those bytes; the whole file when it was
replaced), merges them in (per chip, the later decision wins) and only then appends.
Nothing another process decided is silently dropped; :attr:`BlocklistStore.merged_from_elsewhere`
counts what was merged in. A blocklist path that is a symbolic link is written through
to its target (the shared file is updated, the link stays).
"""

from __future__ import annotations

import contextlib
import getpass
import os
import re
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from chipqa.io.atomic import atomic_write_text
from chipqa.io.paths import side_paths
from chipqa.review.blocklist_csv import (
    COLUMNS,
    DECISIONS,
    NUMBER_COLUMNS,
    UNDONE,
    BlocklistError,
    Chunk,
    Decision,
    blocked_ids,
    chip_id_problem,
    clean_text,
    fmt_number,
    now_utc,
    parse_blocklist,
    parse_chunk,
    parse_time,
    read_blocklist,
    refuse_control,
    render,
    render_row,
    resolve,
    supersedes,
    time_after,
)

try:  # POSIX advisory locks; on Windows the lock is skipped (single writer assumed)
    import fcntl
except ImportError:  # pragma: no cover
    fcntl = None  # type: ignore[assignment]

__all__ = [
    "COLUMNS",
    "DECISIONS",
    "REASONS",
    "UNDONE",
    "BlocklistError",
    "BlocklistStore",
    "Decision",
    "blocked_ids",
    "default_path",
    "default_reviewer",
    "now_utc",
    "parse_blocklist",
    "read_blocklist",
]

REASONS = ("all_cloud_wrong", "no_cloud_wrong", "shifted", "wrong_chip", "clouds_missing", "other")
"""Reasons offered for a block; free text is accepted too."""

COMPACT_AFTER = 1000
"""On opening or exporting, the file is compacted when it holds at least this many
superseded rows, and more of them than current ones."""
STALE_TEMP_SECONDS = 60.0
"""Temporary files of this blocklist older than this, found while holding its lock, are
left over from a crash and are removed on opening."""


def default_reviewer() -> str:
    """The operating-system user (``CHIPQA_REVIEWER`` overrides it)."""
    env = os.environ.get("CHIPQA_REVIEWER")
    if env:
        return env
    try:
        return getpass.getuser()
    except Exception:  # no user database entry (containers)
        return "unknown"


def default_path(dataset_root: str | Path) -> Path:
    """Where a dataset's blocklist goes by default: beside the dataset folder."""
    return side_paths(dataset_root).blocklist


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

    def took(self, chunk: Chunk, data: bytes) -> None:
        """Account for ``chunk``, parsed from ``data``, which followed what was read."""
        whole = data[: chunk.used]
        self.used += chunk.used
        self.lines += chunk.lines
        self.n_rows += len(chunk.rows)
        if whole:
            self.ends_with_newline = whole.endswith(b"\n")
            self.last_bytes = (self.last_bytes + whole)[-64:]
        self.torn = chunk.used < len(data)


@dataclass
class _Undo:
    chip_id: str
    before: Decision | None


@dataclass
class BlocklistStore:
    """Decisions of one review session, kept in step with a CSV on disk.

    Args:
        path: the CSV (a symbolic link is followed: its target is written). Its folder
            must exist and be writable; the file is created on the first decision.
        reviewer: written into each decision (default: :func:`default_reviewer`).

    Raises:
        BlocklistError: the existing file is not a blocklist (the message names the
            line), or the folder cannot be written.
    """

    path: Path
    reviewer: str = field(default_factory=default_reviewer)
    _rows: dict[str, Decision] = field(default_factory=dict, init=False, repr=False)
    _mine: dict[str, Decision] = field(default_factory=dict, init=False, repr=False)
    merged_from_elsewhere: int = field(default=0, init=False)
    _undo: list[_Undo] = field(default_factory=list, init=False, repr=False)
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

    @property
    def decisions(self) -> dict[str, Decision]:
        """Current decisions by chip id (undone ones left out)."""
        return {k: d for k, d in self._rows.items() if d.decision != UNDONE}

    # -- reading -------------------------------------------------------------
    def __len__(self) -> int:
        return len(self.decisions)

    def __contains__(self, chip_id: object) -> bool:
        return self.get(chip_id) is not None  # type: ignore[arg-type]

    def get(self, chip_id: str) -> Decision | None:
        d = self._rows.get(chip_id)
        return None if d is None or d.decision == UNDONE else d

    def counts(self) -> dict[str, int]:
        c = dict.fromkeys(DECISIONS, 0)
        for d in self.decisions.values():
            c[d.decision] += 1
        return c

    @property
    def can_undo(self) -> bool:
        return bool(self._undo)

    # -- the file ------------------------------------------------------------
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
                f.seek(seen.used)
                data = f.read()
                chunk = parse_chunk(data, self.path, seen.header, seen.lines + 1)
                seen.took(chunk, data)
            else:
                data = f.read()
                chunk = parse_chunk(data, self.path)
                self._file = _FileState(
                    st.st_dev, st.st_ino, 0, 0, chunk.header, 0, True, False, b""
                )
                self._file.took(chunk, data)
        self._merge(resolve(chunk.rows), count)

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
        self._file = _FileState(st.st_dev, st.st_ino, 0, 0, list(COLUMNS), 0, True, False, b"")
        self._file.took(Chunk([], list(COLUMNS), len(data), data.count(b"\n")), data)
        self._file.n_rows = len(rows)

    def _append(self, d: Decision) -> None:
        """Append one row and fsync it; on failure the file is cut back to what it was."""
        f = self._file
        assert f is not None
        line = render_row(d) if f.ends_with_newline else b"\n" + render_row(d)
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
            while done < len(line):
                done += os.write(fd, line[done:])
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
        f.used += len(line)
        f.lines += line.count(b"\n")
        f.n_rows += 1
        f.ends_with_newline, f.torn = True, False
        f.last_bytes = (f.last_bytes + line)[-64:]

    def _commit(
        self,
        chip_id: str,
        build: Callable[[str], Decision],
        check: Callable[[], None] | None = None,
    ) -> tuple[Decision, Decision | None]:
        """Under one lock: take in other processes' rows, check ``check``'s precondition
        on what is now known, stamp the new row with the time (``build(decided_at)``) and
        write it. Stamping inside the lock keeps ``decided_at`` in the order the rows
        reach the file, which is what merging by time relies on; a clock that went back
        still gets a time after the chip's previous row.

        Returns the new row and the chip's decision it replaced (None: undecided), as
        the file held it at that moment: what an undo restores."""
        with self._locked():
            self._sync()
            if check is not None:
                check()
            before = self.get(chip_id)
            previous = self._rows.get(chip_id)
            at = now_utc()
            last = parse_time(previous.decided_at) if previous is not None else None
            if last is not None and parse_time(at) <= last:  # type: ignore[operator]
                at = time_after(previous.decided_at)  # type: ignore[union-attr]
            new = build(at)
            f = self._file
            if f is None or tuple(f.header) != COLUMNS:  # new file, or a hand-written one
                self._rewrite({**self._rows, chip_id: new})
            else:
                self._append(new)
            self._rows.pop(chip_id, None)  # keeps the order of the file's rows
            self._rows[chip_id] = new
            self._mine[chip_id] = new
        return new, before

    # -- decisions -----------------------------------------------------------
    def decide(
        self,
        chip_id: str,
        decision: str,
        reason: str = "",
        *,
        info: Mapping[str, object] | None = None,
    ) -> Decision:
        """Record a decision and write it to the file before returning.

        Args:
            chip_id: the chip, exactly as the dataset names it.
            decision: ``keep``, ``block`` or ``unsure``.
            reason: why (see :data:`REASONS`; free text allowed).
            info: what was on screen: ``flags``, ``suspicion``, ``iou``,
                ``label_cloud_fraction``, ``pred_cloud_fraction``, ``model``.

        Raises:
            BlocklistError: the file cannot be written, or the chip id, reason or
                reviewer cannot go into a blocklist (a control character, or a chip id
                starting like a spreadsheet formula); nothing is recorded then.
        """
        if decision not in DECISIONS:
            raise ValueError(f"decision must be one of {', '.join(DECISIONS)}, not {decision!r}")
        problem = chip_id_problem(chip_id)
        if problem is not None:
            raise BlocklistError(
                f"{problem}. Rename the chip (its folder or label file); no decision was recorded."
            )
        info = dict(info or {})
        fields_ = {
            "chip_id": chip_id,
            "decision": decision,
            "reason": refuse_control("reason", str(reason or "").strip()),
            "flags": clean_text(info.get("flags", "")),
            "model": clean_text(info.get("model", "")),
            "reviewer": refuse_control("reviewer name", str(self.reviewer or "").strip()),
            **{c: fmt_number(info.get(c)) for c in NUMBER_COLUMNS},
        }
        d, before = self._commit(chip_id, lambda at: Decision(**fields_, decided_at=at))
        self._undo.append(_Undo(chip_id, before))
        return d

    def undo(self) -> str | None:
        """Take back the last decision of this session; returns its chip id (or None).

        The earlier state is written again as a new row (the previous decision, or an
        ``undone`` row), so other windows on the same file take the undo in too.

        Raises:
            BlocklistError: the file cannot be written, or another window decided on the
                chip after this one did (its decision is kept; nothing is undone).
        """
        if not self._undo:
            return None
        u = self._undo[-1]

        def no_newer_decision() -> None:
            current = self._rows.get(u.chip_id)
            if current != self._mine.get(u.chip_id):
                self._undo.pop()
                who = current.reviewer if current is not None else "someone"
                raise BlocklistError(
                    f"chip {u.chip_id!r} was decided again by {who} in another window after "
                    "your decision; their decision is kept and nothing was undone"
                )

        def restored(at: str) -> Decision:
            if u.before is None:
                return Decision(u.chip_id, UNDONE, reviewer=self.reviewer, decided_at=at)
            return Decision(**{**u.before.as_row(), "decided_at": at})

        self._commit(u.chip_id, restored, check=no_newer_decision)
        self._undo.pop()
        return u.chip_id

    def export(self, path: str | Path, *, blocked_only: bool = True) -> Path:
        """Write the final blocklist for training (blocked chips only by default).

        Text cells are escaped for spreadsheets (see ``labels/README.md``); a symbolic
        link at ``path`` is written through to its target."""
        path = Path(path)
        with self._locked():
            self._sync()
            self._compact_if_worth_it()
        try:
            atomic_write_text(
                os.path.realpath(path), render(self.decisions, "block" if blocked_only else None)
            )
        except OSError as exc:
            raise BlocklistError(f"cannot write {path} ({exc.strerror or exc})") from exc
        return path
