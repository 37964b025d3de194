"""Monitoring: a window's drift side by side with Evidently 0.7.23's DataDriftPreset on the same data.

Data: 16 numerical and 4 categorical columns; a 100,000-row reference; windows of 10,000 and
1,000,000 rows in which 3 numerical and 1 categorical column have shifted. Written once as Parquet;
every contender reads the same files and is timed from in-memory tables to the per-column verdicts.

- Evidently 0.7.23 (`Report([DataDriftPreset()]).run(current, reference)`, plus `Dataset.from_pandas`)
  runs in its own virtualenv, which this bench creates (BENCH_EVIDENTLY_VENV, default
  /tmp/modelog-bench-evidently) and which is never a Modelog dependency. Evidently 0.7.23 imports a
  pandas function pandas 3 removed, so that venv pins pandas<3.
- The floor: the same default tests written plainly with numpy/scipy in this file (no prepared
  reference: each window sorts and counts both samples, as a direct port of Evidently's code would).
- Modelog: `PreparedReference` (built once per baseline, timed apart), `detect_drift` per window, and
  `detect_drift + render_report` on the 1M window (goal: the report ready < 2 s after the window closes;
  also measured with the window's profile for its event, and with reading the window's Parquet first).

Goals: >= 25x faster than Evidently on both windows, within 2x of the floor. Also checked: Evidently's
per-column scores and verdicts equal Modelog's, for the 100,000-row reference (Wasserstein, Jensen-
Shannon) and for its first 1,000 rows (KS, chi-square).

    python -m tests.bench.bench_monitoring_drift      # writes tests/bench/results/monitoring_drift.json
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from scipy import stats
from scipy.spatial import distance

from modelog_services.monitoring.drift import (
    ColumnSpec,
    DriftResult,
    PreparedReference,
    Schema,
    detect_drift,
    detect_drift_and_profile,
)
from modelog_services.monitoring.report import render_report
from modelog_services.monitoring.stattests import is_drift
from tests.bench.common import write_result

SCALE = float(os.environ.get("BENCH_SCALE", "1"))
REFERENCE_ROWS = max(2000, int(100_000 * SCALE))
WINDOWS = {"10k": max(1000, int(10_000 * SCALE)), "1M": max(2000, int(1_000_000 * SCALE))}
NUMERICAL = [f"num_{i:02d}" for i in range(16)]
CATEGORICAL = [f"cat_{j}" for j in range(4)]
SHIFTED = ["num_00", "num_05", "num_10", "cat_0"]
EVIDENTLY_VENV = Path(os.environ.get("BENCH_EVIDENTLY_VENV", "/tmp/modelog-bench-evidently"))
EVIDENTLY_PINS = ["evidently==0.7.23", "pandas<3", "pyarrow"]
SCHEMA = Schema(
    tuple(
        [ColumnSpec(n, "numerical") for n in NUMERICAL] + [ColumnSpec(c, "categorical") for c in CATEGORICAL]
    )
)


# ---------------------------------------------------------------- data


def generate(rows: int, seed: int, shifted: bool) -> pa.Table:
    """Numbers of several shapes (normal, log-normal, uniform, exponential, counts) and categories of
    3 to 12 levels; `shifted` moves num_00/num_05/num_10 and the frequencies of cat_0."""
    rng = np.random.default_rng(seed)
    columns: dict[str, Any] = {}
    for i, name in enumerate(NUMERICAL):
        move = shifted and name in SHIFTED
        shape = i % 5
        if shape == 0:
            columns[name] = rng.normal(50 + (6.0 if move else 0.0), 20, rows)
        elif shape == 1:
            columns[name] = rng.lognormal(3 + (0.3 if move else 0.0), 0.7, rows)
        elif shape == 2:
            columns[name] = rng.uniform(0, 100 * (1.3 if move else 1.0), rows)
        elif shape == 3:
            columns[name] = rng.exponential(5.0, rows)
        else:
            columns[name] = rng.poisson(30, rows).astype(np.float64)
    for j, name in enumerate(CATEGORICAL):
        levels = np.array([f"{name}_level_{k}" for k in range(3 + 3 * j)])
        p = np.linspace(2.0, 1.0, levels.size)
        if shifted and name in SHIFTED:
            p = p[::-1]
        columns[name] = pa.array(levels[rng.choice(levels.size, rows, p=p / p.sum())])
    return pa.table(columns)


def write_data(work: Path) -> dict[str, Path]:
    paths = {"reference": work / "reference.parquet"}
    pq.write_table(generate(REFERENCE_ROWS, 1, shifted=False), paths["reference"])
    for i, (label, rows) in enumerate(WINDOWS.items()):
        paths[label] = work / f"window-{label}.parquet"
        pq.write_table(generate(rows, 10 + i, shifted=True), paths[label])
    return paths


def best(fn: Callable[[], Any], repeat: int) -> tuple[float, Any]:
    times, out = [], None
    for _ in range(repeat):
        t0 = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t0)
    return min(times), out


# ---------------------------------------------------------------- the floor: plain numpy/scipy


def _clean(column: pa.ChunkedArray) -> np.ndarray:
    values = np.asarray(column.to_numpy(), dtype=np.float64)
    return values[np.isfinite(values)]


def _floor_wasserstein(ref: np.ndarray, cur: np.ndarray) -> float:
    r, c = np.sort(ref), np.sort(cur)
    merged = np.sort(np.concatenate([r, c]))
    deltas = np.diff(merged)
    r_cdf = np.searchsorted(r, merged[:-1], side="right") / r.size
    c_cdf = np.searchsorted(c, merged[:-1], side="right") / c.size
    return float(np.sum(np.abs(r_cdf - c_cdf) * deltas)) / max(float(np.std(ref)), 0.001)


def _counts(column: pa.ChunkedArray) -> dict[str, int]:
    counted = pc.value_counts(column.drop_null())
    return dict(zip(counted.field("values").to_pylist(), counted.field("counts").to_pylist(), strict=True))


def floor(reference: pa.Table, current: pa.Table, choose: bool = True) -> dict[str, float]:
    """Evidently's default tests, plainly: pick the test by size and distinct values, then run it on
    the two raw samples (no state kept between windows). `choose=False` skips counting the distinct
    values (as if the tests were known), the leanest version of the floor."""
    scores: dict[str, float] = {}
    for name in NUMERICAL:
        ref, cur = _clean(reference.column(name)), _clean(current.column(name))
        n_unique = np.unique(np.concatenate([ref, cur])).size if choose else 6
        if ref.size <= 1000:
            scores[name] = float(stats.ks_2samp(ref, cur).pvalue)
        elif n_unique > 5:
            scores[name] = _floor_wasserstein(ref, cur)
        else:
            raise NotImplementedError("the bench data has no low-cardinality numerical column")
    for name in CATEGORICAL:
        ref_counts, cur_counts = _counts(reference.column(name)), _counts(current.column(name))
        keys = sorted(set(ref_counts) | set(cur_counts))
        r = np.array([ref_counts.get(k, 0) for k in keys], dtype=np.float64)
        c = np.array([cur_counts.get(k, 0) for k in keys], dtype=np.float64)
        scores[name] = float(distance.jensenshannon(r / r.sum(), c / c.sum()))
    return scores


# ---------------------------------------------------------------- Evidently, in its own venv

EVIDENTLY_SCRIPT = r"""
import json, sys, time
import pandas as pd
from evidently import DataDefinition, Dataset, Report
from evidently.presets import DataDriftPreset

ref_path, cur_path, out_path, num, cat, repeat = sys.argv[1:7]
num, cat = num.split(","), cat.split(",")
reference, current = pd.read_parquet(ref_path), pd.read_parquet(cur_path)
definition = DataDefinition(numerical_columns=num, categorical_columns=cat)
times = []
for _ in range(int(repeat)):
    t0 = time.perf_counter()
    ref = Dataset.from_pandas(reference, data_definition=definition)
    cur = Dataset.from_pandas(current, data_definition=definition)
    snapshot = Report([DataDriftPreset()]).run(cur, ref)
    times.append(time.perf_counter() - t0)
scores, share = {}, None
for metric in snapshot.dict()["metrics"]:
    config = metric["config"]
    if config["type"].endswith("ValueDrift"):
        scores[config["column"]] = {"method": config["method"], "score": metric["value"],
                                    "threshold": config["threshold"]}
    elif config["type"].endswith("DriftedColumnsCount"):
        share = metric["value"]["share"]
json.dump({"seconds": min(times), "runs": times, "scores": scores, "drift_share": share},
          open(out_path, "w"))
"""


def evidently_install() -> tuple[Path | None, str]:
    python = EVIDENTLY_VENV / "bin" / "python"
    probe = [str(python), "-c", "import evidently, pandas; print(evidently.__version__, pandas.__version__)"]
    ok = python.exists() and subprocess.run(probe, capture_output=True, text=True).returncode == 0
    if not ok:
        try:
            if not python.exists():
                subprocess.run(
                    [sys.executable, "-m", "venv", str(EVIDENTLY_VENV)], check=True, capture_output=True
                )
            subprocess.run(
                [str(EVIDENTLY_VENV / "bin" / "pip"), "install", "--quiet", *EVIDENTLY_PINS],
                check=True,
                capture_output=True,
                timeout=1800,
            )
        except (subprocess.SubprocessError, OSError) as exc:
            detail = getattr(exc, "stderr", b"") or b""
            return None, f"pip install evidently failed: {exc} {detail.decode(errors='replace')[-500:]}"
    versions = subprocess.run(probe, capture_output=True, text=True).stdout.split()
    return python, f"evidently {versions[0]}, pandas {versions[1]}" if len(versions) == 2 else "unknown"


def run_evidently(
    python: Path, work: Path, paths: dict[str, Path], window: str, repeat: int
) -> dict[str, Any]:
    script, out = work / "evidently_drift.py", work / f"evidently-{window}.json"
    script.write_text(EVIDENTLY_SCRIPT)
    args = [str(paths["reference"]), str(paths[window]), str(out), ",".join(NUMERICAL), ",".join(CATEGORICAL)]
    subprocess.run(
        [str(python), str(script), *args, str(repeat)], check=True, timeout=3600, capture_output=True
    )
    result: dict[str, Any] = json.loads(out.read_text())
    return result


# ---------------------------------------------------------------- Modelog


def modelog(paths: dict[str, Path]) -> tuple[dict[str, Any], dict[str, DriftResult], dict[str, pa.Table]]:
    reference = pq.read_table(paths["reference"])
    prepare_s, prepared = best(lambda: PreparedReference(reference, SCHEMA), 3)
    out: dict[str, Any] = {"prepare_reference_s": round(prepare_s, 4)}
    results, windows = {}, {}
    for label in WINDOWS:
        windows[label] = pq.read_table(paths[label])
        seconds, results[label] = best(
            lambda w=windows[label]: detect_drift(prepared, w), 5 if label == "10k" else 3
        )
        out[f"detect_{label}_s"] = round(seconds, 4)
    big = windows["1M"]
    seconds, html = best(lambda: render_report("bench", detect_drift(prepared, big)), 3)
    out["detect_and_report_1M_s"] = round(seconds, 4)
    out["report_html_bytes"] = len(html)
    seconds, _ = best(lambda: render_report("bench", detect_drift_and_profile(prepared, big)[0]), 3)
    out["detect_profile_and_report_1M_s"] = round(seconds, 4)
    seconds, _ = best(lambda: render_report("bench", detect_drift(prepared, pq.read_table(paths["1M"]))), 3)
    out["read_parquet_detect_and_report_1M_s"] = round(seconds, 4)
    return out, results, windows


def agreement(ours: DriftResult, theirs: dict[str, Any]) -> dict[str, Any]:
    """Evidently's per-column scores and verdicts against Modelog's."""
    diffs, same_verdicts, methods = [], True, set()
    for column in ours.columns:
        other = theirs["scores"][column.column]
        diffs.append(abs(column.score - other["score"]))
        methods.add(f"{column.stattest} = {other['method']}")
        theirs_drifted = is_drift(column.stattest, other["score"], other["threshold"])
        same_verdicts &= theirs_drifted == column.drifted
    return {
        "max_abs_score_diff": max(diffs),
        "same_verdicts": same_verdicts,
        "same_drift_share": abs(ours.drift_share - (theirs["drift_share"] or 0)) < 1e-12,
        "tests": sorted(methods),
    }


# ---------------------------------------------------------------- main


def main() -> None:
    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory(prefix="modelog-bench-drift-", dir="/tmp") as tmp:
        work = Path(tmp)
        paths = write_data(work)
        ours, results, windows = modelog(paths)
        reference = pq.read_table(paths["reference"])
        floor_s, lean_s = {}, {}
        for label, table in windows.items():
            seconds, scores = best(lambda t=table: floor(reference, t), 5 if label == "10k" else 3)
            floor_s[label] = round(seconds, 4)
            seconds, _ = best(lambda t=table: floor(reference, t, choose=False), 5 if label == "10k" else 3)
            lean_s[label] = round(seconds, 4)
            ours_scores = {c.column: c.score for c in results[label].columns}
            assert all(abs(scores[k] - ours_scores[k]) < 1e-9 for k in scores), "the floor disagrees"
        python, version = evidently_install()
        evidently: dict[str, Any] = {"version": version}
        if python is not None:
            for label in WINDOWS:
                run = run_evidently(python, work, paths, label, 2 if label == "10k" else 1)
                evidently[label] = {
                    "seconds": round(run["seconds"], 3),
                    "runs": [round(t, 3) for t in run["runs"]],
                }
                evidently[label]["agreement"] = agreement(results[label], run)
            # Evidently's other default family (KS, chi-square): the first 1,000 reference rows
            paths["small-reference"] = work / "reference-1000.parquet"
            pq.write_table(reference.slice(0, 1000), paths["small-reference"])
            run = run_evidently(python, work, {**paths, "reference": paths["small-reference"]}, "10k", 1)
            small = detect_drift(PreparedReference(reference.slice(0, 1000), SCHEMA), windows["10k"])
            evidently["small_reference_10k"] = {"agreement": agreement(small, run)}
    rows = []
    for label in WINDOWS:
        mine = ours[f"detect_{label}_s"]
        row = {"window": label, "rows": WINDOWS[label], "modelog_s": mine, "floor_s": floor_s[label]}
        row["modelog_over_floor"] = round(mine / floor_s[label], 2)
        row["floor_known_tests_s"] = lean_s[label]
        row["modelog_over_floor_known_tests"] = round(mine / lean_s[label], 2)
        if label in evidently:
            row["evidently_s"] = evidently[label]["seconds"]
            row["speedup_vs_evidently"] = round(evidently[label]["seconds"] / mine, 1)
        rows.append(row)
    result = {
        "data": {
            "reference_rows": REFERENCE_ROWS,
            "windows": WINDOWS,
            "numerical": len(NUMERICAL),
            "categorical": len(CATEGORICAL),
            "shifted_columns": SHIFTED,
        },
        "load_average_before_after": [round(x, 2) for x in (*load_before, *os.getloadavg())],
        "modelog": ours,
        "floor_s": floor_s,
        "floor_known_tests_s": lean_s,
        "floor": "numpy/scipy per window: sort both samples, merged-CDF Wasserstein, pyarrow value_counts + "
        "scipy jensenshannon; floor_s also counts distinct values (np.unique) to choose the test as "
        "Evidently does, floor_known_tests_s does not",
        "evidently": evidently,
        "by_window": rows,
        "drifted_columns": {label: list(r.drifted_columns) for label, r in results.items()},
        "goals": {
            "speedup_vs_evidently_min": 25,
            "modelog_over_floor_max": 2,
            "report_ready_1M_s_max": 2,
            "met": {
                "speedup": all(r.get("speedup_vs_evidently", 0) >= 25 for r in rows),
                "floor": all(r["modelog_over_floor_known_tests"] <= 2 for r in rows),
                "report": ours["detect_and_report_1M_s"] < 2,
            },
        },
    }
    path = write_result("monitoring_drift", result)
    nan = float("nan")
    head = ("window", "evidently s", "floor s", "lean floor s", "modelog s", "x evidently", "/ lean floor")
    print("{:>7} {:>12} {:>9} {:>13} {:>10} {:>12} {:>13}".format(*head))
    for r in rows:
        cells = (
            r["window"],
            r.get("evidently_s", nan),
            r["floor_s"],
            r["floor_known_tests_s"],
            r["modelog_s"],
        )
        ratios = (r.get("speedup_vs_evidently", nan), r["modelog_over_floor_known_tests"])
        print("{:>7} {:>12.3f} {:>9.3f} {:>13.3f} {:>10.4f} {:>12.1f} {:>13.2f}".format(*cells, *ratios))
    print(
        f"reference prepared once in {ours['prepare_reference_s']} s; 1M window drift + HTML report "
        f"{ours['detect_and_report_1M_s']} s ({ours['read_parquet_detect_and_report_1M_s']} s "
        "reading its Parquet too)"
    )
    for label in [*WINDOWS, "small_reference_10k"]:
        if label in evidently:
            print(f"agreement with Evidently on {label}: {evidently[label]['agreement']}")
    print(f"-> {path}  (load average {statistics.mean(os.getloadavg()):.2f})")


if __name__ == "__main__":
    main()
