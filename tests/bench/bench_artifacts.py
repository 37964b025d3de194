"""Artifacts: hashing+upload throughput against this CPU's single-core SHA-256, and the DVC workflow
side by side with DVC on the same data and disk.

Data: a tree of 10,000 random files (1 GiB) and BENCH_REPEAT (3) random 1 GiB files, each added and
pulled in turn (BENCH_SCALE scales the sizes).
Modelog: add+push (`log_artifacts`), re-add unchanged, re-add after changing 1% of the files, pull into
an empty directory. The client shares the server's host, as DVC's local remote does, so the default
(same-host) path copies files instead of streaming them; the streamed path a remote client takes is
measured too (`*_streamed_s`, on fresh data). The server runs in its own process, PostgreSQL on the
same box (one 2-core machine carries client, server and database). DVC: `dvc add` + `dvc push` to a
local remote, re-add, 1% change, `dvc pull` after setting aside the workspace copy and the cache; DVC lives
in its own virtualenv, which this bench creates (BENCH_DVC_VENV, default /tmp/modelog-bench-dvc) and
never in Modelog's. Both tools pull after their workspace copy is set aside (discard(): see there).

Every timed step, of either tool, starts after os.sync() and after prime() (see there): the same
conditions for both, so that a step measures the tool and not the hypervisor's memory.

    python -m tests.bench.bench_artifacts        # writes tests/bench/results/artifacts.json
"""

from __future__ import annotations

import asyncio
import hashlib
import mmap
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psutil

import modelog.artifacts as art
from modelog._client import Connection
from tests.bench.common import postgres, write_result

SCALE = float(os.environ.get("BENCH_SCALE", "1"))
TREE_FILES = max(100, int(10_000 * SCALE))
TREE_BYTES = int((1 << 30) * SCALE)
BIG_BYTES = int((1 << 30) * SCALE)
DVC_VENV = Path(os.environ.get("BENCH_DVC_VENV", "/tmp/modelog-bench-dvc"))
REPEAT = max(1, int(os.environ.get("BENCH_REPEAT", "3")))
"""Single-file steps run this many times, each on new bytes; the median is reported (and the best).
On the bench VM the first touch of memory the host has reclaimed costs host page faults, so one
run of the same code took 0.8 s or 3 s depending on the machine's memory state."""


class Quiet:
    def start(self, label: str, total: int) -> None: ...

    def advance(self, n: int) -> None: ...

    def finish(self) -> None: ...


def summary(out: dict[str, Any], key: str, runs: list[float]) -> None:
    out[key] = round(statistics.median(runs), 3)
    out[key.replace("_s", "_best_s")] = min(runs)
    out[key.replace("_s", "_runs_s")] = runs


PRIME = int(float(os.environ.get("BENCH_PRIME_GIB", "3")) * SCALE * (1 << 30))
"""Bytes of memory touched and freed before each timed step (BENCH_PRIME_GIB=0: none)."""


def prime() -> None:
    """Touch PRIME bytes of anonymous memory and free them, so a step's new page cache comes from
    pages the guest already holds.

    The bench VM is a Firecracker guest with virtio_balloon free-page reporting: memory left free
    for a few seconds goes back to the host, and touching it again costs about 2 s of system time
    per GiB (a 1 GiB `dd` took 1.5-2.6 s on such pages and 0.21 s right after this). Unprimed, a
    step's time depended on whether the step before it happened to free memory (DVC's pull
    follows deleting 2 GiB, so it recycled warm pages; Modelog's did not) and the same code
    measured 0.8 s or 3 s. On a machine without a balloon, this costs nothing and changes nothing.
    """
    if PRIME <= 0:
        return
    flags = mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS | getattr(mmap, "MAP_POPULATE", 0)
    with mmap.mmap(-1, PRIME, flags=flags) as mem:
        if not getattr(mmap, "MAP_POPULATE", 0):
            for off in range(0, PRIME, mmap.PAGESIZE):
                mem[off] = 1


TRASH: list[Path] = []
"""Where discard() puts data: one directory, set by main() (the first entry)."""


def discard(path: Path) -> None:
    """Set data aside for deletion at the end (the temporary directory's cleanup), not now.

    The bench disk is ext4 without a journal, where creating a file after many deletions is slow:
    the inode allocator skips every inode deleted within the last minute (five, if its table block
    is still dirty), and checking each costs a buffer lookup (ext4 recently_deleted()). Creating
    10,000 files took 1.8-2.8 s of system time within a minute of deleting 10,000, and 0.3-0.4 s
    otherwise. Deleting a step's data just before the next step (as DVC's pull needs its workspace
    copy and cache gone) made that step pay for it, whichever tool ran it.
    """
    trash = TRASH[0] / f"{len(TRASH)}-{path.name}"
    path.rename(trash)
    TRASH.append(trash)


def timed(fn: Callable[[], Any]) -> float:
    # Every step, of either tool, starts with no dirty pages of earlier steps (or of making the data)
    # still waiting for the disk: otherwise a step pays for its predecessor's writeback, and one that
    # writes (or fsyncs) is throttled by gigabytes it did not write.
    os.sync()
    prime()
    t0 = time.perf_counter()
    fn()
    return round(time.perf_counter() - t0, 3)


def sha256_ceiling(path: Path) -> float:
    """Bytes/s of hashlib SHA-256 on one core, reading the (cached) file in 1 MiB blocks; best of 3."""
    best = 0.0
    for _ in range(3):
        h = hashlib.sha256()
        t0 = time.perf_counter()
        with open(path, "rb", buffering=0) as fh:
            while data := fh.read(1 << 20):
                h.update(data)
        best = max(best, path.stat().st_size / (time.perf_counter() - t0))
    return best


def make_tree(root: Path, files: int, total: int) -> None:
    size = total // files
    for i in range(files):
        path = root / f"shard-{i % 100:02d}" / f"part-{i:05d}.bin"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(os.urandom(size))


def make_file(path: Path, total: int) -> None:
    with open(path, "wb") as fh:
        for _ in range(total >> 20):
            fh.write(os.urandom(1 << 20))


def age(root: Path) -> None:
    """Data usually exists a while before it is added (and the hash cache distrusts files modified
    within a second of hashing)."""
    then = time.time() - 60
    for p in [root, *root.rglob("*")] if root.is_dir() else [root]:
        os.utime(p, (then, then), follow_symlinks=False)


def change_one_percent(root: Path) -> int:
    files = sorted(root.rglob("*.bin"))
    changed = files[:: max(1, len(files) // max(1, len(files) // 100))][: max(1, len(files) // 100)]
    for p in changed:
        p.write_bytes(os.urandom(p.stat().st_size))
    then = time.time() - 30
    for p in changed:
        os.utime(p, (then, then))
    return len(changed)


# ---------------------------------------------------------------- the server, in its own process


async def _serve(dsn: str, home: str, port_file: str) -> None:
    from modelog_platform.app import Platform, start_server
    from modelog_platform.settings import Settings

    platform = await Platform.open(Settings(home=Path(home)), dsn, services=["artifacts"])
    token = (await platform.ensure_admin_token()).read_text().strip()
    server = await start_server(platform, "127.0.0.1:0")
    await asyncio.to_thread(Path(port_file).write_text, f"{server.port} {token}")
    await asyncio.Event().wait()


def start_server(dsn: str, work: Path) -> tuple[subprocess.Popen[bytes], str, str]:
    port_file = work / "server.port"
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "tests.bench.bench_artifacts",
            "serve",
            dsn,
            str(work / "home"),
            str(port_file),
        ]
    )
    deadline = time.time() + 60
    while not (port_file.exists() and port_file.read_text()):
        if proc.poll() is not None or time.time() > deadline:
            raise RuntimeError("the bench server did not start")
        time.sleep(0.1)
    port, token = port_file.read_text().split()
    return proc, f"127.0.0.1:{port}", token


# ---------------------------------------------------------------- Modelog


def bench_modelog(
    conn: Connection, work: Path, tree: Path, bigs: list[Path], server: psutil.Process
) -> dict[str, Any]:
    out: dict[str, Any] = {}
    cache = art.HashCache(work / "client-cache.sqlite")

    def add(path: Path, name: str) -> art.ArtifactVersion:
        return art.log_artifacts(path, name=name, conn=conn, progress=Quiet(), cache=cache)

    out["tree_add_push_s"] = timed(lambda: add(tree, "tree"))
    out["tree_readd_unchanged_s"] = timed(lambda: add(tree, "tree"))
    out["tree_changed_files"] = change_one_percent(tree)
    out["tree_readd_1pct_s"] = timed(lambda: add(tree, "tree"))
    discard(tree)  # as DVC's pull does, into a workspace without its copy
    target = work / "pulled-tree"
    out["tree_pull_s"] = timed(lambda: art.get("tree", conn=conn).download(target, progress=Quiet()))
    discard(target)  # nothing later reads it

    rss0 = server.memory_info().rss
    client0 = psutil.Process().memory_info().rss
    adds, pulls = [], []
    for i, big in enumerate(bigs):  # uncached: hashed while it uploads
        adds.append(timed(lambda: add(big, f"big{i}")))  # noqa: B023 - called at once
        discard(big)
        target = work / f"pulled-big{i}"
        pulls.append(timed(lambda: art.get(f"big{i}", conn=conn).download(target, progress=Quiet())))  # noqa: B023
        discard(target)
    summary(out, "big_add_push_s", adds)
    summary(out, "big_pull_s", pulls)
    out["server_rss_growth_mib"] = round((server.memory_info().rss - rss0) / 2**20, 1)
    out["client_rss_growth_mib"] = round((psutil.Process().memory_info().rss - client0) / 2**20, 1)
    # A remote client's path (gRPC streams), on fresh bytes so that nothing is deduplicated.
    stree, sbig = work / "stree", work / "sbig.bin"
    make_tree(stree, TREE_FILES, TREE_BYTES)
    make_file(sbig, BIG_BYTES)
    age(stree)
    age(sbig)

    def streamed(path: Path, name: str) -> art.ArtifactVersion:
        return art.log_artifacts(path, name=name, conn=conn, progress=Quiet(), cache=cache, local=False)

    out["tree_add_push_streamed_s"] = timed(lambda: streamed(stree, "stree"))
    discard(stree)
    out["tree_pull_streamed_s"] = timed(
        lambda: art.get("stree", conn=conn).download(work / "pulled-stree", progress=Quiet(), local=False)
    )
    discard(work / "pulled-stree")
    out["big_add_push_streamed_s"] = timed(lambda: streamed(sbig, "sbig"))
    discard(sbig)
    out["big_pull_streamed_s"] = timed(
        lambda: art.get("sbig", conn=conn).download(work / "pulled-sbig", progress=Quiet(), local=False)
    )
    discard(work / "pulled-sbig")
    big = bigs[0]  # new bytes, so the two-pass path (hash, HaveBlobs, upload) is measured too
    make_file(big, BIG_BYTES)
    age(big)
    os.sync()  # as timed() does
    t0 = time.perf_counter()
    files = art.scan(big)
    art.hash_tree(files, cache, Quiet(), stream_min=1 << 62)
    hashed = time.perf_counter() - t0
    art.upload(art.stub(conn), files, Quiet())
    out["big_two_pass_hash_s"] = round(hashed, 3)
    out["big_two_pass_total_s"] = round(time.perf_counter() - t0, 3)
    cache.close()
    return out


# ---------------------------------------------------------------- DVC


def dvc_install() -> tuple[Path | None, str]:
    dvc = DVC_VENV / "bin" / "dvc"
    if not dvc.exists():
        try:
            subprocess.run([sys.executable, "-m", "venv", str(DVC_VENV)], check=True, capture_output=True)
            subprocess.run(
                [str(DVC_VENV / "bin" / "pip"), "install", "--quiet", "dvc"],
                check=True,
                capture_output=True,
                timeout=1800,
            )
        except (subprocess.SubprocessError, OSError) as exc:
            detail = getattr(exc, "stderr", b"") or b""
            return None, f"pip install dvc failed: {exc} {detail.decode(errors='replace')[-500:]}"
    version = subprocess.run([str(dvc), "--version"], capture_output=True, text=True).stdout.strip()
    return dvc, version


def bench_dvc(dvc: Path, work: Path, tree_src: Path, big_srcs: list[Path]) -> dict[str, Any]:
    ws = work / "dvc-ws"
    ws.mkdir()
    env = {**os.environ, "DVC_NO_ANALYTICS": "1"}

    def run(*args: str) -> None:
        done = subprocess.run([str(dvc), *args], cwd=ws, capture_output=True, env=env, timeout=3600)
        if done.returncode:
            tail = (done.stderr or done.stdout).decode(errors="replace")[-2000:]
            raise RuntimeError(f"dvc {' '.join(args)} exited with {done.returncode}:\n{tail}")

    run("init", "--no-scm")
    run("remote", "add", "-d", "local", str(work / "dvc-remote"))
    shutil.copytree(tree_src, ws / "tree")
    age(ws / "tree")
    out: dict[str, Any] = {}
    out["tree_add_s"] = timed(lambda: run("add", "tree"))
    out["tree_push_s"] = timed(lambda: run("push"))
    out["tree_readd_unchanged_s"] = timed(lambda: run("add", "tree"))
    change_one_percent(ws / "tree")
    out["tree_readd_1pct_s"] = timed(lambda: (run("add", "tree"), run("push")))
    discard(ws / "tree")
    discard(ws / ".dvc" / "cache")
    out["tree_pull_s"] = timed(lambda: run("pull", "tree.dvc"))
    add_push, pulls = [], []
    for i, src in enumerate(big_srcs):
        name = f"big{i}.bin"
        shutil.copyfile(src, ws / name)
        age(ws / name)
        added = timed(lambda: run("add", name))  # noqa: B023 - called at once
        add_push.append(round(added + timed(lambda: run("push", f"{name}.dvc")), 3))  # noqa: B023
        discard(ws / name)
        discard(ws / ".dvc" / "cache")
        pulls.append(timed(lambda: run("pull", f"{name}.dvc")))  # noqa: B023
        discard(ws / name)
        discard(ws / ".dvc" / "cache")
    discard(ws / "tree")
    out["tree_add_push_s"] = round(out["tree_add_s"] + out["tree_push_s"], 3)
    summary(out, "big_add_push_s", add_push)
    summary(out, "big_pull_s", pulls)
    return out


# ---------------------------------------------------------------- main


def main() -> None:
    load_start = round(os.getloadavg()[0], 2)
    with postgres() as dsn, tempfile.TemporaryDirectory(prefix="modelog-bench-art-", dir="/tmp") as tmp:
        work = Path(tmp)
        TRASH[:] = [work / "trash"]
        TRASH[0].mkdir()
        tree, bigs = work / "tree", [work / f"big-{i}.bin" for i in range(REPEAT)]
        make_tree(tree, TREE_FILES, TREE_BYTES)
        for big in bigs:
            make_file(big, BIG_BYTES)
            age(big)
        age(tree)
        tree_pristine = work / "tree-pristine"
        shutil.copytree(tree, tree_pristine)  # DVC gets the same data
        bigs_pristine = [work / f"big-pristine-{i}.bin" for i in range(REPEAT)]
        for big, pristine in zip(bigs, bigs_pristine, strict=True):
            shutil.copyfile(big, pristine)
        ceiling = sha256_ceiling(bigs[0])
        proc, url, token = start_server(dsn, work)
        try:
            with Connection(url, token) as conn:
                modelog = bench_modelog(conn, work, tree, bigs, psutil.Process(proc.pid))
        finally:
            proc.kill()
            proc.wait()
        dvc, dvc_version = dvc_install()
        dvc_result = bench_dvc(dvc, work, tree_pristine, bigs_pristine) if dvc else {"skipped": dvc_version}
    upload_bps = BIG_BYTES / modelog["big_add_push_s"]
    streamed_bps = BIG_BYTES / modelog["big_add_push_streamed_s"]
    result: dict[str, Any] = {
        "load_average_1m": {"start": load_start, "end": round(os.getloadavg()[0], 2)},
        "data": {"tree_files": TREE_FILES, "tree_bytes": TREE_BYTES, "big_bytes": BIG_BYTES},
        "sha256_single_core_mib_s": round(ceiling / 2**20),
        "modelog": modelog,
        "modelog_big_hash_upload_mib_s": round(upload_bps / 2**20),
        "modelog_big_hash_upload_vs_sha256": round(upload_bps / ceiling, 2),
        "modelog_big_hash_upload_best_vs_sha256": round(
            BIG_BYTES / modelog["big_add_push_best_s"] / ceiling, 2
        ),
        "modelog_big_hash_upload_streamed_mib_s": round(streamed_bps / 2**20),
        "modelog_big_hash_upload_streamed_vs_sha256": round(streamed_bps / ceiling, 2),
        "modelog_two_pass_mib_s": round(BIG_BYTES / modelog["big_two_pass_total_s"] / 2**20),
        "dvc_version": dvc_version,
        "dvc": dvc_result,
    }
    if dvc:
        result["speedup_vs_dvc"] = {
            key: round(dvc_result[key] / max(modelog[key], 1e-6), 2)
            for key in (
                "tree_add_push_s",
                "tree_readd_unchanged_s",
                "tree_readd_1pct_s",
                "tree_pull_s",
                "big_add_push_s",
                "big_pull_s",
            )
        }
    path = write_result("artifacts", result)
    print(f"wrote {path}")
    for key, value in result.items():
        print(f"{key}: {value}")


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "serve":
        asyncio.run(_serve(*sys.argv[2:5]))
    else:
        main()
