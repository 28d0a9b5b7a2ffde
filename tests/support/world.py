"""A small, real world for integration tests: container, migrated database, synthetic cohort."""

from __future__ import annotations

import random
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

from nudge_engine.adapters.orm import base as orm_base
from nudge_engine.bootstrap import Container
from nudge_engine.config import Settings
from nudge_engine.privacy.keys import ensure_dev_secrets
from nudge_engine.services.cohort_import import import_cohort
from nudge_engine.services.demo import nudge_mapper
from nudge_engine.services.importing import Importer, ImportSummary

NOW = datetime(2026, 11, 30, 15, 0, tzinfo=UTC)


def fixed_clock() -> datetime:
    return NOW


def make_container(database_url: str, var_dir: Path) -> Container:
    """A container on ``database_url`` with development secrets under ``var_dir`` and a fixed clock."""
    settings = ensure_dev_secrets(Settings(database_url=database_url, var_dir=var_dir))
    return Container(settings, clock=fixed_clock)


def seed_cohort(container: Container, patients: int, *, seed: int = 7) -> ImportSummary:
    importer = Importer(uow_factory=container.uow, vault=container.vault, audit=container.audit,
                        clock=container.clock)
    return import_cohort(importer, container.uow, patients=patients, seed=seed, as_of=NOW, now=NOW,
                         nudge_for=nudge_mapper(container.catalog))


@contextmanager
def seeded_ids(seed: int) -> Iterator[None]:
    """Surrogate ids from a seeded generator, so a simulated run is the same every time.

    Experiment arms are assigned by hashing surrogate ids; with random ids every run of a
    simulation differs, and a statistical assertion on it fails in some fraction of runs.
    """
    rng = random.Random(seed)
    before = orm_base._id_bytes
    orm_base._id_bytes = rng.randbytes
    try:
        yield
    finally:
        orm_base._id_bytes = before
