"""`modelog up --tls`: a local CA made once and reused, the SDK and CLI trusting it through
MODELOG_CA_FILE, the internal log reader connecting over TLS, and clear refusals otherwise."""

from __future__ import annotations

import ipaddress
import subprocess
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
from cryptography import x509
from grpc_health.v1 import health_pb2, health_pb2_grpc

from modelog._client import Connection
from modelog._gen.admin.v1 import admin_pb2
from modelog._gen.identity.v1 import identity_pb2
from modelog_platform import tls
from modelog_platform.embedded import free_port
from tests.procs import MODELOG, Up, env_for


@pytest.fixture
def addr() -> str:
    return f"127.0.0.1:{free_port()}"


@pytest.fixture
def tls_up(modelog_home: Path, addr: str) -> Iterator[Up]:
    up = Up(env_for(modelog_home, addr), args=("up", "--tls"))
    yield up
    if up.proc.poll() is None:
        up.proc.kill()
        up.proc.wait()


def _health(channel: grpc.Channel) -> int:
    stub = health_pb2_grpc.HealthStub(channel)
    return int(stub.Check(health_pb2.HealthCheckRequest(service=""), timeout=10).status)


@pytest.mark.slow
def test_up_with_tls_serves_the_sdk_and_cli_that_trust_its_local_ca(
    tls_up: Up, modelog_home: Path, addr: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    ready = tls_up.wait_for("modelog ready on", 90)
    ca = modelog_home / "tls" / "ca.pem"
    assert f"MODELOG_CA_FILE={ca}" in ready
    for key in ("ca-key.pem", "server-key.pem"):
        assert (modelog_home / "tls" / key).stat().st_mode & 0o777 == 0o600
    cert = x509.load_pem_x509_certificate((modelog_home / "tls" / "server.pem").read_bytes())
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert ipaddress.ip_address("127.0.0.1") in san.get_values_for_type(x509.IPAddress)
    assert "localhost" in san.get_values_for_type(x509.DNSName)

    monkeypatch.setenv("MODELOG_HOME", str(modelog_home))
    monkeypatch.setenv("MODELOG_CA_FILE", str(ca))
    with Connection(url=addr) as conn:
        assert conn.identity.WhoAmI(identity_pb2.WhoAmIRequest(), timeout=10).actor == "admin"
        # Lag comes from the platform's own GrpcLogReader (the one that heals gaps): it must reach
        # the server over TLS too, trusting the same CA.
        listed = conn.admin.ListProjections(admin_pb2.ListProjectionsRequest(), timeout=30)
        assert listed.projections and all(s.head >= 0 for p in listed.projections for s in p.sources)

    cli = env_for(modelog_home, addr, MODELOG_CA_FILE=str(ca))
    done = subprocess.run(
        [*MODELOG, "token", "list"], env=cli, capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0, done.stderr
    assert "admin" in done.stdout

    # A plaintext client is refused.
    with grpc.insecure_channel(addr) as plain, pytest.raises(grpc.RpcError) as refused:
        _health(plain)
    assert refused.value.code() == grpc.StatusCode.UNAVAILABLE
    # A TLS client that does not trust the local CA fails, saying why.
    with (
        grpc.secure_channel(addr, grpc.ssl_channel_credentials()) as untrusting,
        pytest.raises(grpc.RpcError) as untrusted,
    ):
        _health(untrusting)
    assert untrusted.value.code() == grpc.StatusCode.UNAVAILABLE
    assert "CERTIFICATE_VERIFY_FAILED" in (untrusted.value.details() or "")
    # So does the CLI without MODELOG_CA_FILE: one line, no traceback.
    bare = subprocess.run(
        [*MODELOG, "token", "list"],
        env=env_for(modelog_home, addr),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert bare.returncode != 0 and "UNAVAILABLE" in bare.stderr and "Traceback" not in bare.stderr

    ca_before, cert_before = ca.read_bytes(), (modelog_home / "tls" / "server.pem").read_bytes()
    assert tls_up.stop() == 0
    again = Up(env_for(modelog_home, addr), args=("up", "--tls"))
    try:
        assert f"MODELOG_CA_FILE={ca}" in again.wait_for("modelog ready on", 90)
        assert ca.read_bytes() == ca_before, "the CA clients already trust must be reused"
        assert (modelog_home / "tls" / "server.pem").read_bytes() == cert_before
        with grpc.secure_channel(addr, tls.channel_credentials(ca)) as trusted:
            assert _health(trusted) == health_pb2.HealthCheckResponse.SERVING
    finally:
        assert again.stop() == 0


def test_local_certificate_names_the_listen_host_and_is_reissued_when_it_does_not(
    tmp_path: Path,
) -> None:
    first = tls.ensure_local(tmp_path, tls.server_hosts("127.0.0.1:50051"))
    assert first.ca is not None
    ca = first.ca.read_bytes()
    wider = tls.ensure_local(tmp_path, tls.server_hosts("modelog.internal:50051"))
    cert = x509.load_pem_x509_certificate(wider.cert.read_bytes())
    names = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert "modelog.internal" in names.get_values_for_type(x509.DNSName)
    assert wider.ca is not None and wider.ca.read_bytes() == ca, "same CA: clients keep trusting it"


@pytest.mark.slow
def test_mutual_tls_refuses_clients_without_a_certificate_and_the_platform_presents_its_own(
    modelog_home: Path, addr: str, tmp_path: Path
) -> None:
    certs = tmp_path / "certs"
    tls.main(["--out", str(certs), "tracking", "ci"])  # what infra/compose.tls.yml's `certs` runs
    server_env = {
        "MODELOG_TLS_CERT": str(certs / "tracking.pem"),
        "MODELOG_TLS_KEY": str(certs / "tracking-key.pem"),
        "MODELOG_TLS_CLIENT_CA": str(certs / "ca.pem"),
        "MODELOG_CA_FILE": str(certs / "ca.pem"),
    }
    up = Up(env_for(modelog_home, addr, **server_env))
    try:
        up.wait_for("modelog ready on", 90)
        ca = certs / "ca.pem"
        with (
            grpc.secure_channel(addr, tls.channel_credentials(ca)) as anonymous,
            pytest.raises(grpc.RpcError) as refused,
        ):
            _health(anonymous)
        assert refused.value.code() == grpc.StatusCode.UNAVAILABLE
        creds = tls.channel_credentials(ca, certs / "ci.pem", certs / "ci-key.pem")
        secret = (modelog_home / "admin-token").read_text().strip()
        with grpc.secure_channel(addr, creds) as ch:
            assert _health(ch) == health_pb2.HealthCheckResponse.SERVING
            # Lag is read through the platform's own log reader: it presents the server's
            # certificate, or this call fails.
            from modelog._gen.admin.v1 import admin_pb2_grpc

            listed = admin_pb2_grpc.AdminStub(ch).ListProjections(
                admin_pb2.ListProjectionsRequest(),
                metadata=[("authorization", f"Bearer {secret}")],
                timeout=30,
            )
            assert listed.projections
        # The image's HEALTHCHECK command works against this server, with the service's own env.
        dockerfile = (Path(__file__).resolve().parents[2] / "infra" / "Dockerfile").read_text()
        check = dockerfile.split('CMD ["python", "-c", "', 1)[1].split('"]', 1)[0]
        probe = subprocess.run(
            [MODELOG[0], "-c", check], env=env_for(modelog_home, addr, **server_env), timeout=60, check=False
        )
        assert probe.returncode == 0
    finally:
        assert up.stop() == 0


@pytest.mark.slow
def test_the_http_surface_serves_https_with_the_same_certificate(tls_up: Up, modelog_home: Path) -> None:
    import re
    import ssl
    import urllib.error
    import urllib.request

    from tests.integration.gatewayfix import run_mlflow

    ready = tls_up.wait_for("modelog ready on", 90)
    url = re.search(r"http: (https://127\.0\.0\.1:\d+)", ready)
    assert url, ready
    ca = modelog_home / "tls" / "ca.pem"
    trusting = ssl.create_default_context(cafile=str(ca))
    with urllib.request.urlopen(url.group(1) + "/health", context=trusting, timeout=10) as resp:
        assert resp.status == 200
    with pytest.raises(urllib.error.URLError, match="CERTIFICATE_VERIFY_FAILED"):
        urllib.request.urlopen(url.group(1) + "/health", context=ssl.create_default_context(), timeout=10)
    with pytest.raises((urllib.error.URLError, ConnectionError)):
        urllib.request.urlopen(url.group(1).replace("https:", "http:") + "/health", timeout=10)
    token = (modelog_home / "admin-token").read_text().strip()
    out = run_mlflow(
        "import json, mlflow; print(json.dumps({'name': mlflow.get_experiment('0').name}))",
        url.group(1),
        token,
        MLFLOW_TRACKING_SERVER_CERT_PATH=str(ca),
    )
    assert out == {"name": "Default"}
