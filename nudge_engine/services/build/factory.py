"""Assemble a :class:`BuildCycle` from the composition root."""

from __future__ import annotations

from typing import TYPE_CHECKING

from nudge_engine.services.build.cycle import BuildCycle, BuildOptions
from nudge_engine.services.build.models import current_policy

if TYPE_CHECKING:
    from nudge_engine.bootstrap import Container


def build_cycle(container: Container, *, worker: str, options: BuildOptions | None = None) -> BuildCycle:
    with container.uow() as uow:
        policy = current_policy(uow.session, catalog=container.catalog, segments=container.segments)
    return BuildCycle(
        uow_factory=container.uow, audit=container.audit, ruleset=container.ruleset, catalog=container.catalog,
        segments=container.segments, policy=policy, clock=container.clock, worker=worker,
        options=options or BuildOptions(), experiments=container.experiments, programmes=container.programmes,
        snapshot_uow_factory=container.snapshot_uow_factory,
    )
