"""The one settings class (contract §2). Built once, in ``bootstrap``; never at import time."""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

PACKAGE_ROOT = Path(__file__).resolve().parent
PROJECT_ROOT = PACKAGE_ROOT.parent


def _default_rules_dir() -> Path:
    """The rule set shipped with the project (``rules/`` beside the package, or inside it when installed)."""
    for candidate in (PROJECT_ROOT / "rules", PACKAGE_ROOT / "data" / "rules"):
        if candidate.is_dir():
            return candidate
    return PROJECT_ROOT / "rules"


def _default_catalog() -> Path:
    return PACKAGE_ROOT / "data" / "catalog.yaml"


def _default_segments() -> Path:
    return PACKAGE_ROOT / "data" / "segments.yaml"


class Environment(StrEnum):
    DEVELOPMENT = "development"
    PRODUCTION = "production"


class Settings(BaseSettings):
    """Environment variables with the ``NUDGE_`` prefix; safe defaults for local use."""

    model_config = SettingsConfigDict(env_prefix="NUDGE_", extra="ignore")

    env: Environment = Environment.DEVELOPMENT
    database_url: str = "sqlite:///var/nudge.db"
    rules_dir: Path = Field(default_factory=_default_rules_dir)
    catalog: Path = Field(default_factory=_default_catalog)
    segments: Path = Field(default_factory=_default_segments)
    experiments: Path = Field(default_factory=lambda: PACKAGE_ROOT / "data" / "experiments.yaml")
    programmes_dir: Path = Field(default_factory=lambda: PACKAGE_ROOT / "data" / "programmes")
    var_dir: Path = Path("var")
    # Secrets: base64 keys. In development missing ones are generated into var_dir (0600).
    master_keys: str | None = Field(
        default=None, description="Comma-separated 'version:base64key' key-encryption keys, newest first."
    )
    index_key: str | None = Field(default=None, description="base64 HMAC key for identifier look-ups.")
    audit_signing_key: str | None = Field(default=None, description="base64 raw Ed25519 private key.")
    checkpoint_dir: Path | None = None
    # Clinician page sessions: the Secure cookie flag (default: on in production only, so that
    # development over http://127.0.0.1 works).
    review_cookie_secure: bool | None = None
    # PostgreSQL: service calls one API worker runs at once in threads (default: 2 for a database on this
    # machine, else the connection pool's size; see entrypoints.api.app.service_threads).
    api_threads: int | None = Field(default=None, ge=1, le=64)
    log_level: str = "INFO"
    log_json: bool = True
    # Jurisdiction-dependent rule parameter (ALC-03).
    legal_drinking_age: int = 21

    @property
    def is_production(self) -> bool:
        return self.env is Environment.PRODUCTION

    @property
    def resolved_checkpoint_dir(self) -> Path:
        return self.checkpoint_dir or (self.var_dir / "audit-checkpoints")
