"""Fixtures for the audit trail and identifier store, on every backend of the shared ``engine`` fixture."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import Engine, insert
from sqlalchemy.orm import Session

from nudge_engine.adapters.orm import PatientRow, new_id
from nudge_engine.config import Settings
from nudge_engine.privacy.keys import Keyring, new_key_text
from nudge_engine.privacy.vault import IdentifierVault

NOW = datetime(2026, 3, 1, 9, 30, tzinfo=UTC)


@pytest.fixture
def session(engine: Engine) -> Iterator[Session]:
    with Session(engine, expire_on_commit=False, autoflush=False) as s:
        yield s


@pytest.fixture
def key_settings(tmp_path: Path) -> Settings:
    return Settings(
        var_dir=tmp_path,
        master_keys=f"v1:{new_key_text()}",
        index_key=new_key_text(),
        audit_signing_key=new_key_text(),
    )


@pytest.fixture
def vault(key_settings: Settings) -> IdentifierVault:
    return IdentifierVault(Keyring.from_settings(key_settings))


@pytest.fixture
def make_patients(session: Session) -> Callable[[int], list[str]]:
    """Insert ``n`` bare patients (surrogate ids only) and return their ids."""

    def make(n: int) -> list[str]:
        ids = [new_id() for _ in range(n)]
        session.execute(
            insert(PatientRow),
            [{"id": pid, "shard_key": int(pid[:4], 16), "created_at": NOW} for pid in ids],
        )
        session.commit()
        return ids

    return make
