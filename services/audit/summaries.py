"""One sentence per event for timelines: what the event did, short enough for one terminal line.

Other services' events are read as payload dicts by type name (as lineage_facts does), so an event
this service does not know still gets a line (`alice: SomethingNew`). The registry's events are told
in the registry's own words (its History), so a model's history and its timeline agree.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any

from eventlog import RecordedEvent
from modelog_services.registry import events as registry_events
from modelog_services.registry.history import summary as registry_summary

Payload = dict[str, Any]
MAX_ITEMS, MAX_VALUE = 5, 32


def _short(value: Any, limit: int = MAX_VALUE) -> str:
    text = str(value)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _more(total: int, shown: int) -> str:
    return f" (+{total - shown} more)" if total > shown else ""


def pairs(values: Mapping[str, Any]) -> str:
    """`lr=0.05, trees=200 (+3 more)`: the first few keys in order, long values cut."""
    items = list(values.items())
    shown = ", ".join(f"{_short(k)}={_short(v)}" for k, v in items[:MAX_ITEMS])
    return (shown or "nothing") + _more(len(items), MAX_ITEMS)


def names(values: Iterable[str]) -> str:
    """`auc, loss (+2 more)`, each name once, in order of first appearance."""
    unique = list(dict.fromkeys(values))
    return ", ".join(_short(v) for v in unique[:MAX_ITEMS]) + _more(len(unique), MAX_ITEMS)


def _count(n: int, noun: str) -> str:
    return f"{n:,} {noun}{'' if n == 1 else 's'}"


def _metrics(p: Payload) -> str:
    keys, steps = p.get("keys") or [], p.get("steps") or []
    span = ""
    if steps:
        low, high = min(steps), max(steps)
        span = f", step {low}" if low == high else f", steps {low}..{high}"
    return f"logged {_count(len(keys), 'metric point')} of {names(keys)}{span}"


def _alias(p: Payload, what: str) -> str:
    if p.get("previous") is not None:
        return f"moved alias {p['alias']!r} of {what} from v{p['previous']} to v{p['version']}"
    return f"pointed alias {p['alias']!r} of {what} at v{p['version']}"


def _drift(p: Payload) -> str:
    if not p.get("dataset_drift"):
        return f"profiled window {p.get('window')} ({p.get('rows', 0):,} rows): no dataset drift"
    return (
        f"profiled window {p.get('window')} ({p.get('rows', 0):,} rows): drift in "
        f"{p.get('drift_share', 0):.0%} of columns ({names(p.get('drifted_columns') or [])})"
    )


# What the actor did, per event type; `s` is the stream's entity (`ds` for artifact-ds).
_TRACKING: dict[str, Callable[[Payload, str], str]] = {
    "ExperimentCreated": lambda p, s: f"created experiment {p.get('name', '')!r}",
    "ExperimentRenamed": lambda p, s: (
        f"renamed the experiment from {p.get('previous_name')!r} to {p.get('name')!r}"
    ),
    "ExperimentDescribed": lambda p, s: "changed the experiment's description",
    "ExperimentTagsSet": lambda p, s: f"set experiment tags {pairs(p.get('tags') or {})}",
    "ExperimentTagDeleted": lambda p, s: f"deleted experiment tag {p.get('key')!r}",
    "ExperimentDeleted": lambda p, s: "deleted the experiment",
    "ExperimentRestored": lambda p, s: "restored the experiment",
    "RunStarted": lambda p, s: f"started run {p.get('name', '')!r}",
    "RunRenamed": lambda p, s: f"renamed the run from {p.get('previous_name')!r} to {p.get('name')!r}",
    "ParamsLogged": lambda p, s: f"logged params {pairs(p.get('params') or {})}",
    "MetricsLogged": lambda p, s: _metrics(p),
    "TagsSet": lambda p, s: f"set tags {pairs(p.get('tags') or {})}",
    "TagDeleted": lambda p, s: f"deleted tag {p.get('key')!r}",
    "DatasetInputLogged": lambda p, s: (
        f"logged dataset {p.get('name', '')!r} ({p.get('digest', '')}) as an input"
    ),
    "RunFinished": lambda p, s: f"finished the run as {p.get('status', '')}",
    "RunDeleted": lambda p, s: "deleted the run",
    "RunRestored": lambda p, s: "restored the run",
}
_ARTIFACTS: dict[str, Callable[[Payload, str], str]] = {
    "ArtifactVersionCommitted": lambda p, s: (
        f"committed {p.get('name')}:v{p.get('version')} "
        f"({p.get('kind')}, {_count(p.get('file_count', 0), 'file')}, {p.get('total_size', 0):,} bytes)"
        + (f": {_short(p['message'], 60)!r}" if p.get("message") else "")
    ),
    "ArtifactAliasSet": lambda p, s: _alias(p, s),
    "ArtifactAliasRemoved": lambda p, s: (
        f"removed alias {p.get('alias')!r} of {s} (it pointed at v{p.get('version')})"
    ),
    "ArtifactTagged": lambda p, s: f"tagged {s}:v{p.get('version')} {pairs(p.get('tags') or {})}",
}
_MONITORING: dict[str, Callable[[Payload, str], str]] = {
    "MonitorConfigured": lambda p, s: (
        f"configured monitor {p.get('name')!r} on {p.get('model_ref') or p.get('model')}"
    ),
    "BaselineSet": lambda p, s: (
        f"set the baseline to {p.get('artifact') or p.get('reference') or 'rows'} ({p.get('rows', 0):,} rows)"
    ),
    "PredictionsLogged": lambda p, s: f"logged {p.get('rows', 0):,} predictions in window {p.get('window')}",
    "WindowClosed": lambda p, s: (
        f"closed window {p.get('window')} at {p.get('rows', 0):,} rows ({p.get('reason')})"
    ),
    "WindowProfiled": lambda p, s: _drift(p),
    "DriftDetected": lambda p, s: (
        f"detected drift in window {p.get('window')} "
        f"({names(p.get('drifted_columns') or [])}; {p.get('consecutive')} window(s) in a row)"
    ),
    "LabelsLogged": lambda p, s: f"logged {p.get('rows', 0):,} labels ({p.get('matched', 0):,} matched)",
    "PerformanceDegraded": lambda p, s: (
        f"saw {p.get('metric')} = {p.get('value', 0):.4g} in window "
        f"{p.get('window')}, breaking {p.get('rule')}"
    ),
    "AlertRaised": lambda p, s: (
        f"raised {p.get('kind')} alert {p.get('alert_id')}: {_short(p.get('message', ''), 80)}"
    ),
    "RetrainRequested": lambda p, s: (
        f"requested retraining of {p.get('model_ref') or p.get('model')}: {_short(p.get('reason', ''), 80)}"
    ),
    "AlertResolved": lambda p, s: f"resolved alert {p.get('alert_id')}",
}
_BY_LOG = {"tracking": _TRACKING, "artifacts": _ARTIFACTS, "monitoring": _MONITORING}


def summary(ev: RecordedEvent, actor: str) -> str:
    """One sentence for a timeline, starting with who did it."""
    try:
        if ev.log == "registry":
            return registry_summary(ev.decode(registry_events.registry), actor)
        says = _BY_LOG.get(ev.log, {}).get(ev.type)
        if says is not None:
            entity = ev.stream_id.split("-", 1)[-1]
            return f"{actor} {says(ev.payload(), entity)}"
    except Exception:  # noqa: BLE001 - a newer schema than this process knows still gets a line
        pass
    return f"{actor}: {ev.type}"
