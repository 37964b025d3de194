"""The platform's Ed25519 signing key: created on first start under MODELOG_HOME, private part 0600."""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

KEY_FILE = "audit-signing-key.pem"
PUBLIC_FILE = "audit-signing-key.pub.pem"


def key_id(raw_public: bytes) -> str:
    """A short, stable name for a public key (first 16 hex digits of its SHA-256)."""
    return hashlib.sha256(raw_public).hexdigest()[:16]


def raw_public(key: Ed25519PublicKey) -> bytes:
    return key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def public_pem(key: Ed25519PublicKey) -> str:
    return key.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    ).decode()


@dataclass(frozen=True)
class SigningKey:
    private: Ed25519PrivateKey

    @property
    def public(self) -> Ed25519PublicKey:
        return self.private.public_key()

    @property
    def raw_public(self) -> bytes:
        return raw_public(self.public)

    @property
    def key_id(self) -> str:
        return key_id(self.raw_public)

    def sign(self, message: bytes) -> bytes:
        return self.private.sign(message)

    @classmethod
    def load_or_create(cls, home: Path) -> SigningKey:
        """Reads MODELOG_HOME/audit-signing-key.pem, creating it (mode 0600) on first start."""
        path = home / KEY_FILE
        if path.exists():
            loaded = serialization.load_pem_private_key(path.read_bytes(), password=None)
            if not isinstance(loaded, Ed25519PrivateKey):
                raise ValueError(f"{path} is not an Ed25519 private key")
            key = cls(loaded)
        else:
            key = cls(Ed25519PrivateKey.generate())
            pem = key.private.private_bytes(
                serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
            )
            home.mkdir(parents=True, exist_ok=True)
            try:
                fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            except FileExistsError:  # another process of this installation won the race
                return cls.load_or_create(home)
            with os.fdopen(fd, "wb") as fh:
                fh.write(pem)
            os.chmod(path, 0o600)
        (home / PUBLIC_FILE).write_text(public_pem(key.public))
        return key


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
