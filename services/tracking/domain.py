"""Tracking's rules as deciders (MLflow-compatible limits), in parts: `experiments`, `runs` and the
experiment-name claims (`nameclaims`), over the input `checks`. Each decider is pure: an initial
state, decide(command, state) -> events, evolve(state, event) -> state.

This module names them all, so that `domain` stays the one import the servicer, the command path and
the tests need.
"""

from __future__ import annotations

from .checks import (
    MAX_METRIC_POINTS,
    check_id,
    experiment_name_stream_id,
    experiment_stream_id,
    run_stream_id,
)
from .experiments import (
    CreateExperiment,
    DeleteExperiment,
    DeleteExperimentTag,
    DescribeExperiment,
    ExperimentCommand,
    ExperimentState,
    RenameExperiment,
    RestoreExperiment,
    SetExperimentTags,
    ensure_experiment_accepts_runs,
    experiment_decider,
)
from .nameclaims import name_claim_decider
from .runs import (
    DeleteRun,
    DeleteTag,
    FinishRun,
    LogDatasetInput,
    LogMetrics,
    LogParams,
    RenameRun,
    RestoreRun,
    RunCommand,
    RunState,
    SetTags,
    StartRun,
    batch_decider,
    ensure_valid_parent,
    evolve_run,
    grouped_by_key,
    run_decider,
)

__all__ = [
    "MAX_METRIC_POINTS",
    "CreateExperiment",
    "DeleteExperiment",
    "DeleteExperimentTag",
    "DeleteRun",
    "DeleteTag",
    "DescribeExperiment",
    "ExperimentCommand",
    "ExperimentState",
    "FinishRun",
    "LogDatasetInput",
    "LogMetrics",
    "LogParams",
    "RenameExperiment",
    "RenameRun",
    "RestoreExperiment",
    "RestoreRun",
    "RunCommand",
    "RunState",
    "SetExperimentTags",
    "SetTags",
    "StartRun",
    "batch_decider",
    "check_id",
    "ensure_experiment_accepts_runs",
    "ensure_valid_parent",
    "evolve_run",
    "experiment_decider",
    "experiment_name_stream_id",
    "experiment_stream_id",
    "grouped_by_key",
    "name_claim_decider",
    "run_decider",
    "run_stream_id",
]
