"""Reading a large file a piece at a time: its bytes on demand, its lines decoded."""

from __future__ import annotations

import codecs
import os
import re
from collections.abc import Iterator


class FileBytes:
    """The bytes of an open file from ``start`` on, read when asked for (as much of
    ``bytes`` as :func:`chipqa.blocklist.csvformat.parse_chunk` uses), so that a large
    file is never in memory whole."""

    def __init__(self, fd: int, start: int, size: int):
        self.fd, self.start, self.size = fd, start, size

    def __len__(self) -> int:
        return self.size

    def __getitem__(self, part: slice) -> bytes:
        lo, hi, _ = part.indices(self.size)
        return os.pread(self.fd, max(0, hi - lo), self.start + lo) if hi > lo else b""

    def rfind(self, sub: bytes) -> int:
        """The offset of the last ``sub`` (one byte), or -1."""
        hi = self.size
        while hi > 0:
            lo = max(0, hi - (1 << 16))
            i = self[lo:hi].rfind(sub)
            if i >= 0:
                return lo + i
            hi = lo
        return -1


class Lines:
    """The lines of ``data[:end]``, decoded, each with its line end, 1 MiB at a time.
    ``count``: the line ends read so far."""

    _LINE = re.compile(r"[^\n]*\n")

    def __init__(self, data: bytes | FileBytes, end: int, encoding: str):
        self.data, self.end, self.encoding, self.count = data, end, encoding, 0

    def __iter__(self) -> Iterator[str]:
        decoder = codecs.getincrementaldecoder(self.encoding)()
        rest, pos = "", 0
        while pos < self.end:
            stop = min(self.end, pos + (1 << 20))
            text = rest + decoder.decode(self.data[pos:stop], final=stop == self.end)
            pos = stop
            cut = text.rfind("\n") + 1
            lines = self._LINE.findall(text, 0, cut)
            self.count += len(lines)
            yield from lines
            rest = text[cut:]
        if rest:
            yield rest
