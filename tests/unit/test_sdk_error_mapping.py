"""The one error hierarchy's mapping to gRPC statuses and back, and the SDK's metric sender's refusals,
with fakes (pure logic, no server)."""

from __future__ import annotations

from typing import Any, NamedTuple

import grpc
import pytest
from google.protobuf import any_pb2
from google.rpc import code_pb2, error_details_pb2, status_pb2
from grpc_status import rpc_status

import eventlog.errors
from modelog import errors
from modelog._batcher import Batch, MetricBatcher
from modelog._client import _AuthInterceptor
from modelog.shared import errors as shared
from modelog_platform.grpc_errors import status_details, to_status


class FailedCall(grpc.RpcError, grpc.Call):  # type: ignore[misc]
    """What a failed call raises: a status code, its details and trailing metadata."""

    def __init__(self, code: grpc.StatusCode, details: str, trailing: Any = ()) -> None:
        self._code, self._details, self._trailing = code, details, tuple(trailing)

    def code(self) -> grpc.StatusCode:
        return self._code

    def details(self) -> str:
        return self._details

    def trailing_metadata(self) -> Any:
        return self._trailing

    def initial_metadata(self) -> Any:
        return ()

    def is_active(self) -> bool:
        return False

    def time_remaining(self) -> float | None:
        return None

    def cancel(self) -> bool:
        return False

    def add_callback(self, callback: Any) -> bool:
        return False


def refused(code: grpc.StatusCode, message: str, *details: Any) -> FailedCall:
    packed = []
    for d in details:
        a = any_pb2.Any()
        a.Pack(d)
        packed.append(a)
    status = rpc_status.to_status(
        status_pb2.Status(code=getattr(code_pb2, code.name), message=message, details=packed)
    )
    return FailedCall(status.code, status.details, status.trailing_metadata)


@pytest.mark.parametrize(
    "code", [c for c in grpc.StatusCode if c != grpc.StatusCode.OK], ids=lambda c: c.name
)
def test_every_status_code_has_its_own_sdk_error_class(code: grpc.StatusCode) -> None:
    err = errors.from_rpc(FailedCall(code, "the server said\nso"))
    assert type(err) is not errors.ModelogError and isinstance(err, errors.ModelogError)
    assert err.code == code and type(err).code == code
    assert "\n" not in str(err) and not isinstance(err, grpc.RpcError)


def _classes(base: type[shared.ModelogError]) -> list[type[shared.ModelogError]]:
    found = []
    for cls in base.__subclasses__():
        if cls.__module__ == shared.__name__:
            found += [cls, *_classes(cls)]
    return found


ERROR_CLASSES = _classes(shared.ModelogError)


def _raised_by_the_server(cls: type[shared.ModelogError]) -> shared.ModelogError:
    if cls is shared.ConcurrencyConflict:
        return shared.ConcurrencyConflict("registry", "model-churn", 3, 5)
    return cls(
        f"{cls.__name__}: model 'churn' says no",
        violations=[shared.FieldViolation("name", "too long"), ("alias", "not an alias")],
        metadata={"model": "churn", "version": "3"},
        resource=shared.Resource("model", "churn", "project:default", "the model asked for"),
    )


def test_the_server_and_the_sdk_raise_the_same_classes() -> None:
    for name in ("ModelogError", "InvalidArgument", "NotFound", "AlreadyExists", "FailedPrecondition"):
        assert getattr(eventlog.errors, name) is getattr(errors, name) is getattr(shared, name)
    assert len(ERROR_CLASSES) == len(grpc.StatusCode) - 1 + 2  # a class per code but OK, and two reasons


@pytest.mark.parametrize("cls", ERROR_CLASSES, ids=lambda c: c.__name__)
def test_every_error_class_comes_back_to_the_sdk_as_the_class_the_server_raised(
    cls: type[shared.ModelogError],
) -> None:
    sent = _raised_by_the_server(cls)
    status = to_status(sent)  # the server's mapping (the interceptor aborts with this)
    got = errors.from_rpc(FailedCall(status.code, status.details, status.trailing_metadata), "127.0.0.1:9")
    assert type(got) is cls and got.code == sent.code == cls.code
    assert (got.message, str(got)) == (sent.message, sent.message)
    assert (got.reason, got.metadata) == (sent.reason, sent.metadata)
    assert got.violations == sent.violations and got.resource == sent.resource
    assert status_details(FailedCall(status.code, status.details, status.trailing_metadata)) == {
        "reason": sent.reason,
        "metadata": sent.metadata,
        **({"field_violations": [tuple(v) for v in sent.violations]} if sent.violations else {}),
    }


def test_a_concurrency_conflict_keeps_the_stream_and_both_versions_on_the_way_back() -> None:
    status = to_status(shared.ConcurrencyConflict("registry", "model-churn", 3, 5))
    got = errors.from_rpc(FailedCall(status.code, status.details, status.trailing_metadata))
    assert isinstance(got, shared.ConcurrencyConflict) and isinstance(got, errors.Conflict)
    assert (got.log, got.stream_id, got.expected, got.actual) == ("registry", "model-churn", 3, 5)
    assert got.resource == shared.Resource("stream", "model-churn", "log:registry")
    assert "version 5" in got.message and "expected version 3" in got.message


def test_the_structured_details_the_server_sends_are_kept() -> None:
    info = error_details_pb2.ErrorInfo(reason="BLOBS_MISSING", domain="modelog.dev", metadata={"n": "2"})
    bad = error_details_pb2.BadRequest(
        field_violations=[
            error_details_pb2.BadRequest.FieldViolation(field="entries[0].path", description="absolute")
        ]
    )
    err = errors.from_rpc(refused(grpc.StatusCode.INVALID_ARGUMENT, "entries[0].path: absolute", info, bad))
    assert isinstance(err, errors.InvalidArgument) and err.message == "entries[0].path: absolute"
    assert (err.reason, err.metadata) == ("BLOBS_MISSING", {"n": "2"})
    assert err.violations == [("entries[0].path", "absolute")]


def test_an_unreachable_server_is_named_with_the_hint_but_a_worded_refusal_is_left_as_is() -> None:
    gone = errors.from_rpc(
        FailedCall(grpc.StatusCode.UNAVAILABLE, "failed to connect to all addresses"), "127.0.0.1:9"
    )
    assert isinstance(gone, errors.Unavailable) and "127.0.0.1:9" in gone.message
    assert errors.UNREACHABLE_HINT in gone.message
    info = error_details_pb2.ErrorInfo(reason="BROKER_DOWN", domain="modelog.dev")
    worded = errors.from_rpc(refused(grpc.StatusCode.UNAVAILABLE, "the broker is down", info), "127.0.0.1:9")
    assert worded.message == "the broker is down"


def test_a_refused_batch_stops_the_sender_and_is_raised_by_every_later_call() -> None:
    attempts: list[list[Batch]] = []

    def send(batches: list[Batch]) -> None:
        attempts.append(batches)
        raise errors.FailedPrecondition("run 'r1' is FINISHED; a finished run accepts no more data")

    batcher = MetricBatcher(send, interval=0.01, retry_delays=(0.01,))
    batcher.log("r1", {"x": 1.0}, step=0)
    with pytest.raises(errors.FailedPrecondition, match="FINISHED"):
        batcher.flush(timeout=30)
    assert len(attempts) == 1  # a refusal is not retried
    with pytest.raises(errors.FailedPrecondition, match="FINISHED"):
        batcher.log("r1", {"x": 2.0}, step=1)
    with pytest.raises(errors.FailedPrecondition, match="FINISHED"):
        batcher.close(timeout=30)


def test_a_transient_sdk_error_is_retried_and_flush_has_a_deadline() -> None:
    failures = {"left": 2}

    def send(batches: list[Batch]) -> None:
        if failures["left"]:
            failures["left"] -= 1
            raise errors.Unavailable("connection reset")

    batcher = MetricBatcher(send, interval=0.01, retry_delays=(0.01,))
    batcher.log("r1", {"x": 1.0}, step=0)
    assert batcher.flush(timeout=30) is True
    batcher.close()

    def hang(batches: list[Batch]) -> None:
        raise errors.Unavailable("nobody home")

    stuck = MetricBatcher(hang, interval=0.01, retry_delays=(0.01,))
    stuck.log("r1", {"x": 1.0}, step=0)
    assert stuck.flush(timeout=0.2) is False  # the deadline passed: the point stays queued
    assert stuck.close(timeout=0.2) is False
    with pytest.raises(errors.FailedPrecondition, match="closed"):
        stuck.log("r1", {"x": 2.0}, step=1)


class Details(NamedTuple):
    method: str
    timeout: float | None
    metadata: Any
    credentials: Any = None
    wait_for_ready: Any = None
    compression: Any = None


class Outcome:
    def __init__(self, error: BaseException | None) -> None:
        self.error = error

    def exception(self) -> BaseException | None:
        return self.error


def test_unavailable_is_retried_with_one_key_once_the_server_answered_but_not_before() -> None:
    interceptor = _AuthInterceptor("t", (0.01, 0.01, 0.5, 0.5), target="10.0.0.1:50051", connect_timeout=0.2)
    answers: list[BaseException | None] = [FailedCall(grpc.StatusCode.UNAVAILABLE, "connection refused")] * 10
    keys: list[str] = []

    def continuation(details: Details, request: Any) -> Outcome:
        keys.append(dict(details.metadata)["idempotency-key"])
        return Outcome(answers.pop(0))

    call = Details("/modelog.tracking.v1.Tracking/StartRun", None, [])
    with pytest.raises(errors.Unavailable) as info:  # never reached: given up within connect_timeout
        interceptor.intercept_unary_unary(continuation, call, None)
    assert len(keys) == 3 and "10.0.0.1:50051" in info.value.message
    assert errors.UNREACHABLE_HINT in info.value.message
    answers[:] = [None]
    interceptor.intercept_unary_unary(continuation, call, None)  # the server answers
    answers[:] = [FailedCall(grpc.StatusCode.UNAVAILABLE, "connection reset")] * 4 + [None]
    keys.clear()
    assert interceptor.intercept_unary_unary(continuation, call, None).exception() is None
    assert len(keys) == 5 and len(set(keys)) == 1  # every retry, past connect_timeout, with one key
