"""Artifacts from Python: log a directory (a dataset, a model) as a new version, download or stream one.

    import modelog.artifacts as art
    v = art.log_artifacts("data/", name="mnist", kind="dataset", run_id=run.id)
    art.get("mnist:latest").download("restored/")
    with art.open("mnist:v3", "train.csv") as fh: ...

Hashing is skipped for files whose size, mtime, ctime and inode match what a local cache (SQLite under
MODELOG_HOME/cache) recorded, so re-adding an unchanged tree costs a directory walk. Only blobs the
server lacks are uploaded (HaveBlobs), on a few parallel streams; a large file nobody hashed yet is
hashed by the server as it arrives (one read instead of two). A server on the client's host copies the
files itself (IngestLocal) and the client copies blobs out of its store. A download never writes
outside its target directory: every manifest path is checked, no symlink in the target tree is
followed, and each file is written beside its final name and renamed over it.

The package: `tree` (walking a local tree, the hash cache), `uploading` and `downloading` (streams),
`samehost` (copies by path when client and server share a host), `catalog` (versions: log, get, list).
"""

from __future__ import annotations

from ._base import CHUNK, STREAM_HASH_MIN, WORKERS, Progress, stub
from .catalog import ArtifactVersion, get, log_artifacts, open, versions
from .downloading import BlobReader, materialize
from .samehost import LocalStore, local_store
from .tree import HashCache, LocalFile, check_paths, hash_tree, manifest_of, scan
from .uploading import upload

__all__ = [
    "CHUNK",
    "STREAM_HASH_MIN",
    "WORKERS",
    "ArtifactVersion",
    "BlobReader",
    "HashCache",
    "LocalFile",
    "LocalStore",
    "Progress",
    "check_paths",
    "get",
    "hash_tree",
    "local_store",
    "log_artifacts",
    "manifest_of",
    "materialize",
    "open",
    "scan",
    "stub",
    "upload",
    "versions",
]
