"""What a build reads of a shard, on both databases: each patient's events inside the planning windows (no more, no
less) and their burden preferences."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy import Engine, insert
from sqlalchemy.orm import Session

import nudge_engine
from nudge_engine.adapters.bulk import IN_LIST
from nudge_engine.adapters.orm import PatientEventRow, PatientPreferenceRow, PatientRow, new_id
from nudge_engine.adapters.shards import ShardClaim
from nudge_engine.personalization.catalog import CATEGORIES, load_catalog
from nudge_engine.personalization.events import EVENT_CODE
from nudge_engine.services.build.loading import load_shard

AS_OF = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)
WINDOWS = (timedelta(days=28), timedelta(days=90))  # every type; deliveries
CATALOG = load_catalog(Path(nudge_engine.__file__).parent / "data" / "catalog.yaml")


def _event(pid: str, kind: str, at: datetime, *, nudge: str | None = None, props: dict[str, object] | None = None
           ) -> dict[str, object]:
    return {"id": new_id(), "patient_id": pid, "type": kind, "nudge_id": nudge, "occurred_at": at, "received_at": at,
            "properties": props or {}, "response": {}}


def test_a_shard_reads_the_events_of_its_windows_across_id_chunks(engine: Engine) -> None:
    nudge = CATALOG.entries[0].id
    # more patients than one IN list takes, in id order as the shard reads them: the last one is in a chunk of its own
    ids = sorted(new_id() for _ in range(IN_LIST + 1))
    first, last = ids[0], ids[-1]
    kept = [
        _event(first, "activity", AS_OF - timedelta(days=1), props={"minutes": 30}),
        _event(first, "activity", AS_OF - timedelta(hours=2), props={"minutes": "thirty"}),  # not a number: 0
        _event(first, "opened", AS_OF - timedelta(days=27), nudge=nudge),
        _event(first, "delivered", AS_OF - timedelta(days=60), nudge=nudge),  # a delivery: the longer window
        _event(first, "delivered", AS_OF, nudge=nudge),  # the window's end is inclusive
        _event(last, "completed", AS_OF - timedelta(minutes=5), nudge=nudge),
    ]
    dropped = [
        _event(first, "opened", AS_OF - timedelta(days=29), nudge=nudge),  # before the window of every type
        _event(first, "delivered", AS_OF - timedelta(days=91), nudge=nudge),  # before the deliveries' window
        _event(last, "opened", AS_OF + timedelta(seconds=1), nudge=nudge),  # after the build's moment
    ]
    with Session(engine) as session:
        session.execute(insert(PatientRow), [
            {"id": pid, "shard_key": 0, "created_at": AS_OF - timedelta(days=200), "timezone": "UTC"} for pid in ids
        ])
        session.execute(insert(PatientEventRow), kept + dropped)
        session.commit()
        loaded = load_shard(session, ShardClaim("cycle", 0, 1), as_of=AS_OF, catalog=CATALOG, windows=WINDOWS)

    assert loaded.patient_ids == ids
    events = loaded.batch.events
    got = sorted(zip(events.patient_row.tolist(), events.type_code.tolist(), events.nudge_idx.tolist(),
                     events.ts.tolist(), events.minutes.tolist(), strict=True))
    nudge_idx = int(CATALOG.indices([nudge])[0])
    expected = sorted(
        (ids.index(str(e["patient_id"])), int(EVENT_CODE[str(e["type"])]), nudge_idx if e["nudge_id"] else -1,
         int(e["occurred_at"].timestamp()), 30.0 if e["properties"] == {"minutes": 30} else 0.0)  # type: ignore[attr-defined]
        for e in kept
    )
    assert got == expected


def test_a_shard_reads_each_patients_preferences_and_defaults_the_rest(engine: Engine) -> None:
    ids = sorted(new_id() for _ in range(3))
    snoozed = AS_OF + timedelta(hours=5, microseconds=250)
    with Session(engine) as session:
        session.execute(insert(PatientRow), [
            {"id": pid, "shard_key": 0, "created_at": AS_OF - timedelta(days=200), "timezone": "UTC"} for pid in ids
        ])
        session.execute(insert(PatientPreferenceRow), [
            {"patient_id": ids[0], "quiet_start": "22:30", "quiet_end": "06:15", "snoozed_until": snoozed,
             "opted_out_categories": ["fasting", "no-such-category"], "opted_out_all": False, "max_per_day": 2,
             "max_per_week": None, "updated_at": AS_OF},
            {"patient_id": ids[1], "quiet_start": "00:00", "quiet_end": "00:00", "snoozed_until": None,
             "opted_out_categories": [], "opted_out_all": True, "max_per_day": None, "max_per_week": 5,
             "updated_at": AS_OF},
        ])  # ids[2] has never set any
        session.commit()
        loaded = load_shard(session, ShardClaim("cycle", 0, 1), as_of=AS_OF, catalog=CATALOG, windows=WINDOWS)
    prefs = loaded.batch.prefs

    assert prefs.quiet_start_min.tolist() == [22 * 60 + 30, 0, 21 * 60]
    assert prefs.quiet_end_min.tolist() == [6 * 60 + 15, 0, 8 * 60]
    assert prefs.snoozed_until_s.tolist() == [snoozed.timestamp(), float("-inf"), float("-inf")]
    assert prefs.opted_out_all.tolist() == [False, True, False]
    opted = [[str(CATEGORIES[j]) for j in row.nonzero()[0]] for row in prefs.opted_out_categories]
    assert opted == [["fasting"], [], []]  # a category the catalog does not know is left out
    assert prefs.max_per_day.tolist() == [2, -1, -1]
    assert prefs.max_per_week.tolist() == [-1, 5, -1]
