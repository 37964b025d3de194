"""A Neptune history, as Neptune's exporter (github.com/neptune-ai/neptune-exporter) left it on disk.

The exporter writes one Parquet table shape for everything (its `model.SCHEMA`): one row per
attribute value or series point, with `project_id`, `run_id`, `attribute_path`, `attribute_type`,
`step` (decimal 18,6), `timestamp` and one typed value column. Its layout, which this reader expects:

    <root>/data/<sanitized project>/<sanitized run>_part_<n>.parquet     runs (part_0 is renamed last,
    <root>/files/<sanitized project>/<file_value.path>                   so it marks a complete run)
    <root>/model_data/<sanitized project>/{models,model_versions}/<sanitized id>_part_<n>.parquet
    <root>/model_files/<sanitized project>/<file_value.path>             (`export-models`, Neptune 2.x)

`root` may also be the data directory itself; `files=` and the other roots can be given when the
export put them elsewhere (`--files-path`). How Neptune maps onto the neutral records:

- project -> experiment (`source_id` and name = `workspace/project`); run -> run (`source_id` =
  the exporter's `run_id`: `sys/id` in Neptune 2, `sys/custom_run_id` in Neptune 3). A fork's
  `parent_id` is `sys/forking/parent` when that run is in the export; `runs()` yields a parent
  before its forks. A fork holds only its own points (the exporter reads without the lineage).
- sys/creation_time -> start_ms (else the earliest point); sys/ping_time, else
  sys/modification_time, else the latest point -> end_ms; sys/owner -> user; sys/name -> name
  (else the run id); sys/failed -> FAILED, sys/state "running"/"active" -> RUNNING, otherwise
  FINISHED; sys/trashed or sys/archived -> deleted.
- Every other attribute keeps its full path as the key: user attributes become params (runs) or
  tags (models, versions); sys/ attributes not carried by a field above become tags; each entry of
  sys/tags that reads as a key (letters, digits, . _ - and spaces) becomes a tag with an empty
  value; sys/tags itself keeps them all. Values are text: str() of numbers and bools (as the
  SDK sends them), ISO 8601 UTC for datetimes, a sorted JSON array for string sets.
- float series -> metric histories in the order of the export. Steps become ints as
  floor(step * step_scale): integer steps stay exact; with the default scale 1 a fractional step
  falls to the integer below (0.5 -> 0), keeping the order. Give step_scale=1000 to keep
  thousandths, as the exporter's own `--step-multiplier` does.
- files -> artifacts: a file at its attribute path (plus the downloaded file's extension when the
  path lacks it), a file series at `<path>/step_<step><ext>`, a Neptune 2 file set's files under
  `<path>/`, a Neptune 2 artifact's `<path>/files_list.json` (Neptune stored only that listing).
  String and histogram series become one generated JSON Lines artifact each, `<path>.jsonl`, one
  point a line with its exact step and timestamp: they are text, not metrics.
"""

from __future__ import annotations

import functools
import io
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from modelog.importers.neptune_parquet import (
    _STAGES,
    _TEXT_SERIES,
    Arrays,
    NeptuneExportError,
    _Artifact,
    _artifact_name,
    _complete,
    _Entity,
    _first_project_id,
    _int_steps,
    _listing,
    _ms,
    _render,
    _row_groups,
    _scan,
    _tags,
    _text,
    _version_number,
    sanitize,
)
from modelog.importers.source import Experiment, File, Model, Run, Series, Version


class NeptuneSource:
    """Reads a Neptune export: Parquet is streamed one row group at a time, a run's float series are
    loaded together when its first history is asked for (the last few runs stay cached)."""

    def __init__(
        self,
        path: str | Path,
        *,
        files: str | Path | None = None,
        model_data: str | Path | None = None,
        model_files: str | Path | None = None,
        step_scale: int = 1,
    ) -> None:
        root = Path(path).resolve()
        self.label = f"neptune:{root}"
        if not root.is_dir():
            raise NeptuneExportError(f"{root}: no such directory (expected a Neptune exporter's output)")
        data = root / "data" if (root / "data").is_dir() else root
        if step_scale < 1:
            raise NeptuneExportError(f"step_scale must be a positive integer, not {step_scale}")
        self._data = data
        self._files = Path(files).resolve() if files is not None else data.parent / "files"
        self._model_data = (
            Path(model_data).resolve() if model_data is not None else data.parent / "model_data"
        )
        self._model_files = (
            Path(model_files).resolve() if model_files is not None else data.parent / "model_files"
        )
        self._scale = step_scale
        if not any(data.glob("*/*_part_0.parquet")) and not any(
            self._model_data.glob("*/models/*_part_0.parquet")
        ):
            raise NeptuneExportError(
                f"{data}: no Neptune export here (expected <project>/<run>_part_0.parquet files)"
            )
        self._projects: dict[str, Path] = {}
        self._entity = functools.lru_cache(maxsize=16)(self._scan_prefix)
        self._metrics = functools.lru_cache(maxsize=4)(self._load_metrics)
        self._artifacts = functools.lru_cache(maxsize=16)(self._list_artifacts)
        self._registry = functools.lru_cache(maxsize=None)(self._scan_registry)

    # Runs

    def experiments(self) -> Iterator[Experiment]:
        for directory in sorted(p for p in self._data.iterdir() if p.is_dir()):
            prefixes = _complete(directory)
            if not prefixes:
                continue  # nothing exported yet: the name is not even recoverable from the folder
            project_id = _first_project_id(next(iter(prefixes.values()))[0])
            self._projects[project_id] = directory
            yield Experiment(source_id=project_id, name=project_id)

    def runs(self, experiment: Experiment) -> Iterator[Run]:
        complete = _complete(self._project_dir(experiment.source_id))
        exported = set(complete)
        yielded: set[str] = set()
        waiting: dict[str, list[Run]] = {}  # forks whose parent comes later in the folder
        for parts in complete.values():
            ready = [self._run(_scan(parts), exported)]
            if ready[0].parent_id and ready[0].parent_id not in yielded:
                waiting.setdefault(ready[0].parent_id, []).append(ready.pop())
            while ready:
                done = ready.pop()
                yielded.add(done.source_id)
                ready.extend(waiting.pop(done.source_id, []))
                yield done
        for orphans in waiting.values():  # only if a parent's id and its file name disagree
            yield from orphans

    def history(self, run: Run, key: str) -> Series:
        directory, prefix, _ = self._run_location(run)
        arrays = self._metrics(directory, prefix, run.start_ms)
        if key not in arrays:
            raise KeyError(f"run {run.source_id!r} of {run.experiment_id!r} has no float series {key!r}")
        values, steps, stamps = arrays[key]
        return Series(key=key, values=values.tolist(), steps=steps.tolist(), timestamps_ms=stamps.tolist())

    def files(self, run: Run) -> Iterator[File]:
        return _listing(self._artifacts(*self._run_location(run)))

    def open(self, run: Run, path: str) -> BinaryIO:
        return self._open(*self._run_location(run), path)

    # Model registry (Neptune 2's `export-models`)

    def models(self) -> Iterator[Model]:
        if not self._model_data.is_dir():
            return
        for directory in sorted(p for p in self._model_data.iterdir() if p.is_dir()):
            for model in self._registry(directory)[0]:
                yield Model(
                    source_id=model.id,
                    name=model.get("sys/name", "string") or model.id,
                    description=model.get("sys/description", "string") or "",
                    tags=_tags(model, _MODEL_FIELDS, include_user=True),
                    created_ms=model.get("sys/creation_time", "datetime"),
                    updated_ms=model.get("sys/modification_time", "datetime"),
                )

    def versions(self, model: Model) -> Iterator[Version]:
        for _directory, entity in self._model_versions(model.source_id):
            yield Version(
                model=model.source_id,
                number=_version_number(entity.id),
                run_id="",
                source=f"neptune:{entity.project_id}/{entity.id}",
                stage=_STAGES.get((entity.get("sys/stage", "string") or "none").lower(), "None"),
                description=entity.get("sys/description", "string") or "",
                tags=_tags(entity, _VERSION_FIELDS, include_user=True),
                user=entity.get("sys/owner", "string") or "",
                created_ms=entity.get("sys/creation_time", "datetime"),
                updated_ms=entity.get("sys/modification_time", "datetime"),
                deleted=bool(entity.get("sys/trashed", "bool")),
            )

    def version_files(self, version: Version) -> Iterator[File]:
        return _listing(self._artifacts(*self._version_location(version)))

    def open_version_file(self, version: Version, path: str) -> BinaryIO:
        return self._open(*self._version_location(version), path)

    # Internals

    def _project_dir(self, project_id: str) -> Path:
        return self._projects.get(project_id) or self._data / sanitize(project_id)

    def _run_location(self, run: Run) -> tuple[Path, str, Path]:
        """The run's folder, its file prefix, and the folder its file paths are relative to."""
        directory = self._project_dir(run.experiment_id)
        return directory, sanitize(run.source_id), self._files / directory.name

    def _version_location(self, version: Version) -> tuple[Path, str, Path]:
        directory, entity = self._version(version)
        return directory / "model_versions", sanitize(entity.id), self._model_files / directory.name

    def _run(self, e: _Entity, exported: set[str]) -> Run:
        start = e.get("sys/creation_time", "datetime")
        if start is None:
            start = e.first_ms
        if start is None:
            raise NeptuneExportError(
                f"{e.parts[0]}: run {e.id!r} has neither sys/creation_time nor a timestamped point "
                "(was it exported with an --attributes filter that left out sys/?)"
            )
        state = (e.get("sys/state", "string") or "").lower()
        status = (
            "FAILED"
            if e.get("sys/failed", "bool")
            else "RUNNING"
            if state in ("running", "active")
            else "FINISHED"
        )
        end = None
        if status != "RUNNING":
            end = (
                e.get("sys/ping_time", "datetime") or e.get("sys/modification_time", "datetime") or e.last_ms
            )
        parent = e.get("sys/forking/parent", "string") or ""
        return Run(
            source_id=e.id,
            experiment_id=e.project_id,
            name=e.get("sys/name", "string") or e.id,
            status=status,
            start_ms=start,
            end_ms=None if end is None else max(end, start),
            user=e.get("sys/owner", "string") or "",
            params={k: _text(t, v) for k, (t, v) in e.scalars.items() if not k.startswith("sys/")},
            tags=_tags(e, _RUN_FIELDS, include_user=False),
            metric_keys=tuple(sorted(k for k, t in e.kinds.items() if t == "float_series")),
            parent_id=parent if sanitize(parent) in exported else "",
            deleted=bool(e.get("sys/trashed", "bool") or e.get("sys/archived", "bool")),
        )

    def _scan_prefix(self, directory: Path, prefix: str) -> _Entity:
        parts = _complete(directory).get(prefix)
        if parts is None:
            raise NeptuneExportError(f"{directory / (prefix + '_part_0.parquet')}: not in the export")
        return _scan(parts)

    def _load_metrics(self, directory: Path, prefix: str, start_ms: int) -> dict[str, Arrays]:
        chunks: dict[str, list[Arrays]] = {}
        columns = ["attribute_path", "attribute_type", "step", "timestamp", "float_value"]

        def wanted(kind: str | None) -> list[str] | None:
            return columns if kind in (None, "float_series") else None

        for part in self._entity(directory, prefix).parts:
            for table in _row_groups(part, wanted):
                t = table.filter(pc.equal(table["attribute_type"], "float_series"))
                if t.num_rows == 0:
                    continue
                if t["step"].null_count:
                    raise NeptuneExportError(f"{part}: a float series point has no step")
                steps = _int_steps(t["step"], self._scale, part)
                stamps = pc.fill_null(_ms(t["timestamp"]), start_ms).to_numpy()
                values = pc.fill_null(t["float_value"].cast(pa.float64()), float("nan")).to_numpy()
                encoded = pc.dictionary_encode(t["attribute_path"].combine_chunks())
                codes = encoded.indices.to_numpy(zero_copy_only=False)
                order = np.argsort(codes, kind="stable")
                ends = np.cumsum(np.bincount(codes, minlength=len(encoded.dictionary)))
                for i, key in enumerate(encoded.dictionary.to_pylist()):
                    picked = order[(ends[i - 1] if i else 0) : ends[i]]
                    chunks.setdefault(key, []).append((values[picked], steps[picked], stamps[picked]))
        return {
            key: (
                np.concatenate([c[0] for c in parts]),
                np.concatenate([c[1] for c in parts]),
                np.concatenate([c[2] for c in parts]),
            )
            for key, parts in chunks.items()
        }

    def _list_artifacts(self, directory: Path, prefix: str, project_files: Path) -> dict[str, _Artifact]:
        """A container's artifacts; `project_files` is what its `file_value.path`s are relative to."""
        entity = self._entity(directory, prefix)
        project_files = project_files.resolve()
        found: dict[str, _Artifact] = {}
        for row in entity.files:
            disk = (project_files / row.path).resolve()
            if not disk.is_relative_to(project_files):
                raise NeptuneExportError(f"{entity.parts[0]}: {row.attribute} points outside {project_files}")
            if not disk.exists():
                raise NeptuneExportError(
                    f"{disk}: missing, though {entity.parts[0]} lists it for {row.attribute!r} "
                    f"(is {project_files.parent} the export's --files-path?)"
                )
            if row.kind == "file_set":
                for inner in sorted(p for p in disk.rglob("*") if p.is_file()):
                    name = f"{row.attribute}/{inner.relative_to(disk).as_posix()}"
                    found[name] = _Artifact(row.attribute, row.kind, inner)
            else:
                found[_artifact_name(row)] = _Artifact(row.attribute, row.kind, disk)
        for attribute, kind in entity.kinds.items():
            if kind in _TEXT_SERIES:
                found[f"{attribute}.jsonl"] = _Artifact(attribute, kind, None)
        return found

    def _open(self, directory: Path, prefix: str, project_files: Path, path: str) -> BinaryIO:
        art = self._artifacts(directory, prefix, project_files).get(path)
        if art is None:
            raise FileNotFoundError(f"{path}: no such file in {directory / prefix}")
        if art.disk is not None:
            return art.disk.open("rb")
        return io.BytesIO(_render(self._entity(directory, prefix).parts, art.attribute, art.kind))

    def _scan_registry(self, directory: Path) -> tuple[list[_Entity], list[_Entity]]:
        models: list[_Entity] = []
        versions: list[_Entity] = []
        for scope, found in (("models", models), ("model_versions", versions)):
            if (directory / scope).is_dir():
                found.extend(_scan(parts) for parts in _complete(directory / scope).values())
        return models, versions

    def _model_versions(self, model_id: str) -> list[tuple[Path, _Entity]]:
        found = []
        if self._model_data.is_dir():
            for directory in sorted(p for p in self._model_data.iterdir() if p.is_dir()):
                for e in self._registry(directory)[1]:
                    owner = e.get("sys/model_id", "string") or e.id.rsplit("-", 1)[0]
                    if owner == model_id:
                        found.append((directory, e))
        return sorted(found, key=lambda de: _version_number(de[1].id))

    def _version(self, version: Version) -> tuple[Path, _Entity]:
        for directory, e in self._model_versions(version.model):
            if _version_number(e.id) == version.number:
                return directory, e
        raise NeptuneExportError(
            f"{self._model_data}: model {version.model!r} has no version {version.number}"
        )


_RUN_FIELDS = {"sys/creation_time", "sys/owner", "sys/name", "sys/tags"}
_MODEL_FIELDS = {"sys/creation_time", "sys/modification_time", "sys/name", "sys/tags", "sys/description"}
_VERSION_FIELDS = {
    "sys/creation_time",
    "sys/modification_time",
    "sys/owner",
    "sys/tags",
    "sys/description",
    "sys/stage",
    "sys/model_id",
    "sys/trashed",
}
