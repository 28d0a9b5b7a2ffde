"""Hand-made patients, programmes and events for the agenda tests."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from nudge_engine.personalization.batch import PatientBatch, PatientPrefs
from nudge_engine.personalization.events import EventColumns
from nudge_engine.personalization.programmes import ProgrammeSet, load_programmes
from tests.unit.personalization.burden_support import CATALOG, DATA
from tests.unit.personalization.fakes import FLAGS

PROGRAMMES_DIR = DATA / "programmes"
PROGRAMMES = load_programmes(PROGRAMMES_DIR, CATALOG)
Event = tuple[datetime, str, str | None, float | None]  # (when, type, nudge id, minutes)


def events_of(per_patient: Sequence[Sequence[Event]]) -> EventColumns:
    rows = [i for i, evs in enumerate(per_patient) for _ in evs]
    flat = [e for evs in per_patient for e in evs]
    if not flat:
        return EventColumns.empty()
    return EventColumns.from_records(
        patient_row=rows, types=[e[1] for e in flat], nudge_ids=[e[2] for e in flat],
        ts=[e[0].timestamp() for e in flat], minutes=[e[3] for e in flat], catalog=CATALOG,
    )


def patients(
    programmes: Sequence[str], *, enrolled: datetime, events: Sequence[Sequence[Event]] | None = None
) -> PatientBatch:
    """Patients alike in everything (flags, history, time zone) but their programme."""
    n = len(programmes)
    evs = events if events is not None else [[] for _ in range(n)]
    return PatientBatch(
        patient_idx=np.arange(n, dtype=np.int64), tz=np.full(n, "UTC"), locale=np.full(n, "en-US"),
        programme=np.array(programmes, dtype=np.str_), enrolled_at_s=np.full(n, enrolled.timestamp()),
        flags={f: np.zeros(n, dtype=bool) for f in FLAGS}, prefs=PatientPrefs.defaults(n), events=events_of(evs),
    )


def twin_programmes(tmp: Path, weights: dict[str, dict[str, float]]) -> ProgrammeSet:
    """Copies of the t2d programme that differ only in id and weights (one file per id)."""
    doc: dict[str, Any] = yaml.safe_load((PROGRAMMES_DIR / "t2d_lifestyle.yaml").read_text())
    for pid, w in weights.items():
        (tmp / f"{pid}.yaml").write_text(yaml.safe_dump({**doc, "id": pid, "weights": w}))
    # The catalog restricts a few nudges to t2d_lifestyle: keep the twins to the unrestricted ones.
    for pid in weights:
        path = tmp / f"{pid}.yaml"
        d = yaml.safe_load(path.read_text())
        for b in d["behaviours"]:
            b["nudges"] = [n for n in b["nudges"] if CATALOG.entries[CATALOG.index[n]].programme is None]
        path.write_text(yaml.safe_dump(d))
    return load_programmes(tmp, CATALOG)


def days(n: float) -> timedelta:
    return timedelta(days=n)
