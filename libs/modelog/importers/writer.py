"""Source records into Modelog commands, each carrying where, when and by whom it really happened.

- **Two clocks.** Every command is sent with `x-modelog-origin*` headers (the source's label, the
  thing's id there, its original time and person), which the server records in the event metadata and
  only accepts from an admin. The log's recorded-at stays the real append time.
- **Nothing twice.** Every command has an idempotency key derived from (source, kind, source id,
  step), so a command resent after a crash or by a second import is stored once. Metric points resume
  from what Modelog holds for the run (its point count per key: the truth, not a local note), in chunks
  keyed by their offset. A local state table (`MODELOG_HOME/imports/`) maps source ids to Modelog ids
  and remembers runs that were complete, so a later import skips them and brings only what is new.
- **Parts.** state.py (the table and the summary), context.py (what every part shares), models.py
  (the registry), verify.py (the check at the end).
"""

from __future__ import annotations

import fnmatch
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from pathlib import Path
from typing import Any

from modelog._gen.tracking.v1 import tracking_pb2 as tpb
from modelog.errors import AlreadyExists, ModelogError
from modelog.importers.context import digest_of
from modelog.importers.models import ModelImports
from modelog.importers.source import Experiment, Run, SourceError
from modelog.importers.state import Summary
from modelog.importers.verify import Verification

CHUNK = 50_000
"""Metric points per LogMetricsBatch (the server takes up to 100k)."""
STATUS = {
    "RUNNING": tpb.RUN_STATUS_RUNNING,
    "SCHEDULED": tpb.RUN_STATUS_RUNNING,
    "FINISHED": tpb.RUN_STATUS_FINISHED,
    "FAILED": tpb.RUN_STATUS_FAILED,
    "KILLED": tpb.RUN_STATUS_KILLED,
}


def _matches(name: str, patterns: Sequence[str]) -> bool:
    return not patterns or any(fnmatch.fnmatchcase(name, p) for p in patterns)


class Importer(ModelImports, Verification):
    """Brings one source in: experiments, then their runs (in parallel), then models."""

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
                        "run", r.source_id, f"tags-{digest_of(changed)}", r.end_ms or r.start_ms, r.user
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
                            tags=ds.tags,
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
                        "run", r.source_id, f"params-{digest_of(new_params)}", r.start_ms, r.user
                    ),
                )
            changed = {k: v for k, v in r.tags.items() if current.tags.get(k) != v}
            if changed:
                self.tracking.SetTags(
                    tpb.SetTagsRequest(run_id=run_id, tags=changed),
                    metadata=self._md("run", r.source_id, f"tags-{digest_of(changed)}", r.start_ms, r.user),
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


def _listed(fn: Callable[[Any], Iterator[Any]], arg: Any) -> list[Any]:
    return list(fn(arg))
