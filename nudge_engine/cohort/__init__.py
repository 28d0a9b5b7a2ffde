"""Synthetic cohort: fast, seeded, realistic-enough patients for the demo, tests and benchmarks.

``generate_cohort(n, seed=42, as_of=...)`` streams :class:`SyntheticPatient` objects: fake
identifiers kept apart from a coded clinical context (conditions, medications, procedures,
observations and clinician facts using the codes of ``clinical/rules-spec.md``), a programme, an
enrolment date, 8 weeks of app events in the patient's local time, and hidden response traits for a
simulator. Prevalences and their (approximate) sources are in :mod:`nudge_engine.cohort.prevalence`.
Draws are vectorised per block of patients with numpy; same seed and ``as_of``, same cohort.
"""

from nudge_engine.cohort.engagement import NUDGE_CATEGORIES, PERSONAS, TRAIT_KEYS
from nudge_engine.cohort.generate import generate_batches, generate_cohort
from nudge_engine.cohort.model import EventType, Programme, SyntheticEvent, SyntheticPatient

__all__ = [
    "NUDGE_CATEGORIES",
    "PERSONAS",
    "TRAIT_KEYS",
    "EventType",
    "Programme",
    "SyntheticEvent",
    "SyntheticPatient",
    "generate_batches",
    "generate_cohort",
]
