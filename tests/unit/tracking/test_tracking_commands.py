"""The tracking command path's pure parts: ids and keys for retries, batch layout, atomic starts, names."""

from __future__ import annotations

import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from eventlog import InvalidArgument
from eventlog.commandpath import derive_key, new_id
from modelog_services.tracking.domain import (
    LogMetrics,
    LogParams,
    RunState,
    StartRun,
    batch_decider,
    check_id,
    grouped_by_key,
)
from modelog_services.tracking.events import ParamsLogged, RunStarted
from modelog_services.tracking.names import run_name_for


def test_a_retry_derives_the_same_id_and_a_scoped_key() -> None:
    assert new_id("StartRun", "k") == new_id("StartRun", "k") != new_id("CreateExperiment", "k")
    assert new_id("StartRun", None) != new_id("StartRun", None)
    check_id("run_id", new_id("StartRun", "k"))
    assert derive_key("LogParams", "k") == "LogParams/k" != derive_key("SetTags", "k")
    assert derive_key("LogParams", None) is None
    long = derive_key("LogMetrics", "x" * 128)
    assert long is not None and len(long) <= 128 and long != derive_key("LogMetrics", "x" * 127 + "y")


@settings(max_examples=200, deadline=None)
@given(st.lists(st.sampled_from(["a", "b", "c", "loss/x"]), max_size=60))
def test_grouping_a_batch_by_key_keeps_each_keys_points_in_order(keys: list[str]) -> None:
    n = len(keys)
    cmd = LogMetrics("r", keys, [float(i) for i in range(n)], list(range(n)), list(range(100, 100 + n)))
    out = grouped_by_key(cmd)
    assert sorted(zip(out.keys, out.values, out.steps, out.timestamps_ms, strict=True)) == sorted(
        zip(keys, cmd.values, cmd.steps, cmd.timestamps_ms, strict=True)
    )
    changes = sum(1 for a, b in zip(out.keys, out.keys[1:], strict=False) if a != b)
    assert changes == max(0, len(set(keys)) - 1)  # one contiguous run per key
    for k in set(keys):
        assert [v for kk, v in zip(out.keys, out.values, strict=True) if kk == k] == [
            v for kk, v in zip(keys, cmd.values, strict=True) if kk == k
        ]


def test_start_with_params_is_decided_as_one_command() -> None:
    start = StartRun("r1", "e1", "name", 1)
    events = batch_decider.decide([start, LogParams("r1", {"lr": "0.1"})], RunState())
    assert [type(e) for e in events] == [RunStarted, ParamsLogged]
    with pytest.raises(InvalidArgument, match="params"):
        batch_decider.decide([start, LogParams("r1", {"bad key!": "x"})], RunState())


def test_generated_run_names_are_stable_and_mlflow_like() -> None:
    assert run_name_for("abc") == run_name_for("abc")
    assert re.fullmatch(r"[a-z]+-[a-z]+-\d{1,3}", run_name_for("abc"))
    assert len({run_name_for(str(i)) for i in range(200)}) > 190
