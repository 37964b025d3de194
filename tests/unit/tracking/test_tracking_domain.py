"""Experiment, run and name-claim rules as given / when / then."""

from __future__ import annotations

import math
import re
from collections.abc import Sequence

import pytest

from eventlog import AlreadyExists, DomainEvent, FailedPrecondition, InvalidArgument, NotFound
from eventlog.nameclaims import Claim, Release
from modelog_services.tracking.domain import (
    MAX_METRIC_POINTS,
    CreateExperiment,
    DeleteExperiment,
    DeleteExperimentTag,
    DeleteRun,
    DeleteTag,
    DescribeExperiment,
    ExperimentCommand,
    FinishRun,
    LogDatasetInput,
    LogMetrics,
    LogParams,
    RenameExperiment,
    RenameRun,
    RestoreExperiment,
    RestoreRun,
    RunCommand,
    RunState,
    SetExperimentTags,
    SetTags,
    StartRun,
    ensure_experiment_accepts_runs,
    ensure_valid_parent,
    experiment_decider,
    experiment_name_stream_id,
    name_claim_decider,
    run_decider,
)
from modelog_services.tracking.events import (
    DatasetInputLogged,
    ExperimentCreated,
    ExperimentDeleted,
    ExperimentDescribed,
    ExperimentNameClaimed,
    ExperimentNameReleased,
    ExperimentRenamed,
    ExperimentRestored,
    ExperimentTagDeleted,
    ExperimentTagsSet,
    MetricsLogged,
    ParamsLogged,
    RunDeleted,
    RunFinished,
    RunRenamed,
    RunRestored,
    RunSource,
    RunStarted,
    TagDeleted,
    TagsSet,
)
from tests import gwt

CREATED = ExperimentCreated(experiment_id="e1", name="churn", tags={"team": "nlp"}, created_at_ms=1)
STARTED = RunStarted(run_id="r1", experiment_id="e1", name="brave-fox", start_time_ms=1_000)


def on_experiment(given: Sequence[DomainEvent], when: ExperimentCommand) -> Sequence[DomainEvent]:
    return gwt.when(experiment_decider, given, when)


def on_run(given: Sequence[DomainEvent], when: RunCommand) -> Sequence[DomainEvent]:
    return gwt.when(run_decider, given, when)


def metrics(run_id: str = "r1", *values: float) -> LogMetrics:
    n = len(values)
    return LogMetrics(run_id, ["loss"] * n, list(values), list(range(n)), [5] * n)


# ---------------------------------------------------------------- experiments


def test_an_experiment_is_created_with_its_name_description_and_tags() -> None:
    when = CreateExperiment("e1", "churn", 1, description="why", tags={"team": "nlp"})
    assert on_experiment([], when) == [
        ExperimentCreated(
            experiment_id="e1", name="churn", description="why", tags={"team": "nlp"}, created_at_ms=1
        )
    ]


def test_creating_an_existing_experiment_is_refused() -> None:
    with pytest.raises(AlreadyExists, match="'e1' already exists"):
        on_experiment([CREATED], CreateExperiment("e1", "other", 2))


@pytest.mark.parametrize(
    ("name", "why"),
    [
        ("", "must not be empty"),
        ("x" * 251, "251 characters long; the limit is 250"),
        ("new\nline", "control character U+000A at position 3"),
        ("bell\x07", "control character U+0007"),
        ("del\x7f", "control character U+007F"),
    ],
)
def test_bad_experiment_names_are_invalid_and_say_why(name: str, why: str) -> None:
    with pytest.raises(InvalidArgument, match=re.escape(why)) as err:
        on_experiment([], CreateExperiment("e1", name, 1))
    assert err.value.violations[0].field == "name"


def test_a_name_of_250_characters_with_unicode_and_spaces_is_fine() -> None:
    name = "Ünïcode experiment " + "x" * 231
    assert on_experiment([], CreateExperiment("e1", name, 1))[0] == ExperimentCreated(
        experiment_id="e1", name=name, created_at_ms=1
    )


def test_rename_records_the_previous_name_and_renaming_to_the_same_name_is_a_no_op() -> None:
    assert on_experiment([CREATED], RenameExperiment("e1", "retention")) == [
        ExperimentRenamed(name="retention", previous_name="churn")
    ]
    assert on_experiment([CREATED], RenameExperiment("e1", "churn")) == []
    with pytest.raises(InvalidArgument, match="name: must not be empty"):
        on_experiment([CREATED], RenameExperiment("e1", ""))


@pytest.mark.parametrize(
    "when",
    [
        RenameExperiment("e9", "x"),
        DescribeExperiment("e9", "d"),
        SetExperimentTags("e9", {"a": "b"}),
        DeleteExperimentTag("e9", "a"),
        DeleteExperiment("e9"),
        RestoreExperiment("e9"),
    ],
)
def test_commands_on_an_unknown_experiment_are_not_found(when: ExperimentCommand) -> None:
    with pytest.raises(NotFound, match="experiment 'e9' does not exist"):
        on_experiment([], when)


def test_delete_and_restore_alternate_and_repeats_are_refused() -> None:
    assert on_experiment([CREATED], DeleteExperiment("e1")) == [ExperimentDeleted()]
    with pytest.raises(FailedPrecondition, match="already deleted"):
        on_experiment([CREATED, ExperimentDeleted()], DeleteExperiment("e1"))
    with pytest.raises(FailedPrecondition, match="not deleted"):
        on_experiment([CREATED], RestoreExperiment("e1"))
    assert on_experiment([CREATED, ExperimentDeleted()], RestoreExperiment("e1")) == [ExperimentRestored()]
    assert experiment_decider.fold([CREATED, ExperimentDeleted(), ExperimentRestored()]).deleted is False


@pytest.mark.parametrize(
    "when",
    [RenameExperiment("e1", "x"), DescribeExperiment("e1", "d"), SetExperimentTags("e1", {"a": "b"})],
)
def test_a_deleted_experiment_refuses_changes_until_restored(when: ExperimentCommand) -> None:
    with pytest.raises(FailedPrecondition, match="'e1' \\('churn'\\) is deleted; restore it"):
        on_experiment([CREATED, ExperimentDeleted()], when)


def test_experiment_tags_record_only_changes_and_deleting_a_missing_tag_is_not_found() -> None:
    assert on_experiment([CREATED], SetExperimentTags("e1", {"team": "nlp", "owner": "ana"})) == [
        ExperimentTagsSet(tags={"owner": "ana"})
    ]
    assert on_experiment([CREATED], SetExperimentTags("e1", {"team": "nlp"})) == []
    assert on_experiment([CREATED], DeleteExperimentTag("e1", "team")) == [ExperimentTagDeleted(key="team")]
    with pytest.raises(NotFound, match="has no tag 'nope'"):
        on_experiment([CREATED], DeleteExperimentTag("e1", "nope"))


def test_description_changes_are_recorded_and_folded() -> None:
    assert on_experiment([CREATED], DescribeExperiment("e1", "predict churn")) == [
        ExperimentDescribed(description="predict churn")
    ]
    state = experiment_decider.fold(
        [CREATED, ExperimentDescribed(description="d"), ExperimentRenamed(name="n", previous_name="churn")]
    )
    assert (state.name, state.description, dict(state.tags)) == ("n", "d", {"team": "nlp"})


def test_runs_start_only_in_a_live_experiment() -> None:
    ensure_experiment_accepts_runs(experiment_decider.fold([CREATED]), "e1")
    with pytest.raises(NotFound, match="'e9' does not exist"):
        ensure_experiment_accepts_runs(experiment_decider.fold([]), "e9")
    with pytest.raises(FailedPrecondition, match="is deleted; restore it to start runs"):
        ensure_experiment_accepts_runs(experiment_decider.fold([CREATED, ExperimentDeleted()]), "e1")


# ---------------------------------------------------------------- experiment names


def test_a_free_name_is_claimed_and_a_taken_one_is_refused() -> None:
    claim = name_claim_decider
    assert claim.decide(Claim("churn", "e1"), claim.initial) == [
        ExperimentNameClaimed(name="churn", experiment_id="e1")
    ]
    taken = claim.fold([ExperimentNameClaimed(name="churn", experiment_id="e1")])
    with pytest.raises(AlreadyExists, match="an experiment named 'churn' already exists \\(id 'e1'\\)"):
        claim.decide(Claim("churn", "e2"), taken)
    assert claim.decide(Claim("churn", "e1"), taken) == []  # a retry by the holder


def test_only_the_holder_releases_a_name_and_then_it_is_free_again() -> None:
    claim = name_claim_decider
    held = [ExperimentNameClaimed(name="churn", experiment_id="e1")]
    with pytest.raises(FailedPrecondition, match="belongs to experiment 'e1', not 'e2'"):
        claim.decide(Release("churn", "e2"), claim.fold(held))
    released = ExperimentNameReleased(name="churn", experiment_id="e1")
    assert claim.decide(Release("churn", "e1"), claim.fold(held)) == [released]
    assert claim.decide(Release("churn", "e1"), claim.fold([*held, released])) == []
    assert claim.decide(Claim("churn", "e2"), claim.fold([*held, released])) != []


def test_claiming_an_invalid_name_is_refused() -> None:
    with pytest.raises(InvalidArgument, match="control character"):
        name_claim_decider.decide(Claim("a\tb", "e1"), name_claim_decider.initial)


def test_name_stream_ids_are_readable_when_they_can_be_and_always_fit_the_log() -> None:
    assert experiment_name_stream_id("churn") == "experiment-name-churn"
    long_name, odd_name = "x" * 250, "non\u00a0breaking"
    for name in (long_name, odd_name):
        sid = experiment_name_stream_id(name)
        assert sid.startswith("experiment-name#sha256:") and len(sid) <= 200 and sid.isprintable()
    assert experiment_name_stream_id(long_name) != experiment_name_stream_id(long_name + "y")


# ---------------------------------------------------------------- runs: start


def test_a_run_starts_with_its_source_parent_and_tags() -> None:
    source = RunSource(git_commit="abc123", entry_point="train.py", host="gpu-1", user="ana")
    when = StartRun("r2", "e1", "child", 2_000, parent_run_id="r1", source=source, tags={"k": "v"})
    assert on_run([], when) == [
        RunStarted(
            run_id="r2",
            experiment_id="e1",
            name="child",
            start_time_ms=2_000,
            parent_run_id="r1",
            source=source,
            tags={"k": "v"},
        )
    ]


def test_starting_an_existing_run_or_a_run_that_is_its_own_parent_is_refused() -> None:
    with pytest.raises(AlreadyExists, match="run 'r1' already exists"):
        on_run([STARTED], StartRun("r1", "e1", "again", 1))
    with pytest.raises(InvalidArgument, match="cannot be its own parent"):
        on_run([], StartRun("r1", "e1", "x", 1, parent_run_id="r1"))


@pytest.mark.parametrize(
    ("name", "why"), [("", "must not be empty"), ("r" * 251, "limit is 250"), ("a\x00", "U+0000")]
)
def test_bad_run_names_are_invalid(name: str, why: str) -> None:
    with pytest.raises(InvalidArgument, match=re.escape(why)):
        on_run([], StartRun("r1", "e1", name, 1))
    with pytest.raises(InvalidArgument, match=re.escape(why)):
        on_run([STARTED], RenameRun("r1", name))


def test_a_nested_run_needs_a_live_parent_in_the_same_experiment() -> None:
    ensure_valid_parent(run_decider.fold([STARTED]), "r1", "e1")
    with pytest.raises(NotFound, match="parent run 'r0' does not exist"):
        ensure_valid_parent(RunState(), "r0", "e1")
    with pytest.raises(FailedPrecondition, match="parent run 'r1' is deleted"):
        ensure_valid_parent(run_decider.fold([STARTED, RunDeleted()]), "r1", "e1")
    with pytest.raises(InvalidArgument, match="belongs to experiment 'e1', not 'e2'"):
        ensure_valid_parent(run_decider.fold([STARTED]), "r1", "e2")


@pytest.mark.parametrize(
    "when",
    [
        RenameRun("r9", "x"),
        LogParams("r9", {"a": "1"}),
        metrics("r9", 1.0),
        SetTags("r9", {"a": "b"}),
        DeleteTag("r9", "a"),
        LogDatasetInput("r9", "train", "sha256:0"),
        FinishRun("r9", "FINISHED", 2),
        DeleteRun("r9"),
        RestoreRun("r9"),
    ],
)
def test_commands_on_a_run_never_started_are_not_found(when: RunCommand) -> None:
    with pytest.raises(NotFound, match="run 'r9' does not exist"):
        on_run([], when)


# ---------------------------------------------------------------- runs: params


def test_params_are_logged() -> None:
    assert on_run([STARTED], LogParams("r1", {"lr": "0.01", "layers": "4"})) == [
        ParamsLogged(params={"lr": "0.01", "layers": "4"})
    ]


def test_logging_a_param_again_with_the_same_value_emits_nothing_for_it() -> None:
    given = [STARTED, ParamsLogged(params={"lr": "0.01"})]
    assert on_run(given, LogParams("r1", {"lr": "0.01"})) == []
    assert on_run(given, LogParams("r1", {"lr": "0.01", "bs": "32"})) == [ParamsLogged(params={"bs": "32"})]


def test_changing_a_param_is_refused_naming_the_key_and_both_values() -> None:
    given = [STARTED, ParamsLogged(params={"lr": "0.01"})]
    with pytest.raises(
        InvalidArgument, match=r"param 'lr' of run 'r1' was already logged as '0.01'.*'0.02'"
    ) as err:
        on_run(given, LogParams("r1", {"bs": "32", "lr": "0.02"}))
    assert err.value.violations[0].field == "params['lr']"


@pytest.mark.parametrize(
    ("params", "why"),
    [
        ({"k" * 251: "v"}, "key is 251 characters long; the limit is 250"),
        ({"lr": "v" * 6001}, "6001 characters long; the limit is 6000"),
        ({"": "v"}, "key must not be empty"),
        ({"a|b": "v"}, "may only contain letters"),
        ({"a/../b": "v"}, "not a clean relative path"),
        ({f"p{i}": "v" for i in range(1001)}, "1001 entries in one command; the limit is 1000"),
    ],
)
def test_oversized_or_malformed_params_are_invalid(params: dict[str, str], why: str) -> None:
    with pytest.raises(InvalidArgument, match=why):
        on_run([STARTED], LogParams("r1", params))


def test_params_at_the_limits_are_accepted() -> None:
    params = {"k" * 250: "v" * 6000, "nested/key.name-1 x:y": "ok"}
    assert on_run([STARTED], LogParams("r1", params)) == [ParamsLogged(params=params)]


# ---------------------------------------------------------------- runs: metrics


def test_metrics_are_logged_as_one_columnar_batch() -> None:
    when = LogMetrics("r1", ["loss", "acc", "loss"], [0.5, 0.9, 0.4], [0, 0, 1], [10, 10, 11])
    assert on_run([STARTED], when) == [
        MetricsLogged(
            keys=("loss", "acc", "loss"), values=(0.5, 0.9, 0.4), steps=(0, 0, 1), timestamps_ms=(10, 10, 11)
        )
    ]


def test_nan_and_infinities_are_accepted_and_kept() -> None:
    (event,) = on_run([STARTED], metrics("r1", math.nan, math.inf, -math.inf, 1.0))
    assert isinstance(event, MetricsLogged)
    assert event.values == ("NaN", "Infinity", "-Infinity", 1.0)
    decoded = event.float_values()
    assert math.isnan(decoded[0]) and decoded[1:] == [math.inf, -math.inf, 1.0]


def test_an_empty_batch_records_nothing() -> None:
    assert on_run([STARTED], metrics("r1")) == []


def test_a_batch_at_the_limit_is_accepted_and_one_point_more_is_invalid() -> None:
    assert len(on_run([STARTED], metrics("r1", *([1.0] * MAX_METRIC_POINTS)))) == 1
    with pytest.raises(InvalidArgument, match="100001 points in one batch; the limit is 100000"):
        on_run([STARTED], metrics("r1", *([1.0] * (MAX_METRIC_POINTS + 1))))


@pytest.mark.parametrize(
    ("when", "why"),
    [
        (LogMetrics("r1", ["a", "b"], [1.0], [0, 0], [1, 1]), "2 keys, 1 values, 2 steps, 2 timestamps"),
        (LogMetrics("r1", ["m" * 251], [1.0], [0], [1]), "key is 251 characters long"),
        (LogMetrics("r1", ["a"], [1.0], [2**63], [1]), "steps: values must fit in a signed 64-bit integer"),
        (LogMetrics("r1", ["a"], ["high"], [0], [1]), "'high' is not a metric value"),  # type: ignore[list-item]
    ],
)
def test_malformed_metric_batches_are_invalid(when: LogMetrics, why: str) -> None:
    with pytest.raises(InvalidArgument, match=why):
        on_run([STARTED], when)


# ---------------------------------------------------------------- runs: tags and datasets


def test_tags_record_only_changes_and_can_be_deleted() -> None:
    given = [STARTED, TagsSet(tags={"team": "nlp"})]
    assert on_run(given, SetTags("r1", {"team": "nlp", "stage": "dev"})) == [TagsSet(tags={"stage": "dev"})]
    assert on_run(given, SetTags("r1", {"team": "nlp"})) == []
    assert on_run(given, DeleteTag("r1", "team")) == [TagDeleted(key="team")]
    with pytest.raises(NotFound, match="run 'r1' has no tag 'nope'"):
        on_run(given, DeleteTag("r1", "nope"))


@pytest.mark.parametrize(
    ("tags", "why"),
    [
        ({"t" * 251: "v"}, "key is 251 characters long"),
        ({"t": "v" * 8001}, "8001 characters long; the limit is 8000"),
    ],
)
def test_oversized_tags_are_invalid(tags: dict[str, str], why: str) -> None:
    with pytest.raises(InvalidArgument, match=why):
        on_run([STARTED], SetTags("r1", tags))


def test_a_finished_run_can_still_be_tagged_and_renamed() -> None:
    given = [STARTED, RunFinished(status="FINISHED", end_time_ms=2_000)]
    assert on_run(given, SetTags("r1", {"best": "yes"})) == [TagsSet(tags={"best": "yes"})]
    assert on_run(given, RenameRun("r1", "winner")) == [RunRenamed(name="winner", previous_name="brave-fox")]


def test_a_dataset_input_is_logged_once_per_name_digest_and_context() -> None:
    when = LogDatasetInput(
        "r1", "train", "sha256:ab", source_type="s3", source="s3://b/k", context="training"
    )
    event = DatasetInputLogged(
        name="train", digest="sha256:ab", source_type="s3", source="s3://b/k", context="training"
    )
    assert on_run([STARTED], when) == [event]
    assert on_run([STARTED, event], when) == []
    assert on_run([STARTED, event], LogDatasetInput("r1", "train", "sha256:ab", context="evaluation")) != []
    with pytest.raises(InvalidArgument, match="digest: must not be empty"):
        on_run([STARTED], LogDatasetInput("r1", "train", ""))


# ---------------------------------------------------------------- runs: lifecycle


def test_finishing_records_status_and_end_time_and_finishing_twice_is_refused() -> None:
    assert on_run([STARTED], FinishRun("r1", "FAILED", 2_000)) == [
        RunFinished(status="FAILED", end_time_ms=2_000)
    ]
    with pytest.raises(FailedPrecondition, match="run 'r1' already finished as FAILED"):
        on_run([STARTED, RunFinished(status="FAILED", end_time_ms=2_000)], FinishRun("r1", "FINISHED", 3_000))
    with pytest.raises(InvalidArgument, match="'RUNNING' does not finish a run"):
        on_run([STARTED], FinishRun("r1", "RUNNING", 2_000))


@pytest.mark.parametrize("status", ["FINISHED", "FAILED", "KILLED"])
@pytest.mark.parametrize(
    "when", [LogParams("r1", {"a": "1"}), metrics("r1", 1.0), LogDatasetInput("r1", "train", "sha256:0")]
)
def test_a_finished_run_refuses_data_naming_the_run_and_its_status(status: str, when: RunCommand) -> None:
    given = [STARTED, RunFinished(status=status, end_time_ms=2_000)]  # type: ignore[arg-type]
    with pytest.raises(
        FailedPrecondition, match=f"run 'r1' is {status}; a finished run accepts no more data"
    ):
        on_run(given, when)


@pytest.mark.parametrize(
    "when",
    [
        LogParams("r1", {"a": "1"}),
        metrics("r1", 1.0),
        SetTags("r1", {"a": "b"}),
        DeleteTag("r1", "a"),
        RenameRun("r1", "x"),
        LogDatasetInput("r1", "train", "sha256:0"),
        FinishRun("r1", "FINISHED", 2),
    ],
)
def test_a_deleted_run_refuses_everything_but_restore(when: RunCommand) -> None:
    with pytest.raises(FailedPrecondition, match="run 'r1' is deleted; restore it"):
        on_run([STARTED, RunDeleted()], when)


def test_delete_and_restore_alternate_and_repeats_are_refused_for_runs() -> None:
    assert on_run([STARTED], DeleteRun("r1")) == [RunDeleted()]
    with pytest.raises(FailedPrecondition, match="run 'r1' is already deleted"):
        on_run([STARTED, RunDeleted()], DeleteRun("r1"))
    with pytest.raises(FailedPrecondition, match="run 'r1' is not deleted"):
        on_run([STARTED], RestoreRun("r1"))
    assert on_run([STARTED, RunDeleted()], RestoreRun("r1")) == [RunRestored()]
    assert on_run([STARTED, RunDeleted(), RunRestored()], LogParams("r1", {"a": "1"})) != []


def test_the_run_state_folds_every_fact_the_service_needs() -> None:
    dataset = DatasetInputLogged(name="train", digest="d", context="training")
    state = run_decider.fold(
        [
            RunStarted(
                run_id="r2",
                experiment_id="e1",
                name="n",
                start_time_ms=5,
                parent_run_id="r1",
                tags={"a": "1"},
            ),
            ParamsLogged(params={"lr": "0.1"}),
            MetricsLogged(keys=("l", "l"), values=(1.0, 2.0), steps=(0, 1), timestamps_ms=(5, 6)),
            TagsSet(tags={"b": "2"}),
            TagDeleted(key="a"),
            dataset,
            RunRenamed(name="m", previous_name="n"),
            RunFinished(status="KILLED", end_time_ms=9),
            RunDeleted(),
        ]
    )
    assert state == RunState(
        run_id="r2",
        experiment_id="e1",
        name="m",
        status="KILLED",
        start_time_ms=5,
        end_time_ms=9,
        parent_run_id="r1",
        params={"lr": "0.1"},
        tags={"b": "2"},
        datasets=(dataset,),
        deleted=True,
    )
    assert not state.active
    # The command path loads runs without the event types the decider skips: they must change nothing.
    batch = MetricsLogged(keys=("l",), values=(1.0,), steps=(0,), timestamps_ms=(5,))
    assert run_decider.skips == {MetricsLogged.type}
    assert run_decider.evolve(state, batch) == state
