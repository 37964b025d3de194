"""MLflow's proxied artifacts (`mlflow-artifacts:/...`) as calls to our Artifacts service: the HTTP
routes. Paths are checked by `paths` before anything else; files are read and changed by `files`.

Multipart is not offered: server-info says so, and mpu/create answers with the message the client
takes for "use one PUT". One PUT already streams in constant memory here, at any size.
"""

from __future__ import annotations

import contextlib
import json
import mimetypes
import re
from collections.abc import Mapping
from typing import Any
from urllib.parse import quote

from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import BaseRoute, Route

from eventlog.errors import InvalidArgument, ModelogError, NotFound
from modelog._gen.artifacts.v1 import artifacts_pb2 as apb
from modelog._gen.tracking.v1 import tracking_pb2 as tpb
from modelog._gen.tracking.v1 import tracking_pb2_grpc
from modelog.shared.artifacts.manifest import path_problem
from modelog_services.gateway.errors import mlflow_error
from modelog_services.gateway.http import caller
from modelog_services.gateway.mlflow import serverpaths
from modelog_services.gateway.mlflow.common import Body, Call, route
from modelog_services.gateway.mlflow.files import Entries, Files, Target, entry
from modelog_services.gateway.mlflow.paths import MODEL_FILES, Where, raw_tail, safe_path, where
from modelog_services.gateway.mlflow.trackingjson import Experiments
from modelog_services.gateway.upstream import Caller, Upstream

__all__ = ["MODEL_FILES", "Entries", "Files", "MlflowArtifacts", "Target", "entry", "routes"]

ARTIFACTS = "/api/2.0/mlflow-artifacts/artifacts"
MPU = "/api/2.0/mlflow-artifacts/mpu"
CACHED_RUNS = 10_000
NO_MULTIPART = "Multipart upload is not supported for the current artifact repository"
"""The stock client's _UnsupportedMultipartUploadException.MESSAGE: an error starting with it makes
the client fall back to one PUT."""


def _json(body: dict[str, Any], status: int = 200) -> Response:
    return Response(json.dumps(body, separators=(",", ":")), status, media_type="application/json")


def _content_type(path: str) -> str:
    guessed, _ = mimetypes.guess_type(path)
    return guessed or "application/octet-stream"


def _byte_range(header: str | None, size: int) -> tuple[int, int] | None:
    """(offset, length) of a single `bytes=a-b` range; None for the whole file."""
    m = re.fullmatch(r"bytes=(\d*)-(\d*)", (header or "").strip())
    if m is None or (not m.group(1) and not m.group(2)):
        return None
    if m.group(1):
        start = int(m.group(1))
        end = min(int(m.group(2)), size - 1) if m.group(2) else size - 1
    else:
        start, end = max(0, size - int(m.group(2))), size - 1
    if start >= size or end < start:
        raise InvalidArgument.field("Range", f"{header!r} is outside the {size}-byte file")
    return start, end - start + 1


class MlflowArtifacts:
    def __init__(self, upstream: Upstream) -> None:
        self.upstream = upstream
        self.files = Files(upstream)
        self.tracking = upstream.stub(tracking_pb2_grpc.TrackingStub)
        self.ids = Experiments()
        self.runs: dict[str, tuple[str, str]] = {}
        """run id -> (experiment id, project): facts that never change, kept to spare two calls a PUT."""

    async def file(self, request: Request) -> Response:
        try:
            path, tail = request.path_params["path"], raw_tail(request, ARTIFACTS + "/")
            if request.method != "PUT" and path.endswith("/") and tail.endswith("/"):
                path, tail = path[:-1], tail[:-1]  # the client's delete_artifacts() of a whole root
            path = safe_path(path, raw=tail)
            who = caller(request)
            if request.method == "PUT":
                return await self._put(request, who, path)
            if request.method == "DELETE":
                return await self._delete(request, who, path)
            return await self._get(request, who, path)
        except ModelogError as err:
            return mlflow_error(err)

    async def listing(self, request: Request) -> Response:
        try:
            text = request.query_params.get("path", "")
            text = text[:-1] if text.endswith("/") else text
            if text:
                text = safe_path(text)
            who = caller(request)
            loc = where(text) if text else None
            snapshot = await self.files.version(who, loc.name) if loc is not None else None
            if loc is None or snapshot is None:
                return _json({})
            return _json(_children(snapshot.entries, loc.key))
        except ModelogError as err:
            return mlflow_error(err)

    async def multipart(self, request: Request) -> Response:
        try:
            safe_path(
                request.path_params["path"], raw=raw_tail(request, f"{MPU}/{request.path_params['action']}/")
            )
            caller(request)
        except ModelogError as err:
            return mlflow_error(err)
        return _json(
            {
                "error_code": "NOT_IMPLEMENTED",
                "message": f"{NO_MULTIPART}: Modelog streams a single PUT of any size in constant memory",
            },
            501,
        )

    async def run_listing(self, call: Call) -> Body:
        """artifacts/list, the tracking API's listing (the Java and R clients use it): paths relative
        to the run's artifact root, not to the listed directory."""
        run_id = call.text("run_id") or call.text("run_uuid", required=True)
        shown = call.text("path").rstrip("/")  # "./dir" comes back as "./dir/file", as MLflow answers
        path = safe_path(shown) if shown else ""
        await self.ids.default(call)
        run = await call(self.tracking.GetRun, tpb.GetRunRequest(run_id=run_id))
        out: Body = {
            "root_uri": f"mlflow-artifacts:/{self.ids.theirs(run.run.info.experiment_id)}/{run_id}/artifacts"
        }
        snapshot = await self.files.version(call.caller, f"run-{run_id}")
        if snapshot is not None:
            listed = _children(snapshot.entries, path).get("files", [])
            if listed:
                out["files"] = [{**f, "path": f"{shown}/{f['path']}" if shown else f["path"]} for f in listed]
        return out

    async def _target(self, request: Request, who: Caller, loc: Where) -> Target:
        if loc.model_id:
            return Target(loc.name, "model", create=False)
        call = Call(request, {}, who, self.upstream, b"")
        known = self.runs.get(loc.run_id)
        if known is None:
            run = await call(self.tracking.GetRun, tpb.GetRunRequest(run_id=loc.run_id))
            eid = run.run.info.experiment_id
            exp = await call(self.tracking.GetExperiment, tpb.GetExperimentRequest(experiment_id=eid))
            known = (eid, exp.experiment.project)
            if len(self.runs) >= CACHED_RUNS:
                self.runs.pop(next(iter(self.runs)))
            self.runs[loc.run_id] = known
        if await self.ids.ours(call, loc.experiment_id) != known[0]:
            raise NotFound(f"run {loc.run_id} is not in experiment {loc.experiment_id}")
        return Target(loc.name, "other", run_id=loc.run_id, project=known[1])

    async def _put(self, request: Request, who: Caller, path: str) -> Response:
        loc = where(path)
        if loc is None or not loc.rel:
            raise InvalidArgument.field(
                "path",
                f"{path!r} is not a file of a run (<experiment_id>/<run_id>/artifacts/<path>) or of a "
                "logged model (<experiment_id>/models/<model_id>/artifacts/<path>)",
            )
        why = path_problem(loc.key)
        if why:
            raise InvalidArgument.field("path", f"artifact path {loc.rel!r} {why}")
        length = request.headers.get("content-length")
        target = await self._target(request, who, loc)
        try:
            digest, size = await self.files.upload(
                who, request.stream(), int(length) if length and length.isdigit() else None
            )
        except ClientDisconnect:
            return _json({"error_code": "CANCELLED", "message": "the client went away mid-upload"}, 499)

        async def add(entries: Entries) -> Entries:
            if any(p.startswith(loc.key + "/") for p in entries):
                raise InvalidArgument.field("path", f"{loc.rel!r} is a directory of {loc.describe()}")
            entries[loc.key] = entry(loc.key, digest, size)
            return entries

        await self.files.change(who, target, add, f"MLflow: PUT {loc.rel}")
        return _json({})

    async def _delete(self, request: Request, who: Caller, path: str) -> Response:
        loc = where(path)
        if loc is None:
            raise InvalidArgument.field("path", f"{path!r} is not under a run's or logged model's artifacts")
        root = MODEL_FILES if loc.model_id else ""

        async def remove(entries: Entries) -> Entries:
            if not loc.rel:
                return {p: e for p, e in entries.items() if not p.startswith(root)}
            return {p: e for p, e in entries.items() if p != loc.key and not p.startswith(loc.key + "/")}

        target = Target(loc.name, "model" if loc.model_id else "other", run_id=loc.run_id, create=False)
        with contextlib.suppress(NotFound):  # nothing there: nothing to delete, as in MLflow
            await self.files.change(who, target, remove, f"MLflow: DELETE {loc.rel or '(all files)'}")
        return _json({})

    async def _get(self, request: Request, who: Caller, path: str) -> Response:
        loc = where(path)
        snapshot = await self.files.version(who, loc.name) if loc is not None and loc.rel else None
        if loc is None or snapshot is None:
            raise NotFound(f"no artifact at {path!r}")
        found = snapshot.entries.get(loc.key)
        if found is None:
            if any(p.startswith(loc.key + "/") for p in snapshot.entries):
                raise InvalidArgument.field("path", f"{loc.rel!r} is a directory, not a file")
            raise NotFound(f"{loc.describe()} has no artifact {loc.rel!r}")
        size = int(found.size)
        rng = _byte_range(request.headers.get("range"), size) if size else None
        offset, length = rng if rng is not None else (0, size)
        name = loc.rel.rsplit("/", 1)[-1]
        headers = {
            "Content-Length": str(length),
            "Accept-Ranges": "bytes",
            # Attachment, no sniffing, no scripts: a logged HTML file must not run on our origin.
            "Content-Disposition": f"attachment; filename*=UTF-8''{quote(name)}",
            "X-Content-Type-Options": "nosniff",
            "Content-Security-Policy": "default-src 'none'; sandbox",
            "ETag": f'"{found.digest}"',
        }
        status = 200
        if rng is not None:
            status = 206
            headers["Content-Range"] = f"bytes {offset}-{offset + length - 1}/{size}"
        if request.method == "HEAD":
            return Response(b"", status, headers=headers, media_type=_content_type(name))
        body = await self.files.read(who, found.digest, offset, length if rng is not None else 0)
        return StreamingResponse(body, status, headers=headers, media_type=_content_type(name))


def _children(entries: Mapping[str, apb.ManifestEntry], key: str) -> dict[str, Any]:
    """The files and directories right under `key`, named relative to it (as MLflow's server names
    them: the client joins them to the path it asked for)."""
    prefix = key + "/" if key else ""
    files: dict[str, int] = {}
    dirs: set[str] = set()
    for path, e in entries.items():
        if not path.startswith(prefix):
            continue
        head, sep, _ = path[len(prefix) :].partition("/")
        if sep:
            dirs.add(head)
        else:
            files[head] = int(e.size)
    listed = [{"path": n, "is_dir": False, "file_size": s} for n, s in files.items()]
    listed += [{"path": d, "is_dir": True} for d in dirs]
    return {"files": sorted(listed, key=lambda f: str(f["path"]))} if listed else {}


SERVER_INFO: dict[str, Any] = {
    "store_type": None,
    "workspaces_enabled": False,
    "trace_archival_enabled": False,
    "multipart_uploads_enabled": False,
    "multipart_downloads_enabled": False,
    "presigned_upload_run_id_supported": False,
    "presigned_upload_model_id_supported": False,
    "features_enabled": {"gateway": False},
}
"""What `mlflow.utils.server_info` reads: multipart off (see mpu above), so the client PUTs and GETs
each file in one streamed request; no workspaces. Served without credentials, like MLflow's: it holds
nothing about anyone."""


async def _server_info(request: Request) -> Response:
    return _json(SERVER_INFO)


def routes(upstream: Upstream) -> list[BaseRoute]:
    a = MlflowArtifacts(upstream)
    out: list[BaseRoute] = [
        Route(ARTIFACTS, a.listing, methods=["GET"]),
        Route(ARTIFACTS + "/{path:path}", a.file, methods=["GET", "PUT", "DELETE"]),
        Route(MPU + "/{action:str}/{path:path}", a.multipart, methods=["POST"]),
        *route(upstream, "/artifacts/list", ["GET"], a.run_listing),
    ]
    for prefix in ("/api/3.0/mlflow", "/ajax-api/3.0/mlflow"):
        for name in ("server-info", "server-features"):
            out.append(Route(f"{prefix}/{name}", _server_info, methods=["GET"]))
    out.extend(serverpaths.routes())
    return out
