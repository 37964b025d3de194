"""Source records into Modelog commands, each carrying where, when and by whom it really happened.

- **Two clocks.** Every command is sent with `x-modelog-origin*` headers (the source's label, the
  thing's id there, its original time and person), which the server records in the event metadata and
  only accepts from an admin. The log's recorded-at stays the real append time.
- **Nothing twice.** Every command has an idempotency key derived from (source, kind, source id,
  step), so a command resent after a crash or by a second import is stored once. Metric points resume
  from what Modelog holds for the run (its point count per key: the truth, not a local note), in chunks
  keyed by their offset. A local state table (`MODELOG_HOME/imports/`) maps source ids to Modelog ids
  and remembers runs that were complete, so a later import skips them and brings only what is new.
- **Stages.** MLflow keeps only a version's current stage: it becomes one transition at the version's
  last update, made under a policy that moves at once (set for the import, then put back; both visible
  in the audit trail as the importer's own acts).
"""

from __future__ import annotations

import contextlib
import fnmatch
import hashlib
import json
import random
import shutil
import sqlite3
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any
from urllib.parse import quote

from modelog._client import Connection, headers
from modelog._gen.artifacts.v1 import artifacts_pb2 as apb
from modelog._gen.artifacts.v1 import artifacts_pb2_grpc
from modelog._gen.registry.v1 import registry_pb2 as rpb
from modelog._gen.registry.v1 import registry_pb2_grpc
from modelog._gen.tracking.v1 import tracking_pb2 as tpb
from modelog._gen.tracking.v1 import tracking_pb2_grpc
from modelog.errors import AlreadyExists, FailedPrecondition, ModelogError, NotFound
from modelog.importers.source import Experiment, Model, Run, Source, SourceError, Version

CHUNK = 50_000
"""Metric points per LogMetricsBatch (the server takes up to 100k)."""
STATUS = {
    "RUNNING": tpb.RUN_STATUS_RUNNING,
    "SCHEDULED": tpb.RUN_STATUS_RUNNING,
    "FINISHED": tpb.RUN_STATUS_FINISHED,
    "FAILED": tpb.RUN_STATUS_FAILED,
    "KILLED": tpb.RUN_STATUS_KILLED,
}
STAGES = {"staging": rpb.STAGE_STAGING, "production": rpb.STAGE_PRODUCTION, "archived": rpb.STAGE_ARCHIVED}
SOURCE_TAG = "modelog.mlflow.source"  # as the MLflow gateway tags a version's source (registry.py)
IMPORTED_SOURCE_TAG = "modelog.import.source"
_SCHEMA = """
CREATE TABLE IF NOT EXISTS ids (kind TEXT, source_id TEXT, modelog_id TEXT, PRIMARY KEY (kind, source_id));
CREATE TABLE IF NOT EXISTS runs (source_id TEXT PRIMARY KEY, done INTEGER NOT NULL, tags TEXT NOT NULL);
"""


class State:
    """The table a later import reads: source id -> Modelog id, and runs already complete."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        self._db.executescript("PRAGMA journal_mode=WAL;" + _SCHEMA)
        self._lock = threading.Lock()

    def get(self, kind: str, source_id: str) -> str | None:
        with self._lock:
            row = self._db.execute(
                "SELECT modelog_id FROM ids WHERE kind = ? AND source_id = ?", (kind, source_id)
            ).fetchone()
        return row[0] if row else None

    def put(self, kind: str, source_id: str, modelog_id: str) -> None:
        with self._lock:
            self._db.execute("INSERT OR REPLACE INTO ids VALUES (?, ?, ?)", (kind, source_id, modelog_id))

    def run_done(self, source_id: str) -> dict[str, str] | None:
        """The tags a complete run had when it was imported, or None when it must be (re)visited."""
        with self._lock:
            row = self._db.execute("SELECT done, tags FROM runs WHERE source_id = ?", (source_id,)).fetchone()
        return json.loads(row[1]) if row and row[0] else None

    def mark_run(self, source_id: str, done: bool, tags: dict[str, str]) -> None:
        with self._lock:
            self._db.execute(
                "INSERT OR REPLACE INTO runs VALUES (?, ?, ?)", (source_id, int(done), json.dumps(tags))
            )

    def count(self, kind: str) -> int:
        with self._lock:
            return int(self._db.execute("SELECT count(*) FROM ids WHERE kind = ?", (kind,)).fetchone()[0])

    def close(self) -> None:
        self._db.close()


def state_path(home: Path, label: str, target: str) -> Path:
    """One state table per (source, Modelog server) pair."""
    digest = hashlib.sha256(f"{label}\0{target}".encode()).hexdigest()[:16]
    return home / "imports" / f"{digest}.sqlite"


@dataclass
class Counts:
    experiments: int = 0
    runs: int = 0
    points: int = 0
    files: int = 0
    bytes: int = 0
    models: int = 0
    versions: int = 0
    skipped_runs: int = 0
    """Runs complete at an earlier import: not read again."""
    done_runs: int = 0
    """Runs this import has finished with (imported, updated or skipped)."""


@dataclass
class Summary:
    source: str
    dry_run: bool
    seen: Counts = field(default_factory=Counts)
    """What the source has (within the filters)."""
    written: Counts = field(default_factory=Counts)
    """What this import brought (0 everywhere on a second import of an unchanged source)."""
    failures: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    """What Modelog has no place for, said once each (not a failure: running again changes nothing)."""
    verification: dict[str, Any] = field(default_factory=dict)
    seconds: float = 0.0
    source_seconds: float = 0.0
    """Time spent waiting for the source (summed over workers)."""

    def to_json(self) -> dict[str, Any]:
        return {
            "source": self.source,
            "dry_run": self.dry_run,
            "seen": vars(self.seen),
            "written": vars(self.written),
            "failures": self.failures,
            "skipped": self.skipped,
            "verification": self.verification,
            "seconds": round(self.seconds, 3),
            "source_seconds": round(self.source_seconds, 3),
            "points_per_second": round(self.written.points / self.seconds) if self.seconds else 0,
        }


Reporter = Callable[[Summary, str], None]
"""Called now and then with the running summary and the current phase (for a progress display)."""


def _matches(name: str, patterns: Sequence[str]) -> bool:
    return not patterns or any(fnmatch.fnmatchcase(name, p) for p in patterns)


class Importer:
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

    # ------------------------------------------------------------------ the import

    def run(self) -> Summary:
        start = time.monotonic()
        exps = [
            e
            for e in self._timed(lambda: list(self.source.experiments()))
            if _matches(e.name, self.exp_patterns)
        ]
        self.summary.seen.experiments = len(exps)
        self.report(self.summary, "experiments")
        plan: list[tuple[Experiment, str, list[Run]]] = []
        for e in exps:
            runs: list[Run] = self._timed(partial(_listed, self.source.runs, e))
            self.summary.seen.runs += len(runs)
            eid = "" if self.dry_run else self._experiment(e)
            plan.append((e, eid, runs))
            self.report(self.summary, "experiments")
        if not self.dry_run:
            for e, eid, runs in plan:
                self._runs(eid, runs)
                if e.deleted and eid:
                    self._quiet(
                        partial(
                            self.tracking.DeleteExperiment,
                            tpb.DeleteExperimentRequest(experiment_id=eid),
                            metadata=self._md("experiment", e.source_id, "delete", e.created_ms),
                        )
                    )
        models = [
            m
            for m in self._timed(lambda: list(self.source.models()))
            if _matches(m.name, self.model_patterns)
        ]
        self.summary.seen.models = len(models)
        for m in models:
            self._model(m)
            self.report(self.summary, "models")
        self.summary.seconds = time.monotonic() - start
        if not self.dry_run:
            self.report(self.summary, "verifying")
            self.summary.verification = self._verify(plan)
        self.summary.seconds = time.monotonic() - start
        self.report(self.summary, "done")
        return self.summary

    def _quiet(self, fn: Callable[[], Any]) -> None:
        with contextlib.suppress(FailedPrecondition):  # already so (deleted, finished): the fact is there
            fn()

    def _experiment(self, e: Experiment) -> str:
        known = self.state.get("experiment", e.source_id)
        if known:
            return known
        md = self._md("experiment", e.source_id, "create", e.created_ms, e.user)
        request = tpb.CreateExperimentRequest(name=e.name, description=e.description, tags=e.tags)
        try:
            eid = str(self.tracking.CreateExperiment(request, metadata=md).experiment.experiment_id)
            self._add(self.summary.written, experiments=1)
        except AlreadyExists:
            # A Modelog experiment of that name that no import made (MLflow's "Default"): runs join it.
            eid = str(
                self.tracking.GetExperiment(tpb.GetExperimentRequest(name=e.name)).experiment.experiment_id
            )
        self.state.put("experiment", e.source_id, eid)
        return eid

    def _runs(self, experiment_id: str, runs: list[Run]) -> None:
        # Parents first (a nested run names its parent's Modelog id), the rest in parallel.
        ids = {r.source_id for r in runs}
        parents = [r for r in runs if r.source_id in {c.parent_id for c in runs if c.parent_id}]
        rest = [r for r in runs if r not in parents]
        for group in (parents, rest):
            with ThreadPoolExecutor(self.workers) as pool:
                for _ in pool.map(lambda r: self._run_safely(experiment_id, r, ids), group):
                    self.report(self.summary, "runs")

    def _run_safely(self, experiment_id: str, r: Run, ids: set[str]) -> None:
        try:
            self._run(experiment_id, r)
            self._add(self.summary.seen, done_runs=1)
        except (ModelogError, OSError, ValueError, SourceError) as exc:
            self._fail(f"run {r.source_id} ({r.name})", exc)

    def _run(self, experiment_id: str, r: Run) -> None:
        done_tags = self.state.run_done(r.source_id)
        run_id = self.state.get("run", r.source_id)
        if done_tags is not None and run_id:
            changed = {k: v for k, v in r.tags.items() if done_tags.get(k) != v}
            if changed:
                self.tracking.SetTags(
                    tpb.SetTagsRequest(run_id=run_id, tags=changed),
                    metadata=self._md(
                        "run", r.source_id, f"tags-{_digest(changed)}", r.end_ms or r.start_ms, r.user
                    ),
                )
                self.state.mark_run(r.source_id, True, r.tags)
            self._add(self.summary.seen, skipped_runs=1)
            with self._lock:
                self._imported_runs.append((r, run_id))
            return
        if run_id is None:
            parent = self.state.get("run", r.parent_id) if r.parent_id else None
            request = tpb.StartRunRequest(
                experiment_id=experiment_id,
                name=r.name,
                parent_run_id=parent or "",
                source=tpb.RunSource(user=r.user[:200]),
                tags=r.tags,
                params=r.params,
                start_time_ms=r.start_ms,
            )
            run_id = str(
                self.tracking.StartRun(
                    request, metadata=self._md("run", r.source_id, "start", r.start_ms, r.user)
                ).run.info.run_id
            )
            self.state.put("run", r.source_id, run_id)
            self._add(self.summary.written, runs=1)
            for i, ds in enumerate(r.datasets):
                self.tracking.LogDatasetInput(
                    tpb.LogDatasetInputRequest(
                        run_id=run_id,
                        dataset=tpb.DatasetInput(
                            name=ds.name,
                            digest=ds.digest,
                            source_type=ds.source_type,
                            source=ds.source,
                            context=ds.context,
                            dataset_schema=ds.schema,
                            dataset_profile=ds.profile,
                        ),
                    ),
                    metadata=self._md("run", r.source_id, f"dataset-{i}", r.start_ms, r.user),
                )
            held: dict[str, int] = {}
        else:
            current = self.tracking.GetRun(tpb.GetRunRequest(run_id=run_id)).run
            held = {m.key: m.count for m in current.metrics}
            new_params = {k: v for k, v in r.params.items() if k not in current.params}
            if new_params:
                self.tracking.LogParams(
                    tpb.LogParamsRequest(run_id=run_id, params=new_params),
                    metadata=self._md(
                        "run", r.source_id, f"params-{_digest(new_params)}", r.start_ms, r.user
                    ),
                )
            changed = {k: v for k, v in r.tags.items() if current.tags.get(k) != v}
            if changed:
                self.tracking.SetTags(
                    tpb.SetTagsRequest(run_id=run_id, tags=changed),
                    metadata=self._md("run", r.source_id, f"tags-{_digest(changed)}", r.start_ms, r.user),
                )
        for key in r.metric_keys:
            self._metric(r, run_id, key, held.get(key, 0))
        self._run_files(r, run_id)
        finished = r.status not in ("RUNNING", "SCHEDULED")
        if finished:
            self._quiet(
                lambda: self.tracking.FinishRun(
                    tpb.FinishRunRequest(
                        run_id=run_id,
                        status=STATUS.get(r.status, tpb.RUN_STATUS_FINISHED),
                        end_time_ms=r.end_ms or r.start_ms,
                    ),
                    metadata=self._md("run", r.source_id, "finish", r.end_ms or r.start_ms, r.user),
                )
            )
        if r.deleted:
            self._quiet(
                lambda: self.tracking.DeleteRun(
                    tpb.DeleteRunRequest(run_id=run_id),
                    metadata=self._md("run", r.source_id, "delete", r.end_ms or r.start_ms, r.user),
                )
            )
        self.state.mark_run(r.source_id, finished, r.tags)
        with self._lock:
            self._imported_runs.append((r, run_id))

    def _metric(self, r: Run, run_id: str, key: str, held: int) -> None:
        series = self._timed(lambda: self.source.history(r, key))
        self._add(self.summary.seen, points=len(series.values))
        for offset in range(held, len(series.values), CHUNK):
            end = min(offset + CHUNK, len(series.values))
            n = end - offset
            step = f"metric-{key}-{offset}"
            md = self._md("run", r.source_id, step, series.timestamps_ms[offset], r.user)
            batch = tpb.MetricBatch(
                run_id=run_id,
                keys=[key] * n,
                values=series.values[offset:end],
                steps=series.steps[offset:end],
                timestamps_ms=series.timestamps_ms[offset:end],
                idempotency_key=md[-1][1],
            )
            got = self.tracking.LogMetricsBatch(batch, metadata=md[:-1])
            if not got.replayed_batches:
                self._add(self.summary.written, points=n)

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

    def _run_files(self, r: Run, run_id: str) -> None:
        listing = list(self._timed(lambda: list(self.source.files(r))))
        if not listing:
            return
        with tempfile.TemporaryDirectory(prefix="modelog-import-") as tmp:
            root = Path(tmp)
            count, size = self._download(iter(listing), lambda p: self.source.open(r, p), root)
            self._add(self.summary.seen, files=count, bytes=size)
            before = self._latest(f"run-{run_id}")
            v = self._commit(
                root,
                f"run-{run_id}",
                "other",
                run_id,
                {},
                self._md("run", r.source_id, "files", r.end_ms or r.start_ms, r.user),
            )
            if v.version != before:
                self._add(self.summary.written, files=count, bytes=size)
                with self._lock:
                    for f in listing[:2]:
                        self._files.append((r, f.path, f"run-{run_id}"))

    def _latest(self, name: str) -> int:
        try:
            return int(
                self.artifacts.GetVersion(
                    apb.GetVersionRequest(ref=apb.VersionRef(name=name))
                ).version.version
            )
        except NotFound:
            return 0

    # ------------------------------------------------------------------ registry

    def _model(self, m: Model) -> None:
        try:
            versions = self._timed(lambda: list(self.source.versions(m)))
            self.summary.seen.versions += len(versions)
            if self.dry_run:
                return
            if not self.state.get("model", m.source_id):
                try:
                    self.registry.CreateModel(
                        rpb.CreateModelRequest(name=m.name, description=m.description, tags=m.tags),
                        metadata=self._md("model", m.source_id, "create", m.created_ms),
                    )
                    self._add(self.summary.written, models=1)
                except AlreadyExists:
                    pass  # made by an earlier, interrupted import (or by hand): versions join it
                self.state.put("model", m.source_id, m.name)
            numbers: dict[int, int] = {}
            for v in versions:
                try:
                    numbers[v.number] = self._version(m, v)
                except _Unmappable as exc:
                    with self._lock:
                        self.summary.skipped.append(f"model {m.name} version {v.number}: {exc}")
                except (ModelogError, OSError, ValueError) as exc:
                    self._fail(f"model {m.name} version {v.number}", exc)
            self._stages(m, versions, numbers)
            for alias, number in sorted(m.aliases.items()):
                target = numbers.get(int(number))
                if target is None:
                    continue
                if self.state.get("alias", f"{m.source_id}@{alias}") == str(target):
                    continue
                try:
                    self.registry.SetAlias(
                        rpb.SetAliasRequest(model=m.name, alias=alias, version=target),
                        metadata=self._md("model", m.source_id, f"alias-{alias}-{target}", m.updated_ms),
                    )
                    self.state.put("alias", f"{m.source_id}@{alias}", str(target))
                except ModelogError as exc:
                    self._fail(f"model {m.name} alias {alias}", exc)
        except (ModelogError, OSError, ValueError) as exc:
            self._fail(f"model {m.name}", exc)

    def _version(self, m: Model, v: Version) -> int:
        sid = f"{m.source_id}/{v.number}"
        known = self.state.get("version", sid)
        if known:
            return int(known)
        if not v.run_id:
            raise _Unmappable("a Modelog version is made from a run, and the source links none to it")
        run_id = self.state.get("run", v.run_id)
        if not run_id:
            raise NotFound(
                f"its run {v.run_id or '(none)'} was not imported (widen --experiments to include it)"
            )
        md = self._md("version", sid, "create", v.created_ms, v.user)
        name = "mlflow-source-" + hashlib.sha256(f"{self.source.label}\0{sid}".encode()).hexdigest()[:24]
        with tempfile.TemporaryDirectory(prefix="modelog-import-") as tmp:
            root = Path(tmp)
            count, size = self._download(
                self._timed(lambda: iter(list(self.source.version_files(v)))),
                lambda p: self.source.open_version_file(v, p),
                root,
            )
            self._add(self.summary.seen, files=count, bytes=size)
            if count:
                art = self._commit(root, name, "model", run_id, {"mlflow.source": v.source}, md)
            else:  # files the source does not serve: a reference, as the MLflow gateway makes
                with headers(md[:-1]):
                    art = self.artifacts.CommitVersion(
                        apb.CommitVersionRequest(
                            name=name,
                            kind="model",
                            run_id=run_id,
                            tags={"mlflow.source": v.source},
                            message=f"MLflow model source {v.source} (the files stay at the source)",
                        )
                    ).version
        request = rpb.CreateModelVersionRequest(
            model=m.name,
            run_id=run_id,
            artifact=rpb.ArtifactRef(name=art.name, version=art.version),
            description=v.description,
            tags={**v.tags, **_source_tags(v.source, run_id)},
        )
        got = self.registry.CreateModelVersion(request, metadata=md)
        self._add(self.summary.written, versions=1)
        self.state.put("version", sid, str(got.version.version))
        return int(got.version.version)

    def _stages(self, m: Model, versions: list[Version], numbers: dict[int, int]) -> None:
        # A version back in None at the source stays where it is here (the registry archives instead).
        moves: list[tuple[Version, rpb.Stage.ValueType]] = []
        for v in versions:
            stage = STAGES.get(v.stage.lower())
            sid = f"{m.source_id}/{v.number}"
            if stage is not None and v.number in numbers and self.state.get("stage", sid) != v.stage:
                moves.append((v, stage))
        if not moves:
            return
        model = self.registry.GetModel(rpb.GetModelRequest(name=m.name)).model
        original = model.policy
        every = (rpb.STAGE_NONE, rpb.STAGE_STAGING, rpb.STAGE_PRODUCTION, rpb.STAGE_ARCHIVED)
        role = original.production.approver_role or "approver"

        def at_once(to: rpb.Stage.ValueType) -> rpb.StagePolicy:
            return rpb.StagePolicy(
                approvals_required=0, approver_role=role, from_stages=[s for s in every if s != to]
            )

        permissive = rpb.ModelPolicy(
            staging=at_once(rpb.STAGE_STAGING),
            production=at_once(rpb.STAGE_PRODUCTION),
            archived=at_once(rpb.STAGE_ARCHIVED),
            max_production_versions=max(original.max_production_versions or 1, len(versions)),
        )
        self.registry.SetPolicy(rpb.SetPolicyRequest(name=m.name, policy=permissive))
        try:
            for v, stage in sorted(moves, key=lambda x: x[0].updated_ms or 0):
                sid = f"{m.source_id}/{v.number}"
                try:
                    self.registry.RequestTransition(
                        rpb.RequestTransitionRequest(
                            ref=rpb.VersionRef(model=m.name, version=numbers[v.number]),
                            stage=stage,
                            comment=f"imported: {v.stage} in {self.source.label}",
                        ),
                        metadata=self._md(
                            "version", sid, f"stage-{v.stage}-{v.updated_ms}", v.updated_ms, v.user
                        ),
                    )
                except FailedPrecondition as exc:
                    if "already in" not in exc.message:
                        raise
                self.state.put("stage", sid, v.stage)
        finally:
            self.registry.SetPolicy(rpb.SetPolicyRequest(name=m.name, policy=original))

    # ------------------------------------------------------------------ verification

    def _verify(self, plan: list[tuple[Experiment, str, list[Run]]]) -> dict[str, Any]:
        """Counts per kind, a sample of full metric histories and of file digests, source vs Modelog."""
        out: dict[str, Any] = {}
        exp_ok = sum(1 for _, eid, _ in plan if eid)
        out["experiments"] = {"source": len(plan), "modelog": exp_ok}
        runs = list(self._imported_runs)
        found = 0
        for _, run_id in runs:
            try:
                self.tracking.GetRun(tpb.GetRunRequest(run_id=run_id))
                found += 1
            except NotFound:
                pass
        out["runs"] = {"source": self.summary.seen.runs, "modelog": found}
        out["models"] = {"source": self.summary.seen.models, "modelog": self.state.count("model")}
        out["versions"] = {"source": self.summary.seen.versions, "modelog": self.state.count("version")}
        rng = random.Random(0)
        sample = rng.sample(runs, min(self.verify_sample, len(runs)))
        checked = mismatched = 0
        for r, run_id in sample:
            for key in r.metric_keys[:3]:
                src = self.source.history(r, key)
                got = self.tracking.GetMetricHistory(tpb.GetMetricHistoryRequest(run_id=run_id, key=key))
                checked += 1
                if sorted(zip(src.steps, src.timestamps_ms, map(repr, src.values), strict=True)) != sorted(
                    zip(got.steps, got.timestamps_ms, map(repr, got.values), strict=True)
                ):
                    mismatched += 1
        out["metric_histories"] = {"checked": checked, "mismatched": mismatched}
        files_checked = files_bad = 0
        for r, path, art in self._files[: self.verify_sample]:
            h = hashlib.sha256()
            with self.source.open(r, path) as fh:
                while chunk := fh.read(1 << 20):
                    h.update(chunk)
            got = self.artifacts.GetVersion(
                apb.GetVersionRequest(ref=apb.VersionRef(name=art), include_entries=True)
            )
            digests = {e.path: e.digest for e in got.version.entries}
            files_checked += 1
            if digests.get(path, "").removeprefix("sha256:") != h.hexdigest():
                files_bad += 1
        out["file_digests"] = {"checked": files_checked, "mismatched": files_bad}
        out["ok"] = (
            mismatched == 0
            and files_bad == 0
            and out["runs"]["source"] == out["runs"]["modelog"] + self._failed_runs()
        )
        return out

    def _failed_runs(self) -> int:
        return sum(1 for f in self.summary.failures if f.startswith("run "))


class _Unmappable(Exception):
    """A source fact with no place in Modelog's model: skipped and said so, not retried."""


class _Silent:
    def start(self, label: str, total: int) -> None:
        pass

    def advance(self, n: int) -> None:
        pass

    def finish(self) -> None:
        pass


def _source_tags(source: str, run_id: str) -> dict[str, str]:
    """A `runs:/` source names the imported run (whose files came along), so MLflow clients reading
    through the gateway find them; any other source is kept as a note of where the files were."""
    if source.startswith("runs:/"):
        _, _, path = source[len("runs:/") :].lstrip("/").partition("/")
        return {SOURCE_TAG: f"runs:/{run_id}/{path}", IMPORTED_SOURCE_TAG: source}
    return {IMPORTED_SOURCE_TAG: source}


def _listed(fn: Callable[[Any], Iterator[Any]], arg: Any) -> list[Any]:
    return list(fn(arg))


def _digest(d: dict[str, str]) -> str:
    return hashlib.sha256(json.dumps(d, sort_keys=True).encode()).hexdigest()[:16]
