"""Names with control characters, bidirectional overrides and invisible characters, against every
service: refused by the field that holds them, nothing written. Names in other scripts are names:
where a service takes them at all, two names that look alike stay two resources, shown as written.

The rule for characters lives in one place (modelog.shared.inputs); services whose names are plain ASCII
(models, artifacts, monitors, projects, groups, tokens) refuse everything else by their own pattern."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import grpc
import pytest

from modelog._gen.artifacts.v1 import artifacts_pb2 as apb
from modelog._gen.identity.v1 import access_pb2 as xpb
from modelog._gen.identity.v1 import identity_pb2 as ipb
from modelog._gen.monitoring.v1 import monitoring_pb2 as mpb
from modelog._gen.registry.v1 import registry_pb2 as rpb
from modelog._gen.tracking.v1 import tracking_pb2 as tpb
from tests.security.stackfix import SecurityStack, invalid, refused

pytestmark = pytest.mark.asyncio

HOSTILE = {
    "NUL": "ab\x00cd",
    "ANSI escape": "\x1b[31mred\x1b[0m",
    "CR LF": "log\r\nINFO forged line",
    "trailing newline": "name\n",
    "tab": "a\tb",
    "C1 control": "a\x85b",
    "right-to-left override": "model\u202eexe.pdf",
    "right-to-left isolate": "a\u2067b",
    "zero width space": "pay\u200bpal",
    "byte order mark": "\ufeffpaypal",
    "line separator": "a\u2028b",
}
"""What a person must never be shown as a name: each breaks a line, drives a terminal, reorders the
text around it or hides itself."""

PAYPAL, PAYPAL_CYRILLIC, PAYPAL_JOINED = "paypal", "p\u0430ypal", "pay\u200dpal"
"""Look alike: Latin, one CYRILLIC SMALL LETTER A (U+0430), and one ZERO WIDTH JOINER (allowed: it
joins letters of Indic and Arabic scripts and builds emoji)."""

Attempt = Callable[[str], Awaitable[Any]]
Fields = Callable[[str], tuple[str, ...]]


async def _targets(stack: SecurityStack) -> dict[str, tuple[Attempt, Fields]]:
    """Every call that names something, each with the field its refusal must name."""
    api, md = stack.api, stack.md()
    run = await stack.run("names")
    exp_id, run_id = run.info.experiment_id, run.info.run_id
    digest = await stack.blob(b"x")
    entry = apb.ManifestEntry(path="f", digest=digest, size=1)
    await api.registry.CreateModel(rpb.CreateModelRequest(name="scorer"), metadata=md)
    same = lambda *fields: lambda _: fields  # noqa: E731 - the field does not depend on the name
    keyed = lambda field: lambda v: (f"{field}[{v!r}]",)  # noqa: E731
    t, r, a = api.tracking, api.registry, api.artifacts
    return {
        "experiment name": (
            lambda v: t.CreateExperiment(tpb.CreateExperimentRequest(name=v), metadata=md),
            same("name"),
        ),
        "experiment rename": (
            lambda v: t.RenameExperiment(
                tpb.RenameExperimentRequest(experiment_id=exp_id, name=v), metadata=md
            ),
            same("name"),
        ),
        "run name": (
            lambda v: t.StartRun(tpb.StartRunRequest(experiment_id=exp_id, name=v), metadata=md),
            same("name"),
        ),
        "run rename": (
            lambda v: t.RenameRun(tpb.RenameRunRequest(run_id=run_id, name=v), metadata=md),
            same("name"),
        ),
        "dataset name": (
            lambda v: t.LogDatasetInput(
                tpb.LogDatasetInputRequest(run_id=run_id, dataset=tpb.DatasetInput(name=v, digest="d")),
                metadata=md,
            ),
            same("name", "dataset.name"),  # the command's field, or the request's
        ),
        "param key": (
            lambda v: t.LogParams(tpb.LogParamsRequest(run_id=run_id, params={v: "1"}), metadata=md),
            keyed("params"),
        ),
        "run tag key": (
            lambda v: t.SetTags(tpb.SetTagsRequest(run_id=run_id, tags={v: "1"}), metadata=md),
            keyed("tags"),
        ),
        "experiment tag key": (
            lambda v: t.SetExperimentTags(
                tpb.SetExperimentTagsRequest(experiment_id=exp_id, tags={v: "1"}), metadata=md
            ),
            keyed("tags"),
        ),
        "model name": (lambda v: r.CreateModel(rpb.CreateModelRequest(name=v), metadata=md), same("name")),
        "model tag key": (
            lambda v: r.SetModelTags(rpb.SetModelTagsRequest(name="scorer", tags={v: "1"}), metadata=md),
            lambda v: (f"tags[{v[:100]!r}]", f"tags[{v!r}]"),
        ),
        "artifact name": (
            lambda v: a.CommitVersion(apb.CommitVersionRequest(name=v, entries=[entry]), metadata=md),
            same("name"),
        ),
        "artifact tag key": (
            lambda v: a.CommitVersion(
                apb.CommitVersionRequest(name="ds", entries=[entry], tags={v: "1"}), metadata=md
            ),
            keyed("tags"),
        ),
        "monitor name": (
            lambda v: api.monitoring.CreateMonitor(
                mpb.CreateMonitorRequest(name=v, model="scorer@champion"), metadata=md
            ),
            same("name"),
        ),
        "project name": (
            lambda v: api.access.CreateProject(xpb.CreateProjectRequest(name=v), metadata=md),
            same("name"),
        ),
        "group name": (
            lambda v: api.access.AddGroupMember(xpb.GroupMemberRequest(group=v, member="admin"), metadata=md),
            same("group"),
        ),
        "token name": (
            lambda v: api.identity.CreateToken(ipb.CreateTokenRequest(name=v), metadata=md),
            same("name"),
        ),
    }


async def test_control_bidi_and_invisible_characters_in_any_name_are_refused_naming_the_field(
    stack: SecurityStack,
) -> None:
    targets = await _targets(stack)
    tried = 0
    for target, (attempt, field_of) in targets.items():
        for kind, value in HOSTILE.items():
            async with stack.writes_nothing():
                try:
                    await invalid(attempt(value), *field_of(value))
                except AssertionError as exc:
                    raise AssertionError(f"{target} with {kind} ({value!r}): {exc}") from None
            tried += 1
    assert tried == len(targets) * len(HOSTILE)


async def test_a_refusal_says_which_character_and_where_without_printing_it_raw(stack: SecurityStack) -> None:
    """The message itself is shown in terminals and logs: it names the character by code point, and
    the name only in its escaped form."""
    md, t = stack.md(), stack.api.tracking
    said = await invalid(
        t.CreateExperiment(tpb.CreateExperimentRequest(name="model\u202eexe.pdf"), metadata=md), "name"
    )
    assert "U+202E (RIGHT-TO-LEFT OVERRIDE" in said and "position 5" in said and "\u202e" not in said
    said = await invalid(
        t.CreateExperiment(tpb.CreateExperimentRequest(name="\x1b[31mred"), metadata=md), "name"
    )
    assert "U+001B" in said and "position 0" in said and "\x1b" not in said
    said = await invalid(
        t.CreateExperiment(tpb.CreateExperimentRequest(name="pay\u200bpal"), metadata=md), "name"
    )
    assert "U+200B (ZERO WIDTH SPACE)" in said


async def test_look_alike_experiment_and_run_names_are_distinct_resources_shown_as_written(
    stack: SecurityStack,
) -> None:
    md, t = stack.md(), stack.api.tracking
    ids = {}
    for name in (PAYPAL, PAYPAL_CYRILLIC, PAYPAL_JOINED):
        made = await t.CreateExperiment(tpb.CreateExperimentRequest(name=name), metadata=md)
        assert made.experiment.name == name
        ids[name] = made.experiment.experiment_id
    assert len(set(ids.values())) == 3
    for name, exp_id in ids.items():  # each name finds its own experiment, not a look-alike
        got = await t.GetExperiment(tpb.GetExperimentRequest(name=name), metadata=md)
        assert (got.experiment.experiment_id, got.experiment.name) == (exp_id, name)
    listed = await t.ListExperiments(tpb.ListExperimentsRequest(), metadata=md)
    assert {e.name for e in listed.experiments} >= set(ids)
    # The plain name is still taken by exactly one experiment.
    await refused(
        t.CreateExperiment(tpb.CreateExperimentRequest(name=PAYPAL), metadata=md),
        grpc.StatusCode.ALREADY_EXISTS,
    )

    run = await t.StartRun(tpb.StartRunRequest(experiment_id=ids[PAYPAL], name="обучение-1"), metadata=md)
    run_id = run.run.info.run_id
    await t.LogParams(tpb.LogParamsRequest(run_id=run_id, params={"lr": "1", "l\u0433": "2"}), metadata=md)
    got_run = await t.GetRun(tpb.GetRunRequest(run_id=run_id), metadata=md)
    assert got_run.run.info.name == "обучение-1"
    assert dict(got_run.run.params) == {"lr": "1", "l\u0433": "2"}


async def test_ascii_only_names_refuse_a_look_alike_letter_and_say_what_is_allowed(
    stack: SecurityStack,
) -> None:
    """Models, artifacts, projects and tokens are named in plain ASCII (they appear in URLs, file
    names and `model@alias` references): the Cyrillic look-alike is refused, the Latin name is not."""
    api, md = stack.api, stack.md()
    digest = await stack.blob(b"x")
    entry = apb.ManifestEntry(path="f", digest=digest, size=1)
    calls: list[tuple[Callable[[str], Awaitable[Any]], str, str]] = [
        (
            lambda v: api.registry.CreateModel(rpb.CreateModelRequest(name=v), metadata=md),
            "name",
            "A-Z a-z 0-9",
        ),
        (
            lambda v: api.artifacts.CommitVersion(
                apb.CommitVersionRequest(name=v, entries=[entry]), metadata=md
            ),
            "name",
            "A-Z a-z 0-9",
        ),
        (
            lambda v: api.access.CreateProject(xpb.CreateProjectRequest(name=v), metadata=md),
            "name",
            "a-z, 0-9",
        ),
        (lambda v: api.identity.CreateToken(ipb.CreateTokenRequest(name=v), metadata=md), "name", "a-z, 0-9"),
    ]
    for attempt, field, allowed in calls:
        for look_alike in (PAYPAL_CYRILLIC, PAYPAL_JOINED):
            async with stack.writes_nothing():
                said = await invalid(attempt(look_alike), field)
            assert allowed in said and repr(look_alike) in said
        await attempt(PAYPAL)
