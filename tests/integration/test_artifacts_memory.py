"""A large file goes up and comes back down in constant memory, on the client and the server alike:
streamed through gRPC, and copied by path on the same host (IngestLocal and the local pull, whose
mmap windows are bounded).

Client (the SDK, in a thread) and server (grpc.aio, on this event loop) share this process, so one RSS
covers both sides. The file is sparse: generated instantly, read at page-cache speed; the blob store
and the download still write every byte. MODELOG_MEMTEST_BYTES overrides the size (default 1 GiB,
ten times the limit; what it writes is removed at the end, so the suite fits a small CI disk).
"""

from __future__ import annotations

import asyncio
import os
import shutil
import threading
import time
from pathlib import Path

import psutil
import pytest

import modelog.artifacts as art
from tests.integration.test_artifacts_stack import ArtifactStack, stack

pytestmark = [pytest.mark.asyncio, pytest.mark.slow]
__all__ = ["stack"]

SIZE = int(os.environ.get("MODELOG_MEMTEST_BYTES", 1 << 30))
LIMIT = 100 << 20


class PeakRss:
    def __init__(self) -> None:
        self.proc = psutil.Process()
        self.base = self.peak = self.proc.memory_info().rss
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._sample, daemon=True)

    def _sample(self) -> None:
        while not self.stop.wait(0.02):
            self.peak = max(self.peak, self.proc.memory_info().rss)

    def __enter__(self) -> PeakRss:
        self.base = self.peak = self.proc.memory_info().rss
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        self.thread.join()

    @property
    def growth(self) -> int:
        return self.peak - self.base


@pytest.mark.parametrize("local", [False, True], ids=["streamed", "same-host"])
async def test_a_large_file_uploads_and_downloads_in_constant_memory(
    stack: ArtifactStack, tmp_path: Path, local: bool
) -> None:
    src = tmp_path / "src"
    src.mkdir()
    (src / "warmup.bin").write_bytes(os.urandom(8 << 20))

    def roundtrip(name: str, target: Path) -> art.ArtifactVersion:
        with stack.connection() as conn:
            version = art.log_artifacts(src, name=name, conn=conn, local=local)
            art.get(f"{name}:latest", conn=conn).download(target, local=local)
            return version

    await asyncio.to_thread(roundtrip, "warmup", tmp_path / "warm")  # threads, channels, buffers
    (src / "warmup.bin").unlink()
    fd = os.open(src / "big.bin", os.O_WRONLY | os.O_CREAT, 0o644)
    os.ftruncate(fd, SIZE)
    os.close(fd)
    t0 = time.perf_counter()
    try:
        with PeakRss() as rss:
            version = await asyncio.to_thread(roundtrip, "big", tmp_path / "out")
        seconds = time.perf_counter() - t0
        print(f"\n{SIZE >> 20} MiB up and down in {seconds:.1f} s, RSS growth {rss.growth / 2**20:.1f} MiB")
        assert version.total_size == SIZE
        assert (tmp_path / "out" / "big.bin").stat().st_size == SIZE
    finally:
        shutil.rmtree(tmp_path / "out", ignore_errors=True)
        for blob in stack.home.rglob("*"):
            if blob.is_file() and blob.stat().st_size >= SIZE:
                blob.unlink()
    assert rss.growth < LIMIT, f"resident memory grew by {rss.growth / 2**20:.0f} MiB"
