"""TLS for clients (the SDK, the CLI, services calling their peers): what to trust and what to present.

The server's side (a local CA, certificates, server credentials) is in modelog_platform.tls.
"""

from __future__ import annotations

from pathlib import Path

import grpc


class TlsError(RuntimeError):
    """A certificate or key cannot be used; the message names the file and what is wrong."""


def read_pem(path: Path, what: str) -> bytes:
    try:
        return path.read_bytes()
    except OSError as exc:
        raise TlsError(f"cannot read the {what} {path}: {exc.strerror or exc}") from None


def channel_credentials(
    ca: Path | None, cert: Path | None = None, key: Path | None = None
) -> grpc.ChannelCredentials:
    """Trust `ca` (None: the system's roots); present `cert`/`key` when given (mutual TLS)."""
    return grpc.ssl_channel_credentials(
        root_certificates=read_pem(ca, "CA file") if ca else None,
        private_key=read_pem(key, "TLS key") if cert and key else None,
        certificate_chain=read_pem(cert, "TLS certificate") if cert and key else None,
    )
