"""Paths a client names, against the real server: a manifest path that leaves the artifact's root (now,
on another system, or once a URL decodes it) is refused by the path it names and why, and nothing is
written; the server writes only under digests it checked, and reads a path of its host only for a
client that proves it is on that host."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterable
from pathlib import Path

import grpc
import pytest

from modelog._gen.artifacts.v1 import artifacts_pb2 as apb
from tests.security.stackfix import SecurityStack, invalid, refused

pytestmark = pytest.mark.asyncio

ESCAPING = [
    ("..", "has a '..' segment"),
    ("../x", "has a '..' segment"),
    ("a/../../b", "has a '..' segment"),
    ("a/..", "has a '..' segment"),
    ("./a", "has a '.' segment"),
    ("/etc/passwd", "is absolute"),
    ("C:/Windows/win.ini", "drive letter"),
    ("..\\x", "backslash"),
    ("a\\..\\..\\b", "backslash"),
    ("a\x00b", "NUL"),
    ("a//b", "empty segment"),
    ("a/", "empty segment"),
    ("", "is empty"),
    ("a\nb", "control character U+000A"),
    ("a\x1b[31mb", "control character U+001B"),
    ("invoice\u202efdp.exe", "bidirectional control U+202E"),
    # As a URL reads them: the HTTP surface decodes paths, and a careless client decodes twice.
    ("%2e%2e%2f", "reads as '../' when percent-decoded once"),
    ("%2e%2e/etc/passwd", "reads as '../etc/passwd'"),
    ("..%2fx", "reads as '../x'"),
    ("%2E%2E%2Fx", "reads as '../x'"),
    ("a/%2e%2e/%2e%2e/b", "reads as 'a/../../b'"),
    ("%252e%252e", "reads as '..' when percent-decoded twice"),
    ("%252e%252e%252fetc", "reads as '../etc' when percent-decoded twice"),
    ("%25252e%25252e", "when percent-decoded three times"),
    ("%2525252e%2525252e", "still percent-encoded after 3 decodings"),
    ("%2fetc%2fpasswd", "reads as '/etc/passwd'"),
    ("..%5cx", "backslash"),
    ("a%00b", "reads as 'a\\x00b'"),
    ("a%2f%2fb", "empty segment"),
    ("x%E2%80%AEfdp.exe", "bidirectional control U+202E"),
]


async def test_a_manifest_path_that_escapes_the_root_is_refused_naming_it_and_nothing_is_written(
    stack: SecurityStack,
) -> None:
    digest = await stack.blob(b"rows\n")
    fine = apb.ManifestEntry(path="data/rows.csv", digest=digest, size=5)
    for path, why in ESCAPING:
        hostile = apb.ManifestEntry(path=path, digest=digest, size=5)
        async with stack.writes_nothing():
            said = await invalid(
                stack.api.artifacts.CommitVersion(
                    apb.CommitVersionRequest(name="ds", entries=[fine, hostile]), metadata=stack.md()
                ),
                "entries[1].path",
            )
        assert why in said, (path, said)
        if "\x00" not in path:  # a NUL is refused in every field before the handler, so not by path
            assert repr(path) in said, (path, said)
    assert (
        list(
            (
                await stack.api.artifacts.ListArtifacts(apb.ListArtifactsRequest(), metadata=stack.md())
            ).artifacts
        )
        == []
    )


async def test_names_that_only_hold_a_percent_sign_or_another_script_are_kept_as_written(
    stack: SecurityStack,
) -> None:
    """The percent rule refuses what decodes into trouble, not every '%' (files downloaded from the web
    are often named 'a%20b.csv'); letters of any script, and emoji joined by U+200D, are names too."""
    digest = await stack.blob(b"rows\n")
    paths = [
        "100%.txt",
        "50%25.txt",
        "a%20b.csv",
        "a%2Fb",
        "%zz",
        "данные/файл.csv",
        "\U0001f469\u200d\U0001f4bb.txt",
    ]
    entries = [apb.ManifestEntry(path=p, digest=digest, size=5) for p in paths]
    made = await stack.api.artifacts.CommitVersion(
        apb.CommitVersionRequest(name="ds", entries=entries), metadata=stack.md()
    )
    got = await stack.api.artifacts.GetVersion(
        apb.GetVersionRequest(
            ref=apb.VersionRef(name="ds", version=made.version.version), include_entries=True
        ),
        metadata=stack.md(),
    )
    assert sorted(e.path for e in got.version.entries) == sorted(paths)


async def test_digests_and_session_ids_name_no_file_but_their_own(stack: SecurityStack) -> None:
    """The store writes and reads files named by digest (or upload session): anything but 64 (or 32)
    lower-case hex is refused before it reaches a path, a trailing newline included."""
    md, a = stack.md(), stack.api.artifacts
    for bad in ["../../etc/passwd", "/etc/passwd", "a" * 64 + "\n", "A" * 64, "a" * 63 + "/", ""]:
        async with stack.writes_nothing():
            await invalid(a.HaveBlobs(apb.HaveBlobsRequest(digests=[bad]), metadata=md), "digests[0]")
            ranges = [apb.ByteRange(digest=bad)]
            await invalid(
                _drain(a.Download(apb.DownloadRequest(ranges=ranges), metadata=md)), "ranges[0].digest"
            )
            batch = apb.UploadBatch(blobs=[apb.UploadBlob(digest=bad, data=b"x")])
            await invalid(_upload(stack, apb.UploadRequest(batch=batch)), "batch.blobs[0].digest")
            if bad:  # an open without a digest is a resumable session, checked below
                opening = apb.UploadRequest(open=apb.UploadOpen(digest=bad, size=1))
                await invalid(_upload(stack, opening), "open.digest")
    for session in ["../../../tmp/x", "0" * 32 + "\n", "/" + "0" * 31]:
        opening = apb.UploadRequest(open=apb.UploadOpen(session_id=session, size=1))
        async with stack.writes_nothing():
            await invalid(_upload(stack, opening), "open.session_id")


async def test_the_server_reads_a_path_of_its_host_only_for_a_client_that_proves_it_is_there(
    stack: SecurityStack,
) -> None:
    md, a = stack.md(), stack.api.artifacts
    viewer = stack.md(await stack.token("peeker", "viewer"))
    files = [apb.LocalFile(path=p) for p in ("/etc/passwd", "/proc/self/environ")]
    async with stack.writes_nothing():
        said = await refused(
            a.IngestLocal(apb.IngestLocalRequest(proof=b"guess", files=files), metadata=md),
            grpc.StatusCode.PERMISSION_DENIED,
        )
        assert "proof" in said
    store = await a.LocalStore(apb.LocalStoreRequest(), metadata=md)
    proof = await asyncio.to_thread(Path(store.proof_path).read_bytes)
    async with stack.writes_nothing():
        # Even with the proof, having the server read files into the store needs EDIT.
        await refused(
            a.IngestLocal(apb.IngestLocalRequest(proof=proof, files=files), metadata=viewer),
            grpc.StatusCode.PERMISSION_DENIED,
        )
        # A relative path would be relative to wherever the server runs: refused file by file.
        relative = [apb.LocalFile(path=p) for p in ("../../../../etc/passwd", "etc/passwd", "a/../b")]
        reply = await a.IngestLocal(apb.IngestLocalRequest(proof=proof, files=relative), metadata=md)
    assert [("absolute" in f.error, f.digest) for f in reply.files] == [(True, "")] * 3


async def _drain(stream: AsyncIterable[object]) -> None:
    async for _ in stream:
        pass


async def _upload(stack: SecurityStack, request: apb.UploadRequest) -> None:
    await _drain(stack.api.artifacts.Upload(iter([request]), metadata=stack.md()))
