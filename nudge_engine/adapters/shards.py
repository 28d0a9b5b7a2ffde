"""Build cycles and their shards in the database: start or resume a cycle, claim and finish shards.

Patients are split by ``PatientRow.shard_key`` ranges. A worker claims one pending shard and
builds it **in the same transaction** that marks it done:

- PostgreSQL: ``SELECT ... FOR UPDATE SKIP LOCKED`` locks the shard row for that transaction, so
  workers on several machines take different shards and never wait on each other;
- SQLite: the claim is an ``UPDATE ... RETURNING`` as the transaction's first statement, which
  takes SQLite's single write lock at once (no stale snapshot can precede it).

A worker that dies mid-shard leaves nothing behind: its transaction rolls back and the shard is
pending again for the next run. Decisions are keyed by (cycle, patient) as a second guard.

SQLite file databases can also build shards *outside* the write lock, so several worker processes
compute at once (see ``BuildCycle``): :func:`reserve_shard` marks a shard claimed by a lease holder
(``host:pid:token``) in a short transaction of its own; the worker computes on a read snapshot and
then stores the shard with :func:`complete_reserved_shard`, a compare-and-set in the transaction
that writes the shard's decisions. A reservation whose process is gone (same host, pid no longer
alive) or older than the lease is taken over by the next worker; the one it was taken from then
finds its compare-and-set failing and stores nothing. Either way each shard is stored once.
"""

from __future__ import annotations

import os
import secrets
import socket
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import and_, func, insert, select, update
from sqlalchemy.orm import Session
from sqlalchemy.sql.elements import ColumnElement

from nudge_engine.adapters.orm import BuildCycleRow, BuildShardRow, new_id
from nudge_engine.adapters.orm.patients import SHARD_KEYS


@dataclass(frozen=True, slots=True)
class ShardClaim:
    cycle_id: str
    shard_no: int
    shard_count: int

    @property
    def key_range(self) -> tuple[int, int]:
        """Half-open range of ``PatientRow.shard_key`` values this shard covers."""
        lo = self.shard_no * SHARD_KEYS // self.shard_count
        hi = (self.shard_no + 1) * SHARD_KEYS // self.shard_count
        return lo, hi


def unfinished_cycle(session: Session) -> BuildCycleRow | None:
    """The newest cycle still running (a crashed or concurrent one), if any."""
    return session.scalars(
        select(BuildCycleRow).where(BuildCycleRow.status == "running").order_by(BuildCycleRow.started_at.desc())
    ).first()


def start_cycle(
    session: Session,
    *,
    now: datetime,
    as_of: datetime,
    ruleset_digest: str,
    catalog_digest: str,
    model_version: str | None,
    shard_count: int,
) -> str:
    cycle_id = new_id()
    session.execute(
        insert(BuildCycleRow).values(
            id=cycle_id, started_at=now, status="running", as_of=as_of, ruleset_digest=ruleset_digest,
            catalog_digest=catalog_digest, model_version=model_version, shard_count=shard_count, counts={},
        )
    )
    session.execute(
        insert(BuildShardRow),
        [{"cycle_id": cycle_id, "shard_no": i, "status": "pending"} for i in range(shard_count)],
    )
    return cycle_id


def claim_shard(session: Session, *, cycle_id: str, worker: str, now: datetime) -> ShardClaim | None:
    """Claim one pending shard for the caller's transaction, or None when none is left."""
    shard_count = session.scalar(select(BuildCycleRow.shard_count).where(BuildCycleRow.id == cycle_id))
    if shard_count is None:
        return None
    pending = and_(BuildShardRow.cycle_id == cycle_id, BuildShardRow.status == "pending")
    if session.get_bind().dialect.name == "postgresql":
        shard_no = session.scalar(
            select(BuildShardRow.shard_no).where(pending).order_by(BuildShardRow.shard_no)
            .limit(1).with_for_update(skip_locked=True)
        )
        if shard_no is not None:
            session.execute(
                update(BuildShardRow)
                .where(BuildShardRow.cycle_id == cycle_id, BuildShardRow.shard_no == shard_no)
                .values(status="claimed", claimed_by=worker, claimed_at=now)
            )
    else:
        first_pending = select(func.min(BuildShardRow.shard_no)).where(pending).scalar_subquery()
        shard_no = session.scalar(
            update(BuildShardRow)
            .where(pending, BuildShardRow.shard_no == first_pending)
            .values(status="claimed", claimed_by=worker, claimed_at=now)
            .returning(BuildShardRow.shard_no)
        )
    if shard_no is None:
        return None
    return ShardClaim(cycle_id, int(shard_no), shard_count)


def lease_holder() -> str:
    """This process's name on a reservation: host, pid and a random token (unique per call)."""
    return f"{socket.gethostname()[:40]}:{os.getpid()}:{secrets.token_hex(4)}"


def _holder_alive(holder: str | None) -> bool:
    """False when ``holder`` names a process on this host that no longer runs."""
    host, _, rest = (holder or "").partition(":")
    pid = rest.partition(":")[0]
    if host != socket.gethostname()[:40] or not pid.isdigit():
        return True  # another machine's (or an old-style) claim: only its lease can expire it
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return not _zombie(int(pid))


def _zombie(pid: int) -> bool:
    """A process that has exited but was not reaped yet (a container's init may never reap it)."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] == "Z"
    except (OSError, IndexError):
        return False


def reserve_shard(
    session: Session, *, cycle_id: str, holder: str, now: datetime, lease: timedelta = timedelta(minutes=10)
) -> ShardClaim | None:
    """Reserve a pending shard (or one whose holder is gone) for ``holder``; commit it at once.

    Used on SQLite files, where the build computes outside the write lock. Each update is a
    compare-and-set on what was read, so two workers never both get one shard.
    """
    shard_count = session.scalar(select(BuildCycleRow.shard_count).where(BuildCycleRow.id == cycle_id))
    if shard_count is None:
        return None
    open_shards = session.execute(
        select(BuildShardRow.shard_no, BuildShardRow.status, BuildShardRow.claimed_by,
               (BuildShardRow.claimed_at < now - lease).label("expired"))
        .where(BuildShardRow.cycle_id == cycle_id, BuildShardRow.status != "done")
        .order_by(BuildShardRow.shard_no)
    ).all()
    for shard in open_shards:
        if shard.status == "pending" or shard.expired or not _holder_alive(shard.claimed_by):
            taken = session.execute(  # compare-and-set, so it is safe on PostgreSQL too
                update(BuildShardRow)
                .where(BuildShardRow.cycle_id == cycle_id, BuildShardRow.shard_no == shard.shard_no,
                       BuildShardRow.status == shard.status,
                       BuildShardRow.claimed_by.is_not_distinct_from(shard.claimed_by))
                .values(status="claimed", claimed_by=holder, claimed_at=now)
                .returning(BuildShardRow.shard_no)
            ).first()
            if taken is not None:
                return ShardClaim(cycle_id, int(shard.shard_no), shard_count)
    return None


def _still_held(claim: ShardClaim, holder: str) -> tuple[ColumnElement[bool], ...]:
    """The shard of ``claim``, while ``holder``'s reservation of it stands."""
    return (BuildShardRow.cycle_id == claim.cycle_id, BuildShardRow.shard_no == claim.shard_no,
            BuildShardRow.status == "claimed", BuildShardRow.claimed_by == holder)


def complete_reserved_shard(session: Session, claim: ShardClaim, *, holder: str, now: datetime) -> bool:
    """Mark a reserved shard done if ``holder`` still holds it (in the transaction storing its work)."""
    done = session.execute(
        update(BuildShardRow).where(*_still_held(claim, holder)).values(status="done", finished_at=now)
        .returning(BuildShardRow.shard_no)
    ).first()
    return done is not None


def release_reserved_shard(session: Session, claim: ShardClaim, *, holder: str) -> None:
    """Give a reservation back (its worker failed): the shard is pending for the next worker."""
    session.execute(
        update(BuildShardRow).where(*_still_held(claim, holder)).values(status="pending", claimed_by=None,
                                                                        claimed_at=None)
    )


def finish_shard(session: Session, claim: ShardClaim, *, now: datetime) -> None:
    session.execute(
        update(BuildShardRow)
        .where(BuildShardRow.cycle_id == claim.cycle_id, BuildShardRow.shard_no == claim.shard_no)
        .values(status="done", finished_at=now)
    )


def finish_cycle_if_done(session: Session, *, cycle_id: str, now: datetime, counts: dict[str, int]) -> bool:
    """Mark the cycle finished when every shard is done; returns whether it is finished."""
    open_shards = session.scalar(
        select(func.count()).select_from(BuildShardRow)
        .where(BuildShardRow.cycle_id == cycle_id, BuildShardRow.status != "done")
    )
    if open_shards:
        return False
    session.execute(
        update(BuildCycleRow).where(BuildCycleRow.id == cycle_id, BuildCycleRow.status == "running")
        .values(status="finished", finished_at=now, counts=counts)
    )
    return True
