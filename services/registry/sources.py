"""Which MLflow source a model version may carry (its `modelog.mlflow.source` tag).

The gateway hands the source back as the version's download URI, and clients then read whatever it
names: a source pointing at the server's own files (`file:///etc/passwd`, `/etc`) or climbing out of a
run's artifacts (`mlflow-artifacts:/0/<run>/artifacts/../../..`, `..%2f`, `..\\`) must not be stored.
The rule is MLflow 3.17's (`handlers._validate_source_run` and `_validate_source_model`), written once
here for the registry's decider; the gateway calls it too, before it commits the source's artifact
reference, so a refused source leaves nothing behind. Our runs' artifact roots are never local paths,
so a local source is always refused (MLflow accepts one inside a local run root only).
"""

from __future__ import annotations

import posixpath
import re
from urllib.parse import unquote, unquote_plus, urlsplit

SOURCE_TAG = "modelog.mlflow.source"
"""The version tag holding the source MLflow's client gave (hidden from MLflow's tags)."""
MODEL_ID_TAG = "modelog.mlflow.model_id"
"""The version tag holding the MLflow logged model id the version was registered from."""

_MAX_UNQUOTES = 10


def _unquoted(text: str) -> str:
    """`text` percent-decoded until it stops changing (`%252e%252e` is `..` too)."""
    for _ in range(_MAX_UNQUOTES):
        plain = unquote_plus(text)
        if plain == text:
            return plain
        text = plain
    return text


def _relative(source: str) -> str:
    return (
        f"Invalid model version source: '{source}'. If supplying a source as an http, https, local file "
        "path, ftp, objectstore, or mlflow-artifacts uri, an absolute path must be provided without "
        "relative path references present. Please provide an absolute path."
    )


def _outside(source: str, id_name: str) -> str:
    return (
        f"Invalid model version source: '{source}'. The {id_name} request parameter must identify the "
        "resource that contains the source."
    )


def _path_parts(path: str) -> list[str]:
    return [unquote(p) for p in path.split("/") if p]


def _within_run(parts: list[str], run_id: str) -> bool:
    """`<experiment>/<run>/artifacts/...`, a run's artifact root as the gateway names it."""
    return bool(run_id) and len(parts) >= 3 and parts[1:3] == [run_id, "artifacts"]


def _within_model(parts: list[str], model_id: str) -> bool:
    """`<experiment>/models/<model_id>/artifacts/...`, a logged model's artifact location."""
    return bool(model_id) and len(parts) >= 4 and parts[1:4] == ["models", model_id, "artifacts"]


def source_problem(source: str, run_id: str, model_id: str = "") -> str | None:
    """Why `source` may not be the source of a version made from `run_id` (and logged model
    `model_id`), in MLflow's words; None when it may."""
    plain = _unquoted(source)
    if "\x00" in plain or ".." in re.split(r"[/\\]", plain):
        return _relative(source)
    parsed = urlsplit(plain)
    scheme = parsed.scheme.lower()
    if scheme in ("", "file") or len(scheme) == 1:  # a path on the server (`C:` is a Windows drive)
        return (
            f"Invalid model version source: '{source}'. To use a local path as a model version source, "
            "the run_id request parameter has to be specified and the local path has to be contained "
            "within the artifact directory of the run specified by the run_id."
        )
    path = re.sub(r"/+", "/", parsed.path.rstrip("/"))
    if path and posixpath.normpath(path) != path:  # a "." segment: MLflow's resolved-path check
        return _relative(source)
    parts = _path_parts(parsed.path)
    if scheme == "runs":
        if parsed.netloc or not parts or parts[0] != run_id:
            return _outside(source, "run_id")
    elif scheme == "models":
        if parsed.netloc:
            return _outside(source, "model_id")
        if len(parts) == 1 and parts[0].startswith("m-") and model_id and parts[0] != model_id:
            return _outside(source, "model_id")
    elif scheme == "mlflow-artifacts" or (
        scheme in ("http", "https") and "/api/2.0/mlflow-artifacts/artifacts" in "/" + "/".join(parts)
    ):
        # Our artifact roots are `mlflow-artifacts:/...` without a host: any other host, or http(s)
        # to an artifacts route, is outside every run's root (MLflow compares scheme and authority).
        inside = _within_run(parts, run_id) or _within_model(parts, model_id)
        if scheme != "mlflow-artifacts" or parsed.netloc or not inside:
            return _outside(source, "model_id" if model_id else "run_id")
    return None
