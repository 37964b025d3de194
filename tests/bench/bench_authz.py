"""What authorization costs: the interceptor's check per call, and the same RPC through gRPC, with an
empty grant table and with 1,000 grants; and whether grants slow a list over 10,000 experiments.

Goal (issue 18): under 20 us per call at p50 for the check; granting and revoking do not slow searches.
"""

from __future__ import annotations

import asyncio
import tempfile
import time
from pathlib import Path
from typing import Any

import grpc

from eventlog import Metadata
from modelog._gen.tracking.v1 import tracking_pb2 as tpb
from modelog._gen.tracking.v1 import tracking_pb2_grpc
from modelog_platform.access import AddGrant, CreateProject, grant_of
from modelog_platform.app import Platform, start_server
from modelog_platform.settings import Settings
from modelog_services.permissions import rules
from tests.bench.common import percentile, postgres, write_result

EXPERIMENTS = 10_000
GRANTS = 1_000
CALLS = 3_000


def _stats(samples: list[float]) -> dict[str, float]:
    samples.sort()
    return {
        "p50_us": round(percentile(samples, 0.5), 1),
        "p99_us": round(percentile(samples, 0.99), 1),
        "calls": len(samples),
    }


async def _check_cost(platform: Platform, token: str, request: Any, n: int = CALLS) -> dict[str, float]:
    """Access lookup + table rule + resource place + check, exactly as the interceptor runs them."""
    authorizer = platform.authorizer()
    rule = rules()["/modelog.tracking.v1.Tracking/GetExperiment"]
    roles = () if token != "admin" else ("admin",)
    samples = []
    for _ in range(n):
        t0 = time.perf_counter()
        access = await authorizer.access(token, roles)
        await authorizer.authorize(rule, "/modelog.tracking.v1.Tracking/GetExperiment", request, access)
        samples.append((time.perf_counter() - t0) * 1e6)
    return _stats(samples)


async def _rpc_cost(stub: Any, md: list[tuple[str, str]], request: Any, n: int = CALLS) -> dict[str, float]:
    samples = []
    for _ in range(n):
        t0 = time.perf_counter()
        await stub.GetExperiment(request, metadata=md)
        samples.append((time.perf_counter() - t0) * 1e6)
    return _stats(samples)


async def _list_ms(stub: Any, md: list[tuple[str, str]], n: int = 30) -> float:
    samples = []
    for _ in range(n):
        t0 = time.perf_counter()
        await stub.ListExperiments(tpb.ListExperimentsRequest(page_size=100), metadata=md)
        samples.append((time.perf_counter() - t0) * 1000)
    samples.sort()
    return round(percentile(samples, 0.5), 2)


async def run(dsn: str, home: Path) -> dict[str, Any]:
    platform = await Platform.open(Settings(home=home, addr="127.0.0.1:0"), dsn)
    admin = (await platform.ensure_admin_token()).read_text().strip()
    server = await start_server(platform, "127.0.0.1:0")
    assert platform.authority is not None and platform.access is not None
    bob_secret, _ = await platform.authority.create("bob", ["none"], Metadata(actor="admin"))
    channel = grpc.aio.insecure_channel(f"127.0.0.1:{server.port}")
    stub = tracking_pb2_grpc.TrackingStub(channel)
    amd, bmd = [("authorization", f"Bearer {admin}")], [("authorization", f"Bearer {bob_secret}")]
    meta = Metadata(actor="admin")
    try:
        await platform.access.change(CreateProject("ml"), meta)
        sem = asyncio.Semaphore(32)

        async def make(i: int) -> str:
            async with sem:
                project = "ml" if i % 10 == 0 else "default"
                req = tpb.CreateExperimentRequest(name=f"exp-{i:05d}", project=project)
                return (await stub.CreateExperiment(req, metadata=amd)).experiment.experiment_id

        t0 = time.perf_counter()
        ids = await asyncio.gather(*(make(i) for i in range(EXPERIMENTS)))
        made_s = time.perf_counter() - t0
        await platform.access.change(AddGrant(grant_of("bob", "project", "ml", "READ")), meta)
        target = tpb.GetExperimentRequest(experiment_id=ids[0])  # in project ml

        before = {
            "check_admin_role": await _check_cost(platform, "admin", target),
            "check_scoped_token": await _check_cost(platform, "bob", target),
            "rpc_admin_role": await _rpc_cost(stub, amd, target),
            "rpc_scoped_token": await _rpc_cost(stub, bmd, target),
            "list_100_of_10k_admin_ms": await _list_ms(stub, amd),
            "list_100_of_10k_scoped_ms": await _list_ms(stub, bmd),
        }
        # 1,000 grants to others (and 20 more to bob), on experiments and projects.
        for i in range(GRANTS):
            who = "bob" if i < 20 else f"user{i % 50}"
            kind, scope = ("experiment", ids[i + 1]) if i % 2 else ("project", "ml")
            perm = ("READ", "EDIT", "MANAGE", "APPROVE")[i % 4]
            if kind == "project" and who != "bob":
                who = f"group:team{i % 30}"
            await platform.access.change(AddGrant(grant_of(who, kind, scope, perm)), meta)
        grants = await platform.pool.fetchval("SELECT count(*) FROM identity.grants")
        await asyncio.sleep(1.1)  # let every cached grant list expire (the cache lives one second)
        after = {
            "check_admin_role": await _check_cost(platform, "admin", target),
            "check_scoped_token": await _check_cost(platform, "bob", target),
            "rpc_admin_role": await _rpc_cost(stub, amd, target),
            "rpc_scoped_token": await _rpc_cost(stub, bmd, target),
            "list_100_of_10k_admin_ms": await _list_ms(stub, amd),
            "list_100_of_10k_scoped_ms": await _list_ms(stub, bmd),
        }
        return {
            "experiments": EXPERIMENTS,
            "experiments_created_s": round(made_s, 1),
            "grant_rows": grants,
            "empty_grant_table": before,
            "with_1000_grants": after,
            "goal": "check p50 < 20 us; lists not slowed by grants",
        }
    finally:
        await channel.close()
        await server.stop(0)
        await platform.close()


def main() -> None:
    with postgres() as dsn, tempfile.TemporaryDirectory(prefix="modelog-bench-authz-") as tmp:
        result = asyncio.run(run(dsn, Path(tmp)))
    path = write_result("authz", result)
    for phase in ("empty_grant_table", "with_1000_grants"):
        r = result[phase]
        check = (
            f"check admin {r['check_admin_role']['p50_us']} us, scoped {r['check_scoped_token']['p50_us']} us"
        )
        rpc = f"GetExperiment admin {r['rpc_admin_role']['p50_us']} us, "
        rpc += f"scoped {r['rpc_scoped_token']['p50_us']} us"
        lists = f"list 100 of 10k admin {r['list_100_of_10k_admin_ms']} ms, "
        lists += f"scoped {r['list_100_of_10k_scoped_ms']} ms"
        print(f"{phase} (p50): {check}; {rpc}; {lists}")
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
