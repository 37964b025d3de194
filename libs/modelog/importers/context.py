"""What every part of an import shares: the stubs, the state table, the running summary, and how a
command is marked as imported history (origin headers and a key derived from the source id)."""

from __future__ import annotations

import contextlib
import hashlib
import json
import shutil
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any
from urllib.parse import quote

from modelog._client import Connection, headers
from modelog._gen.artifacts.v1 import artifacts_pb2 as apb
from modelog._gen.artifacts.v1 import artifacts_pb2_grpc
from modelog._gen.registry.v1 import registry_pb2_grpc
from modelog._gen.tracking.v1 import tracking_pb2_grpc
from modelog.errors import FailedPrecondition, ModelogError, NotFound
from modelog.importers.source import Run, Source
from modelog.importers.state import Counts, Reporter, State, Summary


class ImportContext:
    def __init__(
        self,
        source: Source,
        conn: Connection,
        state: State,
        *,
        experiments: Sequence[str] = (),
        models: Sequence[str] = (),
        workers: int = 4,
        dry_run: bool = False,
        verify_sample: int = 5,
        report: Reporter | None = None,
    ) -> None:
        self.source, self.conn, self.state = source, conn, state
        self.exp_patterns, self.model_patterns = tuple(experiments), tuple(models)
        self.workers = max(1, workers)
        self.dry_run = dry_run
        self.verify_sample = verify_sample
        self.report = report or (lambda s, p: None)
        self.tracking = tracking_pb2_grpc.TrackingStub(conn.channel)
        self.registry = registry_pb2_grpc.RegistryStub(conn.channel)
        self.artifacts = artifacts_pb2_grpc.ArtifactsStub(conn.channel)
        self.summary = Summary(source.label, dry_run)
        self._lock = threading.Lock()
        self._imported_runs: list[tuple[Run, str]] = []
        self._files: list[tuple[Run, str, str]] = []

    # ------------------------------------------------------------------ helpers

    def _md(
        self, kind: str, source_id: str, step: str, at_ms: int | None, by: str = ""
    ) -> list[tuple[str, str]]:
        at = at_ms if at_ms is not None and at_ms >= 0 else int(time.time() * 1000)
        key = hashlib.sha256(f"{self.source.label}\0{kind}\0{source_id}\0{step}".encode()).hexdigest()[:40]
        return [
            ("x-modelog-origin", quote(self.source.label, safe=":/")),
            ("x-modelog-origin-id", quote(f"{kind}/{source_id}", safe="/")),
            ("x-modelog-origin-time", str(at)),
            ("x-modelog-origin-by", quote(by[:200], safe="@")),
            ("idempotency-key", f"imp-{key}"),
        ]

    def _timed(self, fn: Callable[[], Any]) -> Any:
        start = time.monotonic()
        try:
            return fn()
        finally:
            with self._lock:
                self.summary.source_seconds += time.monotonic() - start

    def _add(self, counts: Counts, **kw: int) -> None:
        with self._lock:
            for k, v in kw.items():
                setattr(counts, k, getattr(counts, k) + v)

    def _fail(self, what: str, exc: BaseException) -> None:
        msg = exc.message if isinstance(exc, ModelogError) else str(exc)
        with self._lock:
            self.summary.failures.append(f"{what}: {msg}")

    def _quiet(self, fn: Callable[[], Any]) -> None:
        with contextlib.suppress(FailedPrecondition):  # already so (deleted, finished): the fact is there
            fn()

    def _download(self, files: Iterator[Any], opener: Callable[[str], Any], root: Path) -> tuple[int, int]:
        count = size = 0
        for f in files:
            target = root / f.path
            if not target.resolve().is_relative_to(root.resolve()):
                raise ValueError(f"the source names a file outside its folder: {f.path!r}")
            target.parent.mkdir(parents=True, exist_ok=True)

            def fetch(f: Any = f, target: Path = target) -> None:
                with opener(f.path) as src, open(target, "wb") as out:
                    shutil.copyfileobj(src, out, 1 << 20)

            self._timed(fetch)
            count += 1
            size += target.stat().st_size
        return count, size

    def _commit(
        self, root: Path, name: str, kind: str, run_id: str, tags: dict[str, str], md: list[tuple[str, str]]
    ) -> apb.ArtifactVersion:
        from modelog.artifacts.catalog import log_artifacts

        with headers(md[:-1]):  # no idempotency key: committing the same files again adds no version
            v = log_artifacts(
                root, name=name, kind=kind, run_id=run_id, tags=tags, conn=self.conn, progress=_Silent()
            )
        return apb.ArtifactVersion(name=v.name, version=v.version)

    def _latest(self, name: str) -> int:
        try:
            return int(
                self.artifacts.GetVersion(
                    apb.GetVersionRequest(ref=apb.VersionRef(name=name))
                ).version.version
            )
        except NotFound:
            return 0


class _Silent:
    def start(self, label: str, total: int) -> None:
        pass

    def advance(self, n: int) -> None:
        pass

    def finish(self) -> None:
        pass


def digest_of(d: dict[str, str]) -> str:
    return hashlib.sha256(json.dumps(d, sort_keys=True).encode()).hexdigest()[:16]
