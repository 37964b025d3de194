"""The OpenAPI 3.1 document of the JSON API, generated from the same descriptors the transcoder uses.

Schemas follow the proto3 JSON mapping the transcoder speaks: lowerCamelCase names, 64-bit integers as
decimal strings, enums as their names, bytes as base64, maps as objects, well-known types in their
JSON forms. Built once per process: the descriptors do not change while it runs.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from functools import cache
from typing import Any

import grpc
from google.protobuf.descriptor import Descriptor, EnumDescriptor, FieldDescriptor, MethodDescriptor

from modelog_platform.authz import Rule
from modelog_services import permissions

Schema = dict[str, Any]
NDJSON = "application/x-ndjson"
GRPC_CODES = [code.name for code in grpc.StatusCode]

_FLOAT: Schema = {
    "oneOf": [
        {"type": "number"},
        {"type": "string", "enum": ["NaN", "Infinity", "-Infinity"]},
    ]
}
_INT64: Schema = {"type": "string", "pattern": r"^-?[0-9]+$", "description": "a 64-bit integer as a string"}
_UINT64: Schema = {"type": "string", "pattern": r"^[0-9]+$", "description": "a 64-bit integer as a string"}
_SCALARS: dict[int, Schema] = {
    FieldDescriptor.TYPE_DOUBLE: {**_FLOAT, "format": "double"},
    FieldDescriptor.TYPE_FLOAT: {**_FLOAT, "format": "float"},
    FieldDescriptor.TYPE_INT64: {**_INT64, "format": "int64"},
    FieldDescriptor.TYPE_SINT64: {**_INT64, "format": "int64"},
    FieldDescriptor.TYPE_SFIXED64: {**_INT64, "format": "int64"},
    FieldDescriptor.TYPE_UINT64: {**_UINT64, "format": "uint64"},
    FieldDescriptor.TYPE_FIXED64: {**_UINT64, "format": "uint64"},
    FieldDescriptor.TYPE_INT32: {
        "type": "integer",
        "format": "int32",
        "minimum": -(2**31),
        "maximum": 2**31 - 1,
    },
    FieldDescriptor.TYPE_SINT32: {
        "type": "integer",
        "format": "int32",
        "minimum": -(2**31),
        "maximum": 2**31 - 1,
    },
    FieldDescriptor.TYPE_SFIXED32: {
        "type": "integer",
        "format": "int32",
        "minimum": -(2**31),
        "maximum": 2**31 - 1,
    },
    FieldDescriptor.TYPE_UINT32: {"type": "integer", "format": "uint32", "minimum": 0, "maximum": 2**32 - 1},
    FieldDescriptor.TYPE_FIXED32: {"type": "integer", "format": "uint32", "minimum": 0, "maximum": 2**32 - 1},
    FieldDescriptor.TYPE_BOOL: {"type": "boolean"},
    FieldDescriptor.TYPE_STRING: {"type": "string"},
    FieldDescriptor.TYPE_BYTES: {"type": "string", "format": "byte", "contentEncoding": "base64"},
}
_WRAPPED = {
    "DoubleValue": FieldDescriptor.TYPE_DOUBLE,
    "FloatValue": FieldDescriptor.TYPE_FLOAT,
    "Int64Value": FieldDescriptor.TYPE_INT64,
    "UInt64Value": FieldDescriptor.TYPE_UINT64,
    "Int32Value": FieldDescriptor.TYPE_INT32,
    "UInt32Value": FieldDescriptor.TYPE_UINT32,
    "BoolValue": FieldDescriptor.TYPE_BOOL,
    "StringValue": FieldDescriptor.TYPE_STRING,
    "BytesValue": FieldDescriptor.TYPE_BYTES,
}
_WELL_KNOWN: dict[str, Schema] = {
    "google.protobuf.Timestamp": {
        "type": "string",
        "format": "date-time",
        "description": "RFC 3339, UTC ('Z') or with an offset",
    },
    "google.protobuf.Duration": {"type": "string", "pattern": r"^-?[0-9]+(\.[0-9]{1,9})?s$"},
    "google.protobuf.Struct": {"type": "object", "additionalProperties": True},
    "google.protobuf.Value": {"description": "any JSON value"},
    "google.protobuf.ListValue": {"type": "array", "items": {}},
    "google.protobuf.FieldMask": {"type": "string", "description": "comma-separated lowerCamel paths"},
    "google.protobuf.Empty": {"type": "object", "additionalProperties": False},
    "google.protobuf.Any": {
        "type": "object",
        "required": ["@type"],
        "properties": {"@type": {"type": "string"}},
        "additionalProperties": True,
    },
    **{f"google.protobuf.{name}": dict(_SCALARS[t]) for name, t in _WRAPPED.items()},
}


def _ref(name: str) -> Schema:
    return {"$ref": f"#/components/schemas/{name}"}


class _Builder:
    """Message and enum schemas as components, each once; fields refer to them by $ref."""

    def __init__(self) -> None:
        self.schemas: dict[str, Schema] = {}

    def message(self, d: Descriptor) -> Schema:
        if d.full_name in _WELL_KNOWN:
            return dict(_WELL_KNOWN[d.full_name])
        if d.full_name not in self.schemas:
            self.schemas[d.full_name] = {}  # placed first: recursive messages refer to themselves
            self.schemas[d.full_name] = self._object(d)
        return _ref(d.full_name)

    def enum(self, e: EnumDescriptor) -> Schema:
        if e.full_name not in self.schemas:
            self.schemas[e.full_name] = {
                "type": "string",
                "enum": [v.name for v in e.values],
                "description": f"enum {e.full_name}: the value's name (its number is accepted too)",
            }
        return _ref(e.full_name)

    def value(self, f: FieldDescriptor) -> Schema:
        if f.message_type is not None:
            return self.message(f.message_type)
        if f.enum_type is not None:
            return self.enum(f.enum_type)
        return dict(_SCALARS[f.type])

    def field(self, f: FieldDescriptor) -> Schema:
        entry = f.message_type
        if entry is not None and entry.GetOptions().map_entry:
            key, value = entry.fields_by_name["key"], entry.fields_by_name["value"]
            schema: Schema = {"type": "object", "additionalProperties": self.value(value)}
            if key.type != FieldDescriptor.TYPE_STRING:
                schema["propertyNames"] = {
                    "pattern": "^(true|false)$" if key.type == key.TYPE_BOOL else r"^-?[0-9]+$"
                }
        elif f.is_repeated:
            schema = {"type": "array", "items": self.value(f)}
        else:
            schema = self.value(f)
        notes = []
        if f.json_name != f.name:
            notes.append(f"`{f.name}` in the proto; either name is accepted")
        oneof = f.containing_oneof
        if oneof is not None and not _synthetic(oneof):
            others = [o.json_name for o in oneof.fields if o is not f]
            notes.append(f"one of `{oneof.name}`: set at most one of this and {', '.join(others)}")
        elif f.has_presence and f.type != FieldDescriptor.TYPE_MESSAGE:
            notes.append("optional: absent and the default value are told apart")
        if notes:
            text = "; ".join(notes)
            if "$ref" in schema:  # 3.1 allows siblings of $ref
                schema = {**schema, "description": text}
            else:
                schema["description"] = (
                    f"{schema['description']}; {text}" if "description" in schema else text
                )
        return schema

    def _object(self, d: Descriptor) -> Schema:
        schema: Schema = {
            "type": "object",
            "title": d.full_name,
            "properties": {f.json_name: self.field(f) for f in d.fields},
            "additionalProperties": False,
        }
        groups = [o for o in d.oneofs if not _synthetic(o)]
        if groups:
            schema["x-oneofs"] = {o.name: [f.json_name for f in o.fields] for o in groups}
            exclusive = [
                {"not": {"required": [a.json_name, b.json_name]}}
                for o in groups
                for i, a in enumerate(o.fields)
                for b in o.fields[i + 1 :]
            ]
            if exclusive:
                schema["allOf"] = exclusive
        return schema


def _synthetic(oneof: Any) -> bool:
    """proto3 `optional` makes a one-field oneof named `_<field>`: presence, not a choice."""
    return len(oneof.fields) == 1 and oneof.name == "_" + oneof.fields[0].name


def _words(name: str) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", " ", name).lower()


def _permission(rule: Rule | None) -> str:
    if rule is None:
        return "not served"
    if rule.perm is None:
        return "any authenticated caller"
    if rule.anywhere:
        return f"{rule.perm} on some project"
    if rule.resources is None:
        return f"{rule.perm} platform-wide (a role)"
    return f"{rule.perm} on what the request names"


def _operation(m: MethodDescriptor, b: _Builder, rules: dict[str, Rule]) -> Schema:
    service = m.containing_service.full_name
    path = f"/{service}/{m.name}"
    request, response = b.message(m.input_type), b.message(m.output_type)
    kind = {
        (False, False): "unary",
        (False, True): "server-streaming",
        (True, False): "client-streaming",
        (True, True): "bidirectional streaming",
    }[(bool(m.client_streaming), bool(m.server_streaming))]
    lines = [f"The gRPC method `{path}` ({kind}). Needs {_permission(rules.get(path))}."]
    if m.client_streaming:
        lines.append(
            f"The body is a JSON array of `{m.input_type.full_name}` messages, or one per line as "
            f"{NDJSON}; all are checked before any is sent."
        )
        body: Schema = {
            "required": False,
            "content": {
                "application/json": {"schema": {"type": "array", "items": request}},
                NDJSON: {
                    "schema": {
                        "type": "array",
                        "items": request,
                        "description": "the same messages, one JSON object per line",
                    }
                },
            },
        }
    else:
        lines.append(f"The body is a `{m.input_type.full_name}` message; an empty body is the empty message.")
        body = {"required": False, "content": {"application/json": {"schema": request}}}
    if m.server_streaming:
        lines.append(
            f"The answer is Server-Sent Events: `data: <{m.output_type.full_name} JSON>` per message, "
            "`event: end` when the stream ends, `event: error` with an Error body if it fails midway. "
            "A refusal before the first message is an ordinary error response."
        )
        ok: Schema = {
            "description": f"a stream of {m.output_type.full_name}",
            "content": {
                "text/event-stream": {
                    "schema": {"type": "string"},
                    "x-event-data": response,
                }
            },
        }
    else:
        ok = {"description": m.output_type.full_name, "content": {"application/json": {"schema": response}}}
    return {
        "operationId": f"{service}.{m.name}",
        "tags": [service],
        "summary": _words(m.name),
        "description": "\n\n".join(lines),
        "parameters": [
            {
                "name": "Idempotency-Key",
                "in": "header",
                "required": False,
                "description": "a retry with the same key and request returns the first answer",
                "schema": {"type": "string", "pattern": r"^[\x21-\x7e]{1,128}$"},
            }
        ],
        "requestBody": body,
        "responses": {"200": ok, "default": {"$ref": "#/components/responses/Error"}},
        "x-grpc-method": path,
        "x-grpc-streaming": kind,
    }


ERROR: Schema = {
    "type": "object",
    "required": ["error"],
    "properties": {
        "error": {
            "type": "object",
            "required": ["code", "status", "message"],
            "properties": {
                "code": {"type": "integer", "description": "the gRPC status code"},
                "status": {"type": "string", "enum": GRPC_CODES},
                "message": {"type": "string"},
                "details": {
                    "type": "array",
                    "items": {
                        "type": "object",
                        "required": ["@type"],
                        "properties": {"@type": {"type": "string"}},
                        "description": "google.rpc.ErrorInfo or google.rpc.BadRequest (fieldViolations)",
                    },
                },
            },
        }
    },
}


def document(methods: Sequence[MethodDescriptor], prefix: str) -> Schema:
    b = _Builder()
    rules = permissions.rules()
    paths = {
        f"{prefix}/{m.containing_service.full_name}/{m.name}": {"post": _operation(m, b, rules)}
        for m in methods
    }
    services = sorted({m.containing_service.full_name for m in methods})
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "Modelog API",
            "version": "v1",
            "description": (
                "Every gRPC method as JSON over HTTP (proto3 JSON mapping), with the same "
                "permissions, validation and events as a gRPC call."
            ),
        },
        "jsonSchemaDialect": "https://spec.openapis.org/oas/3.1/dialect/base",
        "tags": [{"name": s} for s in services],
        "paths": paths,
        "components": {
            "schemas": {**dict(sorted(b.schemas.items())), "Error": ERROR},
            "responses": {
                "Error": {
                    "description": "a refusal or failure, google.rpc style",
                    "content": {"application/json": {"schema": _ref("Error")}},
                }
            },
            "securitySchemes": {
                "bearer": {"type": "http", "scheme": "bearer", "description": "a Modelog token"},
                "basic": {
                    "type": "http",
                    "scheme": "basic",
                    "description": "any user name, the Modelog token as the password",
                },
            },
        },
        "security": [{"bearer": []}, {"basic": []}],
    }


@cache
def document_bytes(methods: tuple[MethodDescriptor, ...], prefix: str) -> bytes:
    return json.dumps(document(methods, prefix), separators=(",", ":")).encode()
