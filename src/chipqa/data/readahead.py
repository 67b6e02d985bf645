"""Read chips in a bounded thread pool, in order: the one reading loop of chipqa."""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

from chipqa.data.records import ChipRecord
from chipqa.errors import ChipReadError


def read_ahead(
    records: Iterable[ChipRecord],
    read: Callable[[ChipRecord], Any],
    *,
    workers: int = 2,
    depth: int = 16,
) -> Iterator[tuple[ChipRecord, Any]]:
    """Apply ``read`` to each record in ``workers`` threads, at most ``depth`` ahead of
    the consumer, yielding ``(record, result)`` in the records' order.

    A :class:`ChipReadError` raised by ``read`` is yielded as the result (the chip's
    problem, the run goes on); any other exception is wrapped in one naming the chip.
    ``workers=0`` reads in the calling thread. Memory stays bounded by ``depth`` results
    whatever the number of records.
    """

    def load(rec: ChipRecord) -> Any:
        try:
            return read(rec)
        except ChipReadError as exc:
            return exc
        except Exception as exc:  # an unexpected failure is still this chip's alone
            return ChipReadError(rec.chip_id, rec.folder, f"unexpected {type(exc).__name__}: {exc}")

    if workers <= 0:
        for rec in records:
            yield rec, load(rec)
        return
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="chipqa-read") as pool:
        pending: deque[tuple[ChipRecord, Future]] = deque()
        try:
            for rec in records:
                pending.append((rec, pool.submit(load, rec)))
                if len(pending) >= depth:
                    r, fut = pending.popleft()
                    yield r, fut.result()
            while pending:
                r, fut = pending.popleft()
                yield r, fut.result()
        finally:
            for _, fut in pending:
                fut.cancel()
