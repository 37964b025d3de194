"""What an importer reads, whatever it reads from: the neutral shape every source is turned into.

A source (an MLflow server, a folder of Neptune Parquet exports) yields these records; the writer
(`importers.writer`) turns them into Modelog commands carrying the original time and person. Every
record names itself by `source_id`, the id the source gave it, which is what makes a second import
find what the first one wrote. Times are milliseconds since the epoch, as both sources keep them.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import BinaryIO, Protocol


@dataclass(frozen=True)
class Experiment:
    source_id: str
    name: str
    tags: dict[str, str] = field(default_factory=dict)
    description: str = ""
    deleted: bool = False
    created_ms: int | None = None
    user: str = ""


@dataclass(frozen=True)
class Dataset:
    name: str
    digest: str
    source_type: str = ""
    source: str = ""
    context: str = ""
    schema: str = ""
    profile: str = ""
    tags: dict[str, str] = field(default_factory=dict)
    """The input's tags besides the context (MLflow's InputTag)."""


@dataclass(frozen=True)
class Run:
    source_id: str
    experiment_id: str
    """The `source_id` of its experiment."""
    name: str
    status: str
    """RUNNING, FINISHED, FAILED or KILLED."""
    start_ms: int
    end_ms: int | None = None
    user: str = ""
    params: dict[str, str] = field(default_factory=dict)
    tags: dict[str, str] = field(default_factory=dict)
    datasets: tuple[Dataset, ...] = ()
    metric_keys: tuple[str, ...] = ()
    parent_id: str = ""
    """The `source_id` of the run it is nested under or forked from (same experiment), or empty."""
    deleted: bool = False


@dataclass(frozen=True)
class Series:
    """One metric's full history, in the order the source keeps it."""

    key: str
    values: list[float]
    steps: list[int]
    timestamps_ms: list[int]


@dataclass(frozen=True)
class File:
    path: str
    """Relative, '/'-separated."""
    size: int | None = None


@dataclass(frozen=True)
class Model:
    source_id: str
    name: str
    description: str = ""
    tags: dict[str, str] = field(default_factory=dict)
    aliases: dict[str, str] = field(default_factory=dict)
    """Alias -> version number (as text, as MLflow sends it)."""
    created_ms: int | None = None
    updated_ms: int | None = None


@dataclass(frozen=True)
class Version:
    model: str
    """The model's `source_id`."""
    number: int
    run_id: str
    """The `source_id` of the run that made it, or empty."""
    source: str
    """Where the source keeps its files (an MLflow URI such as runs:/<run>/model)."""
    stage: str = "None"
    description: str = ""
    tags: dict[str, str] = field(default_factory=dict)
    user: str = ""
    created_ms: int | None = None
    updated_ms: int | None = None
    deleted: bool = False


class SourceError(Exception):
    """The source refused or could not be read: the message says which and what to do."""


class Source(Protocol):
    """A history to bring in. Methods may be called from several threads at once."""

    label: str
    """Recorded in every imported event's metadata, such as `mlflow:http://host:5000`."""

    def experiments(self) -> Iterator[Experiment]: ...

    def runs(self, experiment: Experiment) -> Iterator[Run]: ...

    def history(self, run: Run, key: str) -> Series: ...

    def files(self, run: Run) -> Iterator[File]: ...

    def open(self, run: Run, path: str) -> BinaryIO: ...

    def models(self) -> Iterator[Model]: ...

    def versions(self, model: Model) -> Iterator[Version]: ...

    def version_files(self, version: Version) -> Iterator[File]: ...

    def open_version_file(self, version: Version, path: str) -> BinaryIO: ...
