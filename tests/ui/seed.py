"""What the browser tests look at, written through the SDK as a user's training script would."""

from __future__ import annotations

import json
import math
import random
import struct
import zlib
from dataclasses import dataclass
from pathlib import Path

import modelog
import modelog.artifacts as art
from modelog._client import Connection
from modelog._gen.registry.v1 import registry_pb2 as rpb
from modelog.registry import Registry, register_model
from tests.ui import seed_more

OPTIMIZERS = ("adam", "sgd", "adamw")


@dataclass(frozen=True)
class Seeded:
    experiment: str
    experiment_id: str
    runs: int
    best_run: str
    """The run with the highest `acc` (lr 0.1, layers 2)."""
    long_run: str
    """A run with one long `loss` history (LONG_POINTS points) and one spike in it."""
    model: str
    sweep_experiment_id: str
    sweep: tuple[str, ...]
    """SWEEP_RUNS runs of the `sweep` experiment, oldest first, each with every SWEEP_METRICS key."""
    imported_model: str
    """IMPORTED_MODEL: v1 and its alias imported from MLflow with their original times and people
    (IMPORTED), then v2 made here, the alias moved to it and v2 moved to Staging."""
    failed_run: str
    """A FAILED run with a failure_reason tag, files of its own in two versions (text, JSON, CSV, an
    image, a binary) and a dataset input whose content is the `customers` dataset artifact's v1."""
    dataset_versions: tuple[int, int]
    """`customers` v1 and v2 (v2: more rows, a column and a file more)."""
    monitor: str
    """seed_more.MONITOR: six windows of `churn@champion`, `tenure` and `spend` drifting in the last."""


LONG_POINTS = 50_000
RUNS = 240
SWEEP_RUNS = 50
SWEEP_STEPS = 100
SWEEP_METRICS = (
    "acc",
    "loss",
    "val_acc",
    "val_loss",
    "f1",
    "precision",
    "recall",
    "auc",
    "grad_norm",
    "throughput",
)
SWEEP_CONSTANT = {"dataset": "customers-v3", "epochs": 10}
"""Params every sweep run shares: a comparison hides them until asked to show all."""


class _Quiet:
    def start(self, label: str, total: int) -> None: ...

    def advance(self, n: int) -> None: ...

    def finish(self) -> None: ...


IMPORTED_MODEL = "fraud"
IMPORTED = {
    "source": "mlflow:http://mlflow.example:5000",
    "created": (1736499600000, "alice@example.com"),  # 2025-01-10 09:00 UTC
    "aliased": (1736672400000, "bob@example.com"),  # 2025-01-12 09:00 UTC
}


def _imported_model(conn: Connection, home: Path, run_id: str) -> str:
    """A model whose first version came from another registry: imported commands carry the source's
    time and person in x-modelog-origin headers (admin only), which history and as-of answers use."""
    package = home / "ui-fraud-model"
    package.mkdir(parents=True, exist_ok=True)
    (package / "model.pkl").write_bytes(b"fraud weights v1")
    first = art.log_artifacts(package, name="fraud-model", kind="model", run_id=run_id, progress=_Quiet())
    (package / "model.pkl").write_bytes(b"fraud weights v2")
    second = art.log_artifacts(package, name="fraud-model", kind="model", run_id=run_id, progress=_Quiet())
    registry = Registry(conn)

    def origin(what: str, at_by: tuple[int, str]) -> list[tuple[str, str]]:
        at, by = at_by
        return [
            ("x-modelog-origin", IMPORTED["source"]),  # type: ignore[list-item]
            ("x-modelog-origin-id", f"{what}/fraud"),
            ("x-modelog-origin-time", str(at)),
            ("x-modelog-origin-by", by),
        ]

    registry.stub.CreateModelVersion(
        rpb.CreateModelVersionRequest(
            model=IMPORTED_MODEL,
            run_id=run_id,
            artifact=rpb.ArtifactRef(name="fraud-model", version=first.version),
            create_model=True,
        ),
        metadata=origin("version", IMPORTED["created"]),  # type: ignore[arg-type]
        timeout=60,
    )
    registry.stub.SetAlias(
        rpb.SetAliasRequest(model=IMPORTED_MODEL, alias="champion", version=1),
        metadata=origin("alias", IMPORTED["aliased"]),  # type: ignore[arg-type]
        timeout=60,
    )
    v2 = register_model(run_id, artifact=f"fraud-model:v{second.version}", name=IMPORTED_MODEL)
    v2.set_alias("champion")
    v2.request_transition("Staging")
    return IMPORTED_MODEL


FAILURE = "CUDA out of memory: tried to allocate 2.00 GiB (step 1200)"
LOG_LINES = 6000
"""The run's log is longer than a preview shows (128 KiB)."""
CSV_ROWS = 250


def png(width: int, height: int) -> bytes:
    """A small RGB gradient, written by hand (the test environment has no imaging library)."""
    raw = b"".join(
        b"\x00" + bytes(v for x in range(width) for v in (x * 255 // width, y * 255 // height, 160))
        for y in range(height)
    )

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(raw))
        + chunk(b"IEND", b"")
    )


def _failed_run(home: Path) -> str:
    data = home / "ui-dataset"
    data.mkdir(parents=True, exist_ok=True)
    (data / "customers.csv").write_text("id,churned\n" + "".join(f"{i},{i % 2}\n" for i in range(100)))
    dataset = art.log_artifacts(data, name="customers", kind="dataset", progress=_Quiet())
    files = home / "ui-run-files"
    (files / "logs").mkdir(parents=True, exist_ok=True)
    with modelog.start_run(experiment="vision", name="with-artifacts", params={"lr": 0.3}) as run:
        run.log_metrics({"loss": 0.9}, step=0)
        run.log_input(name="customers", digest=dataset.manifest_digest, context="training")
        (files / "logs" / "train.log").write_text(
            "".join(
                f"step {i:05d} loss={1 / (i + 1):.6f} lr=0.3 throughput=912.4 ok\n" for i in range(LOG_LINES)
            )
        )
        art.log_artifacts(
            files, name=f"run-{run.id}", run_id=run.id, message="the log so far", progress=_Quiet()
        )
        (files / "metrics.json").write_text(json.dumps({"loss": 0.9, "per_class": {"cat": 0.8, "dog": 0.7}}))
        (files / "predictions.csv").write_text(
            "id,label,score,note\n"
            + "".join(f'{i},{"cat" if i % 2 else "dog"},{i / CSV_ROWS:.3f},"a, b"\n' for i in range(CSV_ROWS))
        )
        (files / "confusion.png").write_bytes(png(64, 48))
        (files / "weights.bin").write_bytes(bytes(range(256)) * 16)
        art.log_artifacts(files, name=f"run-{run.id}", run_id=run.id, message="everything", progress=_Quiet())
        run.set_tags({"failure_reason": FAILURE})
        run.finish("FAILED")
    return run.id


def _sweep(rnd: random.Random) -> tuple[str, ...]:
    """A hyper-parameter sweep: 5 params that vary, 2 that do not, 10 metrics of 100 steps each."""
    ids = []
    for i in range(SWEEP_RUNS):
        lr = (0.1, 0.03, 0.01, 0.003, 0.001)[i % 5]
        dropout = (0.0, 0.1, 0.3)[(i // 5) % 3]
        params = {
            "lr": lr,
            "layers": 2 + i % 4,
            "optimizer": OPTIMIZERS[i % 3],
            "dropout": dropout,
            "batch_size": (32, 64, 128)[(i // 3) % 3],
            **SWEEP_CONSTANT,
        }
        with modelog.start_run(experiment="sweep", name=f"sweep-{i:02d}", params=params) as run:
            final = 0.6 + 0.3 * (1 - math.exp(-lr * 60)) - 0.02 * dropout + rnd.random() * 0.01
            for step in range(SWEEP_STEPS):
                f = final * (1 - math.exp(-(step + 1) / 15))
                values = {
                    "acc": f,
                    "loss": 1 - f,
                    "val_acc": f - 0.02,
                    "val_loss": 1.02 - f,
                    "f1": f * 0.97,
                    "precision": f * 0.99,
                    "recall": f * 0.95,
                    "auc": min(1.0, f + 0.05),
                    "grad_norm": 5 * math.exp(-step / 30) + rnd.random() * 0.1,
                    "throughput": 900 + 10 * i + rnd.random() * 30,
                }
                run.log_metrics(values, step=step)
        ids.append(run.id)
    return tuple(ids)


def seed(addr: str, token: str, home: Path) -> Seeded:
    rnd = random.Random(20)
    client = modelog.connect(addr, token)
    try:
        best, best_acc = "", -1.0
        for i in range(RUNS):
            lr = (0.1, 0.03, 0.01, 0.003, 0.001)[i % 5]
            layers = 2 + i % 4
            params = {"lr": lr, "layers": layers, "optimizer": OPTIMIZERS[i % 3], "seed": i}
            tags = {"team": "nlp" if i % 2 else "vision"}
            with modelog.start_run(experiment="churn", name=f"run-{i:03d}", params=params, tags=tags) as run:
                final = 0.5 + 0.4 * (1 - math.exp(-lr * 40)) - 0.01 * layers + rnd.random() * 0.001
                for step in range(20):
                    run.log_metrics(
                        {"acc": final * (step + 1) / 20, "loss": 1 - final * (step + 1) / 20}, step=step
                    )
            if final > best_acc:
                best, best_acc = run.id, final
        with modelog.start_run(experiment="churn", name="long-history", params={"lr": 0.05}) as run:
            for step in range(LONG_POINTS):
                loss = math.exp(-step / 8000) + (25.0 if step == 31_337 else 0.0)
                run.log_metrics({"loss": loss, "acc": 1 - loss / 30}, step=step)
            run.log_input(name="customers-2026-10", digest="sha256:" + "ab" * 32, context="training")
            long_run = run.id
        with modelog.start_run(experiment="fraud-detection", params={"lr": 0.2}) as other:
            other.log_metrics({"auc": 0.91}, step=0)
        exp_id = modelog.get_run(best).experiment_id
        sweep = _sweep(rnd)
        sweep_exp = modelog.get_run(sweep[0]).experiment_id
        failed = _failed_run(home)

        package = home / "ui-model"
        package.mkdir(parents=True, exist_ok=True)
        (package / "model.pkl").write_bytes(b"\x80\x04weights" * 200)
        (package / "MLmodel").write_text("flavors: {sklearn: {}}\n")
        version = art.log_artifacts(package, name="churn-model", kind="model", run_id=best, progress=_Quiet())
        v = register_model(best, artifact=f"{version.name}:v{version.version}", name="churn")
        v.set_alias("champion")
        v.request_transition("Staging")
        v.request_transition("Production", comment="beats the baseline on acc")
        with Connection(addr, token) as conn:
            Registry(conn).set_policy("churn", "Production", approvals=1, from_stages=["Staging"])
            imported = _imported_model(conn, home, best)
        versions = seed_more.dataset_versions(home)
        monitor = seed_more.monitor("churn")
        return Seeded(
            "churn",
            exp_id,
            RUNS + 1,
            best,
            long_run,
            "churn",
            sweep_exp,
            sweep,
            imported,
            failed,
            versions,
            monitor,
        )
    finally:
        client.close()
