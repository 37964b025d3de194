"""What one event says about lineage: the nodes it names, the edges it opens or closes, the entities
whose timelines it belongs to. Pure, so the rules are testable without a database.

Entity keys are stable: a model is keyed by its id (`model:<id>/3`), never by its name, because names
change; labels with the current name are made when reading. Each log's facts depend only on that
log's own events in order, so the graph is the same whatever order the logs' events arrive in (the
rebuilt view equals the live one). Where one log names another's entity by a name (a monitor names
"churn@champion"), the edge keeps the name (`model-name:churn@champion`) and reading resolves it.

Other services' events are read as payload dicts by type name, so an event type this service has
never seen (or a service that is not deployed) is simply skipped.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from eventlog import InvalidArgument, RecordedEvent
from modelog.shared.refs import parse

SOURCES: tuple[str, ...] = ("tracking", "artifacts", "registry", "monitoring")
_TRACKING_PAYLOADS = frozenset({"RunStarted", "RunFinished", "DatasetInputLogged"})
_SKIPPED = frozenset({"BlobStored", "BlobsCollected", "ModelNameClaimed", "ModelNameReleased"})


@dataclass(frozen=True)
class NodeFact:
    node: str
    kind: str
    attrs: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class EdgeOpen:
    src: str
    dst: str
    relation: str


@dataclass(frozen=True)
class EdgeClose:
    """Ends every open edge of `relation` into `dst` (from `src` only, when given)."""

    dst: str
    relation: str
    src: str | None = None


EdgeOp = EdgeOpen | EdgeClose


@dataclass
class Facts:
    nodes: list[NodeFact] = field(default_factory=list)
    edges: list[EdgeOp] = field(default_factory=list)
    """In order: a close and an open of the same event apply as written (closes first)."""
    entities: list[str] = field(default_factory=list)
    """Timelines this event belongs to."""
    model_name: tuple[str, str] | None = None
    """(model id, name) when the event gives a model its name."""

    def touch(self, *entities: str) -> None:
        for e in entities:
            if e not in self.entities:
                self.entities.append(e)


def dataset_key(digest: str) -> str:
    """Digests are compared without an algorithm prefix or case: `sha256:AB..` and `ab..` are one dataset."""
    d = digest.strip().lower()
    return f"dataset:{d.removeprefix('sha256:')}"


def artifact_key(ref: str) -> str:
    """`ds:v3` -> a version, `ds@prod` -> an alias, `ds`/`ds@latest` -> the artifact, by the one
    reference grammar (modelog.shared.refs; the older `ds@3` and `ds:prod` too)."""
    try:
        name, version, alias = parse(ref, warn=False)
    except InvalidArgument:
        return f"artifact:{ref}"  # recorded as it was written; a node of its own rather than no node
    if version is not None:
        return f"artifact:{name}:v{version}"
    return f"artifact:{name}" if alias is None else f"artifact:{name}@{alias}"


def _tracking(ev: RecordedEvent, p: dict[str, Any], f: Facts) -> None:
    sid = ev.stream_id
    if sid.startswith("run-"):
        run = f"run:{sid[4:]}"
        f.touch(run)
        if ev.type == "RunStarted":
            attrs = {"name": p.get("name", ""), "experiment_id": p["experiment_id"]}
            f.nodes.append(NodeFact(run, "run", attrs))
            f.touch(f"experiment:{p['experiment_id']}")
        elif ev.type == "RunFinished":
            f.nodes.append(NodeFact(run, "run", {"status": p.get("status", "")}))
        elif ev.type == "DatasetInputLogged":
            ds = dataset_key(p["digest"])
            attrs = {"name": p.get("name", ""), "digest": p["digest"], "source": p.get("source", "")}
            f.nodes.append(NodeFact(ds, "dataset", attrs))
            f.edges.append(EdgeOpen(ds, run, "input"))
            f.touch(ds)
    elif sid.startswith("experiment-") and not sid.startswith("experiment-name"):
        f.touch(f"experiment:{sid[len('experiment-') :]}")


def _artifacts(ev: RecordedEvent, p: dict[str, Any], f: Facts) -> None:
    if not ev.stream_id.startswith("artifact-"):
        return
    name = ev.stream_id[len("artifact-") :]
    f.touch(f"artifact:{name}")
    version = p.get("version")
    key = f"artifact:{name}:v{version}" if isinstance(version, int) else None
    if key:
        f.touch(key)
    if ev.type == "ArtifactVersionCommitted" and key:
        attrs = {k: p.get(k) for k in ("name", "version", "kind", "manifest", "file_count", "total_size")}
        f.nodes.append(NodeFact(key, "artifact_version", attrs))
        if p.get("run_id"):
            run = f"run:{p['run_id']}"
            f.nodes.append(NodeFact(run, "run"))
            f.edges.append(EdgeOpen(run, key, "produced"))
            f.touch(run)
        if p.get("kind") == "dataset":
            ds = dataset_key(p["manifest"])
            f.nodes.append(NodeFact(ds, "dataset", {"digest": p["manifest"]}))
            f.edges.append(EdgeOpen(key, ds, "content"))
            f.touch(ds)
    elif ev.type in ("ArtifactAliasSet", "ArtifactAliasRemoved") and key:
        alias = f"artifact:{name}@{p['alias']}"
        f.nodes.append(NodeFact(alias, "artifact_alias", {"name": name, "alias": p["alias"]}))
        f.edges.append(EdgeClose(alias, "alias"))
        if ev.type == "ArtifactAliasSet":
            f.edges.append(EdgeOpen(key, alias, "alias"))
        f.touch(alias)


def _registry(ev: RecordedEvent, p: dict[str, Any], f: Facts) -> None:
    if not ev.stream_id.startswith("model-"):
        return
    model_id = ev.stream_id[len("model-") :]
    model = f"model:{model_id}"
    f.touch(model)
    if ev.type in ("ModelRegistered", "ModelRenamed"):
        f.nodes.append(NodeFact(model, "model", {"model_id": model_id}))
        f.model_name = (model_id, p["name"])
        return
    version = p.get("version")
    if not isinstance(version, int):
        return
    key = f"{model}/{version}"
    f.touch(key)
    if ev.type == "ModelVersionCreated":
        run, art = p["run"], p["artifact"]
        run_key, art_key = f"run:{run['run_id']}", f"artifact:{art['name']}:v{art['version']}"
        attrs = {"model_id": model_id, "version": version, "run_id": run["run_id"]}
        f.nodes.append(NodeFact(key, "model_version", attrs))
        f.nodes.append(NodeFact(run_key, "run"))
        f.nodes.append(NodeFact(art_key, "artifact_version"))
        f.edges += [EdgeOpen(run_key, key, "trained"), EdgeOpen(art_key, key, "packaged")]
        f.touch(run_key, art_key)
    elif ev.type in ("AliasSet", "AliasRemoved"):
        alias = f"{model}@{p['alias']}"
        f.nodes.append(NodeFact(alias, "model_alias", {"model_id": model_id, "alias": p["alias"]}))
        f.edges.append(EdgeClose(alias, "alias"))
        if ev.type == "AliasSet":
            f.edges.append(EdgeOpen(key, alias, "alias"))
        f.touch(alias)
    elif ev.type == "VersionStageChanged":
        old, new = f"{model}#{p['from_stage']}", f"{model}#{p['to_stage']}"
        f.edges.append(EdgeClose(old, "stage", key))
        f.nodes.append(NodeFact(new, "model_stage", {"model_id": model_id, "stage": p["to_stage"]}))
        f.edges.append(EdgeOpen(key, new, "stage"))


def _monitoring(ev: RecordedEvent, p: dict[str, Any], f: Facts) -> None:
    if not ev.stream_id.startswith("monitor-"):
        return
    monitor = f"monitor:{ev.stream_id[len('monitor-') :]}"
    f.touch(monitor)
    if ev.type == "MonitorConfigured":
        attrs = {k: p.get(k, "") for k in ("name", "model", "model_ref", "reference")}
        f.nodes.append(NodeFact(monitor, "monitor", attrs))
        f.edges += [EdgeClose(monitor, "monitors"), EdgeClose(monitor, "reference")]
        f.edges.append(EdgeOpen(f"model-name:{p.get('model_ref') or p['model']}", monitor, "monitors"))
        if p.get("reference"):
            f.edges.append(EdgeOpen(artifact_key(p["reference"]), monitor, "reference"))
    elif ev.type == "BaselineSet" and p.get("artifact"):
        f.edges.append(EdgeClose(monitor, "reference"))
        f.edges.append(EdgeOpen(artifact_key(p["artifact"]), monitor, "reference"))


_BY_LOG = {"tracking": _tracking, "artifacts": _artifacts, "registry": _registry, "monitoring": _monitoring}


def facts_of(ev: RecordedEvent) -> Facts:
    facts = Facts()
    handler = _BY_LOG.get(ev.log)
    if handler is None or ev.type in _SKIPPED:
        return facts
    # Metric batches are most of the tracking log and can be large: their payload is never parsed.
    payload = {} if ev.log == "tracking" and ev.type not in _TRACKING_PAYLOADS else ev.payload()
    try:
        handler(ev, payload, facts)
    except (KeyError, TypeError, AttributeError):
        # An event of a shape this version does not know (a newer schema of another service): its
        # timeline entry is kept, what could not be read is left out rather than stopping the view.
        return Facts(entities=facts.entities)
    return facts
