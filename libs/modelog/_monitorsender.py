"""Sending predictions in the background: tables are queued and a thread sends them as Arrow IPC
batches on a client stream. The queue is bounded (`max_queued_rows`): a producer faster than the
server waits there rather than growing memory without bound. An error of the thread is kept and
raised by the caller's next put or flush.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING, Any

import pyarrow as pa
import pyarrow.ipc as ipc

from modelog._gen.monitoring.v1 import monitoring_pb2 as pb
from modelog.errors import InvalidArgument

if TYPE_CHECKING:
    from modelog.monitoring import Monitors

BATCH_ROWS = 65_536
"""Rows per Arrow IPC message: big enough to amortise a Parquet blob and an event, small enough
(~12 MB for 22 columns) to stay well below the server's 64 MB message limit."""


def to_table(data: Any) -> pa.Table:
    """A pyarrow Table from a pandas DataFrame, an Arrow Table or RecordBatch, or a dict of columns."""
    if isinstance(data, pa.Table):
        return data
    if isinstance(data, pa.RecordBatch):
        return pa.Table.from_batches([data])
    if isinstance(data, Mapping):
        return pa.table(dict(data))
    if hasattr(data, "to_dict") and hasattr(data, "columns"):  # pandas, without importing it
        return pa.Table.from_pandas(data, preserve_index=False)
    raise InvalidArgument(f"cannot log a {type(data).__name__}: give a pandas DataFrame or a pyarrow Table")


def to_ipc(table: pa.Table) -> bytes:
    sink = pa.BufferOutputStream()
    with ipc.new_stream(sink, table.schema) as writer:
        writer.write_table(table)
    return bytes(sink.getvalue())


class Sender:
    """The background thread of one monitor: coalesces queued tables into BATCH_ROWS-row Arrow IPC
    messages and sends them on a LogPredictions stream that stays open while rows keep coming."""

    def __init__(self, client: Monitors, name: str, max_queued_rows: int = 2_000_000) -> None:
        self.client, self.name = client, name
        self.queue: queue.Queue[pa.Table | None] = queue.Queue()
        self.room = threading.BoundedSemaphore(max(1, max_queued_rows // BATCH_ROWS))
        self.pending = 0
        self.cond = threading.Condition()
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._run, name=f"modelog-monitor-{name}", daemon=True)
        self.thread.start()

    def _raise(self) -> None:
        if self.error is not None:
            error, self.error = self.error, None
            raise error

    def put(self, table: pa.Table) -> None:
        self._raise()
        for offset in range(0, table.num_rows, BATCH_ROWS):
            self.room.acquire()
            with self.cond:
                self.pending += 1
            self.queue.put(table.slice(offset, BATCH_ROWS))

    def flush(self, timeout: float | None) -> None:
        with self.cond:
            if not self.cond.wait_for(lambda: self.pending == 0, timeout):
                raise TimeoutError(f"predictions for {self.name} were not all sent within {timeout}s")
        self._raise()

    def close(self) -> None:
        self.flush(None)
        self.queue.put(None)
        self.thread.join()

    def _done(self, n: int) -> None:
        with self.cond:
            self.pending -= n
            self.cond.notify_all()
        for _ in range(n):
            self.room.release()

    def _requests(self, first: pa.Table, sent: list[int]) -> Iterator[pb.LogPredictionsRequest]:
        item: pa.Table | None = first
        while item is not None:
            yield pb.LogPredictionsRequest(monitor=self.name, arrow=to_ipc(item))
            sent[0] += 1
            try:
                item = self.queue.get(timeout=0.05)
            except queue.Empty:
                return
            if item is None:
                self.queue.put(None)
                return

    def _run(self) -> None:
        while True:
            first = self.queue.get()
            if first is None:
                return
            sent = [0]
            try:
                self.client.stub.LogPredictions(self._requests(first, sent), timeout=600)
            except Exception as exc:  # noqa: BLE001 - kept for the caller: a dead thread would hang flush()
                self.error = exc
            self._done(max(sent[0], 1))


# ---------------------------------------------------------------- the client
