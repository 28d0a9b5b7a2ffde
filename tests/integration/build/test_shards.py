"""Build shards: each claimed by one worker at a time; a worker that dies leaves its shard to the next."""

from __future__ import annotations

import socket
import subprocess
import sys
from datetime import UTC, datetime, timedelta

from sqlalchemy import Engine, select, update
from sqlalchemy.orm import Session

from nudge_engine.adapters.orm import BuildShardRow
from nudge_engine.adapters.shards import (
    ShardClaim,
    claim_shard,
    complete_reserved_shard,
    finish_cycle_if_done,
    finish_shard,
    lease_holder,
    reserve_shard,
    start_cycle,
)

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


def _dead_pid() -> int:
    """The pid of a process that has exited (and been reaped)."""
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def _reserve(engine: Engine, cycle_id: str, holder: str, now: datetime = NOW) -> ShardClaim | None:
    with Session(engine) as session:
        claim = reserve_shard(session, cycle_id=cycle_id, holder=holder, now=now, lease=timedelta(minutes=10))
        session.commit()
    return claim


def _complete(engine: Engine, claim: ShardClaim, holder: str) -> bool:
    with Session(engine) as session:
        done = complete_reserved_shard(session, claim, holder=holder, now=NOW)
        session.commit()
    return done


def test_a_reservation_held_by_a_living_worker_is_never_taken_and_only_its_holder_completes_it(
    engine: Engine,
) -> None:
    cycle_id = _cycle(engine, 2)
    mine, other = lease_holder(), lease_holder()
    first = _reserve(engine, cycle_id, mine)
    second = _reserve(engine, cycle_id, other)
    assert first is not None and second is not None and first.shard_no != second.shard_no
    assert _reserve(engine, cycle_id, lease_holder()) is None  # both held by this living process
    assert not _complete(engine, first, other)
    assert _complete(engine, first, mine)
    assert not _complete(engine, first, mine)  # done once


def test_a_reservation_whose_process_died_or_whose_lease_ran_out_is_taken_over(engine: Engine) -> None:
    cycle_id = _cycle(engine, 2)
    dead = f"{socket.gethostname()[:40]}:{_dead_pid()}:0000"
    for shard_no, holder, at in ((0, dead, NOW), (1, "elsewhere:1:0000", NOW - timedelta(minutes=11))):
        with Session(engine) as session:
            session.execute(update(BuildShardRow).where(BuildShardRow.shard_no == shard_no)
                            .values(status="claimed", claimed_by=holder, claimed_at=at))
            session.commit()
    successor = lease_holder()
    taken = [_reserve(engine, cycle_id, successor), _reserve(engine, cycle_id, successor)]
    assert [c.shard_no for c in taken if c is not None] == [0, 1]
    assert not _complete(engine, taken[0], dead)  # type: ignore[arg-type]  # the dead worker's write is refused
    assert all(_complete(engine, c, successor) for c in taken if c is not None)
