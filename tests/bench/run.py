"""`make bench`: run every benchmark and write tests/bench/results/*.json."""

from __future__ import annotations

import asyncio

from tests.bench import (
    bench_artifacts,
    bench_audit,
    bench_audit_webhooks,
    bench_authz,
    bench_bus,
    bench_eventlog,
    bench_http,
    bench_import,
    bench_monitoring_drift,
    bench_monitoring_service,
    bench_registry,
    bench_tracking,
)


def main() -> None:
    print("== event log ==")
    asyncio.run(bench_eventlog.main())
    print("== bus ==")
    asyncio.run(bench_bus.main())
    print("== tracking (side by side with MLflow) ==")
    bench_tracking.main()
    print("== HTTP surface: the stock mlflow client against Modelog and mlflow server ==")
    bench_http.main()
    print("== import from a real mlflow server (source alone, end to end, Modelog's side alone) ==")
    bench_import.main()
    print("== artifacts (side by side with DVC) ==")
    bench_artifacts.main()
    print("== registry ==")
    bench_registry.main()
    print("== monitoring service (ingest through the SDK, close -> report) ==")
    bench_monitoring_service.main()
    print("== audit ==")
    asyncio.run(bench_audit.main())
    print("== audit webhooks (delivery latency under load, local receiver) ==")
    asyncio.run(bench_audit_webhooks.main())
    print("== authorization (the check per call, with and without 1,000 grants) ==")
    bench_authz.main()
    print("== monitoring drift (side by side with Evidently) ==")
    bench_monitoring_drift.main()


if __name__ == "__main__":
    main()
