"""`modelog data ...`: version datasets and models like DVC, with pointer files meant for git.

`data add PATH` writes `PATH.modelog`, a small JSON pointer (artifact, version, manifest digest); commit
it to git, and `data pull PATH.modelog` restores exactly that version. Exit codes: 0 success, 1 an error
(one line on stderr: `modelog: <STATUS>: <message>`), 2 bad usage, 3 `data status` found changes.
"""

from __future__ import annotations

import json
import sys
import threading
from collections.abc import Callable
from functools import wraps
from pathlib import Path
from typing import Any, TypeVar

import click
import grpc

import modelog.artifacts as art
from modelog._client import Connection
from modelog._gen.artifacts.v1 import artifacts_pb2 as pb
from modelog.cli.common import CliError, die, error_line
from modelog.errors import ModelogError
from modelog.shared.artifacts.manifest import Manifest, diff
from modelog.shared.artifacts.refs import check_name, parse_ref
from modelog.shared.settings import Settings

F = TypeVar("F", bound=Callable[..., Any])
POINTER_SUFFIX = ".modelog"
EXIT_ERROR, EXIT_CHANGED = 1, 3
CHANGE_LETTERS = {"added": "A", "modified": "M", "removed": "D"}
"""One letter per kind of change, the same in `data status` and `data diff` (as git prints them)."""


def _errors(fn: F) -> F:
    """One readable line and a trustworthy exit code, for server and local errors alike."""

    @wraps(fn)
    def run(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except (grpc.RpcError, ModelogError) as exc:
            die(error_line(exc))
        except OSError as exc:
            if isinstance(exc, BrokenPipeError):
                raise  # our reader left: `modelog` exits quietly (see ModelogGroup)
            _die("OS_ERROR", f"{exc.filename or ''}: {exc.strerror or exc}".lstrip(": "))

    return run  # type: ignore[return-value]


def _die(code: str, message: str) -> None:
    die(f"{code}: {message}", EXIT_ERROR)


def _emit(data: Any, as_json: bool, text: str) -> None:
    click.echo(json.dumps(data, indent=2, default=str) if as_json else text)


def _size(n: int) -> str:
    value = float(n)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if value < 1024 or unit == "TiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{n} B"


class _Bar:
    """click's progress bar behind the SDK's Progress protocol (advanced from several threads)."""

    def __init__(self, enabled: bool) -> None:
        self.enabled = enabled
        self.lock = threading.Lock()
        self.bar: Any = None

    def start(self, label: str, total: int) -> None:
        if self.enabled:
            self.bar = click.progressbar(length=max(total, 1), label=label, file=sys.stderr)
            self.bar.__enter__()

    def advance(self, n: int) -> None:
        if self.bar is not None:
            with self.lock:
                self.bar.update(n)

    def finish(self) -> None:
        if self.bar is not None:
            self.bar.__exit__(None, None, None)
            self.bar = None


def _version_row(v: art.ArtifactVersion) -> dict[str, Any]:
    return {
        "name": v.name,
        "version": v.version,
        "kind": v.kind,
        "manifest": v.manifest_digest,
        "files": v.file_count,
        "size": v.total_size,
        "message": v.message,
        "run_id": v.run_id,
        "parent": v.parent_version,
        "aliases": v.aliases,
        "tags": v.tags,
        "created_by": v.created_by,
        "created_at": v.created_at.isoformat() if v.created_at else None,
    }


def pointer_path(path: Path) -> Path:
    return path.with_name(path.name + POINTER_SUFFIX)


def _read_pointer(path: Path) -> dict[str, Any]:
    try:
        value: dict[str, Any] = json.loads(path.read_text())
        check_name(str(value["artifact"]))
        int(value["version"])
    except (ValueError, KeyError, TypeError) as exc:
        raise CliError("INVALID_ARGUMENT", f"{path} is not a modelog pointer file ({exc})") from None
    return value


def _manifest_cache(digest: str) -> Path:
    return Settings().home / "cache" / "manifests" / digest


def _keep_manifest(manifest: Manifest) -> None:
    """Locally, so `data status` works without the server."""
    path = _manifest_cache(manifest.digest)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(manifest.canonical())


def _pointer_manifest(pointer: dict[str, Any], conn: Connection | None) -> Manifest:
    path = _manifest_cache(str(pointer["manifest"]))
    if path.exists():
        manifest = Manifest.parse(path.read_bytes())
        if manifest.digest == pointer["manifest"]:
            return manifest
    with conn or Connection() as c:
        version = art.get(f"{pointer['artifact']}:v{pointer['version']}", conn=c)
        manifest = version.manifest()
    _keep_manifest(manifest)
    return manifest


@click.group()
def data() -> None:
    """Version datasets and model files (content-addressed, deduplicated, resumable)."""


@data.command("add")
@click.argument("path", type=click.Path(exists=True, path_type=Path))
@click.option("--name", help="artifact name (default: the pointer's, else PATH's name)")
@click.option("--message", "-m", default="", help="what changed")
@click.option(
    "--kind",
    type=click.Choice(["dataset", "model", "other"]),
    default=None,
    help="for a new artifact (default dataset); an artifact keeps its kind",
)
@click.option("--run", "run_id", default=None, help="the tracking run that produced it")
@click.option("--alias", "aliases", multiple=True, help="alias to point at the new version (repeatable)")
@click.option("--tag", "tags", multiple=True, help="KEY=VALUE (repeatable)")
@click.option("--json", "as_json", is_flag=True)
@_errors
def data_add(
    path: Path,
    name: str | None,
    message: str,
    kind: str | None,
    run_id: str | None,
    aliases: tuple[str, ...],
    tags: tuple[str, ...],
    as_json: bool,
) -> None:
    """Hash PATH, upload what the server lacks, commit a version and write PATH.modelog."""
    pointer = pointer_path(path.resolve())
    if name is None:
        name = _read_pointer(pointer)["artifact"] if pointer.exists() else path.resolve().name
    tag_map = dict(t.split("=", 1) for t in tags if "=" in t)
    if len(tag_map) != len(tags):
        raise click.BadParameter("tags are KEY=VALUE", param_hint="--tag")
    with Connection() as conn:
        version = art.log_artifacts(
            path,
            name=check_name(str(name), "--name"),
            kind=kind or ("" if pointer.exists() else "dataset"),
            run_id=run_id,
            message=message,
            tags=tag_map,
            aliases=aliases,
            conn=conn,
            progress=_Bar(not as_json),
        )
    _keep_manifest(version.manifest())
    doc = {
        "artifact": version.name,
        "version": version.version,
        "manifest": version.manifest_digest,
        "files": version.file_count,
        "size": version.total_size,
        "is_file": path.is_file(),
    }
    pointer.write_text(json.dumps(doc, indent=2) + "\n")
    note = "new version" if version.created else "unchanged: same content as the latest version"
    _emit(
        {**_version_row(version), "created": version.created, "pointer": str(pointer)},
        as_json,
        f"{version.ref}  {version.file_count} files, {_size(version.total_size)}  ({note})\n"
        f"wrote {pointer} (commit it to git)",
    )


@data.command("pull")
@click.argument("source")
@click.argument("directory", required=False, type=click.Path(path_type=Path))
@click.option(
    "--exact/--keep-extra",
    default=None,
    help="delete files the version does not have (default: on for a pointer file, off for a ref)",
)
@click.option(
    "--verify",
    is_flag=True,
    help="hash every file as it is written, even blobs the store's seal vouches for",
)
@click.option("--json", "as_json", is_flag=True)
@_errors
def data_pull(source: str, directory: Path | None, exact: bool | None, verify: bool, as_json: bool) -> None:
    """Restore a version: SOURCE is NAME@VERSION (or NAME:ALIAS) or a PATH.modelog pointer."""
    with Connection() as conn:
        if source.endswith(POINTER_SUFFIX) and Path(source).is_file():
            pointer = _read_pointer(Path(source))
            tracked = Path(source[: -len(POINTER_SUFFIX)])
            version = art.get(f"{pointer['artifact']}:v{pointer['version']}", conn=conn)
            if pointer.get("is_file"):
                target, exact = directory or tracked.parent, False  # never prune a file's neighbours
            else:
                target, exact = directory or tracked, True if exact is None else exact
        else:
            version = art.get(source, conn=conn)
            target, exact = directory or Path(version.name), bool(exact)
        version.download(target, exact=exact, progress=_Bar(not as_json), verify=verify)
        _keep_manifest(version.manifest())
    _emit(
        {**_version_row(version), "directory": str(target), "exact": exact},
        as_json,
        f"{version.ref} -> {target}  {version.file_count} files, {_size(version.total_size)}",
    )


@data.command("status")
@click.argument("path", type=click.Path(path_type=Path))
@click.option("--json", "as_json", is_flag=True)
@_errors
def data_status(path: Path, as_json: bool) -> None:
    """What changed in PATH since PATH.modelog: A added, M modified, D deleted (the letters of `data
    diff`).

    Exit status: 0 when PATH matches PATH.modelog, 3 when anything changed, 1 on an error, 2 on bad
    usage, so that `modelog data status PATH || ...` can gate a script."""
    pointer_file = pointer_path(path.resolve())
    if not pointer_file.exists():
        raise CliError(
            "FAILED_PRECONDITION", f"{pointer_file} does not exist: run `modelog data add {path}` first"
        )
    pointer = _read_pointer(pointer_file)
    recorded = _pointer_manifest(pointer, None)
    cache = art.HashCache()
    try:
        files = art.scan(path) if path.exists() else []
        art.hash_tree(files, cache, _Bar(not as_json), stream_min=1 << 62)
    finally:
        cache.close()
    changes = diff(recorded, art.manifest_of(files))
    rows = {
        "added": [c.path for c in changes.added],
        "removed": [c.path for c in changes.removed],
        "modified": [c.path for c in changes.modified],
    }
    clean = not any(rows.values())
    lines = [f"{CHANGE_LETTERS[kind]} {p}" for kind, paths in rows.items() for p in paths]
    head = f"{pointer['artifact']}:v{pointer['version']}"
    _emit(
        {"artifact": pointer["artifact"], "version": pointer["version"], "clean": clean, **rows},
        as_json,
        f"{head}: up to date" if clean else "\n".join([f"{head}: changed", *lines]),
    )
    if not clean:
        sys.exit(EXIT_CHANGED)


def _ref_pb(text: str) -> pb.VersionRef:
    ref = parse_ref(text)
    return pb.VersionRef(name=ref.name, version=ref.version or 0, alias=ref.alias or "")


@data.command("diff")
@click.argument("a")
@click.argument("b")
@click.option("--json", "as_json", is_flag=True)
@_errors
def data_diff(a: str, b: str, as_json: bool) -> None:
    """Paths added, removed and modified from version A to version B (NAME@VERSION or NAME:ALIAS)."""
    with Connection() as conn:
        resp = art.stub(conn).DiffVersions(pb.DiffVersionsRequest(a=_ref_pb(a), b=_ref_pb(b)))
    rows = {
        "a": f"{resp.a.name}:v{resp.a.version}",
        "b": f"{resp.b.name}:v{resp.b.version}",
        "added": [{"path": c.path, "size": c.new_size} for c in resp.added],
        "removed": [{"path": c.path, "size": c.old_size} for c in resp.removed],
        "modified": [{"path": c.path, "old_size": c.old_size, "new_size": c.new_size} for c in resp.modified],
        "unchanged": resp.unchanged,
    }
    lines = [f"{rows['a']} -> {rows['b']}: {resp.unchanged} unchanged"]
    letter = CHANGE_LETTERS
    lines += [f"{letter['added']} {c.path}  {_size(c.new_size)}" for c in resp.added]
    lines += [f"{letter['removed']} {c.path}  {_size(c.old_size)}" for c in resp.removed]
    lines += [
        f"{letter['modified']} {c.path}  {_size(c.old_size)} -> {_size(c.new_size)}" for c in resp.modified
    ]
    _emit(rows, as_json, "\n".join(lines))


@data.command("log")
@click.argument("name")
@click.option("--json", "as_json", is_flag=True)
@_errors
def data_log(name: str, as_json: bool) -> None:
    """Every version of an artifact, newest first."""
    with Connection() as conn:
        rows = [_version_row(v) for v in art.versions(check_name(name), conn=conn)]
    lines = []
    for r in rows:
        when = (r["created_at"] or "")[:19].replace("T", " ")
        aliases = f" ({', '.join(r['aliases'])})" if r["aliases"] else ""
        lines.append(
            f"v{r['version']:<4} {when}  {r['files']:>7} files {_size(r['size']):>10}  by {r['created_by']}"
            f"{aliases}{'  ' + r['message'] if r['message'] else ''}"
        )
    _emit(rows, as_json, "\n".join(lines))


@data.command("ls")
@click.option("--kind", type=click.Choice(["dataset", "model", "other"]), default=None)
@click.option("--json", "as_json", is_flag=True)
@_errors
def data_ls(kind: str | None, as_json: bool) -> None:
    """Every artifact with its latest version."""
    with Connection() as conn:
        resp = art.stub(conn).ListArtifacts(pb.ListArtifactsRequest(kind=kind or ""))
    rows = [{"name": a.name, "kind": a.kind, "latest_version": a.latest_version} for a in resp.artifacts]
    _emit(rows, as_json, "\n".join(f"{r['name']:<32} {r['kind']:<8} v{r['latest_version']}" for r in rows))


@data.command("alias")
@click.argument("ref")
@click.argument("alias")
@click.option("--remove", is_flag=True, help="remove ALIAS from the artifact instead")
@click.option("--json", "as_json", is_flag=True)
@_errors
def data_alias(ref: str, alias: str, remove: bool, as_json: bool) -> None:
    """Point ALIAS at a version: `modelog data alias ds@v3 prod`."""
    parsed = parse_ref(ref)
    with Connection() as conn:
        client = art.stub(conn)
        if remove:
            client.RemoveAlias(pb.RemoveAliasRequest(name=parsed.name, alias=alias))
            _emit(
                {"name": parsed.name, "alias": alias, "removed": True},
                as_json,
                f"removed {parsed.name}:{alias}",
            )
            return
        version = parsed.version or art.get(str(parsed), conn=conn).version
        resp = client.SetAlias(pb.SetAliasRequest(name=parsed.name, alias=alias, version=version))
    before = f" (was v{resp.previous_version})" if resp.previous_version else ""
    _emit(
        {"name": parsed.name, "alias": alias, "version": version, "previous_version": resp.previous_version},
        as_json,
        f"{parsed.name}:{alias} -> v{version}{before}",
    )


def _seconds(text: str) -> int:
    units = {"s": 1, "m": 60, "h": 3600, "d": 86400}
    try:
        if text[-1:] in units:
            return int(float(text[:-1]) * units[text[-1]])
        return int(text)
    except ValueError:
        raise click.BadParameter(f"{text!r} is not a duration like 3600, 90m, 24h or 7d") from None


@click.command("gc")
@click.option("--grace", default="24h", show_default=True, help="keep blobs younger than this (s, m, h, d)")
@click.option("--dry-run", is_flag=True, help="report what would be collected, delete nothing")
@click.option("--json", "as_json", is_flag=True)
@_errors
def gc_command(grace: str, dry_run: bool, as_json: bool) -> None:
    """Delete blobs no artifact version reaches (never one an upload in progress needs)."""
    with Connection() as conn:
        resp = art.stub(conn).GarbageCollect(
            pb.GarbageCollectRequest(grace_seconds=_seconds(grace), dry_run=dry_run), timeout=3600
        )
    rows = {
        "run_id": resp.run_id,
        "dry_run": resp.dry_run,
        "collected_blobs": resp.collected_blobs,
        "collected_bytes": resp.collected_bytes,
        "kept_blobs": resp.kept_blobs,
        "kept_bytes": resp.kept_bytes,
        "spared_blobs": resp.spared_blobs,
        "removed_sessions": resp.removed_sessions,
    }
    verb = "would collect" if dry_run else "collected"
    _emit(
        rows,
        as_json,
        f"{verb} {resp.collected_blobs} blobs ({_size(resp.collected_bytes)}); kept {resp.kept_blobs} "
        f"({_size(resp.kept_bytes)}); spared {resp.spared_blobs} (young or uploading); "
        f"removed {resp.removed_sessions} abandoned upload sessions",
    )


@click.command("verify-store")
@click.option("--no-reseal", is_flag=True, help="report intact blobs without a valid seal; do not seal them")
@click.option("--json", "as_json", is_flag=True)
@_errors
def verify_store_command(no_reseal: bool, as_json: bool) -> None:
    """Hash every stored blob again (what seals cannot see: disk rot, rewritten blobs). Exit code 1
    when a blob is damaged. Run it periodically, and after restoring the store from a backup."""
    bar, started, shown = _Bar(not as_json), False, 0
    final: pb.VerifyStoreProgress | None = None
    try:
        with Connection() as conn:
            for msg in art.stub(conn).VerifyStore(pb.VerifyStoreRequest(reseal=not no_reseal)):
                if msg.done:
                    final = msg
                    break
                if not started:
                    bar.start(f"verifying {msg.blobs_total:,} blobs", msg.bytes_total)
                    started = True
                bar.advance(msg.bytes_done - shown)
                shown = msg.bytes_done
    finally:
        bar.finish()
    if final is None:
        _die("ERROR", "the server ended the verification without a report")
        return
    damaged = [
        {"digest": d.digest, "path": d.path, "actual_sha256": d.actual_sha256, "reason": d.reason}
        for d in final.damaged_blobs
    ]
    counts = {k: getattr(final, k) for k in ("ok", "resealed", "unsealed", "damaged", "vanished")}
    rows = {"blobs": final.blobs_done, "bytes": final.bytes_done, **counts, "damaged_blobs": damaged}
    unlisted = final.damaged - len(damaged)
    lines = [
        f"verified {final.blobs_done:,} blobs ({_size(final.bytes_done)}): "
        + ", ".join(f"{n:,} {k}" for k, n in counts.items())
    ]
    lines += [f"DAMAGED {d['digest']}  {d['path']}: {d['reason']}" for d in damaged]
    if unlisted:
        lines.append(f"... and {unlisted:,} more damaged blobs (the report names at most {len(damaged):,})")
    _emit(rows, as_json, "\n".join(lines))
    if final.damaged:
        sys.exit(EXIT_ERROR)
