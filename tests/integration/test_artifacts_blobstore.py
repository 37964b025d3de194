"""The file system blob store on its own: no half blob ever under a digest, resume after a crash by
re-hashing, one writer per blob, corrupt chunks and wrong digests refused."""

from __future__ import annotations

import hashlib
import os
import stat
import zlib
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from eventlog import InvalidArgument
from modelog.shared.artifacts import seal
from modelog_services.artifacts import blobstore
from modelog_services.artifacts.blobstore import FileBlobStore, SessionBusy


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def send(session: blobstore.UploadSession, data: bytes, start: int, end: int, step: int = 1 << 16) -> None:
    for i in range(start, end, step):
        part = data[i : min(i + step, end)]
        session.write(i, part, zlib.crc32(part))


def crash(session: blobstore.UploadSession) -> None:
    """What kill -9 leaves: the descriptor closed (and its lock dropped), nothing else done."""
    os.close(session.fd)  # type: ignore[attr-defined]


def test_a_blob_reaches_its_digest_only_complete_verified_and_read_only(tmp_path: Path) -> None:
    store = FileBlobStore(tmp_path)
    data = os.urandom(300_000)
    s = store.open_session(len(data), sha(data))
    send(s, data, 0, 200_000)
    assert store.size(sha(data)) is None and list(store.blobs()) == []
    send(s, data, 200_000, len(data))
    assert s.complete() == (sha(data), True)
    assert store.path(sha(data)).read_bytes() == data
    assert store.path(sha(data)).stat().st_mode & 0o777 == 0o444
    assert store.path(sha(data)).parent.name == sha(data)[:2] and store.path(sha(data)).name == sha(data)[2:]
    assert list(store.sessions()) == []
    assert store.put(data) == (sha(data), False)  # a second copy never replaces the first


def test_a_crashed_upload_resumes_from_its_last_checkpoint_by_rehashing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(blobstore, "CHECKPOINT_BYTES", 100_000)
    data = os.urandom(500_000)
    s = FileBlobStore(tmp_path).open_session(len(data), sha(data))
    send(s, data, 0, 350_000, step=50_000)
    assert s.durable == 300_000
    crash(s)
    again = FileBlobStore(tmp_path).open_session(len(data), sha(data))  # a new process: nothing in memory
    assert again.offset == 300_000  # the last durable offset, bytes after it dropped
    send(again, data, 300_000, len(data))
    assert again.complete() == (sha(data), True)
    assert FileBlobStore(tmp_path).path(sha(data)).read_bytes() == data


def test_a_paused_upload_resumes_exactly_where_it_stopped(tmp_path: Path) -> None:
    store = FileBlobStore(tmp_path)
    data = os.urandom(200_000)
    s = store.open_session(len(data), sha(data))
    send(s, data, 0, 123_456)
    s.pause()
    [info] = store.sessions()
    assert (info.digest, info.offset, info.active) == (sha(data), 123_456, False)
    again = store.open_session(len(data), sha(data))
    assert again.offset == 123_456
    send(again, data, 100_000, len(data))  # overlapping bytes are skipped, not written twice
    assert again.complete() == (sha(data), True) and store.path(sha(data)).read_bytes() == data


def test_one_writer_per_blob(tmp_path: Path) -> None:
    store = FileBlobStore(tmp_path)
    first = store.open_session(10, sha(b"0123456789"))
    with pytest.raises(SessionBusy):
        store.open_session(10, sha(b"0123456789"))
    assert [s.active for s in store.sessions()] == [True]
    assert not store.remove_session(first.key)
    first.pause()
    assert store.remove_session(first.key) and list(store.sessions()) == []


def test_corrupt_chunks_wrong_digests_gaps_and_overruns_are_refused(tmp_path: Path) -> None:
    store = FileBlobStore(tmp_path)
    data = b"x" * 1000
    s = store.open_session(len(data), sha(data))
    with pytest.raises(InvalidArgument, match="corrupt"):
        s.write(0, data[:500], zlib.crc32(data[:500]) ^ 1)
    assert s.offset == 0
    with pytest.raises(InvalidArgument, match="gap"):
        s.write(10, data[10:20], zlib.crc32(data[10:20]))
    with pytest.raises(InvalidArgument, match="past the declared size"):
        s.write(0, data + b"!", zlib.crc32(data + b"!"))
    s.discard()
    wrong = store.open_session(len(data), sha(b"other"))
    wrong.write(0, data, zlib.crc32(data))
    with pytest.raises(InvalidArgument, match="hash to"):
        wrong.complete()
    assert store.size(sha(b"other")) is None and list(store.sessions()) == []


def test_missing_reports_absent_blobs_and_refreshes_present_ones(tmp_path: Path) -> None:
    store = FileBlobStore(tmp_path)
    digest, _ = store.put(b"present")
    os.utime(store.path(digest), ns=(10**9, 10**9))
    assert store.missing([digest, sha(b"absent")]) == [sha(b"absent")]
    st = store.path(digest).stat()
    # Refreshed for the collector (atime), while the mtime its seal covers is kept.
    assert st.st_atime > 1_000_000 and st.st_mtime_ns == 10**9
    assert next(store.blobs()).mtime == st.st_atime
    assert store.delete(digest) and not store.delete(digest)


def is_sealed(store: FileBlobStore, digest: str) -> bool:
    fd = os.open(store.path(digest), os.O_RDONLY)
    try:
        return seal.sealed(fd, store.seal_key, digest, os.fstat(fd))
    finally:
        os.close(fd)


def test_every_way_a_blob_is_stored_seals_it_and_marking_it_used_keeps_the_seal(tmp_path: Path) -> None:
    store = FileBlobStore(tmp_path / "store")
    put, _ = store.put(b"put")
    bulk = [d for d, _ in store.put_many([(os.urandom(100), None) for _ in range(blobstore.SYNCFS_MIN)])]
    session = store.open_session(len(b"session"), None, "s1")
    session.write(0, b"session", zlib.crc32(b"session"))
    streamed, _ = session.complete()
    small, big = tmp_path / "small.bin", tmp_path / "big.bin"
    small.write_bytes(b"small")
    big.write_bytes(os.urandom(blobstore.INGEST_IN_MEMORY + 1))
    ingested = [r.digest for r in store.ingest_many([(str(small), None), (str(big), None)])]
    digests = [put, *bulk, streamed, *ingested]
    assert all(is_sealed(store, d) for d in digests)
    assert store.missing(digests) == [] and all(is_sealed(store, d) for d in digests)
    other = FileBlobStore(tmp_path / "other")  # another secret
    fd = os.open(store.path(put), os.O_RDONLY)
    try:
        st = os.fstat(fd)
        assert not seal.sealed(fd, store.seal_key, streamed, st)  # a seal names its own digest
        assert not seal.sealed(fd, other.seal_key, put, st)
    finally:
        os.close(fd)


def test_a_write_to_a_stored_blob_breaks_its_seal(tmp_path: Path) -> None:
    store = FileBlobStore(tmp_path)
    digest, _ = store.put(b"stored bytes")
    path = store.path(digest)
    path.chmod(0o644)
    with open(path, "r+b") as fh:
        fh.write(b"S")
    assert not is_sealed(store, digest)


def test_listing_skips_a_blob_deleted_while_it_is_listed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = FileBlobStore(tmp_path)
    kept, _ = store.put(b"kept")
    gone, _ = store.put(b"gone")
    real = os.scandir

    def scandir(path: str) -> list[os.DirEntry[str]]:
        entries = list(real(path))
        if any(e.name == gone[2:] for e in entries):
            store.delete(gone)  # a collection, between the directory read and the stat
        return entries

    monkeypatch.setattr(blobstore.os, "scandir", scandir)
    assert [b.digest for b in store.blobs()] == [kept]


def test_new_blobs_are_sealed_while_writable_then_made_read_only(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Linux lets only a process that may write an inode set its user.* attributes (root passes
    regardless, as in this suite): a server that is not root must seal before making a blob 0444."""
    real = os.setxattr

    def as_owner(target: int, name: str, value: bytes) -> None:
        if not os.fstat(target).st_mode & stat.S_IWUSR:
            raise PermissionError(13, "Permission denied")
        real(target, name, value)

    monkeypatch.setattr(os, "setxattr", as_owner)
    monkeypatch.setattr(blobstore, "NEW_BLOB_MODE", 0o600)  # what a server that is not root uses
    store = FileBlobStore(tmp_path / "store")
    put, _ = store.put(b"put")
    session = store.open_session(len(b"session"), None, "s1")
    session.write(0, b"session", zlib.crc32(b"session"))
    streamed, _ = session.complete()
    big = tmp_path / "big.bin"
    big.write_bytes(os.urandom(blobstore.INGEST_IN_MEMORY + 1))
    [ingested] = store.ingest_many([(str(big), None)])
    for digest in (put, streamed, ingested.digest):
        assert is_sealed(store, digest)
        assert stat.S_IMODE(store.path(digest).stat().st_mode) == 0o444


def test_touch_refuses_a_missing_blob(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        seal.touch(tmp_path / "nothing")


def test_concurrent_batches_are_settled_together_and_each_writer_sees_its_blobs_stored(
    tmp_path: Path,
) -> None:
    store = FileBlobStore(tmp_path)
    batches = [[os.urandom(2000) for _ in range(30)] + [b"shared by every batch"] for _ in range(8)]
    with ThreadPoolExecutor(8) as pool:
        results = list(pool.map(lambda batch: store.put_many([(d, None) for d in batch]), batches))
    for batch, result in zip(batches, results, strict=True):
        assert [digest for digest, _ in result] == [sha(d) for d in batch]
        for data in batch:
            assert store.path(sha(data)).read_bytes() == data
    assert [p for p in store.tmp.rglob("*") if not p.is_dir()] == []


def test_a_failed_settle_fails_every_writer_of_its_group(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = FileBlobStore(tmp_path)
    real_rename = os.rename

    def rename(src: object, dst: object) -> None:
        if "sha256" in str(dst):
            raise OSError(28, "No space left on device")
        real_rename(src, dst)  # type: ignore[arg-type]

    monkeypatch.setattr(os, "rename", rename)
    with ThreadPoolExecutor(4) as pool:
        futures = [pool.submit(store.put_many, [(os.urandom(100), None)]) for _ in range(4)]
    for future in futures:
        with pytest.raises(OSError, match="No space left"):
            future.result()
    assert list(store.blobs()) == []


@pytest.mark.parametrize("files", [blobstore.SYNCFS_MIN - 1, blobstore.SYNCFS_MIN])
def test_a_batch_reaches_its_names_only_after_its_bytes_are_flushed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, files: int
) -> None:
    """Small batches fsync each file before its rename; large ones flush the file system once
    (syncfs) before any rename and once after. Either way no name is visible before a flush that
    covers its bytes, and the renames themselves are flushed."""
    store = FileBlobStore(tmp_path)
    flushes: list[tuple[str, int]] = []  # (how, blobs under their names at that moment)
    real_syncfs, real_fsync = blobstore.syncfs, os.fsync

    def syncfs(fd: int) -> bool:
        flushes.append(("syncfs", len(list(store.blobs()))))
        return real_syncfs(fd)

    def fsync(fd: int) -> None:
        flushes.append(("fsync", len(list(store.blobs()))))
        real_fsync(fd)

    monkeypatch.setattr(blobstore, "syncfs", syncfs)
    monkeypatch.setattr(os, "fsync", fsync)
    batch = [os.urandom(500) for _ in range(files)]
    assert [d for d, _ in store.put_many([(d, None) for d in batch])] == [sha(d) for d in batch]
    assert all(store.path(sha(d)).read_bytes() == d for d in batch)
    if files >= blobstore.SYNCFS_MIN:
        # (fsyncs in between are new shard directories being made durable as they are created)
        assert flushes[0] == ("syncfs", 0) and flushes[-1] == ("syncfs", files)
        assert [f for f in flushes if f[0] == "syncfs"] == [("syncfs", 0), ("syncfs", files)]
    else:
        assert [how for how, _ in flushes].count("fsync") >= files and all(
            how == "fsync" for how, _ in flushes
        )
        assert all(seen == 0 for _, seen in flushes[:files])  # every file's fsync precedes every rename
        assert flushes[-1][1] == files  # the directories are fsynced after the renames


def test_without_syncfs_a_large_batch_falls_back_to_fsyncs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = FileBlobStore(tmp_path)
    monkeypatch.setattr(blobstore, "syncfs", lambda fd: False)  # not Linux
    batch = [os.urandom(500) for _ in range(blobstore.SYNCFS_MIN)]
    store.put_many([(d, None) for d in batch])
    assert all(store.path(sha(d)).read_bytes() == d for d in batch)
    assert [p for p in store.tmp.rglob("*") if not p.is_dir()] == []
