"""The composition root: the table of contents of the running system.

Builds settings, the database engine, units of work, the identifier vault, the audit trail, the
rule set and the clock, each once and lazily. Nothing here runs at import time; entry points
(CLI, API, scheduler) call ``Container.from_env()`` and pass what they need inward.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from functools import cached_property
from typing import TYPE_CHECKING

from nudge_engine.config import Settings

if TYPE_CHECKING:
    from sqlalchemy import Engine

    from nudge_engine.adapters.snapshots import SnapshotReads
    from nudge_engine.adapters.unit_of_work import UnitOfWork, UnitOfWorkFactory
    from nudge_engine.audit.trail import AuditTrail
    from nudge_engine.experiments.model import ExperimentsConfig
    from nudge_engine.guardrails.compiler import CompiledRuleSet
    from nudge_engine.personalization.catalog import Catalog
    from nudge_engine.personalization.programmes import ProgrammeSet
    from nudge_engine.personalization.segments import SegmentModel
    from nudge_engine.privacy.vault import IdentifierVault

Clock = Callable[[], datetime]


def system_clock() -> datetime:
    return datetime.now(UTC)


class Container:
    """Wires adapters for one process. Construct with ``from_env`` or with explicit settings in tests."""

    def __init__(self, settings: Settings, *, clock: Clock = system_clock) -> None:
        self.settings = settings
        self.clock = clock

    @classmethod
    def from_env(cls, **overrides: object) -> Container:
        """Settings from the environment (``NUDGE_*``), secrets ensured, logging configured."""
        from nudge_engine.logs import configure_logging
        from nudge_engine.privacy.keys import ensure_dev_secrets

        settings = Settings(**overrides)  # type: ignore[arg-type]
        configure_logging(level=settings.log_level, json=settings.log_json)
        return cls(ensure_dev_secrets(settings))

    @cached_property
    def engine(self) -> Engine:
        from nudge_engine.adapters.database import make_engine

        return make_engine(self.settings.database_url)

    @cached_property
    def uow_factory(self) -> UnitOfWorkFactory:
        from nudge_engine.adapters.unit_of_work import UnitOfWorkFactory

        return UnitOfWorkFactory(self.engine)

    def uow(self) -> UnitOfWork:
        return self.uow_factory()

    @cached_property
    def snapshot_uow_factory(self) -> UnitOfWorkFactory | None:
        """Read-only units of work on a snapshot, outside the write lock (SQLite files only; else None)."""
        from nudge_engine.adapters.snapshots import snapshot_engine
        from nudge_engine.adapters.unit_of_work import UnitOfWorkFactory

        engine = snapshot_engine(self.settings.database_url)
        return UnitOfWorkFactory(engine) if engine is not None else None

    @cached_property
    def snapshot_reads(self) -> SnapshotReads | None:
        """Read-only transactions on a snapshot as plain connections, kept open between calls (SQLite files only;
        else None): where a serve reads and picks outside the write lock. A plain connection, not a session:
        a serve's reads are Core statements, and a session costs several times as much to open and end."""
        from nudge_engine.adapters.snapshots import SnapshotReads

        snapshots = self.snapshot_uow_factory
        return SnapshotReads(snapshots.engine) if snapshots is not None else None

    @cached_property
    def vault(self) -> IdentifierVault:
        from nudge_engine.privacy.keys import Keyring
        from nudge_engine.privacy.vault import IdentifierVault

        return IdentifierVault(Keyring.from_settings(self.settings))

    @cached_property
    def audit(self) -> AuditTrail:
        from nudge_engine.audit.trail import AuditTrail

        return AuditTrail.from_settings(self.settings)

    @cached_property
    def ruleset(self) -> CompiledRuleSet:
        """The guardrail rule set, validated and compiled once (raises InvalidRuleSet)."""
        from nudge_engine.guardrails.compiler import compile_ruleset
        from nudge_engine.guardrails.loader import load_ruleset

        parameters = {"legal_drinking_age": self.settings.legal_drinking_age}
        return compile_ruleset(load_ruleset(self.settings.rules_dir, parameters=parameters))

    @cached_property
    def catalog(self) -> Catalog:
        from nudge_engine.personalization.catalog import load_catalog

        return load_catalog(self.settings.catalog)

    @cached_property
    def segments(self) -> SegmentModel:
        from nudge_engine.personalization.segment_spec import load_segment_spec
        from nudge_engine.personalization.segments import SegmentModel

        return SegmentModel(load_segment_spec(self.settings.segments))

    @cached_property
    def experiments(self) -> ExperimentsConfig:
        from nudge_engine.experiments.loader import load_experiments

        return load_experiments(self.settings.experiments)

    @cached_property
    def programmes(self) -> ProgrammeSet:
        from nudge_engine.personalization.programmes import load_programmes

        return load_programmes(self.settings.programmes_dir, self.catalog)

    def dispose(self) -> None:
        if "engine" in self.__dict__:
            self.engine.dispose()
        reads = self.__dict__.get("snapshot_reads")
        if reads is not None:
            reads.close()
        snapshots = self.__dict__.get("snapshot_uow_factory")
        if snapshots is not None:
            snapshots.engine.dispose()
