"""More of what the browser tests look at: a dataset with a second version, and a production monitor
whose windows drift a little more each time (written through the SDK, as a user would)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa

import modelog
import modelog.artifacts as art

MONITOR = "churn-prod"
MONITOR_WINDOWS = 6
WINDOW_ROWS = 500
NUMERICAL = ("tenure", "spend", "calls", "age")
CATEGORICAL = ("plan", "region")
SHIFT = (0.0, 0.05, 0.3, 0.6, 1.0, 1.5)
"""How far `tenure` and `spend` move in each window: the first windows hold, the last ones drift."""
PLANS = np.array(["basic", "plus", "pro", "family"])


class _Quiet:
    def start(self, label: str, total: int) -> None: ...

    def advance(self, n: int) -> None: ...

    def finish(self) -> None: ...


def customers(rows: int, seed: int, shift: float = 0.0, first_id: int = 0) -> pa.Table:
    """Customers whose `tenure` and `spend` move by `shift`; `plan` skews once shift passes 0.5;
    `calls`, `age` and `region` never move."""
    rng = np.random.default_rng(seed)
    skew = [0.1, 0.2, 0.3, 0.4] if shift > 0.5 else [0.4, 0.3, 0.2, 0.1]
    tenure = rng.normal(shift, 1.0, rows)
    return pa.table(
        {
            "tenure": tenure,
            "spend": rng.normal(shift * 0.8, 1.0, rows),
            "calls": rng.normal(0.0, 1.0, rows),
            "age": rng.normal(0.0, 1.0, rows),
            "plan": PLANS[rng.choice(4, rows, p=skew)],
            "region": PLANS[rng.choice(4, rows)],
            "churn": (tenure > 0.3).astype(np.int64),
            "id": np.arange(first_id, first_id + rows, dtype=np.int64),
        }
    )


def dataset_versions(home: Path) -> tuple[int, int]:
    """`customers` v2 after the v1 the failed run read: more rows, a column more, a file more."""
    data = home / "ui-dataset"
    (data / "customers.csv").write_text(
        "id,churned,plan\n" + "".join(f"{i},{i % 2},{'pro' if i % 3 else 'basic'}\n" for i in range(120))
    )
    (data / "README.md").write_text("# customers\n\nOne row per customer; `churned` is the label.\n")
    v2 = art.log_artifacts(data, name="customers", kind="dataset", message="adds plan", progress=_Quiet())
    return v2.version - 1, v2.version


def monitor(model: str) -> str:
    schema = {**{n: "numerical" for n in NUMERICAL}, **{c: "categorical" for c in CATEGORICAL}}
    m = modelog.monitors.create(
        MONITOR,
        model=f"{model}@champion",
        reference_data=customers(2000, seed=1),
        schema=schema,
        prediction="churn",
        id_column="id",
        window_rows=WINDOW_ROWS,
        deployment="eu-west",
    )
    for i, shift in enumerate(SHIFT):
        m.log_predictions(customers(WINDOW_ROWS, seed=10 + i, shift=shift, first_id=i * WINDOW_ROWS))
    m.flush()
    m.wait_profiled(MONITOR_WINDOWS)
    m.close()
    return MONITOR
