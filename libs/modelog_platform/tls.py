"""TLS for the gRPC server and the clients that call it: a local CA, certificates, credentials.

`modelog up --tls` with no certificate of its own creates a CA and a server certificate under
MODELOG_HOME/tls once and reuses them; MODELOG_TLS_CERT / MODELOG_TLS_KEY bring your own instead.
MODELOG_TLS_CLIENT_CA makes the server require client certificates signed by that CA (mutual TLS;
the process's own certificate is then also what it presents when calling its peers). What a client
trusts and presents is modelog.shared.tls (the SDK's too), re-exported here.

`python -m modelog_platform.tls --out DIR NAME...` issues a CA and one certificate per NAME (DNS
name NAME, plus localhost and 127.0.0.1), for a compose or Kubernetes install (infra/compose.md).
"""

from __future__ import annotations

import argparse
import datetime as dt
import ipaddress
import os
import socket
from dataclasses import dataclass
from pathlib import Path

import grpc
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from modelog.shared.tls import TlsError as TlsError
from modelog.shared.tls import channel_credentials as channel_credentials
from modelog.shared.tls import read_pem

CA_DAYS = 3650
CERT_DAYS = 397
"""What browsers and Apple platforms still accept for a leaf; we renew well before it ends."""
RENEW_BEFORE = dt.timedelta(days=30)

_Key = ec.EllipticCurvePrivateKey
_CA_USAGE = {
    "digital_signature": True, "content_commitment": False, "key_encipherment": False,
    "data_encipherment": False, "key_agreement": False, "key_cert_sign": True, "crl_sign": True,
    "encipher_only": False, "decipher_only": False,
}  # fmt: skip


@dataclass(frozen=True)
class TlsFiles:
    cert: Path
    key: Path
    ca: Path | None
    """The CA that signed `cert`, when we know it (the local CA); what clients set as MODELOG_CA_FILE."""


def write_private(path: Path, data: bytes) -> None:
    """Write a key file readable by its owner only, from the first byte on."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(data)
    os.chmod(path, 0o600)


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def _key_pem(key: _Key) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def new_ca(common_name: str = "Modelog local CA") -> tuple[x509.Certificate, _Key]:
    key = ec.generate_private_key(ec.SECP256R1())
    now = _now()
    cert = (
        x509.CertificateBuilder()
        .subject_name(_name(common_name))
        .issuer_name(_name(common_name))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=CA_DAYS))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(**_CA_USAGE),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    return cert, key


def _san_entry(host: str) -> x509.GeneralName:
    try:
        return x509.IPAddress(ipaddress.ip_address(host))
    except ValueError:
        return x509.DNSName(host)


def issue(ca: x509.Certificate, ca_key: _Key, hosts: list[str]) -> tuple[x509.Certificate, _Key]:
    """A certificate for `hosts` (DNS names or IPs), usable by a server and as a client identity."""
    key = ec.generate_private_key(ec.SECP256R1())
    now = _now()
    cert = (
        x509.CertificateBuilder()
        .subject_name(_name(hosts[0]))
        .issuer_name(ca.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=CERT_DAYS))
        .add_extension(x509.SubjectAlternativeName([_san_entry(h) for h in hosts]), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]),
            critical=False,
        )
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False
        )
        .sign(ca_key, hashes.SHA256())
    )
    return cert, key


def server_hosts(addr: str) -> list[str]:
    """What a local server certificate names: loopback, plus the host MODELOG_ADDR listens on (this
    machine's name when that is every interface)."""
    host = addr.rpartition(":")[0].strip("[]")
    hosts = ["localhost", "127.0.0.1"]
    if host in ("", "0.0.0.0", "::"):
        hosts += [socket.gethostname(), "::1"] if host == "::" else [socket.gethostname()]
    elif host not in hosts:
        hosts.append(host)
    return list(dict.fromkeys(hosts))


def _covers(cert: x509.Certificate, hosts: list[str]) -> bool:
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return False
    names = {str(v) for v in san.get_values_for_type(x509.IPAddress)} | set(
        san.get_values_for_type(x509.DNSName)
    )
    return {str(_san_entry(h).value) for h in hosts} <= names


def _still_good(cert: x509.Certificate, ca: x509.Certificate, hosts: list[str]) -> bool:
    try:
        cert.verify_directly_issued_by(ca)
    except (ValueError, TypeError, InvalidSignature):
        return False
    return cert.not_valid_after_utc - RENEW_BEFORE > _now() and _covers(cert, hosts)


def ensure_local(home: Path, hosts: list[str]) -> TlsFiles:
    """The local CA and server certificate under home/tls: created on first use, reused after, and
    the server certificate reissued (same CA, so clients keep trusting it) when it nears its end or
    does not name every host."""
    tls = home / "tls"
    files = TlsFiles(cert=tls / "server.pem", key=tls / "server-key.pem", ca=tls / "ca.pem")
    assert files.ca is not None
    ca_key_path = tls / "ca-key.pem"
    try:
        if files.ca.exists() and ca_key_path.exists():
            ca = x509.load_pem_x509_certificate(files.ca.read_bytes())
            loaded = serialization.load_pem_private_key(ca_key_path.read_bytes(), None)
            if not isinstance(loaded, _Key):
                raise TlsError(f"{ca_key_path} is not an EC key; delete {tls} to start over")
            ca_key = loaded
        else:
            ca, ca_key = new_ca()
            write_private(ca_key_path, _key_pem(ca_key))
            files.ca.write_bytes(ca.public_bytes(serialization.Encoding.PEM))
        if files.cert.exists() and files.key.exists():
            current = x509.load_pem_x509_certificate(files.cert.read_bytes())
            if _still_good(current, ca, hosts):
                return files
        cert, key = issue(ca, ca_key, hosts)
        write_private(files.key, _key_pem(key))
        files.cert.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    except (OSError, ValueError) as exc:
        raise TlsError(f"cannot set up the local CA in {tls}: {exc}") from None
    return files


def server_credentials(files: TlsFiles, client_ca: Path | None) -> grpc.ServerCredentials:
    """TLS with our certificate; with `client_ca`, also require a client certificate it signed."""
    return grpc.ssl_server_credentials(
        [(read_pem(files.key, "TLS key"), read_pem(files.cert, "TLS certificate"))],
        root_certificates=read_pem(client_ca, "client CA") if client_ca else None,
        require_client_auth=client_ca is not None,
    )


def issue_set(out: Path, names: list[str]) -> None:
    """A CA (out/ca.pem) and out/NAME.pem, out/NAME-key.pem for each name; existing files are kept."""
    ca_path, ca_key_path = out / "ca.pem", out / "ca-key.pem"
    if ca_path.exists() and ca_key_path.exists():
        ca = x509.load_pem_x509_certificate(ca_path.read_bytes())
        loaded = serialization.load_pem_private_key(ca_key_path.read_bytes(), None)
        assert isinstance(loaded, _Key)
        ca_key = loaded
    else:
        ca, ca_key = new_ca("Modelog CA")
        write_private(ca_key_path, _key_pem(ca_key))
        ca_path.write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    for name in names:
        cert_path, key_path = out / f"{name}.pem", out / f"{name}-key.pem"
        if cert_path.exists() and key_path.exists():
            continue
        cert, key = issue(ca, ca_key, [name, "localhost", "127.0.0.1"])
        write_private(key_path, _key_pem(key))
        cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m modelog_platform.tls", description=__doc__)
    parser.add_argument("--out", type=Path, required=True, help="directory for ca.pem and NAME.pem")
    parser.add_argument("names", nargs="+", help="a DNS name per certificate (e.g. compose services)")
    args = parser.parse_args(argv)
    issue_set(args.out, args.names)
    print(f"CA: {args.out / 'ca.pem'}; certificates: {', '.join(args.names)}")


if __name__ == "__main__":
    main()
