"""IngestLocal's worker processes: they do the copies, a dead one is replaced (the SDK's retry of
UNAVAILABLE completes the batch), they die with the server even when it is killed, and they stop
with the platform."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import textwrap
import threading
from pathlib import Path
from typing import Any

import grpc
import psutil
import pytest

import modelog.artifacts as art
from modelog_services.artifacts import ingestpool
from modelog_services.artifacts.blobstore import Ingested
from modelog_services.artifacts.ingestpool import IngestPool, read_frame, workers_from_env, write_frame
from tests.integration.test_artifacts_samehost import files, sdk
from tests.integration.test_artifacts_stack import ArtifactStack, read_tree, sha, stack, tree
from tests.waiting import wait_until, wait_until_async

__all__ = ["stack"]


def gone(pid: int) -> bool:
    def ended() -> bool:
        try:
            return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
        except psutil.NoSuchProcess:
            return True

    return wait_until(ended, 10, f"worker {pid} to end")


async def test_same_host_files_are_stored_by_worker_processes(stack: ArtifactStack, tmp_path: Path) -> None:
    data = files()
    src = tree(tmp_path / "src", data)
    await sdk(stack, lambda c: art.log_artifacts(src, name="ds", conn=c))
    pool = stack.ingest_pool()
    pids = pool.pids()
    assert pids
    assert all("modelog_services.artifacts.ingestworker" in psutil.Process(p).cmdline() for p in pids)
    assert {b.digest for b in stack.blobs.blobs()} >= {sha(d) for d in data.values()}
    await sdk(stack, lambda c: art.get("ds", conn=c).download(tmp_path / "out"))
    assert read_tree(tmp_path / "out") == data


async def test_a_killed_worker_is_replaced_and_the_upload_completes(
    stack: ArtifactStack, tmp_path: Path
) -> None:
    first = tree(tmp_path / "first", {"a.bin": os.urandom(1000)})
    await sdk(stack, lambda c: art.log_artifacts(first, name="one", conn=c))
    pool = stack.ingest_pool()
    before = pool.pids()
    for pid in before:
        os.kill(pid, signal.SIGKILL)
    assert all(gone(pid) for pid in before)
    data = {f"f{i}.bin": os.urandom(2000 + i) for i in range(20)}
    src = tree(tmp_path / "src", data)
    v = await sdk(stack, lambda c: art.log_artifacts(src, name="two", conn=c))
    assert v.file_count == 20 and not set(pool.pids()) & set(before)
    await sdk(stack, lambda c: art.get("two", conn=c).download(tmp_path / "out"))
    assert read_tree(tmp_path / "out") == data


async def test_workers_stop_with_the_platform(stack: ArtifactStack, tmp_path: Path) -> None:
    src = tree(tmp_path / "src", {"a.bin": b"a"})
    await sdk(stack, lambda c: art.log_artifacts(src, name="ds", conn=c))
    pids = stack.ingest_pool().pids()
    assert pids
    await stack.platform.close()
    stack.platform.on_close.clear()  # the fixture closes it again
    assert all(await asyncio.gather(*(asyncio.to_thread(gone, p) for p in pids)))


def test_workers_die_with_a_server_that_is_killed(tmp_path: Path) -> None:
    script = textwrap.dedent(
        f"""
        import os, signal, sys
        from pathlib import Path
        from modelog_services.artifacts.ingestpool import IngestPool
        pool = IngestPool(Path({str(tmp_path / "store")!r}), 2)
        Path({str(tmp_path / "f")!r}).write_bytes(b"x")
        pool._call([({str(tmp_path / "f")!r}, None)])
        pool.warm()
        print(" ".join(map(str, pool.pids())), flush=True)
        os.kill(os.getpid(), signal.SIGKILL)
        """
    )
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    pids = [int(p) for p in proc.stdout.split()]
    assert len(pids) == 2 and all(gone(p) for p in pids)


def test_a_worker_answers_a_malformed_batch_with_an_error_and_keeps_going(tmp_path: Path) -> None:
    (tmp_path / "f").write_bytes(b"content")
    worker = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "modelog_services.artifacts.ingestworker",
            str(tmp_path / "store"),
            str(os.getpid()),
        ],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
    )
    assert worker.stdin is not None and worker.stdout is not None
    try:
        write_frame(worker.stdin, {"not": "a list"})
        assert read_frame(worker.stdout) == {"error": "a batch must be a list of [path, digest] pairs"}
        write_frame(worker.stdin, [[str(tmp_path / "f"), None], ["relative/path", None]])
        stored, refused = map(Ingested.from_row, read_frame(worker.stdout))  # type: ignore[arg-type]
        assert stored.digest == sha(b"content") and stored.created and not stored.error
        assert refused.error == "relative/path is not an absolute path"
    finally:
        worker.stdin.close()
        assert worker.wait(10) == 0
        worker.stdout.close()


def test_the_worker_count_comes_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(ingestpool.WORKERS_ENV, raising=False)
    assert workers_from_env() == min(4, os.cpu_count() or 1)
    monkeypatch.setenv(ingestpool.WORKERS_ENV, "0")
    assert workers_from_env() == 0
    for bad in ("two", "-1", "1000"):
        monkeypatch.setenv(ingestpool.WORKERS_ENV, bad)
        with pytest.raises(ValueError, match=ingestpool.WORKERS_ENV):
            workers_from_env()


def test_a_worker_dying_during_a_call_fails_it_as_unavailable_and_is_replaced(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "f").write_bytes(b"content")
    items = [(str(tmp_path / "f"), None)]
    pool = IngestPool(tmp_path / "store", 1)
    try:
        [stored] = pool._call(items)
        [pid] = pool.pids()
        [worker] = pool._idle
        os.kill(pid, signal.SIGKILL)
        assert gone(pid)
        monkeypatch.setattr(worker.proc, "poll", lambda: None)  # as if it died after being taken
        with pytest.raises(ingestpool.WorkerFailed) as info:
            pool._call(items)
        assert info.value.code == grpc.StatusCode.UNAVAILABLE  # which the SDK retries
        assert pool.pids() == []
        [again] = pool._call(items)  # a new worker
        assert again.digest == stored.digest == sha(b"content") and pool.pids() not in ([], [pid])
    finally:
        pool.close()


async def test_calls_waiting_for_a_worker_hold_no_executor_thread(tmp_path: Path) -> None:
    """A burst of uploads larger than the pool queues on the event loop: the server's other
    blocking work (asyncio.to_thread) still runs meanwhile."""
    (tmp_path / "f").write_bytes(b"content")
    pool = IngestPool(tmp_path / "store", 1)
    release, holding = threading.Event(), threading.Event()
    real = pool._call

    def slow(items: Any) -> Any:
        holding.set()
        release.wait(10)
        return real(items)

    pool._call = slow  # type: ignore[method-assign]
    try:
        burst = [asyncio.create_task(pool.ingest_many([(str(tmp_path / "f"), None)])) for _ in range(20)]
        await wait_until_async(holding.is_set, 10, "one call to hold the only worker")  # 19 queue behind
        other = await asyncio.wait_for(asyncio.to_thread(lambda: "done"), 5)
        assert other == "done" and not any(t.done() for t in burst)
        release.set()
        results = await asyncio.gather(*burst)
        assert {r[0].digest for r in results} == {sha(b"content")}
    finally:
        release.set()
        await asyncio.to_thread(pool.close)
