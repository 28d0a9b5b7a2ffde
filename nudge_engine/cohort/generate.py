"""Streams synthetic patients, block by block, each block from its own seeded random streams.

Patient ``i`` belongs to block ``i // BLOCK`` whose generators come from ``SeedSequence([seed,
block])``, one child stream per part (demographics, conditions, medications, ...). So the output
depends only on ``(seed, as_of)``: not on ``n`` (a smaller cohort is a prefix of a larger one), nor on
the batch size, and changing one part's draws does not shift the others.
"""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime

import numpy as np

from nudge_engine.cohort.chart import Chart
from nudge_engine.cohort.conditions import build_conditions
from nudge_engine.cohort.engagement import PERSONAS, PROGRAMMES, Engagement
from nudge_engine.cohort.identity import draw_identifiers
from nudge_engine.cohort.localtime import ZONE_NAMES
from nudge_engine.cohort.medications import build_medications
from nudge_engine.cohort.model import SyntheticPatient
from nudge_engine.cohort.observations import build_observations
from nudge_engine.cohort.population import draw_population
from nudge_engine.domain.context import PatientContext, PatientRecord

BLOCK = 1000
_PARTS = 6  # population, identifiers, conditions, medications, observations, engagement


def generate_cohort(n: int, *, seed: int = 42, as_of: datetime) -> Iterator[SyntheticPatient]:
    """``n`` synthetic patients as of the aware instant ``as_of``, streamed; same seed, same patients."""
    for batch in generate_batches(n, seed=seed, as_of=as_of):
        yield from batch


def generate_batches(
    n: int, *, seed: int = 42, as_of: datetime, batch_size: int = BLOCK
) -> Iterator[list[SyntheticPatient]]:
    """The same patients as :func:`generate_cohort`, in lists of ``batch_size`` (the last may be shorter)."""
    if n < 0 or seed < 0 or batch_size < 1:
        raise ValueError("n and seed must be >= 0 and batch_size >= 1")
    if as_of.tzinfo is None:
        raise ValueError("as_of must be an aware datetime")
    as_of = as_of.astimezone(UTC)
    pending: list[SyntheticPatient] = []
    for block, start in enumerate(range(0, n, BLOCK)):
        pending.extend(generate_block(seed, block, min(BLOCK, n - start), as_of))
        while len(pending) >= batch_size:
            yield pending[:batch_size]
            pending = pending[batch_size:]
    if pending:
        yield pending


@contextmanager
def _collector_paused() -> Iterator[None]:
    """Pause the cyclic garbage collector while a block is built.

    A block allocates about a hundred thousand small acyclic objects; with the collector running,
    every few hundred allocations trigger a generation scan, and full scans of everything the caller
    already holds make 100,000 patients about three times slower. Nothing built here forms a cycle,
    so nothing is lost by waiting; the previous state is restored afterwards.
    """
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def generate_block(seed: int, block: int, count: int, as_of: datetime) -> list[SyntheticPatient]:
    """The first ``count`` patients of block ``block`` (a whole block is always drawn)."""
    with _collector_paused():
        return _build_block(seed, block, count, as_of)


def _build_block(seed: int, block: int, count: int, as_of: datetime) -> list[SyntheticPatient]:
    streams = [np.random.default_rng(s) for s in np.random.SeedSequence([seed, block]).spawn(_PARTS)]
    pop = draw_population(streams[0], BLOCK)
    identifiers = draw_identifiers(streams[1], pop, as_of.date(), count)
    chart = Chart(count, as_of)
    build_conditions(streams[2], pop, chart)
    build_medications(streams[3], pop, chart)
    build_observations(streams[4], pop, chart)
    engagement = Engagement(streams[5], pop, as_of)
    events = engagement.events(count)
    traits = engagement.trait_maps(count)
    enrolled = engagement.enrolment(count)
    zones = [ZONE_NAMES[z] for z in pop.zone[:count].tolist()]
    sexes = ["female" if f else "male" for f in pop.female[:count].tolist()]
    programmes = [PROGRAMMES[k] for k in engagement.programme[:count].tolist()]
    personas = [PERSONAS[k] for k in engagement.persona[:count].tolist()]
    patients: list[SyntheticPatient] = []
    for i in range(count):
        ids = identifiers[i]
        context = PatientContext(
            ids.birth_date, sexes[i], tuple(chart.conditions[i]), tuple(chart.procedures[i]),
            tuple(chart.medications[i]), tuple(chart.observations[i]), tuple(chart.facts[i]),
        )
        record = PatientRecord(ids, context, False, zones[i], {"programme": programmes[i].value})
        patients.append(
            SyntheticPatient(record, zones[i], programmes[i], enrolled[i], events[i], traits[i], personas[i])
        )
    return patients
