"""Reading the file system store: a range of one blob, and the listing of every blob with the time it
was last used (what the collector's grace period and the scrubber go by)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

from eventlog.errors import InvalidArgument
from modelog.shared.artifacts.seal import last_used

from .blobapi import BlobInfo


def list_blobs(objects: Path) -> Iterator[BlobInfo]:
    for shard in os.scandir(objects):
        if not shard.is_dir(follow_symlinks=False):
            continue
        for entry in os.scandir(shard.path):
            try:
                st = entry.stat(follow_symlinks=False)
            except FileNotFoundError:  # deleted since the directory was read (a collection)
                continue
            yield BlobInfo(shard.name + entry.name, st.st_size, last_used(st))


class FileRange:
    """A RangeReader over one blob file."""

    def __init__(self, path: Path, offset: int, length: int | None) -> None:
        self.fh = open(path, "rb")  # noqa: SIM115 - closed by close()
        self.size = os.fstat(self.fh.fileno()).st_size
        if offset < 0 or offset > self.size:
            self.fh.close()
            raise InvalidArgument.field("offset", f"{offset} is outside the blob's {self.size} bytes")
        self.fh.seek(offset)
        self.remaining = self.size - offset if not length else min(length, self.size - offset)

    def read(self, n: int) -> bytes:
        data = self.fh.read(min(n, self.remaining))
        self.remaining -= len(data)
        return data

    def close(self) -> None:
        self.fh.close()
