from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import rfc8785
from hypothesis import given, reject, settings
from hypothesis import strategies as st

from nudge_engine.audit.canonical import GENESIS_HASH, canonical, json_text, record_bytes, record_payload, timestamp
from nudge_engine.audit.model import ActorRole, AuditEvent, EventType
from nudge_engine.domain.errors import InvalidInput

codes = st.from_regex(r"\A[A-Za-z0-9_.:+/|#=<>-]{0,40}\Z")
keys = st.from_regex(r"\A[a-z][a-z0-9]{0,8}(_[a-z0-9]{1,6}){0,2}\Z").filter(lambda k: "name" not in k)
scalars = st.one_of(st.none(), st.booleans(), st.integers(-(2**53) + 1, 2**53 - 1), codes)
values = st.one_of(scalars, st.lists(scalars, max_size=4), st.dictionaries(keys, scalars, max_size=3))


@st.composite
def events(draw: st.DrawFn) -> AuditEvent:
    raw_details = draw(st.dictionaries(keys, values, max_size=5))
    try:
        return AuditEvent(
            event_type=draw(st.sampled_from(list(EventType))),
            actor_role=draw(st.sampled_from(list(ActorRole))),
            actor_id=draw(st.one_of(st.none(), st.from_regex(r"\A[A-Za-z0-9_.:-]{1,32}\Z"))),
            patient_ref=draw(st.one_of(st.none(), st.from_regex(r"\A[0-9a-f]{32}\Z"))),
            nudge_id=draw(st.one_of(st.none(), st.from_regex(r"\A[A-Za-z0-9_.:-]{1,64}\Z"))),
            decision=draw(st.one_of(st.none(), st.sampled_from(["deliver", "review", "block"]))),
            rule_ids=tuple(draw(st.lists(st.from_regex(r"\A[A-Z]{2,3}-[0-9]{2}\Z"), max_size=4))),
            ruleset_digest=draw(st.one_of(st.none(), st.from_regex(r"\Asha256:[0-9a-f]{64}\Z"))),
            details=raw_details,
        )
    except InvalidInput:  # a generated key that happens to name an identifier: draw again
        reject()


@settings(max_examples=400, deadline=None)
@given(event=events(), seq=st.integers(1, 2**53 - 1))
def test_the_fast_canonical_forms_are_byte_identical_to_rfc8785(event: AuditEvent, seq: int) -> None:
    payload = record_payload(
        seq=seq,
        recorded_at=timestamp(datetime(2026, 3, 1, 12, 0, tzinfo=UTC)),
        event_type=event.event_type,
        actor_role=event.actor_role,
        actor_id=event.actor_id,
        patient_ref=event.patient_ref,
        nudge_id=event.nudge_id,
        decision=event.decision,
        rule_ids=event.rule_ids,
        ruleset_digest=event.ruleset_digest,
        details=event.details,
        prev_hash=GENESIS_HASH,
    )
    assert canonical(payload) == rfc8785.dumps(payload)
    spliced = record_bytes(
        seq=seq,
        recorded_at=payload["recorded_at"],
        event_type=event.event_type,
        actor_role=event.actor_role,
        actor_id=event.actor_id,
        patient_ref=event.patient_ref,
        nudge_id=event.nudge_id,
        decision=event.decision,
        rule_ids_json=json_text(list(event.rule_ids)),
        ruleset_digest=event.ruleset_digest,
        details_json=json_text(dict(event.details)),
        prev_hash=GENESIS_HASH,
    )
    assert spliced == rfc8785.dumps(payload)


def test_record_times_are_written_in_one_utc_form_whatever_the_input_zone() -> None:
    berlin = timezone(timedelta(hours=1))
    assert timestamp(datetime(2026, 3, 1, 13, 0, tzinfo=berlin)) == "2026-03-01T12:00:00.000000+00:00"
    assert timestamp(datetime(2026, 3, 1, 12, 0, 0, 5, tzinfo=UTC)) == "2026-03-01T12:00:00.000005+00:00"
