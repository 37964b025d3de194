"""The stock `mlflow` client's artifacts (3.17, from its own venv) against `modelog up`: files of runs
logged, listed, downloaded and deleted through mlflow-artifacts; MLflow 3 logged models logged with
pyfunc and loaded back by model id and by run; concurrent uploads that lose nothing; a large file
streamed both ways; multipart declined so the client falls back; and every form of path traversal
refused before anything is written."""

from __future__ import annotations

import hashlib
import http.client
import json
import os
import socket
import threading
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import grpc
import pytest

from modelog._gen.artifacts.v1 import artifacts_pb2 as apb
from modelog._gen.artifacts.v1 import artifacts_pb2_grpc
from modelog_platform.embedded import free_port
from tests.integration.gatewayfix import Platform, platform
from tests.procs import Up, env_for

__all__ = ["platform"]

ROOT = "/api/2.0/mlflow-artifacts/artifacts"


def raw(
    p: Platform, method: str, path: str, body: Any = None, headers: dict[str, str] | None = None
) -> tuple[int, bytes, dict[str, str]]:
    """One request with the path sent exactly as written (no client normalises or re-encodes it)."""
    url = urlsplit(p.http)
    conn = http.client.HTTPConnection(url.hostname or "127.0.0.1", url.port, timeout=120)
    try:
        conn.request(
            method, path, body=body, headers={"Authorization": f"Bearer {p.token}", **(headers or {})}
        )
        resp = conn.getresponse()
        return resp.status, resp.read(), {k.lower(): v for k, v in resp.getheaders()}
    finally:
        conn.close()


def versions(p: Platform, name: str) -> int:
    """How many versions our Artifacts service holds for `name` (0: none), read over gRPC."""
    with grpc.insecure_channel(p.addr) as ch:
        stub = artifacts_pb2_grpc.ArtifactsStub(ch)
        try:
            got = stub.GetVersion(
                apb.GetVersionRequest(ref=apb.VersionRef(name=name)),
                metadata=[("authorization", f"Bearer {p.token}")],
            )
        except grpc.RpcError as exc:
            if exc.code() == grpc.StatusCode.NOT_FOUND:
                return 0
            raise
        return int(got.version.version)


def entries(p: Platform, name: str) -> dict[str, int]:
    with grpc.insecure_channel(p.addr) as ch:
        stub = artifacts_pb2_grpc.ArtifactsStub(ch)
        got = stub.GetVersion(
            apb.GetVersionRequest(ref=apb.VersionRef(name=name), include_entries=True),
            metadata=[("authorization", f"Bearer {p.token}")],
        )
        return {e.path: e.size for e in got.version.entries}


def run_with_a_file(p: Platform) -> tuple[str, str]:
    out = p.mlflow(
        """
        import json, mlflow
        with mlflow.start_run() as run:
            mlflow.log_text("hello", "notes/hello.txt")
        print(json.dumps({"run": run.info.run_id, "exp": run.info.experiment_id}))
        """
    )
    return out["exp"], out["run"]


def test_run_files_are_logged_listed_downloaded_and_deleted_as_mlflow_does(
    platform: Platform, tmp_path: Path
) -> None:
    src = tmp_path / "src"
    (src / "sub" / "deeper").mkdir(parents=True)
    (src / "a.csv").write_text("x,y\n1,2\n")
    (src / "sub" / "b.bin").write_bytes(bytes(range(256)) * 100)
    (src / "sub" / "deeper" / "c.txt").write_text("deep")
    (src / "empty.txt").write_bytes(b"")
    single = tmp_path / "model.pkl"
    single.write_bytes(os.urandom(3 * 1024 * 1024 + 17))
    out = platform.mlflow(
        f"""
        import json, os, hashlib, mlflow, tempfile
        from mlflow import MlflowClient
        from mlflow.store.artifact.artifact_repository_registry import get_artifact_repository
        c = MlflowClient()
        mlflow.set_experiment("compat-artifacts")
        with mlflow.start_run() as run:
            mlflow.log_artifact({str(single)!r})
            mlflow.log_artifact({str(single)!r}, artifact_path="copies")
            mlflow.log_artifacts({str(src)!r}, artifact_path="data")
            mlflow.log_text("héllo wörld", "notes/hello.txt")
            mlflow.log_dict({{"k": [1, 2, 3]}}, "config/params.json")
            mlflow.log_dict({{"k": "v"}}, "config/params.yaml")
        rid = run.info.run_id
        def ls(path=None):
            return [[f.path, f.is_dir, f.file_size] for f in c.list_artifacts(rid, path)]
        listed = {{"root": ls(), "data": ls("data"), "data/sub": ls("data/sub"),
                   "missing": ls("nope"), "file": ls("data/a.csv")}}
        dst = tempfile.mkdtemp()
        whole = mlflow.artifacts.download_artifacts(run_id=rid, artifact_path="data", dst_path=dst)
        tree = sorted(os.path.relpath(os.path.join(d, f), whole) for d, _, fs in os.walk(whole) for f in fs)
        one = c.download_artifacts(rid, "model.pkl", tempfile.mkdtemp())
        text = mlflow.artifacts.load_text(f"runs:/{{rid}}/notes/hello.txt")
        loaded = mlflow.artifacts.load_dict(f"runs:/{{rid}}/config/params.json")
        yml = mlflow.artifacts.load_text(f"runs:/{{rid}}/config/params.yaml")
        digest = hashlib.sha256(open(one, "rb").read()).hexdigest()
        deep = open(os.path.join(whole, "sub", "deeper", "c.txt")).read()
        repo = get_artifact_repository(run.info.artifact_uri)
        repo.delete_artifacts("copies/model.pkl")
        repo.delete_artifacts("data/sub")
        repo.delete_artifacts("never/there")
        after = {{"root": ls(), "data": ls("data")}}
        print(json.dumps({{"rid": rid, "exp": run.info.experiment_id, "uri": run.info.artifact_uri,
                          "listed": listed, "tree": tree, "digest": digest, "text": text,
                          "loaded": loaded, "yml": yml, "deep": deep, "after": after}}))
        """
    )
    rid = out["rid"]
    assert out["uri"] == f"mlflow-artifacts:/{out['exp']}/{rid}/artifacts"
    size = single.stat().st_size
    assert out["listed"]["root"] == [
        ["config", True, None],
        ["copies", True, None],
        ["data", True, None],
        ["model.pkl", False, size],
        ["notes", True, None],
    ]
    assert out["listed"]["data"] == [
        ["data/a.csv", False, 8],
        ["data/empty.txt", False, 0],
        ["data/sub", True, None],
    ]
    assert out["listed"]["data/sub"] == [["data/sub/b.bin", False, 25600], ["data/sub/deeper", True, None]]
    assert out["listed"]["missing"] == [] and out["listed"]["file"] == []
    assert out["tree"] == ["a.csv", "empty.txt", "sub/b.bin", "sub/deeper/c.txt"]
    assert out["digest"] == hashlib.sha256(single.read_bytes()).hexdigest()
    assert (out["text"], out["loaded"], out["yml"], out["deep"]) == (
        "héllo wörld",
        {"k": [1, 2, 3]},
        "k: v\n",
        "deep",
    )
    assert out["after"]["root"] == [
        ["config", True, None],
        ["data", True, None],
        ["model.pkl", False, size],
        ["notes", True, None],
    ]
    assert out["after"]["data"] == [["data/a.csv", False, 8], ["data/empty.txt", False, 0]]
    # Our side: one artifact for the run, a version per change, the files as its manifest.
    assert versions(platform, f"run-{rid}") == 2 + 4 + 3 + 2  # PUTs, then two effective deletes
    files = entries(platform, f"run-{rid}")
    assert set(files) == {
        "config/params.json",
        "config/params.yaml",
        "data/a.csv",
        "data/empty.txt",
        "model.pkl",
        "notes/hello.txt",
    }
    assert (files["model.pkl"], files["notes/hello.txt"]) == (size, len("héllo wörld".encode()))


def test_downloads_stream_with_length_type_and_ranges(platform: Platform) -> None:
    exp, rid = run_with_a_file(platform)
    status, body, headers = raw(platform, "GET", f"{ROOT}/{exp}/{rid}/artifacts/notes/hello.txt")
    assert (status, body) == (200, b"hello")
    assert headers["content-length"] == "5" and headers["content-type"].startswith("text/plain")
    assert (
        headers["content-disposition"].startswith("attachment")
        and headers["x-content-type-options"] == "nosniff"
    )
    status, body, headers = raw(
        platform, "GET", f"{ROOT}/{exp}/{rid}/artifacts/notes/hello.txt", headers={"Range": "bytes=1-3"}
    )
    assert (status, body, headers["content-range"]) == (206, b"ell", "bytes 1-3/5")
    status, body, headers = raw(platform, "HEAD", f"{ROOT}/{exp}/{rid}/artifacts/notes/hello.txt")
    assert (status, body, headers["content-length"]) == (200, b"", "5")
    status, body, _ = raw(platform, "GET", f"{ROOT}/{exp}/{rid}/artifacts/notes/missing.txt")
    assert status == 404 and json.loads(body)["error_code"] == "RESOURCE_DOES_NOT_EXIST"
    status, body, _ = raw(platform, "GET", f"{ROOT}/{exp}/{rid}/artifacts/notes")
    assert status == 400 and json.loads(body)["error_code"] == "INVALID_PARAMETER_VALUE"
    status, body, _ = raw(platform, "GET", f"{ROOT}?path={exp}/{rid}/artifacts")
    assert json.loads(body) == {"files": [{"path": "notes", "is_dir": True}]}
    status, body, _ = raw(platform, "GET", f"{ROOT}?path={exp}/{rid}/artifacts/notes/")
    assert json.loads(body) == {"files": [{"path": "hello.txt", "is_dir": False, "file_size": 5}]}
    # The tracking API's own listing names paths from the run's root.
    status, body, _ = raw(platform, "GET", f"/api/2.0/mlflow/artifacts/list?run_id={rid}&path=notes")
    assert json.loads(body) == {
        "root_uri": f"mlflow-artifacts:/{exp}/{rid}/artifacts",
        "files": [{"path": "notes/hello.txt", "is_dir": False, "file_size": 5}],
    }
    status, body, _ = raw(platform, "GET", f"/api/2.0/mlflow/artifacts/list?run_id={rid}&path=../..")
    assert status == 400 and json.loads(body)["error_code"] == "INVALID_PARAMETER_VALUE"
    # A PUT to a run that does not exist, or under another experiment, writes nothing.
    status, body, _ = raw(platform, "PUT", f"{ROOT}/{exp}/{'f' * 32}/artifacts/x.txt", b"x")
    assert status == 404, body
    status, body, _ = raw(platform, "PUT", f"{ROOT}/999999/{rid}/artifacts/x.txt", b"x")
    assert status == 404, body
    status, body, _ = raw(platform, "GET", f"{ROOT}/{exp}/{rid}/artifacts/x.txt")
    assert status == 404
    # delete_artifacts() with no path names the root with a trailing slash: everything goes.
    status, body, _ = raw(platform, "DELETE", f"{ROOT}/{exp}/{rid}/artifacts/")
    assert status == 200, body
    assert entries(platform, f"run-{rid}") == {}


TRAVERSALS = [
    "../../../etc/passwd",
    "notes/../../x.txt",
    "./../x.txt",
    "%2e%2e/%2e%2e/x.txt",
    "%2E%2E/x.txt",
    "..%2fx.txt",
    "notes%2f..%2f..%2fx.txt",
    "%252e%252e/x.txt",
    "%25252e%25252e/x.txt",
    "..%252fx.txt",
    "..\\..\\x.txt",
    "notes%5c..%5cx.txt",
    "notes/%00x.txt",
    "notes//x.txt",
    "/etc/passwd",
    "%2fetc%2fpasswd",
    "C:/x.txt",
    "notes/x.txt%00.png",
]


def test_every_form_of_path_traversal_is_refused_and_nothing_is_written(platform: Platform) -> None:
    exp, rid = run_with_a_file(platform)
    name = f"run-{rid}"
    before = versions(platform, name)
    assert before == 1
    base = f"{ROOT}/{exp}/{rid}/artifacts/"
    refused: list[tuple[str, str, int, str]] = []
    for attempt in TRAVERSALS:
        for method, body in (("PUT", b"pwned"), ("GET", None), ("DELETE", None)):
            status, text, _ = raw(platform, method, base + attempt, body)
            code = json.loads(text).get("error_code", "") if text.startswith(b"{") else text[:80].decode()
            refused.append((method, attempt, status, code))
        # The same path in the parts of the URL above the run's root, and in multipart and listing.
        for path in (
            f"{ROOT}/{exp}/{attempt}",
            f"/api/2.0/mlflow-artifacts/mpu/create/{exp}/{rid}/artifacts/{attempt}",
        ):
            method = "POST" if "/mpu/" in path else "PUT"
            status, text, _ = raw(platform, method, path, b"{}" if method == "POST" else b"pwned")
            code = json.loads(text).get("error_code", "") if text.startswith(b"{") else text[:80].decode()
            refused.append((method, path, status, code))
        status, text, _ = raw(platform, "GET", f"{ROOT}?path={exp}/{rid}/artifacts/{attempt}")
        code = json.loads(text).get("error_code", "") if text.startswith(b"{") else text[:80].decode()
        refused.append(("LIST", attempt, status, code))
    wrong = [r for r in refused if (r[2], r[3]) != (400, "INVALID_PARAMETER_VALUE")]
    assert not wrong, wrong
    assert versions(platform, name) == before
    assert entries(platform, name) == {"notes/hello.txt": 5}
    # Names that merely hold a '%' or a dot are files like any other.
    for ok in ("100%25.csv", "a%20b.txt", "v1..2.txt", ".hidden", "./dot/./x.txt"):
        status, text, _ = raw(platform, "PUT", base + ok, b"fine")
        assert status == 200, (ok, text)
    # A "." segment means where it stands (MLflow's validate_path_is_safe allows it).
    assert set(entries(platform, name)) == {
        "notes/hello.txt",
        "100%.csv",
        "a b.txt",
        "v1..2.txt",
        ".hidden",
        "dot/x.txt",
    }


def test_concurrent_uploads_to_one_run_lose_no_file(platform: Platform) -> None:
    exp, rid = run_with_a_file(platform)
    errors: list[Any] = []

    def put(i: int) -> None:
        status, text, _ = raw(
            platform, "PUT", f"{ROOT}/{exp}/{rid}/artifacts/par/f{i}.txt", f"file {i}".encode()
        )
        if status != 200:
            errors.append((i, status, text))

    threads = [threading.Thread(target=put, args=(i,)) for i in range(24)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert set(entries(platform, f"run-{rid}")) == {"notes/hello.txt", *(f"par/f{i}.txt" for i in range(24))}


def test_two_gateways_writing_one_run_concurrently_lose_no_file(platform: Platform, tmp_path: Path) -> None:
    """Across processes only the commits' idempotency keys order the writers (no shared lock)."""
    exp, rid = run_with_a_file(platform)
    port = free_port()
    env = env_for(
        tmp_path / "second", platform.addr, MODELOG_URL=platform.addr, MODELOG_HTTP_ADDR=f"127.0.0.1:{port}"
    )
    second = Up(env, ("serve", "http"))
    try:
        second.wait_for("modelog http ready on", 60)
        other = Platform(platform.addr, f"http://127.0.0.1:{port}", platform.home, platform.token)
        errors: list[Any] = []

        def put(i: int) -> None:
            via = other if i % 2 else platform
            status, text, _ = raw(
                via, "PUT", f"{ROOT}/{exp}/{rid}/artifacts/two/f{i}.txt", f"file {i}".encode()
            )
            if status != 200:
                errors.append((i, status, text))

        threads = [threading.Thread(target=put, args=(i,)) for i in range(16)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    finally:
        second.stop()
    assert not errors
    assert set(entries(platform, f"run-{rid}")) == {"notes/hello.txt", *(f"two/f{i}.txt" for i in range(16))}
    assert versions(platform, f"run-{rid}") == 1 + 16


def test_a_large_file_streams_through_put_and_get(platform: Platform, tmp_path: Path) -> None:
    exp, rid = run_with_a_file(platform)
    size = 200 * 1024 * 1024 + 12345
    path = tmp_path / "big.bin"
    digest = hashlib.sha256()
    block = os.urandom(1 << 20)
    with path.open("wb") as f:
        written = 0
        i = 0
        while written < size:
            part = (block[:-8] + i.to_bytes(8, "big"))[: size - written]
            f.write(part)
            digest.update(part)
            written += len(part)
            i += 1
    url = f"{ROOT}/{exp}/{rid}/artifacts/weights/big.bin"
    with path.open("rb") as f:
        status, text, _ = raw(platform, "PUT", url, f, {"Content-Length": str(size)})
    assert status == 200, text
    assert entries(platform, f"run-{rid}")["weights/big.bin"] == size
    parsed = urlsplit(platform.http)
    conn = http.client.HTTPConnection(parsed.hostname or "", parsed.port, timeout=120)
    conn.request("GET", url, headers={"Authorization": f"Bearer {platform.token}"})
    resp = conn.getresponse()
    assert resp.status == 200 and resp.getheader("Content-Length") == str(size)
    got = hashlib.sha256()
    n = 0
    while chunk := resp.read(1 << 20):
        got.update(chunk)
        n += len(chunk)
    conn.close()
    assert (n, got.hexdigest()) == (size, digest.hexdigest())
    # A chunked body (no Content-Length: what `requests` sends for an empty file) is stored too.
    pieces = [os.urandom(300_000) for _ in range(12)]
    status, text, _ = raw(platform, "PUT", f"{ROOT}/{exp}/{rid}/artifacts/chunked.bin", iter(pieces))
    assert status == 200, text
    status, body, _ = raw(platform, "GET", f"{ROOT}/{exp}/{rid}/artifacts/chunked.bin")
    assert (status, body) == (200, b"".join(pieces))
    # A client that goes away before its body is complete commits nothing.
    parsed = urlsplit(platform.http)
    with socket.create_connection((parsed.hostname or "", parsed.port or 80), timeout=30) as sock:
        head = (
            f"PUT {ROOT}/{exp}/{rid}/artifacts/short.bin HTTP/1.1\r\nHost: {parsed.netloc}\r\n"
            f"Authorization: Bearer {platform.token}\r\nContent-Length: {5 << 20}\r\n\r\n"
        )
        sock.sendall(head.encode() + os.urandom(2 << 20))
    status, text, _ = raw(platform, "PUT", f"{ROOT}/{exp}/{rid}/artifacts/after.bin", b"after")
    assert status == 200, text
    assert "short.bin" not in entries(platform, f"run-{rid}")


def test_multipart_is_declined_and_the_client_falls_back_to_one_put(
    platform: Platform, tmp_path: Path
) -> None:
    status, body, _ = raw(platform, "GET", "/api/3.0/mlflow/server-info")
    info = json.loads(body)
    assert (
        status == 200 and info["multipart_uploads_enabled"] is False and info["workspaces_enabled"] is False
    )
    exp, rid = run_with_a_file(platform)
    status, body, _ = raw(
        platform,
        "POST",
        f"/api/2.0/mlflow-artifacts/mpu/create/{exp}/{rid}/artifacts",
        json.dumps({"path": "x.bin", "num_parts": 2}).encode(),
        {"Content-Type": "application/json"},
    )
    assert status == 501
    assert json.loads(body)["message"].startswith(
        "Multipart upload is not supported for the current artifact repository"
    )
    blob = tmp_path / "forced.bin"
    blob.write_bytes(os.urandom(2 * 1024 * 1024))
    out = platform.mlflow(
        f"""
        import json, mlflow
        from mlflow import MlflowClient
        c = MlflowClient()
        c.log_artifact({rid!r}, {str(blob)!r})
        print(json.dumps({{"files": [f.path for f in c.list_artifacts({rid!r})]}}))
        """,
        MLFLOW_ENABLE_PROXY_MULTIPART_UPLOAD="true",
        MLFLOW_MULTIPART_UPLOAD_MINIMUM_FILE_SIZE="1",
        MLFLOW_MULTIPART_UPLOAD_CHUNK_SIZE=str(1024 * 1024),
    )
    assert "forced.bin" in out["files"]
    assert entries(platform, f"run-{rid}")["forced.bin"] == 2 * 1024 * 1024


def test_pyfunc_models_are_logged_found_and_loaded_by_model_id_and_by_run(platform: Platform) -> None:
    out = platform.mlflow(
        """
        import json, mlflow
        import mlflow.pyfunc
        from mlflow import MlflowClient
        from mlflow.exceptions import MlflowException

        class AddN(mlflow.pyfunc.PythonModel):
            def __init__(self, n):
                self.n = n
            def predict(self, context, model_input, params=None):
                return [x + self.n for x in model_input]

        c = MlflowClient()
        mlflow.set_experiment("compat-logged-models")
        with mlflow.start_run() as run:
            mlflow.log_param("n", 5)
            info = mlflow.pyfunc.log_model(name="model", python_model=AddN(5), pip_requirements=[])
            other = mlflow.pyfunc.log_model(name="other", python_model=AddN(1), pip_requirements=[])
        mid = info.model_id
        by_id = mlflow.pyfunc.load_model(f"models:/{mid}").predict([1, 2])
        by_run = mlflow.pyfunc.load_model(f"runs:/{run.info.run_id}/model").predict([1, 2])
        m = c.get_logged_model(mid)
        exps = [run.info.experiment_id]
        found = c.search_logged_models(experiment_ids=exps, filter_string="name = 'model'")
        every = c.search_logged_models(experiment_ids=[run.info.experiment_id])
        c.set_logged_model_tags(mid, {"stage": "candidate", "team": "risk"})
        c.delete_logged_model_tag(mid, "team")
        tagged = c.get_logged_model(mid).tags
        files = sorted(f.path for f in mlflow.artifacts.list_artifacts(f"models:/{mid}"))
        c.delete_logged_model(other.model_id)
        try:
            c.get_logged_model(other.model_id)
            gone = None
        except MlflowException as e:
            gone = e.error_code
        after = [x.name for x in c.search_logged_models(experiment_ids=[run.info.experiment_id])]
        many = c.create_logged_model(run.info.experiment_id, name="many",
                                     params={f"p{i}": str(i) for i in range(150)})
        c.finalize_logged_model(many.model_id, "READY")
        many = c.get_logged_model(many.model_id)
        outputs = sorted((o.model_id, o.step) for o in c.get_run(run.info.run_id).outputs.model_outputs)
        run_tags = c.get_run(run.info.run_id).data.tags
        try:
            c.set_tag(run.info.run_id, "modelog.mlflow.outputs", "[]")
            reserved = None
        except MlflowException as e:
            reserved = e.error_code
        print(json.dumps({
            "outputs": outputs, "reserved": reserved,
            "hidden": not any(k.startswith("modelog.") for k in run_tags),
            "mid": mid, "rid": run.info.run_id, "exp": run.info.experiment_id, "other": other.model_id,
            "by_id": list(by_id), "by_run": list(by_run),
            "name": m.name, "status": str(m.status), "source_run_id": m.source_run_id,
            "artifact_location": m.artifact_location, "params": m.params,
            "found": [x.model_id for x in found], "every": sorted(x.name for x in every),
            "tagged": {k: v for k, v in tagged.items() if not k.startswith("mlflow.")},
            "files": files, "gone": gone, "after": after,
            "many": [len(many.params), str(many.status)],
        }))
        """,
        timeout=300,
    )
    mid = out["mid"]
    assert out["by_id"] == [6, 7] and out["by_run"] == [6, 7]
    assert (out["name"], out["status"], out["source_run_id"]) == ("model", "READY", out["rid"])
    assert out["artifact_location"] == f"mlflow-artifacts:/{out['exp']}/models/{mid}/artifacts"
    assert out["params"]["n"] == "5"
    assert out["found"] == [mid] and out["every"] == ["model", "other"]
    assert out["tagged"] == {"stage": "candidate"}
    assert {"MLmodel", "python_model.pkl"} <= set(out["files"])
    assert out["gone"] == "RESOURCE_DOES_NOT_EXIST" and out["after"] == ["model"]
    assert out["many"] == [150, "READY"]  # the first 100 params in the create, the rest in batches
    # runs/get names the models the run output (MLflow 3's Run.outputs), kept as a reserved run tag.
    assert out["outputs"] == sorted([[mid, 0], [out["other"], 0]]) and out["hidden"]
    assert out["reserved"] == "INVALID_PARAMETER_VALUE"
    files = entries(platform, f"model-{mid}")
    assert "logged-model.json" in files and "artifacts/MLmodel" in files


def test_logged_model_requests_with_unknown_ids_or_values_are_refused(platform: Platform) -> None:
    status, body, _ = raw(platform, "GET", "/api/2.0/mlflow/logged-models/m-0123456789abcdef0123456789abcdef")
    assert status == 404 and json.loads(body)["error_code"] == "RESOURCE_DOES_NOT_EXIST"
    status, body, _ = raw(
        platform,
        "POST",
        "/api/2.0/mlflow/logged-models",
        json.dumps({"experiment_id": "424242", "name": "x"}).encode(),
        {"Content-Type": "application/json"},
    )
    assert status == 404, body
    status, body, _ = raw(
        platform,
        "PATCH",
        "/api/2.0/mlflow/logged-models/m-0123456789abcdef0123456789abcdef",
        json.dumps({"status": "LOGGED_MODEL_READY"}).encode(),
        {"Content-Type": "application/json"},
    )
    assert status == 404, body
    # A PUT under a logged model that does not exist stores nothing anywhere.
    status, body, _ = raw(platform, "PUT", f"{ROOT}/0/models/m-{'0' * 32}/artifacts/MLmodel", b"x")
    assert status == 404, body
    assert versions(platform, f"model-m-{'0' * 32}") == 0


@pytest.mark.parametrize("path", ["0", "0/abc", "0/abc/artifacts", "0/models/m-1/artifacts"])
def test_listing_what_holds_nothing_is_empty(platform: Platform, path: str) -> None:
    status, body, _ = raw(platform, "GET", f"{ROOT}?path={path}")
    assert (status, json.loads(body)) == (200, {})
