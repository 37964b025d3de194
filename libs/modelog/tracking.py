"""Experiments and runs from Python: `modelog.start_run(...)` and friends.

A run's metrics go through a background batcher (the training loop never waits on the network);
everything else is a direct call that retries transient failures with its idempotency key.

A finished run (FINISHED, FAILED or KILLED) takes no more data: params, metrics and dataset inputs
are refused with FailedPrecondition — at once when this process finished it, and by the server
otherwise (for metrics, at the next `log_metrics`, `flush` or `finish` after the refusal). Tags are
annotations: a finished run still takes them, as the server allows.
"""

from __future__ import annotations

import contextlib
import getpass
import logging
import os
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any

from modelog._batcher import FLUSH_TIMEOUT, Batch, MetricBatcher
from modelog._gen.tracking.v1 import tracking_pb2
from modelog._transport import Transport
from modelog.errors import FailedPrecondition, ModelogError

if TYPE_CHECKING:
    from modelog.system_metrics import SystemMetrics

STATUS = {
    "RUNNING": tracking_pb2.RUN_STATUS_RUNNING,
    "FINISHED": tracking_pb2.RUN_STATUS_FINISHED,
    "FAILED": tracking_pb2.RUN_STATUS_FAILED,
    "KILLED": tracking_pb2.RUN_STATUS_KILLED,
}
STATUS_NAMES = {v: k for k, v in STATUS.items()}

log = logging.getLogger("modelog.sdk")


def _source() -> tracking_pb2.RunSource:
    """Where the code runs: git commit, entry point, host, user (best effort, never fails)."""
    commit = ""
    with contextlib.suppress(OSError, subprocess.SubprocessError):
        commit = subprocess.run(
            ["git", "rev-parse", "HEAD"], capture_output=True, text=True, timeout=2, check=False
        ).stdout.strip()
    try:
        user = getpass.getuser()
    except (KeyError, OSError):
        user = ""
    entry = os.path.basename(sys.argv[0]) if sys.argv and sys.argv[0] else ""
    return tracking_pb2.RunSource(git_commit=commit, entry_point=entry, host=socket.gethostname(), user=user)


def _str_map(values: Mapping[str, Any] | None) -> dict[str, str]:
    return {str(k): str(v) for k, v in (values or {}).items()}


@dataclass
class RunData:
    """A run as the server knows it (GetRun / SearchRuns)."""

    id: str
    experiment_id: str
    name: str
    status: str
    start_time_ms: int
    end_time_ms: int | None
    parent_run_id: str | None
    params: dict[str, str] = field(default_factory=dict)
    tags: dict[str, str] = field(default_factory=dict)
    metrics: dict[str, float] = field(default_factory=dict)
    metric_summaries: dict[str, dict[str, float]] = field(default_factory=dict)
    datasets: list[dict[str, str]] = field(default_factory=list)
    deleted: bool = False

    @classmethod
    def of(cls, run: tracking_pb2.Run) -> RunData:
        i = run.info
        return cls(
            id=i.run_id,
            experiment_id=i.experiment_id,
            name=i.name,
            status=STATUS_NAMES.get(i.status, "UNKNOWN"),
            start_time_ms=i.start_time_ms,
            end_time_ms=i.end_time_ms if i.HasField("end_time_ms") else None,
            parent_run_id=i.parent_run_id or None,
            params=dict(run.params),
            tags=dict(run.tags),
            metrics={m.key: m.last for m in run.metrics},
            metric_summaries={
                m.key: {
                    "last": m.last,
                    "min": m.min,
                    "max": m.max,
                    "count": m.count,
                    "last_step": m.last_step,
                }
                for m in run.metrics
            },
            datasets=[
                {"name": d.name, "digest": d.digest, "source": d.source, "context": d.context}
                for d in run.datasets
            ],
            deleted=i.deleted,
        )


class ActiveRun:
    """A run being logged to. Use as a context manager: leaving the block finishes it (FINISHED),
    an exception marks it FAILED, Ctrl-C marks it KILLED."""

    def __init__(
        self, transport: Transport, run_id: str, name: str, experiment: str, *, spill_dir: Path | None
    ) -> None:
        self.id = run_id
        self.name = name
        self.experiment = experiment
        self._t = transport
        self._batcher = MetricBatcher(self._send, spill_dir=spill_dir)
        self._finished: str | None = None
        """The status this process finished the run with."""
        self._step = 0
        self._system: SystemMetrics | None = None

    def watch_system(self, interval: float = 10.0) -> None:
        """Sample CPU, memory and GPU (where present) into `system/...` metrics until the run ends."""
        from modelog.system_metrics import SystemMetrics

        if self._system is None:
            self._system = SystemMetrics(self, interval)

    def _send(self, batches: list[Batch]) -> None:
        self._t.send_metrics(
            [
                tracking_pb2.MetricBatch(
                    run_id=b.run_id,
                    keys=b.keys,
                    values=b.values,
                    steps=b.steps,
                    timestamps_ms=b.timestamps_ms,
                    idempotency_key=b.idempotency_key,
                )
                for b in batches
            ]
        )

    # --------------------------------------------------------------- logging

    def _writable(self) -> None:
        if self._finished is not None:
            raise FailedPrecondition(
                f"run {self.name!r} ({self.id}) is {self._finished}; a finished run accepts no more data"
            )

    def log_metrics(
        self, metrics: Mapping[str, float], step: int | None = None, timestamp_ms: int | None = None
    ) -> None:
        """Queue metric points and return at once (NaN and ±inf are fine). Raises FailedPrecondition
        on a finished run, and the server's refusal of earlier points once it is known."""
        self._writable()
        if step is None:
            step = self._step
            self._step += 1
        self._batcher.log(self.id, metrics, step, timestamp_ms)  # type: ignore[arg-type]

    def log_metric(self, key: str, value: float, step: int | None = None) -> None:
        self.log_metrics({key: value}, step)

    def log_params(self, params: Mapping[str, Any]) -> None:
        """Params are set once: logging a different value for an existing key is an error."""
        self._writable()
        self._t.call("LogParams", tracking_pb2.LogParamsRequest(run_id=self.id, params=_str_map(params)))

    def log_param(self, key: str, value: Any) -> None:
        self.log_params({key: value})

    def set_tags(self, tags: Mapping[str, Any]) -> None:
        self._t.call("SetTags", tracking_pb2.SetTagsRequest(run_id=self.id, tags=_str_map(tags)))

    def set_tag(self, key: str, value: Any) -> None:
        self.set_tags({key: value})

    def delete_tag(self, key: str) -> None:
        self._t.call("DeleteTag", tracking_pb2.DeleteTagRequest(run_id=self.id, key=key))

    def log_input(
        self,
        name: str,
        digest: str,
        *,
        source: str = "",
        context: str = "",
        source_type: str = "",
        tags: Mapping[str, Any] | None = None,
    ) -> None:
        """Record a dataset the run read (name and content digest), e.g. context="training"; `tags`
        describe this use of it (keys up to 255 characters, values up to 500)."""
        self._writable()
        ds = tracking_pb2.DatasetInput(
            name=name,
            digest=digest,
            source=source,
            context=context,
            source_type=source_type,
            tags=_str_map(tags or {}),
        )
        self._t.call("LogDatasetInput", tracking_pb2.LogDatasetInputRequest(run_id=self.id, dataset=ds))

    def log_artifacts(self, path: str | Path, *, name: str, kind: str = "", message: str = "") -> Any:
        """Version a file or directory as an artifact produced by this run (its lineage)."""
        from modelog import artifacts

        return artifacts.log_artifacts(path, name=name, kind=kind, run_id=self.id, message=message)

    def flush(self, timeout: float = FLUSH_TIMEOUT) -> bool:
        """Wait until every metric point logged so far is acknowledged by the server: True once they
        are, False if `timeout` seconds pass first (the server is unreachable: they stay queued).
        Raises the server's first refusal of a batch (FailedPrecondition for a run finished
        elsewhere) as a `modelog.errors` class."""
        return self._batcher.flush(timeout)

    def finish(self, status: str = "FINISHED", *, timeout: float = FLUSH_TIMEOUT) -> None:
        """Send what is queued (waiting at most `timeout` seconds), then mark the run `status`.
        Raises what the server refused: a metric batch first, else the finish itself. Finishing
        twice does nothing."""
        if self._finished is not None:
            return
        self._finished = status
        if self._system is not None:
            self._system.stop()
        refused: ModelogError | None = None
        try:
            if not self._batcher.close(timeout):
                log.warning("%s: %d metric points not sent within %ss", self, self.pending_points, timeout)
        except ModelogError as exc:
            refused = exc  # the run is still marked finished: it would otherwise stay RUNNING
        try:
            self._t.call(
                "FinishRun",
                tracking_pb2.FinishRunRequest(
                    run_id=self.id, status=STATUS[status], end_time_ms=time.time_ns() // 1_000_000
                ),
            )
        except ModelogError:
            if refused is None:
                raise
        if refused is not None:
            raise refused

    @property
    def pending_points(self) -> int:
        return self._batcher.enqueued - self._batcher.acknowledged

    def __enter__(self) -> ActiveRun:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if exc_type is None:
            self.finish("FINISHED")
            return
        try:
            self.finish("KILLED" if issubclass(exc_type, KeyboardInterrupt) else "FAILED")
        except ModelogError as error:  # the block's own exception is the one to see
            log.warning("%s: finishing it after %s failed: %s", self, exc_type.__name__, error)

    def __repr__(self) -> str:
        return f"<ActiveRun {self.name} id={self.id} experiment={self.experiment!r}>"


def start_run(
    transport: Transport,
    experiment: str,
    *,
    name: str | None = None,
    params: Mapping[str, Any] | None = None,
    tags: Mapping[str, Any] | None = None,
    parent: ActiveRun | str | None = None,
    spill_dir: Path | None = None,
    system_metrics: bool | float = False,
) -> ActiveRun:
    run_id = uuid.uuid4().hex
    parent_id = parent.id if isinstance(parent, ActiveRun) else (parent or "")
    request = tracking_pb2.StartRunRequest(
        experiment_name=experiment,
        create_experiment=True,
        name=name or "",
        parent_run_id=parent_id,
        source=_source(),
        tags=_str_map(tags),
        params=_str_map(params),
        run_id=run_id,
        start_time_ms=time.time_ns() // 1_000_000,
    )
    resp = transport.call("StartRun", request)
    shown = resp.run.info.name if resp is not None else (name or run_id[:8])
    run = ActiveRun(transport, run_id, shown, experiment, spill_dir=spill_dir)
    if system_metrics:
        run.watch_system(10.0 if system_metrics is True else float(system_metrics))
    return run
