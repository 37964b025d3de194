"""`make bench`: run every benchmark and write tests/bench/results/*.json."""

from __future__ import annotations

import asyncio

from tests.bench import bench_bus, bench_eventlog


def main() -> None:
    print("== event log ==")
    asyncio.run(bench_eventlog.main())
    print("== bus ==")
    asyncio.run(bench_bus.main())


if __name__ == "__main__":
    main()
