"""The platform's Ed25519 signing key: created on first start under MODELOG_HOME, private part 0600.

What anyone holding only the public key does with it is modelog.shared.audit.keys.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from modelog.shared.audit.keys import key_id, public_pem, raw_public

KEY_FILE = "audit-signing-key.pem"
PUBLIC_FILE = "audit-signing-key.pub.pem"


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
