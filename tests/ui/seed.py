"""What the browser tests look at, written through the SDK as a user's training script would."""

from __future__ import annotations

import math
import random
from dataclasses import dataclass
from pathlib import Path

import modelog
import modelog.artifacts as art
from modelog._client import Connection
from modelog.registry import Registry, register_model

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


LONG_POINTS = 50_000
RUNS = 240


class _Quiet:
    def start(self, label: str, total: int) -> None: ...

    def advance(self, n: int) -> None: ...

    def finish(self) -> None: ...


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
        return Seeded("churn", exp_id, RUNS + 1, best, long_run, "churn")
    finally:
        client.close()
