"""A small but complete export as Neptune's exporter (github.com/neptune-ai/neptune-exporter) lays it
out: its documented Parquet schema (`model.SCHEMA`), one folder per project named by its file-name
rule, runs in `<run>_part_<n>.parquet` parts (row groups per batch, as its writer makes them), files
beside them under `files/`, and `export-models` output under `model_data/` and `model_files/`.

Project `acme/churn` looks like a Neptune 2 export (run ids `sys/id`, files at
`<project>/<run>/<attribute>`, a file set and an artifact listing); `acme/vision` like a Neptune 3
one (run ids `sys/custom_run_id`, files at `<run>/<sanitized attribute>.<ext>`, fractional steps,
forks, histograms).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

SCHEMA = pa.schema(
    [
        ("project_id", pa.string()),
        ("run_id", pa.string()),
        ("attribute_path", pa.string()),
        ("attribute_type", pa.string()),
        ("step", pa.decimal128(18, 6)),
        ("timestamp", pa.timestamp("ms", tz="UTC")),
        ("int_value", pa.int64()),
        ("float_value", pa.float64()),
        ("string_value", pa.string()),
        ("bool_value", pa.bool_()),
        ("datetime_value", pa.timestamp("ms", tz="UTC")),
        ("string_set_value", pa.list_(pa.string())),
        ("file_value", pa.struct([("path", pa.string())])),
        (
            "histogram_value",
            pa.struct(
                [("type", pa.string()), ("edges", pa.list_(pa.float64())), ("values", pa.list_(pa.float64()))]
            ),
        ),
    ]
)
_COLUMN = {
    "float": "float_value",
    "int": "int_value",
    "string": "string_value",
    "bool": "bool_value",
    "datetime": "datetime_value",
    "string_set": "string_set_value",
    "float_series": "float_value",
    "string_series": "string_value",
    "histogram_series": "histogram_value",
}
T0 = 1_735_689_600_000  # 2025-01-01T00:00:00Z


def file_name(part: str) -> str:
    """The exporter's name for a project or run folder/file: its own rule, restated."""
    safe = "".join(c if c.isalnum() or c in "_-" else "_" for c in part)
    return f"{safe}-{hashlib.blake2b(part.encode(), digest_size=8).hexdigest()}"


@dataclass
class Written:
    """What one run (or model, or model version) holds, as written."""

    project: str
    id: str
    attributes: dict[str, tuple[str, Any]] = field(default_factory=dict)
    series: dict[str, tuple[str, list[tuple[Decimal, int, Any]]]] = field(default_factory=dict)
    """path -> (type, [(step, timestamp_ms, value)])"""
    files: dict[str, tuple[str, str, Decimal | None, bytes]] = field(default_factory=dict)
    """key -> (attribute, type, step, bytes); key is the path the reader should give it."""
    batches: list[list[dict[str, Any]]] = field(default_factory=list)

    def attribute(self, path: str, kind: str, value: Any) -> None:
        self.attributes[path] = (kind, value)

    def row(self, path: str, kind: str, **values: Any) -> dict[str, Any]:
        return {
            "project_id": self.project,
            "run_id": self.id,
            "attribute_path": path,
            "attribute_type": kind,
        } | values

    def parameters(self) -> list[dict[str, Any]]:
        return [self.row(p, k, **{_COLUMN[k]: v}) for p, (k, v) in self.attributes.items()]

    def points(self, path: str, kind: str, points: list[tuple[Decimal, int, Any]]) -> list[dict[str, Any]]:
        self.series.setdefault(path, (kind, []))[1].extend(points)
        return [self.row(path, kind, step=s, timestamp=t, **{_COLUMN[kind]: v}) for s, t, v in points]


def _write_parts(directory: Path, written: Written, parts: list[list[list[dict[str, Any]]]]) -> None:
    """Each part is a list of batches; each batch becomes its own row group."""
    directory.mkdir(parents=True, exist_ok=True)
    for n, batches in enumerate(parts):
        with pq.ParquetWriter(directory / f"{file_name(written.id)}_part_{n}.parquet", SCHEMA) as w:
            for batch in batches:
                w.write_table(pa.Table.from_pylist(batch, schema=SCHEMA))


def _put(root: Path, relative: str, content: bytes) -> None:
    path = root / relative
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(content)


def _sys(w: Written, *, name: str, owner: str, created: int, modified: int, tags: list[str]) -> None:
    w.attribute("sys/name", "string", name)
    w.attribute("sys/owner", "string", owner)
    w.attribute("sys/creation_time", "datetime", created)
    w.attribute("sys/modification_time", "datetime", modified)
    w.attribute("sys/tags", "string_set", tags)


def _churn(root: Path) -> dict[str, Written]:
    """Neptune 2: run CHURN-1 in two parts with every kind of attribute, CHURN-2 failed and trashed,
    all in one mixed row group, CHURN-3 still being written (no part_0)."""
    project = "acme/churn"
    data, files = root / "data" / file_name(project), root / "files" / file_name(project)
    one = Written(project, "CHURN-1")
    _sys(one, name="baseline", owner="ada", created=T0, modified=T0 + 3_600_000, tags=["baseline", "resnet"])
    one.attribute("sys/id", "string", "CHURN-1")
    one.attribute("sys/ping_time", "datetime", T0 + 1_800_000)
    one.attribute("sys/failed", "bool", False)
    one.attribute("sys/trashed", "bool", False)
    one.attribute("sys/hostname", "string", "gpu-7")
    one.attribute("sys/size", "float", 20480.0)
    one.attribute("parameters/optimizer/lr", "float", 0.001)
    one.attribute("parameters/optimizer/name", "string", "adam")
    one.attribute("parameters/epochs", "int", 30)
    one.attribute("parameters/use_amp", "bool", True)
    one.attribute("parameters/data/snapshot", "datetime", T0 - 86_400_000 + 250)
    one.attribute("parameters/data/splits", "string_set", ["train", "test"])
    loss = [(Decimal(k), T0 + 1000 * k, 2.0 / (k + 1)) for k in range(600)]
    acc = [(Decimal(10 * k), T0 + 10_000 * k + 7, 0.5 + k / 200) for k in range(60)]
    stdout = [(Decimal(k), T0 + 50 * k, f"epoch {k}: ok \u2713") for k in range(5)]
    one.files["files/model.pkl"] = ("files/model.pkl", "file", None, b"\x80\x04pickle bytes\x00\xff")
    one.files["source_code/files/train.py"] = ("source_code/files", "file_set", None, b"print('train')\n")
    one.files["source_code/files/lib/util.py"] = ("source_code/files", "file_set", None, b"X = 1\n")
    listing = json.dumps([{"filePath": "s3://bucket/train.csv", "fileHash": "abc", "size": 10}]).encode()
    one.files["datasets/train/files_list.json"] = ("datasets/train", "artifact", None, listing)
    base = f"{project}/CHURN-1"
    _put(files, f"{base}/files/model.pkl", one.files["files/model.pkl"][3])
    _put(files, f"{base}/source_code/files/train.py", b"print('train')\n")
    _put(files, f"{base}/source_code/files/lib/util.py", b"X = 1\n")
    _put(files, f"{base}/datasets/train/files_list.json", listing)
    file_rows = [
        one.row("files/model.pkl", "file", file_value={"path": f"{base}/files/model.pkl"}),
        one.row("source_code/files", "file_set", file_value={"path": f"{base}/source_code/files"}),
        one.row("datasets/train", "artifact", file_value={"path": f"{base}/datasets/train/files_list.json"}),
    ]
    part0 = [one.parameters(), one.points("metrics/train/loss", "float_series", loss[:300])]
    part1 = [
        one.points("metrics/train/loss", "float_series", loss[300:]),
        one.points("metrics/val/acc", "float_series", acc),
        one.points("monitoring/stdout", "string_series", stdout),
        file_rows,
    ]
    _write_parts(data, one, [part0, part1])

    two = Written(project, "CHURN-2")
    _sys(two, name="", owner="bob", created=T0 + 100, modified=T0 + 900_000, tags=[])
    two.attribute("sys/failed", "bool", True)
    two.attribute("sys/trashed", "bool", True)
    two.attribute("parameters/optimizer/lr", "float", 0.1)
    mixed = two.parameters() + two.points(
        "metrics/train/loss", "float_series", [(Decimal(k), T0 + 100 + k, float(k)) for k in range(300)]
    )
    _write_parts(data, two, [[mixed]])

    three = Written(project, "CHURN-3")
    three.attribute("sys/name", "string", "in flight")
    (data / f"{file_name('CHURN-3')}_part_0.parquet.tmp").write_bytes(b"partial")
    return {w.id: w for w in (one, two)}


def _vision(root: Path) -> dict[str, Written]:
    """Neptune 3: a base run, a fork of it whose file sorts first, and a fork whose parent is not
    in the export."""
    project = "acme/vision"
    data, files = root / "data" / file_name(project), root / "files" / file_name(project)
    base = Written(project, "vit-base")
    _sys(base, name="vit-sweep", owner="grace", created=T0, modified=T0 + 7_200_000, tags=["vit"])
    base.attribute("sys/custom_run_id", "string", "vit-base")
    base.attribute("sys/id", "string", "VIS-1")
    base.attribute("sys/ping_time", "datetime", T0 + 7_000_000)
    base.attribute("sys/failed", "bool", False)
    base.attribute("sys/archived", "bool", False)
    base.attribute("config/lr", "float", 3e-4)
    base.attribute("config/batch", "int", 256)
    loss = [(Decimal(k), T0 + 500 * k, 1.0 - k / 1000) for k in range(400)]
    lr = [(Decimal(k) / 2, T0 + 250 * k, 3e-4 * (1 - k / 400)) for k in range(400)]
    hist = [
        (Decimal(k), T0 + k, {"type": "COUNTING", "edges": [0.0, 1.0, 2.0], "values": [float(k), 1.0]})
        for k in range(3)
    ]
    notes = b"warmup 5 epochs\n"
    base.files["files/notes.txt"] = ("files/notes", "file", None, notes)
    _put(files, "vit-base/files/notes.txt", notes)
    sample_rows = []
    for k in range(2):
        content = bytes([0x89, 0x50, 0x4E, 0x47, k])
        relative = f"vit-base/images/sample/step_{k}_000000.png"
        _put(files, relative, content)
        base.files[f"images/sample/step_{k}.png"] = ("images/sample", "file_series", Decimal(k), content)
        sample_rows.append(
            base.row(
                "images/sample",
                "file_series",
                step=Decimal(k),
                timestamp=T0 + k,
                file_value={"path": relative},
            )
        )
    _write_parts(
        data,
        base,
        [
            [
                base.parameters(),
                base.points("metrics/loss", "float_series", loss),
                base.points("metrics/lr", "float_series", lr),
                base.points("metrics/grad", "histogram_series", hist),
                [base.row("files/notes", "file", file_value={"path": "vit-base/files/notes.txt"})],
                sample_rows,
            ]
        ],
    )

    fork = Written(project, "vit-a-fork")
    _sys(fork, name="vit-sweep", owner="grace", created=T0 + 10_000_000, modified=T0 + 12_000_000, tags=[])
    fork.attribute("sys/custom_run_id", "string", "vit-a-fork")
    fork.attribute("sys/forking/parent", "string", "vit-base")
    fork.attribute("sys/forking/step", "float", 200.0)
    fork.attribute("config/lr", "float", 1e-4)
    own = [(Decimal(k), T0 + 10_000_000 + 500 * k, 0.5 - k / 10_000) for k in range(200, 400)]
    _write_parts(data, fork, [[fork.parameters(), fork.points("metrics/loss", "float_series", own)]])

    orphan = Written(project, "vit-orphan")
    _sys(orphan, name="vit-sweep", owner="grace", created=T0 + 20_000_000, modified=T0 + 20_000_500, tags=[])
    orphan.attribute("sys/forking/parent", "string", "vit-gone")
    orphan.attribute("sys/forking/step", "float", 10.0)
    _write_parts(data, orphan, [[orphan.parameters()]])
    return {w.id: w for w in (base, fork, orphan)}


def _registry(root: Path) -> dict[str, Written]:
    project = "acme/churn"
    data, files = root / "model_data" / file_name(project), root / "model_files" / file_name(project)
    model = Written(project, "CHURN-MOD")
    _sys(model, name="churn-classifier", owner="ada", created=T0, modified=T0 + 5_000, tags=["prod"])
    model.attribute("sys/id", "string", "CHURN-MOD")
    model.attribute("sys/description", "string", "Predicts churn")
    model.attribute("info/framework", "string", "sklearn")
    _write_parts(data / "models", model, [[model.parameters()]])
    found = {model.id: model}
    for n, stage in ((1, "none"), (2, "production")):
        v = Written(project, f"CHURN-MOD-{n}")
        _sys(v, name="", owner="ada", created=T0 + n * 1000, modified=T0 + n * 2000, tags=[])
        v.attribute("sys/id", "string", v.id)
        v.attribute("sys/model_id", "string", "CHURN-MOD")
        v.attribute("sys/stage", "string", stage)
        v.attribute("validation/acc", "float", 0.9 + n / 100)
        batches = [v.parameters()]
        if n == 2:
            relative = f"model_versions/{v.id}/model/binary"
            v.files["model/binary"] = ("model/binary", "file", None, b"weights\x00" * 100)
            _put(files, relative, v.files["model/binary"][3])
            batches.append([v.row("model/binary", "file", file_value={"path": relative})])
        _write_parts(data / "model_versions", v, [batches])
        found[v.id] = v
    return found


def write_export(root: Path) -> dict[str, Any]:
    """Writes the export under `root` (data/, files/, model_data/, model_files/) and returns what it
    wrote: {"projects": [...], "runs": {run id: Written}, "registry": {id: Written}}."""
    runs = _churn(root) | _vision(root)
    return {"projects": ["acme/churn", "acme/vision"], "runs": runs, "registry": _registry(root)}
