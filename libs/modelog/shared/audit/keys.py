"""Ed25519 public keys of audit bundles: naming, reading and checking them (what an offline verifier
needs; the private key is the audit service's, modelog_services.audit.signing)."""

from __future__ import annotations

import hashlib
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey


def key_id(raw_public: bytes) -> str:
    """A short, stable name for a public key (first 16 hex digits of its SHA-256)."""
    return hashlib.sha256(raw_public).hexdigest()[:16]


def raw_public(key: Ed25519PublicKey) -> bytes:
    return key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def public_pem(key: Ed25519PublicKey) -> str:
    return key.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    ).decode()


def load_public_key(text: str | bytes) -> Ed25519PublicKey:
    """A public key given as PEM, 64 hex digits, or a path to a file holding either."""
    data = text.encode() if isinstance(text, str) else text
    stripped = data.strip()
    # A 64-character path is still a path: only 64 hex digits are taken as the key itself.
    is_hex = len(stripped) == 64 and all(c in b"0123456789abcdefABCDEF" for c in stripped)
    if b"BEGIN" not in data and not is_hex and Path(stripped.decode()).exists():
        data = Path(stripped.decode()).read_bytes()
    if b"BEGIN" in data:
        key = serialization.load_pem_public_key(data)
        if not isinstance(key, Ed25519PublicKey):
            raise ValueError("not an Ed25519 public key")
        return key
    return Ed25519PublicKey.from_public_bytes(bytes.fromhex(data.decode().strip()))


def check_signature(public: Ed25519PublicKey, signature: bytes, message: bytes) -> bool:
    try:
        public.verify(signature, message)
    except InvalidSignature:
        return False
    return True
