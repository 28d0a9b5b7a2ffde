"""Key material: key-encryption keys (KEKs) by version, the blind-index key, dev secret generation.

Configuration holds every secret as base64 (contract §2):

- ``NUDGE_MASTER_KEYS``: ``"v2:base64,v1:base64"``, newest first. The newest wraps new data keys;
  older ones stay so that keys wrapped before a rotation can still be unwrapped.
- ``NUDGE_INDEX_KEY``: the HMAC key of the blind index over source patient ids.
- ``NUDGE_AUDIT_SIGNING_KEY``: the raw 32-byte Ed25519 private key that signs audit checkpoints.

In development, :func:`ensure_dev_secrets` generates the missing ones once into ``var_dir/secrets/``
(files 0600) and warns; in production a missing secret is a :class:`ConfigurationError`.
"""

from __future__ import annotations

import base64
import binascii
import os
import re
import secrets
from dataclasses import dataclass
from pathlib import Path

from nudge_engine.config import Settings
from nudge_engine.domain.errors import ConfigurationError
from nudge_engine.logs import get_logger

KEY_BYTES = 32
_VERSION = re.compile(r"^[A-Za-z0-9_.-]{1,32}$")
_log = get_logger(__name__)

# Secret name -> (settings field, environment variable, file under var_dir/secrets).
_SECRETS = {
    "master_keys": ("NUDGE_MASTER_KEYS", "master_keys"),
    "index_key": ("NUDGE_INDEX_KEY", "index_key"),
    "audit_signing_key": ("NUDGE_AUDIT_SIGNING_KEY", "audit_signing_key"),
}


def _decode_key(text: str, *, variable: str) -> bytes:
    try:
        raw = base64.b64decode(text.strip(), validate=True)
    except (binascii.Error, ValueError) as exc:
        raise ConfigurationError(f"{variable}: not valid base64") from exc
    if len(raw) != KEY_BYTES:
        raise ConfigurationError(f"{variable}: key must be {KEY_BYTES} bytes, got {len(raw)}")
    return raw


def new_key_text() -> str:
    """A fresh random 256-bit key, base64."""
    return base64.b64encode(secrets.token_bytes(KEY_BYTES)).decode("ascii")


def parse_master_keys(text: str) -> tuple[tuple[str, bytes], ...]:
    """``"v2:b64,v1:b64"`` -> ``(("v2", key), ("v1", key))``, order kept (newest first)."""
    keys: list[tuple[str, bytes]] = []
    for part in (p.strip() for p in text.split(",")):
        if not part:
            continue
        version, sep, encoded = part.partition(":")
        if not sep or not _VERSION.match(version):
            raise ConfigurationError("NUDGE_MASTER_KEYS: each entry must be 'version:base64key'")
        if any(v == version for v, _ in keys):
            raise ConfigurationError(f"NUDGE_MASTER_KEYS: version '{version}' appears twice")
        keys.append((version, _decode_key(encoded, variable=f"NUDGE_MASTER_KEYS[{version}]")))
    if not keys:
        raise ConfigurationError("NUDGE_MASTER_KEYS: no key given")
    return tuple(keys)


@dataclass(frozen=True, slots=True)
class Keyring:
    """Key-encryption keys by version (newest first) and the HMAC key of the blind index."""

    keks: tuple[tuple[str, bytes], ...]
    index_key: bytes

    def __post_init__(self) -> None:
        if not self.keks:
            raise ConfigurationError("NUDGE_MASTER_KEYS: no key given")

    def __repr__(self) -> str:  # never print key bytes
        return f"Keyring(versions={[v for v, _ in self.keks]})"

    @classmethod
    def from_settings(cls, settings: Settings) -> Keyring:
        if not settings.master_keys:
            raise ConfigurationError("NUDGE_MASTER_KEYS is not set")
        if not settings.index_key:
            raise ConfigurationError("NUDGE_INDEX_KEY is not set")
        return cls(
            keks=parse_master_keys(settings.master_keys),
            index_key=_decode_key(settings.index_key, variable="NUDGE_INDEX_KEY"),
        )

    @property
    def newest(self) -> tuple[str, bytes]:
        return self.keks[0]

    def kek(self, version: str) -> bytes:
        for v, key in self.keks:
            if v == version:
                return key
        raise ConfigurationError(f"NUDGE_MASTER_KEYS: no key with version '{version}' (needed to unwrap)")


def signing_key_bytes(settings: Settings) -> bytes:
    """The raw Ed25519 private key from ``NUDGE_AUDIT_SIGNING_KEY``."""
    if not settings.audit_signing_key:
        raise ConfigurationError("NUDGE_AUDIT_SIGNING_KEY is not set")
    return _decode_key(settings.audit_signing_key, variable="NUDGE_AUDIT_SIGNING_KEY")


def secrets_dir(settings: Settings) -> Path:
    return settings.var_dir / "secrets"


def _write_secret_file(path: Path, text: str) -> None:
    """Create ``path`` with mode 0600; fails if it exists (never overwrites a secret)."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="ascii") as fh:
        fh.write(text + "\n")


def _read_secret_file(path: Path) -> str | None:
    try:
        return path.read_text(encoding="ascii").strip() or None
    except FileNotFoundError:
        return None


def ensure_dev_secrets(settings: Settings) -> Settings:
    """Missing secrets: generated once into ``var_dir/secrets`` in development; an error in production."""
    updates: dict[str, str] = {}
    for field_name, (variable, file_name) in _SECRETS.items():
        if getattr(settings, field_name):
            continue
        if settings.is_production:
            raise ConfigurationError(f"{variable} is not set (required in production)")
        path = secrets_dir(settings) / file_name
        value = _read_secret_file(path)
        if value is None:
            value = "v1:" + new_key_text() if field_name == "master_keys" else new_key_text()
            try:
                _write_secret_file(path, value)
                _log.warning("dev_secret_generated", variable=variable, path=str(path))
            except FileExistsError:  # another process generated it first: use theirs
                value = _read_secret_file(path) or value
        updates[field_name] = value
    return settings.model_copy(update=updates) if updates else settings


def rotate_dev_master_key(settings: Settings) -> Settings:
    """Development only: prepend a freshly generated KEK to the generated ``master_keys`` file.

    Only applies when the master keys came from that file; when the operator supplied
    ``NUDGE_MASTER_KEYS`` (and always in production) the newest configured key is used as is.
    """
    path = secrets_dir(settings) / "master_keys"
    current = _read_secret_file(path)
    if settings.is_production or current is None or current != (settings.master_keys or "").strip():
        return settings
    versions = [v for v, _ in parse_master_keys(current)]
    numbers = [int(v[1:]) for v in versions if v.startswith("v") and v[1:].isdigit()]
    version = f"v{max(numbers, default=0) + 1}"
    updated = f"{version}:{new_key_text()},{current}"
    tmp = path.with_suffix(".new")
    tmp.unlink(missing_ok=True)
    _write_secret_file(tmp, updated)
    tmp.replace(path)
    _log.warning("dev_master_key_generated", kek_version=version, path=str(path))
    return settings.model_copy(update={"master_keys": updated})
