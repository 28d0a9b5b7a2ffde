"""Fakes for the personalization tests: a vectorised guardrail port and synthetic patient batches."""

from __future__ import annotations

from datetime import datetime

import numpy as np
import numpy.typing as npt

from nudge_engine.personalization.batch import PatientBatch, PatientPrefs
from nudge_engine.personalization.catalog import Catalog
from nudge_engine.personalization.events import EventColumns, EventType
from nudge_engine.personalization.guardrail_port import GuardDecision, GuardrailBatch

FLAGS = (
    "has_t2d", "has_prediabetes", "has_htn", "has_hf", "has_chd", "has_ckd", "has_obesity", "has_depression",
    "has_insomnia", "is_older_adult",
)


class FakeGuardrails:
    """A few rules in the spirit of rules-spec §2, decided column-wise from per-patient flags.

    * HT-02: sauna together with alcohol_permissive -> block, for everybody
    * DT-01: potassium_rich / salt_substitute with CKD -> block
    * DT-03: fluid_increase with heart failure -> review
    * EX-05: vigorous exercise with heart disease -> review
    * DT-04: vitamin_k_rich on warfarin -> caution
    """

    def __init__(
        self,
        catalog: Catalog,
        flags: dict[str, npt.NDArray[np.bool_]],
        warfarin: npt.NDArray[np.bool_],
        *,
        first_idx: int = 0,
    ) -> None:
        self.flags, self.warfarin, self.first_idx = flags, warfarin, first_idx
        self.calls: list[int] = []
        tags = [set(e.tags) for e in catalog.entries]
        self.sauna_beer = np.array([{"sauna", "alcohol_permissive"} <= t for t in tags])
        self.potassium = np.array([bool(t & {"potassium_rich", "salt_substitute"}) for t in tags])
        self.fluid = np.array(["fluid_increase" in t for t in tags])
        self.vigorous = np.array([e.intensity == "vigorous" for e in catalog.entries])
        self.vitamin_k = np.array(["vitamin_k_rich" in t for t in tags])

    def decide(self, patient_idx: npt.NDArray[np.int64], nudge_idx: npt.NDArray[np.int32]) -> GuardrailBatch:
        self.calls.append(len(patient_idx))
        patient_idx = patient_idx - self.first_idx
        f = {k: v[patient_idx] for k, v in self.flags.items()}
        n = len(patient_idx)
        rules = [
            (self.sauna_beer[nudge_idx], GuardDecision.BLOCK, "HT-02", None),
            (self.potassium[nudge_idx] & f["has_ckd"], GuardDecision.BLOCK, "DT-01", None),
            (self.fluid[nudge_idx] & f["has_hf"], GuardDecision.REVIEW, "DT-03", None),
            (self.vigorous[nudge_idx] & (f["has_chd"] | f["has_hf"]), GuardDecision.REVIEW, "EX-05", None),
            (self.vitamin_k[nudge_idx] & self.warfarin[patient_idx], GuardDecision.CAUTION, "DT-04",
             "Keep your intake of greens consistent."),
        ]
        decision = np.zeros(n, dtype=np.int8)
        for mask, level, _, _ in rules:
            decision[mask] = np.maximum(decision[mask], level)
        fired: list[tuple[str, ...]] = [()] * n
        caution: list[tuple[str, ...]] = [()] * n
        escalation: list[str | None] = [None] * n
        code = np.zeros(n, dtype=np.int64)
        for bit, (mask, _, _, _) in enumerate(rules):
            code |= mask.astype(np.int64) << bit
        by_code = {
            c: (tuple(r for b, (_, _, r, _) in enumerate(rules) if c >> b & 1),
                tuple(t for b, (_, _, _, t) in enumerate(rules) if c >> b & 1 and t))
            for c in np.unique(code).tolist()
        }
        for i in np.flatnonzero(code):
            fired[i], caution[i] = by_code[int(code[i])]
        return GuardrailBatch(decision, fired, caution, escalation, "sha256:fake")


class AllowAll:
    """Permits every pair: for tests about ranking and burden only."""

    def decide(self, patient_idx: npt.NDArray[np.int64], nudge_idx: npt.NDArray[np.int32]) -> GuardrailBatch:
        n = len(patient_idx)
        return GuardrailBatch(np.zeros(n, np.int8), [()] * n, [()] * n, [None] * n, "sha256:none")


def synthetic_batch(
    n: int,
    catalog: Catalog,
    *,
    now: datetime,
    rng: np.random.Generator,
    events_per_patient: float = 20.0,
    first_idx: int = 0,
) -> tuple[PatientBatch, dict[str, npt.NDArray[np.bool_]], npt.NDArray[np.bool_]]:
    """A batch of ``n`` patients with a month of plausible events; also the flags and warfarin by patient_idx."""
    now_s = now.timestamp()
    zones = np.array(["Europe/Berlin", "America/New_York", "America/Los_Angeles", "Asia/Tokyo", "UTC"])
    flags = {f: rng.random(n) < p for f, p in zip(FLAGS, (0.3, 0.15, 0.4, 0.05, 0.1, 0.08, 0.35, 0.15, 0.1, 0.25),
                                                  strict=True)}
    warfarin = rng.random(n) < 0.05
    counts = rng.poisson(events_per_patient, n)
    rows = np.repeat(np.arange(n, dtype=np.int32), counts)
    m = len(rows)
    types = rng.choice(np.array([0, 1, 2, 3, 4], dtype=np.int8), m, p=[0.4, 0.25, 0.1, 0.15, 0.1])
    nudge = rng.integers(0, len(catalog), m).astype(np.int32)
    nudge[types == EventType.ACTIVITY] = -1
    category = np.where(nudge >= 0, catalog.category_code[np.maximum(nudge, 0)], 0).astype(np.int8)
    ts = (now_s - rng.uniform(0, 30 * 86_400, m)).astype(np.int64)
    minutes = np.where(types == EventType.ACTIVITY, rng.gamma(2.0, 15.0, m), 0.0).astype(np.float32)
    events = EventColumns(rows, types, category, nudge, ts, minutes)
    programme = rng.choice(np.array(["t2d_lifestyle", "hypertension", ""]), n)
    batch = PatientBatch(
        patient_idx=np.arange(first_idx, first_idx + n, dtype=np.int64),
        tz=rng.choice(zones, n),
        locale=np.full(n, "en-US"),
        programme=programme,
        enrolled_at_s=now_s - rng.uniform(0, 365 * 86_400, n),
        flags=flags,
        prefs=PatientPrefs.defaults(n),
        events=events,
    )
    return batch, flags, warfarin
