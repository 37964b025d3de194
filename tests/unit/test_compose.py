"""docker-compose.yml and its infra/ files stay valid and wired together, checked without Docker.

No Docker engine runs on the build machines and nothing may be downloaded at test time, so:

- structural checks parse the YAML with PyYAML when this interpreter has it (it is not a Modelog
  dependency), else with another python3 on the machine that has it (YAML to JSON in a
  subprocess); they skip, saying so, when there is no YAML parser at all;
- text checks with regular expressions always run, so even a machine without any YAML parser
  catches a missing service, a ZooKeeper broker or an Envoy route to nowhere;
- `docker compose config -q` (or the standalone `docker-compose`) validates the file against the
  Compose schema when installed: it needs no engine.
"""

from __future__ import annotations

import base64
import functools
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from eventlog.sources import parse_routes
from modelog.shared.settings import SERVICES

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = ROOT / "docker-compose.yml"
DOCKERFILE = ROOT / "infra" / "Dockerfile"
ENVOY = ROOT / "infra" / "envoy.yaml"
COLLECTOR = ROOT / "infra" / "otel-collector.yaml"
DOC = ROOT / "infra" / "compose.md"

API = {s: f"/modelog.{s}.v1.{s.capitalize()}/" for s in SERVICES}
"""Each service's own gRPC API, as Envoy sees it (`/package.Service/Method`)."""
EVENTLOG = "/modelog.eventlog.v1.EventLog/"
ROUTE_HEADER = "x-modelog-service"
PORT = 50051
WIRING = ("MODELOG_PG_DSN", "MODELOG_KAFKA_BOOTSTRAP", "MODELOG_PEERS", "OTEL_EXPORTER_OTLP_ENDPOINT")
"""What every service container needs in its environment."""
HTTP_OPTIONS = "envoy.extensions.upstreams.http.v3.HttpProtocolOptions"

_TO_JSON = "import json, sys, yaml; json.dump(yaml.safe_load(open(sys.argv[1])), sys.stdout, default=str)"


# ---------------------------------------------------------------------------------------- parsing


def _other_pythons() -> list[str]:
    found = [shutil.which("python3"), "/usr/bin/python3", "/usr/local/bin/python3"]
    out: list[str] = []
    for exe in found:
        if (
            exe
            and Path(exe).is_file()
            and exe not in out
            and Path(exe).resolve() != Path(sys.executable).resolve()
        ):
            out.append(exe)
    return out


@functools.cache
def _parse(path: Path) -> tuple[Any, str] | None:
    """(document, parser) with a real YAML parser, or None when the machine has none."""
    try:
        import yaml  # type: ignore  # not a dependency; see the module docstring
    except ImportError:
        pass
    else:
        return yaml.safe_load(path.read_text()), "PyYAML"
    for exe in _other_pythons():
        try:
            done = subprocess.run(
                [exe, "-c", _TO_JSON, str(path)], capture_output=True, text=True, timeout=30, check=False
            )
        except (OSError, subprocess.TimeoutExpired):
            continue
        if done.returncode == 0:
            return json.loads(done.stdout), f"PyYAML of {exe}"
    return None


def _yaml(path: Path) -> dict[str, Any]:
    parsed = _parse(path)
    if parsed is None:
        pytest.skip("no YAML parser here (PyYAML is not a Modelog dependency); the text checks still ran")
    doc, parser = parsed
    assert isinstance(doc, dict), f"{path.name} parsed by {parser} is not a mapping"
    return doc


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    doc = _yaml(COMPOSE)
    assert isinstance(doc.get("services"), dict), "no services: mapping"
    return doc


@pytest.fixture(scope="module")
def services(compose: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return compose["services"]


@pytest.fixture(scope="module")
def envoy() -> dict[str, Any]:
    return _yaml(ENVOY)


def _env(service: dict[str, Any]) -> dict[str, str]:
    env = service.get("environment") or {}
    if isinstance(env, list):
        env = dict(item.split("=", 1) if "=" in item else (item, "") for item in env)
    return {str(k): str(v) for k, v in env.items()}


def _command(service: dict[str, Any]) -> str:
    cmd = service.get("command") or ""
    return " ".join(str(c) for c in cmd) if isinstance(cmd, list) else str(cmd)


def _depends(service: dict[str, Any]) -> dict[str, str]:
    deps = service.get("depends_on") or {}
    if isinstance(deps, list):
        return dict.fromkeys(deps, "service_started")
    return {name: (spec or {}).get("condition", "service_started") for name, spec in deps.items()}


def _host(address: str) -> str:
    """`http://otel-collector:4317` or `kafka:9092` or `user:pw@postgres:5432/db` -> the host."""
    address = re.sub(r"^[a-z]+://", "", address)
    address = address.rsplit("@", 1)[-1]
    return address.split("/", 1)[0].rsplit(":", 1)[0]


def _image(service: dict[str, Any]) -> str:
    return str(service.get("image", ""))


def _find(services: dict[str, dict[str, Any]], image_prefix: str) -> tuple[str, dict[str, Any]]:
    hits = [(n, s) for n, s in services.items() if _image(s).startswith(image_prefix)]
    assert hits, f"no service runs an image {image_prefix}*"
    return hits[0]


def _published(service: dict[str, Any]) -> dict[int, int]:
    """host port -> container port."""
    out = {}
    for p in service.get("ports") or []:
        if isinstance(p, dict):
            out[int(p["published"])] = int(p["target"])
            continue
        parts = str(p).split(":")
        out[int(parts[-2])] = int(parts[-1].split("/")[0])
    return out


def _mounts(service: dict[str, Any]) -> dict[str, str]:
    """container path -> source (a named volume or a ./path)."""
    out = {}
    for v in service.get("volumes") or []:
        if isinstance(v, dict):
            out[v["target"]] = v.get("source", "")
        else:
            src, _, rest = str(v).partition(":")
            out[rest.split(":")[0]] = src
    return out


# ------------------------------------------------------------------------- compose, structurally


@pytest.mark.parametrize("svc", SERVICES)
def test_each_service_is_one_container_running_modelog_serve(
    services: dict[str, dict[str, Any]], svc: str
) -> None:
    assert svc in services, f"docker-compose.yml has no `{svc}` service"
    s = services[svc]
    cmd = _command(s)
    assert re.search(rf"(^|\s)serve {svc}(\s|$)", cmd), f"{svc}: command {cmd!r} is not `serve {svc}`"
    assert f"--addr 0.0.0.0:{PORT}" in cmd, f"{svc}: must listen on 0.0.0.0:{PORT} for Envoy"
    build = s.get("build")
    assert isinstance(build, dict) and build.get("dockerfile") == "infra/Dockerfile", build
    assert (ROOT / build.get("context", ".") / build["dockerfile"]).is_file()
    assert "container_name" not in s, f"{svc}: a fixed container_name breaks `--scale`"
    assert not s.get("ports"), f"{svc}: publish only Envoy, or `--scale` collides on host ports"


@pytest.mark.parametrize("svc", SERVICES)
def test_each_service_has_a_replica_count_from_the_environment(
    services: dict[str, dict[str, Any]], svc: str
) -> None:
    replicas = str(services[svc].get("deploy", {}).get("replicas", ""))
    found = re.fullmatch(rf"\$\{{MODELOG_{svc.upper()}_REPLICAS:-(\d+)\}}", replicas)
    assert found, f"{svc}: deploy.replicas {replicas!r} is not ${{MODELOG_{svc.upper()}_REPLICAS:-N}}"
    assert int(found.group(1)) >= (2 if svc in ("tracking", "registry") else 1)


@pytest.mark.parametrize("svc", SERVICES)
def test_each_service_reaches_postgres_kafka_peers_and_the_collector(
    services: dict[str, dict[str, Any]], svc: str
) -> None:
    env = _env(services[svc])
    for var in WIRING:
        assert env.get(var), f"{svc}: {var} is not set"
    assert env["MODELOG_PG_DSN"].startswith("postgresql://")
    pg, _ = _find(services, "postgres:")
    kafka, _ = _find(services, "apache/kafka:")
    collector, _ = _find(services, "otel/opentelemetry-collector")
    assert _host(env["MODELOG_PG_DSN"]) == pg
    assert all(_host(b) == kafka for b in env["MODELOG_KAFKA_BOOTSTRAP"].split(","))
    assert _host(env["OTEL_EXPORTER_OTLP_ENDPOINT"]) == collector
    peers = parse_routes(env["MODELOG_PEERS"])
    assert set(peers) == set(SERVICES), f"{svc}: MODELOG_PEERS must name every service: {peers}"
    for name, target in peers.items():
        assert target == f"{name}:{PORT}", f"{svc}: peer {name} -> {target}"
    deps = _depends(services[svc])
    assert deps.get(pg) == "service_healthy" and deps.get(kafka) == "service_healthy", deps
    assert collector in deps


def test_services_share_modelog_home_for_the_tokens(services: dict[str, dict[str, Any]]) -> None:
    homes = {_env(services[s]).get("MODELOG_HOME", "") for s in SERVICES}
    assert len(homes) == 1 and "" not in homes, f"one MODELOG_HOME for every service, got {homes}"
    home = homes.pop()
    sources = {_mounts(services[s]).get(home) for s in SERVICES}
    assert len(sources) == 1 and None not in sources, f"{home} must be one shared volume: {sources}"


def test_kafka_is_single_node_kraft_without_zookeeper(services: dict[str, dict[str, Any]]) -> None:
    name, kafka = _find(services, "apache/kafka:")
    env = _env(kafka)
    assert set(env["KAFKA_PROCESS_ROLES"].split(",")) == {"broker", "controller"}
    voters = env["KAFKA_CONTROLLER_QUORUM_VOTERS"]
    assert re.fullmatch(rf"{env['KAFKA_NODE_ID']}@{name}:\d+", voters), voters
    assert "CONTROLLER" in env["KAFKA_CONTROLLER_LISTENER_NAMES"]
    assert any(adv.endswith(f"//{name}:9092") for adv in env["KAFKA_ADVERTISED_LISTENERS"].split(","))
    # KRaft formats storage with this id: a base64url-encoded 16-byte UUID.
    cluster_id = env["CLUSTER_ID"]
    assert len(base64.urlsafe_b64decode(cluster_id + "=" * (-len(cluster_id) % 4))) == 16
    assert int(env["KAFKA_OFFSETS_TOPIC_REPLICATION_FACTOR"]) == 1, "one broker: replication 1"
    assert not [k for k in env if "ZOOKEEPER" in k]
    assert not [n for n, s in services.items() if "zookeeper" in (n + _image(s)).lower()]
    assert kafka.get("healthcheck"), "services wait for a healthy Kafka"


def test_postgres_18_with_a_healthcheck_and_its_data_on_a_volume(services: dict[str, dict[str, Any]]) -> None:
    _, pg = _find(services, "postgres:")
    assert _image(pg).split(":")[1].startswith("18")
    assert pg.get("healthcheck"), "services wait for a healthy PostgreSQL"
    # PostgreSQL 18 images keep PGDATA in /var/lib/postgresql/18/docker and refuse a mount at .../data.
    assert "/var/lib/postgresql" in _mounts(pg)
    env = _env(pg)
    dsn = _env(services[SERVICES[0]])["MODELOG_PG_DSN"]
    assert f"{env['POSTGRES_USER']}:{env['POSTGRES_PASSWORD']}@" in dsn
    assert dsn.rsplit("/", 1)[1] == env["POSTGRES_DB"]


def test_collector_exports_traces_to_a_published_jaeger(services: dict[str, dict[str, Any]]) -> None:
    _, collector = _find(services, "otel/opentelemetry-collector-contrib")
    jaeger_name, jaeger = _find(services, "jaegertracing/")
    assert 16686 in _published(jaeger).values(), "the Jaeger UI port must be published"
    mounts = _mounts(collector)
    config_path = next(p for p in mounts if p.endswith(".yaml"))
    assert (ROOT / mounts[config_path]).resolve() == COLLECTOR
    assert config_path in " ".join(str(c) for c in collector.get("command", []))
    config = _yaml(COLLECTOR)
    pipelines = config["service"]["pipelines"]
    for pipeline in pipelines.values():
        for kind in ("receivers", "processors", "exporters"):
            for component in pipeline.get(kind, []):
                assert component in config[kind], f"pipeline uses undefined {kind[:-1]} {component}"
    endpoints = [config["exporters"][e].get("endpoint", "") for e in pipelines["traces"]["exporters"]]
    assert any(_host(e) == jaeger_name for e in endpoints), endpoints
    grpc = config["receivers"]["otlp"]["protocols"]["grpc"]["endpoint"]
    env = _env(services[SERVICES[0]])
    assert grpc.rsplit(":", 1)[1] == env["OTEL_EXPORTER_OTLP_ENDPOINT"].rsplit(":", 1)[1]


def test_envoy_is_the_front_door(services: dict[str, dict[str, Any]]) -> None:
    _, envoy = _find(services, "envoyproxy/envoy")
    assert _published(envoy).get(PORT) == PORT, "clients use localhost:50051"
    mounts = _mounts(envoy)
    assert (ROOT / mounts["/etc/envoy/envoy.yaml"]).resolve() == ENVOY
    deps = _depends(envoy)
    assert {s: deps.get(s) for s in SERVICES} == dict.fromkeys(SERVICES, "service_healthy")


def test_every_bind_mount_exists(services: dict[str, dict[str, Any]], compose: dict[str, Any]) -> None:
    named = set(compose.get("volumes") or {})
    for name, s in services.items():
        for target, source in _mounts(s).items():
            if source.startswith((".", "/")):
                assert (ROOT / source).exists(), f"{name}: {source} (for {target}) does not exist"
            else:
                assert source in named, f"{name}: volume {source} is not declared"


def test_every_dependency_is_a_service_and_healthy_means_a_healthcheck(
    services: dict[str, dict[str, Any]],
) -> None:
    image_healthcheck = "HEALTHCHECK" in DOCKERFILE.read_text()
    for name, s in services.items():
        for dep, condition in _depends(s).items():
            assert dep in services, f"{name} depends on unknown {dep}"
            if condition == "service_healthy":
                built = (services[dep].get("build") or {}).get("dockerfile") == "infra/Dockerfile"
                assert services[dep].get("healthcheck") or (built and image_healthcheck), (
                    f"{name} waits for {dep} to be healthy, but {dep} has no healthcheck"
                )


# ---------------------------------------------------------------------------- envoy, structurally


def _routes(envoy: dict[str, Any]) -> list[dict[str, Any]]:
    out = []
    for listener in envoy["static_resources"]["listeners"]:
        for chain in listener["filter_chains"]:
            for f in chain["filters"]:
                for vhost in f["typed_config"]["route_config"]["virtual_hosts"]:
                    out.extend(vhost["routes"])
    return out


def _clusters(envoy: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {c["name"]: c for c in envoy["static_resources"]["clusters"]}


def _route_for(envoy: dict[str, Any], path: str, headers: dict[str, str] | None = None) -> str | None:
    """The cluster Envoy picks: first route whose prefix and exact header matches hold."""
    headers = headers or {}
    for r in _routes(envoy):
        m = r["match"]
        if not path.startswith(m.get("prefix", "\0")):
            continue
        if all(headers.get(h["name"]) == h["string_match"]["exact"] for h in m.get("headers", [])):
            return str(r["route"]["cluster"])
    return None


def test_every_route_cluster_exists(envoy: dict[str, Any]) -> None:
    clusters = _clusters(envoy)
    for r in _routes(envoy):
        assert r["route"]["cluster"] in clusters, f"route {r['match']} -> missing cluster"
        assert r["route"].get("timeout") == "0s", f"{r['match']}: streams need no route timeout"


def test_clusters_speak_http2_to_modelog_services(envoy: dict[str, Any], services: dict[str, Any]) -> None:
    clusters = _clusters(envoy)
    assert set(SERVICES) <= set(clusters)
    for name, c in clusters.items():
        options = c["typed_extension_protocol_options"][HTTP_OPTIONS]
        assert "http2_protocol_options" in options["explicit_http_config"], f"{name} is not HTTP/2"
        for group in c["load_assignment"]["endpoints"]:
            for ep in group["lb_endpoints"]:
                address = ep["endpoint"]["address"]["socket_address"]
                assert address["address"] in services, f"{name} -> unknown host {address['address']}"
                assert address["port_value"] == PORT
        assert c["type"] == "STRICT_DNS", f"{name}: STRICT_DNS so `--scale` replicas all get traffic"


def test_grpc_is_routed_by_service_name(envoy: dict[str, Any]) -> None:
    listener = envoy["static_resources"]["listeners"][0]
    assert listener["address"]["socket_address"]["port_value"] == PORT
    for svc, prefix in API.items():
        assert _route_for(envoy, prefix + "Anything") == svc
        # A service's own API wins over the header.
        assert _route_for(envoy, prefix + "Anything", {ROUTE_HEADER: "audit"}) == svc
        assert _route_for(envoy, EVENTLOG + "ReadLog", {ROUTE_HEADER: svc}) == svc
        assert _route_for(envoy, "/modelog.admin.v1.Admin/Projections", {ROUTE_HEADER: svc}) == svc
    assert _route_for(envoy, EVENTLOG + "ReadLog") == "audit"
    assert _route_for(envoy, EVENTLOG + "Head", {ROUTE_HEADER: "identity"}) == "tracking"
    assert _route_for(envoy, "/modelog.identity.v1.Identity/CreateToken") == "tracking"
    assert _route_for(envoy, "/modelog.admin.v1.Admin/Projections") == "tracking"
    assert _route_for(envoy, "/grpc.health.v1.Health/Check") == "tracking"
    for version in ("v1", "v1alpha"):
        assert _route_for(envoy, f"/grpc.reflection.{version}.ServerReflection/ServerReflectionInfo")


# -------------------------------------------------------------------------------- the Dockerfile


def test_dockerfile_builds_like_make_install() -> None:
    text = DOCKERFILE.read_text()
    assert re.search(r"^ARG PYTHON_IMAGE=python:3\.11-slim", text, re.M)
    assert re.search(r"^FROM \$\{PYTHON_IMAGE\}", text, re.M)
    assert "pip install -r requirements.lock" in text
    assert re.search(r"pip install --no-deps [^\n]*\.\s", text)
    assert "infra/scripts/gen_proto.py" in text
    assert re.search(r"^ENV PATH=/opt/venv/bin:\$PATH", text, re.M), "protoc plugins from the venv on PATH"
    assert text.index("gen_proto.py") < text.index("--no-deps"), "stubs must exist before the install"
    for path in re.findall(r"^COPY (?!--from)(.+) \S+$", text, re.M):
        for src in path.split():
            assert (ROOT / src).exists(), f"COPY {src}: not in the repository"
    users = re.findall(r"^USER (\S+)", text, re.M)
    assert users and users[-1] not in ("root", "0"), "the service must not run as root"
    assert re.search(r'^ENTRYPOINT \["modelog"\]', text, re.M)


def test_dockerfile_healthcheck_calls_grpc_health() -> None:
    text = DOCKERFILE.read_text()
    m = re.search(r"^HEALTHCHECK .*?CMD (\[.*?\])$", text, re.M | re.S)
    assert m, "no HEALTHCHECK ... CMD [...]"
    argv = json.loads(m.group(1).replace("\\\n", ""))
    assert argv[:2] == ["python", "-c"]
    compile(argv[2], "<healthcheck>", "exec")
    assert "grpc_health.v1" in argv[2] and ".Check(" in argv[2] and "SERVING" in argv[2]


# ----------------------------------------------------------------- text checks, no parser needed


def _strip_comments(text: str) -> str:
    return re.sub(r"(^|\s)#.*$", "", text, flags=re.M)


def _blocks(text: str, indent: int) -> dict[str, str]:
    """Keys at one indentation and the text under each (a YAML mapping, read as text)."""
    pad = " " * indent
    out: dict[str, str] = {}
    key = None
    for line in text.splitlines():
        m = re.match(rf"^{pad}([A-Za-z0-9_.-]+):", line)
        if m and not line.startswith(pad + " "):
            key = m.group(1)
            out[key] = line + "\n"
        elif key is not None and (line.startswith(pad + " ") or not line.strip()):
            out[key] += line + "\n"
        elif line.strip():
            key = None
    return out


def test_text_compose_has_every_part() -> None:
    text = _strip_comments(COMPOSE.read_text())
    top = _blocks(text, 0)
    assert "services" in top
    services = _blocks(top["services"], 2)
    anchors = {m.group(1): block for block in top.values() if (m := re.search(r":\s*&([\w-]+)", block))}

    def expanded(block: str) -> str:
        return block + "".join(anchors[a] for a in re.findall(r"\*([\w-]+)", block) if a in anchors)

    for svc in SERVICES:
        assert svc in services, f"no `{svc}` service"
        block = expanded(services[svc])
        serve = rf'"?serve"?,\s*"?{svc}"?[,\]]|\bserve {svc}\b|-\s*"?serve"?\s*\n\s*-\s*"?{svc}"?\s*$'
        assert re.search(serve, block, re.M), f"{svc}: not `modelog serve {svc}`"
        for var in WIRING:
            assert re.search(rf"^\s+-?\s*{var}[:=]", block, re.M), f"{svc}: {var} missing"
        assert "infra/Dockerfile" in block
    images = re.findall(r"^\s+image:\s*(\S+)", text, re.M)
    for prefix in ("apache/kafka:", "postgres:18", "otel/opentelemetry-collector-contrib:", "jaegertracing/"):
        assert any(i.startswith(prefix) for i in images), f"no {prefix} image"
    assert any(i.startswith("envoyproxy/envoy:") for i in images)
    assert re.search(r"KAFKA_PROCESS_ROLES:\s*\"?(broker,controller|controller,broker)", text)
    assert "KAFKA_CONTROLLER_QUORUM_VOTERS" in text and "CLUSTER_ID" in text
    assert "zookeeper" not in text.lower()
    assert re.search(rf"\"?{PORT}:{PORT}\"?", text), "Envoy must publish the gRPC port"
    assert re.search(r"\"?16686:16686\"?", text), "the Jaeger UI must be published"


def _text_routes(routes_text: str) -> list[tuple[str, str, bool]]:
    """(prefix, cluster, matches a header) for each route, in order, whatever the YAML style."""
    parts = re.split(r"\bprefix:\s*", routes_text)[1:]
    out = []
    for part in parts:
        prefix = re.match(r"[^\s,}]+", part)
        cluster = re.search(r"\bcluster:\s*([\w-]+)", part)
        if prefix and cluster:
            out.append((prefix.group(0), cluster.group(1), bool(re.search(r"\bheaders:", part))))
    return out


def test_text_envoy_routes_lead_to_defined_http2_clusters() -> None:
    text = _strip_comments(ENVOY.read_text())
    head, clusters_text = re.split(r"^\s*clusters:\s*$", text, maxsplit=1, flags=re.M)
    defined = re.findall(r"^\s+- name:\s*([\w-]+)", clusters_text, re.M)
    routes = _text_routes(head)
    routed = {cluster for _, cluster, _ in routes}
    assert set(SERVICES) <= set(defined)
    assert routed <= set(defined), f"routes to undefined clusters: {routed - set(defined)}"
    assert clusters_text.count("typed_extension_protocol_options") == len(defined)
    assert "http2_protocol_options" in clusters_text
    plain = {prefix: cluster for prefix, cluster, header in reversed(routes) if not header}
    for svc, prefix in API.items():
        assert plain.get(prefix) == svc, f"{prefix} does not lead to {svc}"
    assert plain.get(EVENTLOG) == "audit"
    assert sum(header for _, _, header in routes) >= len(SERVICES)
    assert len(re.findall(rf"\b{ROUTE_HEADER}\b", head)) >= len(SERVICES)


def test_doc_says_how_to_run_get_the_token_and_scale() -> None:
    text = DOC.read_text()
    for needle in ("docker compose up --build", "admin-token", "--scale", "16686", "x-modelog-service"):
        assert needle in text, f"infra/compose.md does not mention {needle}"


# ------------------------------------------------------------------------ the Compose CLI, if any


def _compose_cli() -> list[str] | None:
    docker = shutil.which("docker")
    if docker:
        try:
            version = subprocess.run([docker, "compose", "version"], capture_output=True, timeout=30)
        except (OSError, subprocess.TimeoutExpired):
            version = None
        if version is not None and version.returncode == 0:
            return [docker, "compose"]
    legacy = shutil.which("docker-compose")
    return [legacy] if legacy else None


def test_compose_config_validates() -> None:
    cli = _compose_cli()
    if cli is None:
        pytest.skip("neither the `docker compose` plugin nor `docker-compose` is installed")
    done = subprocess.run(
        [*cli, "-f", str(COMPOSE), "config", "-q"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr or done.stdout
