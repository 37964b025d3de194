"""`modelog import neptune PATH` into a real stack, from an export in the exporter's own schema.

The reader is checked field by field against the export in tests/unit/test_import_neptune.py; here
what it reads must arrive in Modelog unchanged (histories, params, files, the fork's parent) with
the original times, and a second import must add nothing.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from modelog._gen.artifacts.v1 import artifacts_pb2 as apb
from modelog._gen.tracking.v1 import tracking_pb2 as tpb
from modelog.importers.neptune import NeptuneSource
from tests.compat.importfix import importer, summary
from tests.compat.test_import_mlflow import Stubs
from tests.integration.gatewayfix import Platform, start_platform
from tests.unit.neptune_export import write_export


@pytest.fixture(scope="module")
def imported(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    root = tmp_path_factory.mktemp("import-neptune")
    write_export(root / "export")
    up, p = start_platform(root / "modelog")
    try:
        res = importer(p.addr, p.token, root / "cli", "neptune", str(root / "export"), "--json")
        yield {"p": p, "res": res, "root": root, "source": NeptuneSource(root / "export")}
    finally:
        up.stop()


def test_every_run_arrives_with_its_times_params_histories_files_and_fork(imported: dict[str, Any]) -> None:
    res, src, p = imported["res"], imported["source"], imported["p"]
    assert res.returncode == 0, res.stdout + res.stderr
    s = summary(res)
    assert s["failures"] == [] and s["verification"]["ok"]
    st = Stubs(p)
    # Names repeat (a fork keeps its parent's): runs are told apart by name and start time.
    mine = {(r.info.name, r.info.start_time_ms): r for r in st.all_runs()}
    want = {r.source_id: r for e in src.experiments() for r in src.runs(e)}
    assert len(want) == s["seen"]["runs"] == s["written"]["runs"] > 0
    by_source = {r.source_id: mine[(r.name, r.start_ms)] for r in want.values()}
    for sid, r in want.items():
        got = by_source[sid]
        assert got.info.start_time_ms == r.start_ms and got.info.source.user == r.user, sid
        assert dict(got.params) == r.params, sid
        assert {k: v for k, v in got.tags.items() if k in r.tags} == r.tags, sid
        for key in r.metric_keys:
            series = src.history(r, key)
            h = st.call(
                st.tracking.GetMetricHistory, tpb.GetMetricHistoryRequest(run_id=got.info.run_id, key=key)
            )
            assert sorted(zip(h.steps, h.timestamps_ms, h.values, strict=True)) == sorted(
                zip(series.steps, series.timestamps_ms, series.values, strict=True)
            ), (sid, key)
        files = list(src.files(r))
        if files:
            art = st.call(
                st.artifacts.GetVersion,
                apb.GetVersionRequest(
                    ref=apb.VersionRef(name=f"run-{got.info.run_id}"), include_entries=True
                ),
            ).version
            digests = {e.path: e.digest.removeprefix("sha256:") for e in art.entries}
            for f in files:
                with src.open(r, f.path) as fh:
                    assert digests[f.path] == hashlib.sha256(fh.read()).hexdigest(), (sid, f.path)
        if r.parent_id:
            assert got.info.parent_run_id == by_source[r.parent_id].info.run_id


def test_a_second_import_adds_nothing(imported: dict[str, Any]) -> None:
    p: Platform = imported["p"]
    root: Path = imported["root"]
    before = p.heads()
    s = summary(importer(p.addr, p.token, root / "cli", "neptune", str(root / "export"), "--json"))
    assert s["written"]["runs"] == s["written"]["points"] == s["written"]["files"] == 0
    assert p.heads()["tracking"] == before["tracking"]
