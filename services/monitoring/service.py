"""What the monitoring service does around its decider: store prediction batches as Parquet blobs, keep
windows' rows and references in memory while they are hot, compute statistics before deciding, and
profile closed windows in the background (in order, one monitor at a time).

Heavy work (Parquet, drift tests) runs in threads; the event loop only moves bytes and appends.
Memory: the open window of each monitor is kept as the Arrow tables that were stored, so closing a
1,000,000-row window does not download it again; a window logged by another process (or before a
restart) is read back from its blobs.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from eventlog import EventStore, FailedPrecondition, InvalidArgument, Metadata, NotFound
from eventlog.commandpath import CommandPath, Executed, Route, command_map
from eventlog.locks import StreamLocks
from modelog_platform.access import project_name
from modelog_platform.authz import DEFAULT_PROJECT

from . import drift, tables
from .domain import (
    Configure,
    LogPredictions,
    MonitorCommand,
    MonitorState,
    Part,
    RecordLabels,
    RecordProfile,
    SealWindow,
    SetBaseline,
    check_config,
    check_monitor_name,
    monitor_decider,
    monitor_stream_id,
    split,
)
from .events import BaselineSet, MonitorConfig, WindowClosed, WindowLabels, registry
from .labels import join_and_score, labels_table, same_ids
from .peers import MonitoringPeers, digest_of
from .projections import VIEWS

log = logging.getLogger("modelog.monitoring")

HOT_ROWS = 20_000_000
"""Rows of open windows kept in memory across monitors; beyond it the oldest are read back from blobs."""
LABEL_WINDOWS = 200
"""Labels are joined with a monitor's newest windows only."""
TIMER_S = 1.0


def now() -> datetime:
    return datetime.now(UTC)


@dataclass
class Reference:
    digest: str
    prepared: drift.PreparedReference


class MonitorService:
    def __init__(self, store: EventStore, peers: MonitoringPeers) -> None:
        self.store = store
        self.pool = store.pool
        self.peers = peers
        routes = command_map((MonitorCommand, Route(monitor_decider, monitor_stream_id)))
        self.commands = CommandPath(store, events=registry, routes=routes)
        self.ingest = StreamLocks()
        self._references: OrderedDict[str, Reference] = OrderedDict()
        self._hot: OrderedDict[tuple[str, int], list[pa.Table]] = OrderedDict()
        self._ids: OrderedDict[tuple[str, int], pa.ChunkedArray] = OrderedDict()
        self._profilers: dict[str, asyncio.Task[None]] = {}
        self._dirty: set[str] = set()
        self.profile_seconds: dict[tuple[str, int], float] = {}

    # ------------------------------------------------------------------ plumbing

    async def state(self, name: str) -> MonitorState:
        state: MonitorState
        state, _ = await self.commands.state(Configure, check_monitor_name(name, "monitor"))
        if not state.exists:
            raise NotFound(f"no monitor named {name!r}")
        return state

    async def execute(self, name: str, cmd: MonitorCommand, metadata: Metadata) -> Executed[MonitorState]:
        try:
            return await self.commands.send(name, cmd, metadata)
        except NotFound as exc:
            if exc.message == "no such monitor":
                raise NotFound(f"no monitor named {name!r}") from None
            raise

    async def _run(self, fn: Callable[..., Any], *args: Any) -> Any:
        return await asyncio.to_thread(fn, *args)

    # ------------------------------------------------------------------ monitors and baselines

    async def create(
        self,
        name: str,
        model_ref: str,
        deployment: str,
        config: MonitorConfig,
        metadata: Metadata,
        *,
        reference: str = "",
        reference_path: str = "",
        reference_arrow: bytes = b"",
        project: str = "",
    ) -> MonitorState:
        check_monitor_name(name)
        check_config(config)
        model = await self.peers.model_version(model_ref)
        baseline = None
        if reference or reference_arrow:
            baseline = await self._baseline(name, config, reference, reference_path, reference_arrow)
        cmd = Configure(
            name=name,
            model=model.model,
            model_ref=model_ref,
            model_version=model.version,
            deployment=deployment,
            config=config,
            reference=reference,
            reference_path=reference_path if reference else "",
            baseline=baseline,
            project=project_name(project or DEFAULT_PROJECT),
        )
        return (await self.execute(name, cmd, metadata)).state

    async def set_baseline(
        self, name: str, reference: str, path: str, arrow: bytes, metadata: Metadata
    ) -> MonitorState:
        state = await self.state(name)
        assert state.config is not None
        if not reference and not arrow:
            raise InvalidArgument.field(
                "reference", "give an artifact version and path, or rows as Arrow IPC"
            )
        baseline = await self._baseline(name, state.config, reference, path, arrow)
        return (await self.execute(name, SetBaseline(baseline), metadata)).state

    async def _baseline(
        self, name: str, config: MonitorConfig, reference: str, path: str, arrow: bytes
    ) -> BaselineSet:
        """Read, check and store a reference; nothing is written when it does not fit the schema."""
        artifact = ""
        if reference:
            found = await self.peers.artifact_file(reference, path)
            artifact, path = found.artifact, found.path
            raw = await self.peers.fetch(found.digest)
            table = await self._run(tables.read_file, raw, path)
            what = f"reference {found.artifact}/{path}"
        else:
            table = tables.read_ipc(arrow, "reference_arrow")
            what = "reference"
        table = tables.normalise(table, config, "reference", partial=True)
        schema = tables.schema_of(config)
        try:
            drift.validate(table, schema)
        except drift.SchemaError as exc:
            raise InvalidArgument.field("reference", f"{what} does not fit monitor {name!r}: {exc}") from None
        data = await self._run(tables.to_parquet, table)
        digest = digest_of(data)
        prepared = await self._run(drift.PreparedReference, table, schema)
        performance: dict[str, float] = {}
        if config.task and config.target in table.column_names and config.prediction in table.column_names:
            performance = tables.finite(
                await self._run(
                    drift.performance,
                    table.column(config.target),
                    table.column(config.prediction),
                    config.task,
                )
            )
        await self.peers.store(data, digest)
        self._references[name] = Reference(digest, prepared)
        return BaselineSet(
            reference=reference,
            artifact=artifact,
            path=path,
            digest=digest,
            rows=table.num_rows,
            profile=[tables.json_safe(p.to_dict()) for p in prepared.profiles],
            performance=performance,
        )

    async def reference(self, name: str, state: MonitorState) -> drift.PreparedReference:
        assert state.baseline is not None and state.config is not None
        cached = self._references.get(name)
        if cached is not None and cached.digest == state.baseline.digest:
            self._references.move_to_end(name)
            return cached.prepared
        data = await self.peers.fetch(state.baseline.digest)
        table = await self._run(tables.from_parquet, data)
        prepared: drift.PreparedReference = await self._run(
            drift.PreparedReference, table, tables.schema_of(state.config)
        )
        self._references[name] = Reference(state.baseline.digest, prepared)
        while len(self._references) > 64:
            self._references.popitem(last=False)
        return prepared

    # ------------------------------------------------------------------ predictions

    def prepare(self, state: MonitorState, raw: bytes) -> pa.Table:
        """Decode and check one batch (in a thread: it touches every value)."""
        assert state.config is not None
        table = tables.normalise(tables.read_ipc(raw), state.config, "arrow")
        try:
            drift.validate(table, tables.schema_of(state.config))
        except drift.SchemaError as exc:
            raise InvalidArgument.field(
                "arrow", f"the batch does not fit monitor {state.name!r}: {exc}"
            ) from None
        return table

    async def log_predictions(
        self, name: str, batches: list[bytes], metadata: Metadata
    ) -> tuple[int, list[int]]:
        """Store and record batches; returns rows and the windows this call closed."""
        state = await self.state(name)
        if state.baseline is None:
            raise FailedPrecondition(
                f"monitor {name!r} has no baseline yet: set one before logging predictions"
            )
        prepared = [await self._run(self.prepare, state, raw) for raw in batches]
        rows, closed = 0, []
        async with self.ingest.hold(name):
            for i, table in enumerate(prepared):
                key = metadata.idempotency_key
                md = metadata.model_copy(update={"idempotency_key": f"{key[:100]}/{i}" if key else None})
                closed += await self._log_one(name, table, md)
                rows += table.num_rows
        for _ in closed:
            self.kick(name)
        return rows, closed

    async def _log_one(self, name: str, table: pa.Table, metadata: Metadata) -> list[int]:
        closed: list[int] = []
        state = await self.state(name)
        at = now()
        if state.time_is_up(at):
            closed += await self._seal(name, state.open_window, "time", Metadata(actor=metadata.actor))
            state = await self.state(name)
        slices = [(w, table.slice(a, b - a)) for w, a, b in split(state, table.num_rows)]
        encoded = await asyncio.gather(*(self._run(tables.to_parquet, t) for _, t in slices))
        digests = [digest_of(data) for data in encoded]
        await self.peers.store_many(list(zip(encoded, digests, strict=True)))
        parts = tuple(
            Part(w, d, t.num_rows, len(data))
            for (w, t), d, data in zip(slices, digests, encoded, strict=True)
        )
        done = await self.execute(name, LogPredictions(parts, at), metadata)
        for w, t in slices:
            self._remember(name, w, t)
        closed += [e.window for e in done.events if isinstance(e, WindowClosed)]
        return closed

    def _remember(self, name: str, window: int, table: pa.Table) -> None:
        self._hot.setdefault((name, window), []).append(table)
        self._hot.move_to_end((name, window))
        while sum(t.num_rows for ts in self._hot.values() for t in ts) > HOT_ROWS and len(self._hot) > 1:
            self._hot.popitem(last=False)

    async def close_window(self, name: str, metadata: Metadata) -> int:
        async with self.ingest.hold(name):
            state = await self.state(name)
            closed = await self._seal(name, state.open_window, "manual", metadata)
        self.kick(name)
        return closed[0]

    async def _seal(self, name: str, window: int, reason: str, metadata: Metadata) -> list[int]:
        cmd = SealWindow(window, reason, now())  # type: ignore[arg-type]
        done = await self.execute(name, cmd, metadata)
        return [e.window for e in done.events if isinstance(e, WindowClosed)]

    async def close_due(self) -> None:
        """Seal time windows whose period has passed (the timer's tick)."""
        rows = await self.pool.fetch(
            f"SELECT name FROM {VIEWS.monitors} "
            "WHERE (config->>'window_seconds')::bigint > 0 AND open_rows > 0"
        )
        for row in rows:
            name = row["name"]
            async with self.ingest.hold(name):
                state = await self.state(name)
                if state.time_is_up(now()):
                    await self._seal(name, state.open_window, "time", Metadata(actor="system"))
            self.kick(name)

    async def run_timers(self) -> None:
        """Closes time windows on time, and profiles windows left closed by a previous process."""
        with contextlib.suppress(Exception):
            for row in await self.pool.fetch(
                f"SELECT DISTINCT monitor FROM {VIEWS.windows} WHERE status = 'closed'"
            ):
                self.kick(row["monitor"])
        while True:
            await asyncio.sleep(TIMER_S)
            try:
                await self.close_due()
            except Exception:
                log.exception("closing time windows failed; retrying on the next tick")

    # ------------------------------------------------------------------ profiling

    def kick(self, name: str) -> None:
        """Profile the monitor's closed windows in order, in one background task per monitor."""
        self._dirty.add(name)
        task = self._profilers.get(name)
        if task is None or task.done():
            self._profilers[name] = asyncio.get_running_loop().create_task(self._profile_all(name))

    async def idle(self, name: str) -> None:
        """Wait until the monitor's background profiling is done (tests and benchmarks)."""
        while (task := self._profilers.get(name)) is not None and not task.done():
            await asyncio.wait([task])

    async def _profile_all(self, name: str) -> None:
        while name in self._dirty:
            self._dirty.discard(name)
            try:
                state = await self.state(name)
                for window in state.closed:
                    await self.profile(name, window)
            except Exception:
                log.exception("profiling monitor %s failed; it is retried on the next close or restart", name)
                return

    async def window_table(self, name: str, window: int, columns: list[str] | None = None) -> pa.Table:
        row = await self.pool.fetchrow(
            f"SELECT rows, digests FROM {VIEWS.windows} WHERE monitor = $1 AND window_no = $2", name, window
        )
        if row is None:
            raise NotFound(f"monitor {name!r} has no window {window}")
        hot = self._hot.get((name, window))
        if hot is not None and sum(t.num_rows for t in hot) == row["rows"]:
            table = pa.concat_tables(hot)
            return table.select(columns) if columns else table
        datas = await asyncio.gather(*(self.peers.fetch(d) for d in row["digests"]))
        parts = [await self._run(tables.from_parquet, data, columns) for data in datas]
        return pa.concat_tables(parts)

    async def profile(self, name: str, window: int) -> None:
        t0 = time.perf_counter()
        state = await self.state(name)
        assert state.config is not None and state.baseline is not None
        config = state.config
        table = await self.window_table(name, window)
        reference = await self.reference(name, state)
        result, profile, perf = await self._run(_statistics, reference, table, config)
        result_dict = tables.json_safe(result.to_dict())
        cmd = RecordProfile(
            window=window,
            rows=table.num_rows,
            profile=profile,
            drift=result_dict,
            dataset_drift=bool(result.dataset_drift),
            drift_share=float(result.drift_share),
            drifted_columns=tuple(c.column for c in result.columns if c.drifted),
            performance=perf,
            at=now(),
        )
        await self.execute(name, cmd, Metadata(actor="system"))
        if config.id_column:
            self._ids[(name, window)] = table.column(config.id_column)
            while len(self._ids) > LABEL_WINDOWS:
                self._ids.popitem(last=False)
        self._hot.pop((name, window), None)
        self.profile_seconds[(name, window)] = time.perf_counter() - t0

    # ------------------------------------------------------------------ labels

    async def log_labels(self, name: str, raw: bytes, metadata: Metadata) -> tuple[int, int, list[int]]:
        state = await self.state(name)
        config = state.config
        assert config is not None
        if not config.task or not config.prediction:
            raise FailedPrecondition(
                f"monitor {name!r} has no task and prediction column: labels have nothing to score"
            )
        id_column = config.id_column
        if not id_column:
            raise FailedPrecondition(
                f"monitor {name!r} has no id column: labels cannot be joined with predictions"
            )
        labels = labels_table(tables.read_ipc(raw), id_column)
        data = await self._run(tables.to_parquet, labels)
        digest = digest_of(data)
        rows = await self.pool.fetch(
            f"SELECT window_no FROM {VIEWS.windows} WHERE monitor = $1 AND status <> 'open' "
            "ORDER BY window_no DESC LIMIT $2",
            name,
            LABEL_WINDOWS,
        )
        updates: list[WindowLabels] = []
        matched = 0
        for r in rows:
            window = int(r["window_no"])
            window_ids = await self._window_ids(name, window, id_column)
            labels = same_ids(labels, window_ids.type, id_column)
            hits = int(
                pc.sum(pc.is_in(labels.column("id"), value_set=window_ids.combine_chunks())).as_py() or 0
            )
            if not hits:
                continue
            matched += hits
            updates.append(await self._window_performance(name, window, labels, digest, config))
        if not matched:
            raise FailedPrecondition(
                f"none of the {labels.num_rows} label ids matches a closed window of monitor {name!r} "
                f"(ids are matched on column {id_column!r}; close the window first)"
            )
        await self.peers.store(data, digest)
        cmd = RecordLabels(digest=digest, rows=labels.num_rows, matched=matched, windows=tuple(updates))
        await self.execute(name, cmd, metadata)
        return labels.num_rows, matched, [u.window for u in updates]

    async def _window_ids(self, name: str, window: int, id_column: str) -> pa.ChunkedArray:
        cached = self._ids.get((name, window))
        if cached is None:
            cached = (await self.window_table(name, window, [id_column])).column(id_column)
            self._ids[(name, window)] = cached
            while len(self._ids) > LABEL_WINDOWS:
                self._ids.popitem(last=False)
        return cached

    async def _window_performance(
        self, name: str, window: int, new: pa.Table, new_digest: str, config: MonitorConfig
    ) -> WindowLabels:
        """The window's metrics over every label it received so far (later labels win)."""
        digests = await self.pool.fetchval(
            f"SELECT label_digests FROM {VIEWS.windows} WHERE monitor = $1 AND window_no = $2", name, window
        )
        earlier = [
            tables.from_parquet(await self.peers.fetch(d)).cast(new.schema)
            for d in dict.fromkeys(digests or [])
            if d != new_digest
        ]
        assert config.prediction
        columns = [config.id_column, config.prediction]
        predictions = await self.window_table(name, window, columns)
        task = config.task
        assert task is not None
        result = await self._run(join_and_score, predictions, [*earlier, new], config, task)
        labelled, metrics = result
        return WindowLabels(window=window, labelled_rows=labelled, performance=metrics)


def _statistics(
    reference: drift.PreparedReference, table: pa.Table, config: MonitorConfig
) -> tuple[drift.DriftResult, list[dict[str, Any]], dict[str, float]]:
    """Drift, profile (on the reference's bins) and, when the rows carry their target, performance."""
    result, profiles = drift.detect_drift_and_profile(reference, table, tables.options_of(config))
    profile = [tables.json_safe(p.to_dict()) for p in profiles]
    perf: dict[str, float] = {}
    if config.task and config.target in table.column_names and config.prediction in table.column_names:
        target = table.column(config.target)
        if target.null_count < len(target):
            perf = tables.finite(
                drift.performance(
                    target.combine_chunks(), table.column(config.prediction).combine_chunks(), config.task
                )
            )
    return result, profile, perf
