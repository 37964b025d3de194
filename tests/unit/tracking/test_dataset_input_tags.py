"""A dataset input's tags (MLflow's InputTag): kept in the event, bounded like MLflow's, and absent from
events written before they existed."""

from __future__ import annotations

import pytest

from eventlog import InvalidArgument
from modelog_services.tracking.domain import LogDatasetInput, run_decider
from modelog_services.tracking.events import DatasetInputLogged, RunStarted, registry

STARTED = RunStarted(run_id="r1", experiment_id="e1", name="brave-fox", start_time_ms=1_000)


def test_the_input_s_tags_are_part_of_the_fact() -> None:
    when = LogDatasetInput("r1", "train", "sha256:ab", context="training", tags={"split": "holdout"})
    assert run_decider.decide(when, run_decider.fold([STARTED])) == [
        DatasetInputLogged(name="train", digest="sha256:ab", context="training", tags={"split": "holdout"})
    ]


@pytest.mark.parametrize(
    ("tags", "why"),
    [
        ({"k" * 256: "v"}, "the limit is 255"),
        ({"k": "v" * 501}, "the limit is 500"),
        ({"": "v"}, "must not be empty"),
        ({f"k{i}": "v" for i in range(101)}, "101 tags on one dataset input; the limit is 100"),
    ],
)
def test_input_tags_past_mlflow_s_limits_are_refused(tags: dict[str, str], why: str) -> None:
    with pytest.raises(InvalidArgument, match=why):
        run_decider.decide(LogDatasetInput("r1", "train", "d", tags=tags), run_decider.fold([STARTED]))


def test_a_v1_event_reads_as_an_input_without_tags() -> None:
    v1 = {"name": "train", "digest": "d", "source_type": "", "source": "", "context": "training"}
    got = registry.decode("DatasetInputLogged", 1, v1)
    assert got == DatasetInputLogged(name="train", digest="d", context="training", tags={})
    assert DatasetInputLogged.schema_version == 2
