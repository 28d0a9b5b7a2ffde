"""Build shards: each claimed by one worker at a time; a worker that dies leaves its shard pending."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from nudge_engine.adapters.orm import BuildShardRow
from nudge_engine.adapters.shards import claim_shard, finish_cycle_if_done, finish_shard, start_cycle

NOW = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)


def _cycle(engine: Engine, shards: int) -> str:
    with Session(engine) as session:
        cycle_id = start_cycle(session, now=NOW, as_of=NOW, ruleset_digest="sha256:x", catalog_digest="sha256:y",
                               model_version=None, shard_count=shards)
        session.commit()
    return cycle_id


def test_two_open_transactions_never_claim_the_same_shard(engine: Engine) -> None:
    cycle_id = _cycle(engine, 3)
    with Session(engine) as first:
        a = claim_shard(first, cycle_id=cycle_id, worker="w1", now=NOW)
        assert a is not None
        if engine.dialect.name == "postgresql":
            with Session(engine) as second:
                b = claim_shard(second, cycle_id=cycle_id, worker="w2", now=NOW)
                assert b is not None and b.shard_no != a.shard_no
                second.rollback()
        finish_shard(first, a, now=NOW)
        first.commit()
    with Session(engine) as session:
        statuses = {no: status for no, status in session.execute(select(BuildShardRow.shard_no, BuildShardRow.status))}
    assert statuses == {0: "done", 1: "pending", 2: "pending"}


def test_a_shard_whose_worker_rolled_back_is_pending_again(engine: Engine) -> None:
    cycle_id = _cycle(engine, 2)
    with Session(engine) as dying:
        claim = claim_shard(dying, cycle_id=cycle_id, worker="dies", now=NOW)
        assert claim is not None and claim.shard_no == 0
        dying.rollback()
    with Session(engine) as session:
        again = claim_shard(session, cycle_id=cycle_id, worker="next", now=NOW)
        assert again is not None and again.shard_no == 0
        session.rollback()


def test_the_cycle_finishes_only_when_every_shard_is_done_and_shard_ranges_cover_all_keys(engine: Engine) -> None:
    cycle_id = _cycle(engine, 3)
    ranges = []
    with Session(engine) as session:
        while (claim := claim_shard(session, cycle_id=cycle_id, worker="w", now=NOW)) is not None:
            assert not finish_cycle_if_done(session, cycle_id=cycle_id, now=NOW, counts={})
            ranges.append(claim.key_range)
            finish_shard(session, claim, now=NOW)
            session.commit()
        assert finish_cycle_if_done(session, cycle_id=cycle_id, now=NOW, counts={"patients": 0})
        session.commit()
    assert ranges == [(0, 21845), (21845, 43690), (43690, 65536)]
