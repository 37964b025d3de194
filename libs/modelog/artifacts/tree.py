"""The local side of an upload: walking a tree (symlinks that stay inside it) and the hash cache."""

from __future__ import annotations

import builtins
import hashlib
import os
import sqlite3
import stat
import threading
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from modelog.errors import InvalidArgument
from modelog.shared.artifacts.manifest import Entry, Manifest, normal_mode
from modelog.shared.settings import Settings

from ._base import CHUNK, RACY_NS, WORKERS, Progress


@dataclass
class LocalFile:
    path: str
    """Relative, '/'-separated: the manifest path."""
    source: str
    size: int
    mode: int
    key: tuple[int, int, int]
    """(mtime_ns, ctime_ns, inode): if any changes, the cached digest is not trusted."""
    digest: str | None = None
    real: str = ""
    """The path with symlinks resolved (the hash cache's key)."""

    def real_path(self) -> str:
        return self.real or os.path.realpath(self.source)


class HashCache:
    """Digests of local files by real path, valid while (size, mtime, ctime, inode) are unchanged."""

    def __init__(self, path: Path | None = None) -> None:
        path = path or Settings().home / "cache" / "hashes.sqlite"
        path.parent.mkdir(parents=True, exist_ok=True)
        self.db = sqlite3.connect(path, timeout=30, check_same_thread=False)
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute(
            "CREATE TABLE IF NOT EXISTS files (path TEXT PRIMARY KEY, size INTEGER, mtime_ns INTEGER, "
            "ctime_ns INTEGER, ino INTEGER, digest TEXT, verified_ns INTEGER)"
        )
        self.lock = threading.Lock()

    def lookup(self, files: Sequence[LocalFile]) -> None:
        """Fill in the digests the cache can vouch for."""
        if not files:
            return
        reals = [f.real_path() for f in files]
        lo, hi = min(reals), max(reals)
        with self.lock:
            rows = self.db.execute(
                "SELECT path, size, mtime_ns, ctime_ns, ino, digest, verified_ns FROM files "
                "WHERE path BETWEEN ? AND ?",
                (lo, hi),
            ).fetchall()
        known = {r[0]: r[1:] for r in rows}
        for f, real in zip(files, reals, strict=True):
            hit = known.get(real)
            if hit and (hit[0], *hit[1:4]) == (f.size, *f.key) and f.key[0] < hit[5] - RACY_NS:
                f.digest = hit[4]

    def store(self, files: Sequence[LocalFile]) -> None:
        now = time.time_ns()
        rows = [(f.real_path(), f.size, *f.key, f.digest, now) for f in files if f.digest is not None]
        with self.lock, self.db:
            self.db.executemany("INSERT OR REPLACE INTO files VALUES (?, ?, ?, ?, ?, ?, ?)", rows)

    def close(self) -> None:
        self.db.close()


def _refuse(path: str, why: str) -> InvalidArgument:
    return InvalidArgument(f"path: {path!r} {why}", violations=[("path", f"{path!r} {why}")])


def scan(root: Path) -> list[LocalFile]:
    """Every file under `root` (or `root` itself). Symlinks are followed while they stay inside the
    tree; one that leaves it, dangles or loops is refused, as is anything but files and directories."""
    top = os.path.realpath(root)
    st = os.stat(top)
    if stat.S_ISREG(st.st_mode):
        return [_local(root.name, str(root), st, top)]
    out: list[LocalFile] = []
    inside = top.rstrip(os.sep) + os.sep
    # (manifest path prefix, directory as reached, its real path, the directories above it)
    stack: list[tuple[str, str, str, tuple[tuple[int, int], ...]]] = [
        ("", str(root), top, ((st.st_dev, st.st_ino),))
    ]
    while stack:
        rel, directory, real_dir, ancestors = stack.pop()
        with os.scandir(directory) as it:
            entries = sorted(it, key=lambda e: e.name)
        for entry in entries:
            path = f"{rel}{entry.name}"
            real = os.path.join(real_dir, entry.name)
            if entry.is_symlink():
                real = os.path.realpath(entry.path)
                if real != top and not real.startswith(inside):
                    raise _refuse(path, f"is a symlink to {real}, outside the tree being added")
            try:
                est = entry.stat()
            except FileNotFoundError:
                raise _refuse(path, "is a symlink to nothing") from None
            if stat.S_ISDIR(est.st_mode):
                ident = (est.st_dev, est.st_ino)
                if ident in ancestors:
                    raise _refuse(path, "is a symlink loop (it leads to one of its own parent directories)")
                stack.append((path + "/", entry.path, real, (*ancestors, ident)))
            elif stat.S_ISREG(est.st_mode):
                out.append(_local(path, entry.path, est, real))
            else:
                raise _refuse(path, "is not a regular file or directory")
    out.sort(key=lambda f: f.path)
    return out


def _local(path: str, source: str, st: os.stat_result, real: str = "") -> LocalFile:
    key = (st.st_mtime_ns, st.st_ctime_ns, st.st_ino)
    return LocalFile(path, source, st.st_size, normal_mode(st.st_mode), key, real=real)


def _hash_file(f: LocalFile, progress: Progress) -> None:
    h = hashlib.sha256()
    with builtins.open(f.source, "rb", buffering=0) as fh:
        while data := fh.read(CHUNK):
            h.update(data)
            progress.advance(len(data))
    f.digest = h.hexdigest()


def hash_tree(files: Sequence[LocalFile], cache: HashCache, progress: Progress, *, stream_min: int) -> None:
    """Digests for every file below `stream_min` bytes (larger uncached ones are hashed on upload)."""
    cache.lookup(files)
    todo = [f for f in files if f.digest is None and f.size < stream_min]
    if not todo:
        return
    progress.start("hashing", sum(f.size for f in todo))
    with ThreadPoolExecutor(min(WORKERS, os.cpu_count() or 1)) as pool:
        list(pool.map(lambda f: _hash_file(f, progress), todo))
    progress.finish()
    cache.store(todo)


def manifest_of(files: Sequence[LocalFile], *, checked: bool = False) -> Manifest:
    """The files' manifest; `checked` when check_paths() already passed for these paths."""
    entries = [Entry(f.path, f.digest or "", f.size, f.mode) for f in files]
    if checked:
        return Manifest(tuple(sorted(entries, key=lambda e: e.path)))
    return Manifest.build(entries, field_name="path")


def check_paths(files: Sequence[LocalFile]) -> None:
    """Every path rule of a manifest, before any hashing or uploading."""
    Manifest.build([Entry(f.path, "0" * 64, f.size, f.mode) for f in files], field_name="path")
