"""An ingest worker process (see ingestpool): reads batches of (path, expected digest) on stdin,
stores them with FileBlobStore.ingest_many, answers on stdout, and exits when its input ends or
its parent dies.

    python -m modelog_services.artifacts.ingestworker STORE_ROOT PARENT_PID
"""

from __future__ import annotations

import ctypes
import os
import signal
import sys
from pathlib import Path

from modelog.shared.artifacts.localcopy import libc_function

from .blobstore import FileBlobStore
from .ingestpool import read_frame, write_frame

_PR_SET_PDEATHSIG = 1
_PRCTL = libc_function("prctl", ctypes.c_int, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong)


def die_with(parent: int) -> None:
    """Be killed when the server dies, even by SIGKILL (Linux); elsewhere the end of stdin does it.
    Linux sends the signal when the *thread* that started the worker ends: the pool starts workers
    from the event loop's executor threads, which live as long as the loop."""
    if _PRCTL is not None:
        _PRCTL(_PR_SET_PDEATHSIG, int(signal.SIGKILL), 0, 0, 0)  # type: ignore[operator]
    if os.getppid() != parent:  # it died before the line above
        sys.exit(0)


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print(__doc__, file=sys.stderr)
        return 2
    die_with(int(argv[1]))
    store = FileBlobStore(Path(argv[0]))
    inp, out = sys.stdin.buffer, sys.stdout.buffer
    sys.stdout = sys.stderr  # nothing but frames on the answer pipe
    while (batch := read_frame(inp)) is not None:
        if not isinstance(batch, list):
            write_frame(out, {"error": "a batch must be a list of [path, digest] pairs"})
            continue
        try:
            results = store.ingest_many([(str(p), str(d) if d else None) for p, d in batch])
        except Exception as exc:  # noqa: BLE001 - the server raises it for the call that sent the batch
            write_frame(out, {"error": f"{type(exc).__name__}: {exc}"})
            continue
        write_frame(out, [r.row() for r in results])
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
