"""Small hand-made batches for the burden and candidate tests."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np

from nudge_engine.personalization.batch import PatientBatch, PatientPrefs
from nudge_engine.personalization.candidates import REASONS, CandidateSet, DropReason, candidates
from nudge_engine.personalization.catalog import Catalog, load_catalog
from nudge_engine.personalization.events import EventColumns
from nudge_engine.personalization.features import compute_features
from nudge_engine.personalization.segment_spec import load_segment_spec
from nudge_engine.personalization.segments import SegmentModel
from tests.unit.personalization.fakes import FLAGS

DATA = Path(__file__).resolve().parents[3] / "nudge_engine" / "data"
CATALOG = load_catalog(DATA / "catalog.yaml")
SEGMENTS = SegmentModel(load_segment_spec(DATA / "segments.yaml"))


def one_patient(
    *,
    tz: str = "UTC",
    deliveries: list[tuple[datetime, str]] = (),  # type: ignore[assignment]
    programme: str = "",
    flags: dict[str, bool] | None = None,
    enrolled: datetime | None = None,
    **prefs: Any,
) -> PatientBatch:
    base = PatientPrefs.defaults(1)
    values = {k: np.array([v]) for k, v in prefs.items() if k != "opted_out_categories"}
    if "opted_out_categories" in prefs:
        values["opted_out_categories"] = np.array([prefs["opted_out_categories"]])
    events = EventColumns.from_records(
        patient_row=[0] * len(deliveries), types=["delivered"] * len(deliveries),
        nudge_ids=[n for _, n in deliveries], ts=[d.timestamp() for d, _ in deliveries], minutes=None,
        catalog=CATALOG,
    ) if deliveries else EventColumns.empty()
    all_flags = {f: np.array([bool((flags or {}).get(f, False))]) for f in FLAGS}
    return PatientBatch(
        patient_idx=np.array([7]), tz=np.array([tz]), locale=np.array(["en-US"]), programme=np.array([programme]),
        enrolled_at_s=np.array([(enrolled.timestamp() if enrolled else 0.0)]), flags=all_flags,
        prefs=replace(base, **values), events=events,
    )


def plan_candidates(batch: PatientBatch, now: datetime, catalog: Catalog = CATALOG) -> CandidateSet:
    features = compute_features(
        batch.events, n_patients=len(batch), enrolled_at_s=batch.enrolled_at_s, now_s=now.timestamp(),
        settings=SEGMENTS.spec.features,
    )
    membership = SEGMENTS.assign(features, programme=batch.programme, flags=batch.flags)
    return candidates(batch, catalog, membership, SEGMENTS.ids, now=now)


def reason(cand: CandidateSet, nudge_id: str, row: int = 0) -> DropReason | None:
    code = int(cand.reason[row, CATALOG.index[nudge_id]])
    return None if code < 0 else REASONS[code]
