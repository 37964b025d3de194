"""An MLflow tracking server read through its REST API (what every MLflow from 2.9 on serves).

Only documented REST routes are used, so any backend store works behind it (SQLite, PostgreSQL,
MySQL, Databricks-style proxies). Files come through the server too (`/get-artifact`, the logged
models' artifact routes), so artifact stores the importer cannot reach itself (S3 behind the server's
credentials) still import. MLflow keeps no history of stage changes: a version's current stage is
imported as one transition at its last update time, by its user.
"""

from __future__ import annotations

import os
import random
import threading
import time
from collections.abc import Iterator
from typing import Any, BinaryIO, cast

import requests

from modelog.importers.source import Dataset, Experiment, File, Model, Run, Series, SourceError, Version

PAGE = 1000
HISTORY_PAGE = 25_000  # MLflow's largest get-history page
RETRIES = (0.2, 0.5, 1.0, 2.0, 4.0, 8.0)
_TRANSIENT = {429, 500, 502, 503, 504}


class MlflowSource:
    """Reads one MLflow server; safe to use from several threads (one HTTP session per thread)."""

    def __init__(self, url: str, *, token: str | None = None, timeout: float = 60.0) -> None:
        self.url = url.rstrip("/")
        if not self.url.startswith(("http://", "https://")):
            raise SourceError(f"--from must be an http(s) URL of an MLflow server, not {url!r}")
        self.label = f"mlflow:{self.url}"
        self.timeout = timeout
        self.token = token if token is not None else os.environ.get("MLFLOW_TRACKING_TOKEN")
        user, password = (
            os.environ.get("MLFLOW_TRACKING_USERNAME"),
            os.environ.get("MLFLOW_TRACKING_PASSWORD"),
        )
        self.auth = (user, password) if user and password and not self.token else None
        self._local = threading.local()

    # ------------------------------------------------------------------ http

    def _session(self) -> requests.Session:
        s: requests.Session | None = getattr(self._local, "session", None)
        if s is None:
            s = requests.Session()
            if self.token:
                s.headers["Authorization"] = f"Bearer {self.token}"
            if self.auth:
                s.auth = self.auth
            self._local.session = s
        return s

    def _request(self, method: str, path: str, *, stream: bool = False, **kw: Any) -> requests.Response:
        url = f"{self.url}{path}"
        for delay in (*RETRIES, None):
            try:
                r = self._session().request(method, url, timeout=self.timeout, stream=stream, **kw)
            except requests.RequestException as exc:
                if delay is None:
                    raise SourceError(f"MLflow server {self.url} unreachable: {exc}") from None
                time.sleep(delay * (1 + random.random() / 4))
                continue
            if r.status_code in _TRANSIENT and delay is not None:
                r.close()
                time.sleep(delay * (1 + random.random() / 4))
                continue
            if r.status_code in (401, 403):
                raise SourceError(
                    f"MLflow server {self.url} refused the credentials ({r.status_code}): set "
                    "MLFLOW_TRACKING_TOKEN, or MLFLOW_TRACKING_USERNAME and MLFLOW_TRACKING_PASSWORD"
                )
            if r.status_code >= 400:
                raise SourceError(f"MLflow {method} {path} answered {r.status_code}: {r.text[:300]}")
            return r
        raise AssertionError("unreachable")  # pragma: no cover

    def _json(self, method: str, path: str, **kw: Any) -> dict[str, Any]:
        r = self._request(method, f"/api/2.0/mlflow/{path}", **kw)
        try:
            return cast(dict[str, Any], r.json())
        except ValueError:
            raise SourceError(f"MLflow {path} did not answer JSON: is {self.url} an MLflow server?") from None

    def _pages(self, method: str, path: str, field: str, body: dict[str, Any]) -> Iterator[dict[str, Any]]:
        token = ""
        while True:
            args = {**body, **({"page_token": token} if token else {})}
            got = self._json(method, path, **({"json": args} if method == "POST" else {"params": args}))
            yield from got.get(field, [])
            token = got.get("next_page_token", "")
            if not token:
                return

    def check(self) -> str:
        """Reach the server once (a clear error now rather than mid-import); its version if it says."""
        self._json("POST", "experiments/search", json={"max_results": 1})
        try:
            return self._request("GET", "/version").text.strip()[:40]
        except SourceError:
            return ""

    # ------------------------------------------------------------------ tracking

    def experiments(self) -> Iterator[Experiment]:
        for e in self._pages(
            "POST", "experiments/search", "experiments", {"max_results": PAGE, "view_type": "ALL"}
        ):
            tags = _kv(e.get("tags"))
            yield Experiment(
                source_id=str(e["experiment_id"]),
                name=e["name"],
                tags={k: v for k, v in tags.items() if k != "mlflow.note.content"},
                description=tags.get("mlflow.note.content", ""),
                deleted=e.get("lifecycle_stage") == "deleted",
                created_ms=_int(e.get("creation_time")),
            )

    def runs(self, experiment: Experiment) -> Iterator[Run]:
        body = {
            "experiment_ids": [experiment.source_id],
            "max_results": PAGE,
            "run_view_type": "ALL",
            "order_by": ["attributes.start_time ASC", "attributes.run_id ASC"],
        }
        for r in self._pages("POST", "runs/search", "runs", body):
            info, data = r["info"], r.get("data", {})
            tags = _kv(data.get("tags"))
            datasets = []
            for di in r.get("inputs", {}).get("dataset_inputs", []):
                ds = di.get("dataset", {})
                input_tags = _kv(di.get("tags"))
                context = input_tags.pop("mlflow.data.context", "")
                datasets.append(
                    Dataset(
                        name=ds.get("name", ""),
                        digest=ds.get("digest", ""),
                        source_type=ds.get("source_type", ""),
                        source=ds.get("source", ""),
                        context=context,
                        schema=ds.get("schema", ""),
                        profile=ds.get("profile", ""),
                        tags=input_tags,
                    )
                )
            yield Run(
                source_id=info["run_id"],
                experiment_id=str(info["experiment_id"]),
                name=info.get("run_name", "") or tags.get("mlflow.runName", ""),
                status=info.get("status", "FINISHED"),
                start_ms=_int(info.get("start_time")) or 0,
                end_ms=_int(info.get("end_time")),
                user=info.get("user_id", "") or tags.get("mlflow.user", ""),
                params=_kv(data.get("params")),
                tags=tags,
                datasets=tuple(datasets),
                metric_keys=tuple(sorted({m["key"] for m in data.get("metrics", [])})),
                parent_id=tags.get("mlflow.parentRunId", ""),
                deleted=info.get("lifecycle_stage") == "deleted",
            )

    def history(self, run: Run, key: str) -> Series:
        values: list[float] = []
        steps: list[int] = []
        stamps: list[int] = []
        body = {"run_id": run.source_id, "metric_key": key, "max_results": HISTORY_PAGE}
        for m in self._pages("GET", "metrics/get-history", "metrics", body):
            values.append(_float(m.get("value", 0.0)))
            steps.append(int(m.get("step", 0)))
            stamps.append(int(m.get("timestamp", 0)))
        return Series(key, values, steps, stamps)

    def _listing(self, path: str, params: dict[str, str], under: str = "") -> Iterator[File]:
        got = self._json("GET", path, params={**params, **({"path": under} if under else {})})
        for f in got.get("files", []):
            if f.get("is_dir"):
                yield from self._listing(path, params, f["path"])
            else:
                yield File(f["path"], _int(f.get("file_size")))

    def files(self, run: Run) -> Iterator[File]:
        return self._listing("artifacts/list", {"run_id": run.source_id})

    def open(self, run: Run, path: str) -> BinaryIO:
        r = self._request(
            "GET", "/get-artifact", params={"path": path, "run_uuid": run.source_id}, stream=True
        )
        r.raw.decode_content = True
        return cast(BinaryIO, r.raw)

    # ------------------------------------------------------------------ registry

    def models(self) -> Iterator[Model]:
        for m in self._pages("GET", "registered-models/search", "registered_models", {"max_results": PAGE}):
            yield Model(
                source_id=m["name"],
                name=m["name"],
                description=m.get("description", ""),
                tags=_kv(m.get("tags")),
                aliases={a["alias"]: str(a["version"]) for a in m.get("aliases", [])},
                created_ms=_int(m.get("creation_timestamp")),
                updated_ms=_int(m.get("last_updated_timestamp")),
            )

    def versions(self, model: Model) -> Iterator[Version]:
        quoted = model.name.replace("'", "\\'")
        body = {"filter": f"name='{quoted}'", "max_results": PAGE}
        got = list(self._pages("GET", "model-versions/search", "model_versions", body))
        for v in sorted(got, key=lambda v: int(v["version"])):
            yield Version(
                model=model.source_id,
                number=int(v["version"]),
                run_id=v.get("run_id", ""),
                source=v.get("source", ""),
                stage=v.get("current_stage", "None") or "None",
                description=v.get("description", ""),
                tags=_kv(v.get("tags")),
                user=v.get("user_id", ""),
                created_ms=_int(v.get("creation_timestamp")),
                updated_ms=_int(v.get("last_updated_timestamp")),
            )

    def _logged_model(self, version: Version) -> str:
        rest = version.source.removeprefix("models:/")
        return rest if version.source.startswith("models:/") and "/" not in rest and "@" not in rest else ""

    def version_files(self, version: Version) -> Iterator[File]:
        """The files of the version's source: a logged model's, or a run's under the source path."""
        model_id = self._logged_model(version)
        if model_id:
            path = f"logged-models/{model_id}/artifacts/directories"
            yield from self._model_listing(path, "")
            return
        sub = _run_subpath(version.source, version.run_id)
        if sub is not None and version.run_id:
            prefix = f"{sub}/" if sub else ""
            for f in self._listing("artifacts/list", {"run_id": version.run_id}, sub):
                yield File(f.path[len(prefix) :] if prefix and f.path.startswith(prefix) else f.path, f.size)

    def _model_listing(self, path: str, under: str) -> Iterator[File]:
        got = self._json("GET", path, params={"artifact_directory_path": under} if under else {})
        for f in got.get("files", []):
            if f.get("is_dir"):
                yield from self._model_listing(path, f["path"])
            else:
                yield File(f["path"], _int(f.get("file_size")))

    def open_version_file(self, version: Version, path: str) -> BinaryIO:
        model_id = self._logged_model(version)
        if model_id:
            r = self._request(
                "GET",
                f"/ajax-api/2.0/mlflow/logged-models/{model_id}/artifacts/files",
                params={"artifact_file_path": path},
                stream=True,
            )
        else:
            sub = _run_subpath(version.source, version.run_id) or ""
            full = f"{sub}/{path}" if sub else path
            r = self._request(
                "GET", "/get-artifact", params={"path": full, "run_uuid": version.run_id}, stream=True
            )
        r.raw.decode_content = True
        return cast(BinaryIO, r.raw)


def _run_subpath(source: str, run_id: str) -> str | None:
    """The path inside the run's artifacts that a version's source names, or None if it is elsewhere."""
    if source.startswith("runs:/"):
        _, _, rest = source[len("runs:/") :].lstrip("/").partition("/")
        return rest.strip("/")
    marker = f"/{run_id}/artifacts/" if run_id else ""
    if marker and marker in source:
        return source.split(marker, 1)[1].strip("/")
    if run_id and source.rstrip("/").endswith(f"/{run_id}/artifacts"):
        return ""
    return None


def _kv(items: Any) -> dict[str, str]:
    return {str(i["key"]): str(i.get("value", "")) for i in items or []}


def _int(value: Any) -> int | None:
    return None if value in (None, "") else int(value)


def _float(value: Any) -> float:
    # MLflow's JSON spells non-finite values as strings ("NaN", "Infinity", "-Infinity").
    return float(value)
