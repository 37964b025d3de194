"""What every MLflow route shares: reading a request, answering, and the refusal contract."""

from __future__ import annotations

import json
import math
from collections.abc import Awaitable, Callable
from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from eventlog.errors import InvalidArgument, ModelogError
from modelog_services.gateway.errors import mlflow_error
from modelog_services.gateway.http import BodyTooLarge, caller
from modelog_services.gateway.upstream import Caller, Upstream

PREFIXES = ("/api/2.0/mlflow", "/ajax-api/2.0/mlflow")

Body = dict[str, Any]
Handler = Callable[["Call"], Awaitable[Body]]


def refusal(name: str, text: str) -> InvalidArgument:
    """INVALID_PARAMETER_VALUE worded `text` exactly (MLflow's words, without our "field: " prefix),
    the field still named in the violation."""
    return InvalidArgument(text, violations=[(name, text)])


def missing(name: str) -> InvalidArgument:
    """MLflow's refusal of a required parameter left out (`_validate_param_against_schema`)."""
    return refusal(name, f"Missing value for required parameter '{name}'.")


def invalid(name: str, value: Any, why: str = "") -> InvalidArgument:
    """MLflow's refusal of a parameter's value (`mlflow.utils.validation.invalid_value`)."""
    shown = json.dumps(value, sort_keys=True, separators=(",", ":"), default=str)
    tail = f": {why}" if why else "."
    return refusal(name, f"Invalid value {shown} for parameter '{name}' supplied{tail}")


class Call:
    """One MLflow request: its fields (query or JSON body), its caller and the upstream."""

    def __init__(self, request: Request, fields: Body, who: Caller, upstream: Upstream, raw: bytes) -> None:
        self.request = request
        self.fields = fields
        self.caller = who
        self.upstream = upstream
        self.raw = raw

    def text(self, name: str, *, required: bool = False, default: str = "") -> str:
        value = self.fields.get(name)
        if value is None or value == "":
            if required:
                raise missing(name)
            return default
        if isinstance(value, list) and len(value) == 1:
            value = value[0]  # a query parameter given once per key
        if not isinstance(value, str):
            # A number where a string belongs is a caller's mistake, not something to coerce into an
            # id that then "does not exist".
            raise invalid(name, value)
        return value

    def integer(self, name: str, default: int | None = None, *, required: bool = False) -> int | None:
        value = self.fields.get(name)
        if isinstance(value, list):
            value = value[0] if value else None
        if value is None or value == "":
            if required:
                raise missing(name)
            return default
        if isinstance(value, bool | float) and not (isinstance(value, float) and value.is_integer()):
            raise invalid(name, value)
        try:
            return int(value)
        except (TypeError, ValueError):
            raise invalid(name, value) from None

    def max_results(self, default: int, cap: int) -> int:
        """`max_results`, `default` when absent or 0, refused past `cap` as MLflow's handler or store
        refuses it (50000 for runs and experiments, 1000 registered models, 200000 versions)."""
        size = self.integer("max_results", default) or default
        if not 1 <= size <= cap:
            raise invalid("max_results", size, f"it must be between 1 and {cap}")
        return size

    def items(self, name: str) -> list[Any]:
        value = self.fields.get(name)
        if value is None:
            return []
        if not isinstance(value, list):
            return [value]
        return value

    def key(self, *parts: str) -> str:
        """An idempotency key for this request's content (see Caller.derived_key)."""
        return self.caller.derived_key(self.request.url.path.split("/mlflow/", 1)[-1], *parts, self.raw)

    async def __call__(self, method: Any, request: Any, *, idempotency_key: str | None = None) -> Any:
        return await self.upstream.call(method, request, self.caller, idempotency_key=idempotency_key)


def number(value: Any, name: str) -> float:
    """MLflow sends NaN and infinities as the strings "NaN" and "Infinity"."""
    if isinstance(value, bool):
        raise InvalidArgument.field(name, "must be a number")
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            pass
    raise InvalidArgument.field(name, f"must be a number, got {value!r}")


def json_number(value: float) -> float | str:
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "Infinity" if value > 0 else "-Infinity"
    return value


def key_values(items: Any, name: str) -> dict[str, str]:
    """MLflow's `[{"key": k, "value": v}]` lists as a dict (last one wins, as MLflow's store does)."""
    out: dict[str, str] = {}
    if items is None:
        return out
    if not isinstance(items, list):
        raise InvalidArgument.field(name, "must be a list of {key, value}")
    for i, item in enumerate(items):
        if not isinstance(item, dict) or not isinstance(item.get("key"), str) or item["key"] == "":
            raise missing(f"{name}[{i}].key")
        value = item.get("value", "")
        out[item["key"]] = "" if value is None else str(value)
    return out


def pairs(d: Any) -> list[dict[str, str]]:
    return [{"key": k, "value": v} for k, v in sorted(dict(d).items())]


def answer(body: Body) -> Response:
    """orjson: a run with its metrics or a page of runs encodes several times faster than with json.
    Values never hold a NaN here (json_number spells it "NaN", as MLflow does), which orjson would
    write as null."""
    return Response(orjson.dumps(body), 200, media_type="application/json")


def parse_json(raw: bytes) -> Any:
    """orjson for speed (a log-batch of 1,000 points is 80 KB); what it refuses but Python's json reads
    (a bare NaN, integers past 64 bits) still parses as before."""
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError:
        return json.loads(raw)


async def _fields(request: Request) -> tuple[Body, bytes]:
    fields: Body = {}
    for k in request.query_params:
        values = request.query_params.getlist(k)
        fields[k] = values if len(values) > 1 else values[0]
    if request.method == "GET":
        return fields, request.url.query.encode()
    raw = await request.body()
    if raw.strip():
        try:
            body = parse_json(raw)
        except (ValueError, RecursionError):
            raise InvalidArgument("the request body is not valid JSON") from None
        if not isinstance(body, dict):
            raise InvalidArgument("the request body must be a JSON object")
        fields.update(body)
    return fields, raw


def route(upstream: Upstream, path: str, methods: list[str], handler: Handler) -> list[Route]:
    """The same handler under /api/2.0/mlflow and /ajax-api/2.0/mlflow; every refusal in MLflow's form."""

    async def endpoint(request: Request) -> Response:
        try:
            who = caller(request)
            fields, raw = await _fields(request)
            return answer(await handler(Call(request, fields, who, upstream, raw)))
        except ModelogError as err:
            return mlflow_error(err)
        except BodyTooLarge as exc:
            return Response(
                json.dumps({"error_code": "REQUEST_LIMIT_EXCEEDED", "message": str(exc)}),
                413,
                media_type="application/json",
            )

    return [Route(prefix + path, endpoint, methods=methods) for prefix in PREFIXES]
