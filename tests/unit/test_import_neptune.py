"""NeptuneSource against an export written in the exporter's own schema and layout (neptune_export)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from modelog.importers.neptune import NeptuneExportError, NeptuneSource
from modelog.importers.source import Experiment, Run
from tests.unit.neptune_export import T0, Written, file_name, write_export


@pytest.fixture(scope="module")
def export(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Any]]:
    root = tmp_path_factory.mktemp("neptune")
    return root, write_export(root)


@pytest.fixture(scope="module")
def source(export: tuple[Path, dict[str, Any]]) -> NeptuneSource:
    return NeptuneSource(export[0])


def _runs(source: NeptuneSource) -> dict[str, Run]:
    return {r.source_id: r for e in source.experiments() for r in source.runs(e)}


def _written(export: tuple[Path, dict[str, Any]], run_id: str) -> Written:
    w: Written = export[1]["runs"][run_id]
    return w


def test_label_names_the_resolved_export(export: tuple[Path, dict[str, Any]], source: NeptuneSource) -> None:
    assert source.label == "neptune:" + str(export[0].resolve())


def test_projects_become_experiments_named_by_project_id(source: NeptuneSource) -> None:
    assert list(source.experiments()) == [
        Experiment(source_id="acme/churn", name="acme/churn"),
        Experiment(source_id="acme/vision", name="acme/vision"),
    ]


def test_runs_still_being_written_are_not_imported(source: NeptuneSource) -> None:
    assert set(_runs(source)) == {"CHURN-1", "CHURN-2", "vit-base", "vit-a-fork", "vit-orphan"}


def test_run_fields_come_from_sys_attributes(source: NeptuneSource) -> None:
    run = _runs(source)["CHURN-1"]
    assert (run.experiment_id, run.name, run.user, run.status) == (
        "acme/churn",
        "baseline",
        "ada",
        "FINISHED",
    )
    assert run.start_ms == T0  # sys/creation_time
    assert run.end_ms == T0 + 1_800_000  # sys/ping_time, not the later sys/modification_time
    assert (run.deleted, run.parent_id, run.datasets) == (False, "", ())


def test_failed_trashed_unnamed_run(source: NeptuneSource) -> None:
    run = _runs(source)["CHURN-2"]
    assert (run.status, run.deleted, run.name, run.user) == ("FAILED", True, "CHURN-2", "bob")
    assert (run.start_ms, run.end_ms) == (T0 + 100, T0 + 900_000)  # no ping time: modification time


def test_params_keep_full_paths_and_text_values(source: NeptuneSource) -> None:
    assert _runs(source)["CHURN-1"].params == {
        "parameters/optimizer/lr": "0.001",
        "parameters/optimizer/name": "adam",
        "parameters/epochs": "30",
        "parameters/use_amp": "True",
        "parameters/data/snapshot": "2024-12-31T00:00:00.250+00:00",
        "parameters/data/splits": '["test", "train"]',
    }
    assert _runs(source)["vit-base"].params == {"config/lr": "0.0003", "config/batch": "256"}


def test_neptune_tags_become_tags_and_other_sys_attributes_keep_their_path(source: NeptuneSource) -> None:
    assert _runs(source)["CHURN-1"].tags == {
        "baseline": "",
        "resnet": "",
        "sys/id": "CHURN-1",
        "sys/modification_time": "2025-01-01T01:00:00.000+00:00",
        "sys/ping_time": "2025-01-01T00:30:00.000+00:00",
        "sys/failed": "False",
        "sys/trashed": "False",
        "sys/hostname": "gpu-7",
        "sys/size": "20480.0",
    }


def test_metric_histories_are_exact_across_parts_and_row_groups(
    export: tuple[Path, dict[str, Any]], source: NeptuneSource
) -> None:
    runs = _runs(source)
    for run_id, key in [
        ("CHURN-1", "metrics/train/loss"),
        ("CHURN-1", "metrics/val/acc"),
        ("CHURN-2", "metrics/train/loss"),
    ]:
        _, points = _written(export, run_id).series[key]
        got = source.history(runs[run_id], key)
        assert got.key == key
        assert got.steps == [int(s) for s, _, _ in points]
        assert got.timestamps_ms == [t for _, t, _ in points]
        assert got.values == [v for _, _, v in points]
    assert runs["CHURN-1"].metric_keys == ("metrics/train/loss", "metrics/val/acc")
    assert len(source.history(runs["CHURN-1"], "metrics/train/loss").values) == 600


def test_fractional_steps_fall_to_the_integer_below(source: NeptuneSource) -> None:
    got = source.history(_runs(source)["vit-base"], "metrics/lr")
    assert got.steps[:6] == [0, 0, 1, 1, 2, 2]  # 0, 0.5, 1, 1.5, 2, 2.5
    assert got.steps == sorted(got.steps) and len(got.steps) == 400


def test_step_scale_keeps_fractions_as_the_exporters_multiplier_does(
    export: tuple[Path, dict[str, Any]],
) -> None:
    scaled = NeptuneSource(export[0], step_scale=1000)
    runs = _runs(scaled)
    assert scaled.history(runs["vit-base"], "metrics/lr").steps[:3] == [0, 500, 1000]
    assert scaled.history(runs["vit-base"], "metrics/loss").steps[:3] == [0, 1000, 2000]


def test_fork_names_its_parent_and_comes_after_it(source: NeptuneSource) -> None:
    order = [r.source_id for r in source.runs(Experiment(source_id="acme/vision", name="acme/vision"))]
    assert order.index("vit-base") < order.index("vit-a-fork")
    fork = _runs(source)["vit-a-fork"]
    assert fork.parent_id == "vit-base"
    assert fork.tags["sys/forking/step"] == "200.0"
    assert source.history(fork, "metrics/loss").steps[0] == 200  # only its own points


def test_fork_of_a_run_not_in_the_export_has_no_parent(source: NeptuneSource) -> None:
    orphan = _runs(source)["vit-orphan"]
    assert orphan.parent_id == ""
    assert orphan.tags["sys/forking/parent"] == "vit-gone"


def test_files_are_listed_and_read_byte_for_byte(
    export: tuple[Path, dict[str, Any]], source: NeptuneSource
) -> None:
    runs = _runs(source)
    for run_id in ("CHURN-1", "vit-base"):
        written = _written(export, run_id)
        listed = {f.path: f.size for f in source.files(runs[run_id]) if f.size is not None}
        assert listed == {path: len(content) for path, (_, _, _, content) in written.files.items()}
        for path, (_, _, _, content) in written.files.items():
            with source.open(runs[run_id], path) as f:
                assert f.read() == content


def test_string_series_is_a_json_lines_artifact(
    export: tuple[Path, dict[str, Any]], source: NeptuneSource
) -> None:
    run = _runs(source)["CHURN-1"]
    assert "monitoring/stdout.jsonl" in {f.path for f in source.files(run)}
    with source.open(run, "monitoring/stdout.jsonl") as f:
        lines = [json.loads(line) for line in f.read().decode().splitlines()]
    _, points = _written(export, "CHURN-1").series["monitoring/stdout"]
    assert lines == [{"step": int(s), "timestamp_ms": t, "value": v} for s, t, v in points]


def test_histogram_series_is_a_json_lines_artifact(
    export: tuple[Path, dict[str, Any]], source: NeptuneSource
) -> None:
    with source.open(_runs(source)["vit-base"], "metrics/grad.jsonl") as f:
        lines = [json.loads(line) for line in f.read().decode().splitlines()]
    _, points = _written(export, "vit-base").series["metrics/grad"]
    assert lines == [{"step": int(s), "timestamp_ms": t, **h} for s, t, h in points]


def test_unknown_metric_and_file_are_refused_by_name(source: NeptuneSource) -> None:
    run = _runs(source)["CHURN-1"]
    with pytest.raises(KeyError, match="metrics/nope"):
        source.history(run, "metrics/nope")
    with pytest.raises(FileNotFoundError, match="files/nope"):
        source.open(run, "files/nope")


def test_model_registry_becomes_models_and_versions(source: NeptuneSource) -> None:
    (model,) = source.models()
    assert (model.source_id, model.name, model.description) == (
        "CHURN-MOD",
        "churn-classifier",
        "Predicts churn",
    )
    assert (model.created_ms, model.updated_ms) == (T0, T0 + 5_000)
    assert model.tags == {"prod": "", "info/framework": "sklearn", "sys/id": "CHURN-MOD", "sys/owner": "ada"}
    versions = list(source.versions(model))
    assert [(v.number, v.stage, v.user, v.created_ms) for v in versions] == [
        (1, "None", "ada", T0 + 1000),
        (2, "Production", "ada", T0 + 2000),
    ]
    assert versions[1].tags["validation/acc"] == "0.92"
    assert list(source.version_files(versions[0])) == []
    (f,) = source.version_files(versions[1])
    assert (f.path, f.size) == ("model/binary", 800)
    with source.open_version_file(versions[1], "model/binary") as opened:
        assert opened.read() == b"weights\x00" * 100


def test_data_folder_may_be_given_with_files_elsewhere(
    export: tuple[Path, dict[str, Any]], tmp_path: Path
) -> None:
    moved = shutil.copytree(export[0] / "files", tmp_path / "cold")
    src = NeptuneSource(export[0] / "data", files=moved)
    run = _runs(src)["CHURN-1"]
    with src.open(run, "files/model.pkl") as f:
        assert f.read() == b"\x80\x04pickle bytes\x00\xff"


# Broken exports: a ValueError naming the file, never a pyarrow traceback.


@pytest.fixture
def broken(tmp_path: Path) -> Path:
    write_export(tmp_path)
    return tmp_path


def _part(root: Path, project: str, run: str, n: int = 0) -> Path:
    return root / "data" / file_name(project) / f"{file_name(run)}_part_{n}.parquet"


def test_a_part_that_is_not_parquet_is_named(broken: Path) -> None:
    part = _part(broken, "acme/churn", "CHURN-1", 1)
    part.write_bytes(b"not parquet at all")
    src = NeptuneSource(broken)
    with pytest.raises(NeptuneExportError, match=str(part)):
        _runs(src)


def test_a_part_without_the_exporters_columns_is_named(broken: Path) -> None:
    part = _part(broken, "acme/vision", "vit-orphan")
    pq.write_table(pa.table({"project_id": ["acme/vision"], "run_id": ["vit-orphan"]}), part)
    with pytest.raises(NeptuneExportError, match=rf"{part}: no column 'attribute_path'"):
        _runs(NeptuneSource(broken))


def test_a_downloaded_file_that_is_missing_is_named(broken: Path) -> None:
    missing = broken / "files" / file_name("acme/churn") / "acme/churn/CHURN-1/files/model.pkl"
    missing.unlink()
    src = NeptuneSource(broken)
    with pytest.raises(NeptuneExportError, match=str(missing)):
        list(src.files(_runs(src)["CHURN-1"]))


def test_a_folder_that_is_not_an_export_is_refused(tmp_path: Path) -> None:
    with pytest.raises(NeptuneExportError, match="no Neptune export here"):
        NeptuneSource(tmp_path)
    with pytest.raises(NeptuneExportError, match="no such directory"):
        NeptuneSource(tmp_path / "absent")
