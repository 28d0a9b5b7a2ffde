"""Appending to the hash-chained audit trail, inside the caller's transaction.

How the chain stays whole under concurrent writers
--------------------------------------------------
The chain head (last ``seq`` and ``hash``) lives in one row, ``audit_chain_head`` (id 1).
:meth:`AuditTrail.append` seals a whole batch of events with **one** statement on that row::

    UPDATE audit_chain_head SET seq = seq + :n WHERE id = 1 RETURNING seq, hash

The UPDATE takes the row's write lock (PostgreSQL: a row lock; SQLite: the database write lock,
which the engine takes when the transaction begins, so no stale read can precede it) and returns
the head as of that moment. The batch gets the ``n`` following sequence numbers, each record's
hash covers the previous one, the records are bulk-inserted and the head row is set to the last
hash ("sealed"), all in the caller's transaction. On PostgreSQL a single record (what an API
request appends) is reserved, hashed, inserted and sealed by **one** statement
(:data:`APPEND_ONE`): the database computes the record's hash with its built-in ``sha256`` over the
canonical bytes, which are spliced around the head's ``hash`` and ``seq + 1`` (the two values only
the locked head knows, see :func:`~nudge_engine.audit.canonical.record_splice`), so the head is
locked for that statement and the commit only. On SQLite a single record is inserted with its hash
computed from the head it is selected with (:data:`INSERT_ONE`, a Python SQL function over the same
splice), and the insert's trigger (migration 0008) seals the head: one statement, safe because the
transaction holds SQLite's write lock from its ``BEGIN``. The trigger moves the head only for a
record that follows it directly (the head's ``seq`` plus one, chained onto its hash); a batch, whose
sequence numbers are reserved first, is sealed by the engine. The lock is released at COMMIT or ROLLBACK:

- a rolled-back transaction leaves neither records nor a moved head, so no gap is possible;
- a committed record is always inside the chain: there is no "unsealed" state and no sealer
  that could fall behind;
- concurrent writers queue on the head row only between their ``append`` and their commit, once
  per transaction, not once per record. Use cases therefore append once, as their last step
  before ``commit()``: a build shard appends thousands of decisions with one lock. API requests go
  one step further with :meth:`AuditTrail.append_and_commit`: on PostgreSQL their records and the
  COMMIT reach the server in one message, so the head is locked for no client round trip at all.
  A request's own write that must succeed first (next-nudge's claim of its nudge, a
  :class:`CommitStep`) can travel at the head of that message.

Sequence numbers are dense (1, 2, 3 ...), so a deleted record is a visible gap, and the head row
tells where the trail must end. Signed checkpoints (:mod:`nudge_engine.audit.checkpoints`) pin the
head outside the database, which is what catches a truncated tail or a chain recomputed by
somebody who could rewrite the table and the head row. (On SQLite the trigger also moves the head
after a record inserted by hand that chains onto it correctly. Forging such a record takes the
canonical record bytes, the head's hash and a correct SHA-256; whoever can do that can as well set
the head row, which the head check alone never stopped.)
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, cast

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy import Connection, LargeBinary, Table, bindparam, insert, literal_column, text, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from nudge_engine.adapters.driver_statements import DriverStatement, run_on_cursor
from nudge_engine.adapters.orm.audit import AuditChainHeadRow, AuditRecordRow
from nudge_engine.audit.canonical import GENESIS_HASH, json_text, record_bytes, record_splice, timestamp
from nudge_engine.audit.checkpoints import Checkpoint, create_checkpoint
from nudge_engine.audit.model import ActorRole, AuditEvent, EventType
from nudge_engine.audit.verify import VerifyResult, verify_trail
from nudge_engine.config import Settings
from nudge_engine.domain.errors import ConfigurationError

if TYPE_CHECKING:
    from nudge_engine.adapters.unit_of_work import UnitOfWork

__all__ = ["ActorRole", "AuditEvent", "AuditTrail", "EventType", "VerifyResult"]

HEAD_ID = 1
_records = cast(Table, AuditRecordRow.__table__)
_head = cast(Table, AuditChainHeadRow.__table__)

_IS_HEAD = _head.c.id == literal_column(str(HEAD_ID))  # no bound value: none to lose inside a CTE

# The statements of an append, built once (building and cache-keying a statement costs more than
# running it on SQLite). ``b_*`` names keep the bound parameters apart from the columns they set.
RESERVE = (
    update(_head)
    .where(_IS_HEAD)
    .values(seq=_head.c.seq + bindparam("b_count"))
    .returning(_head.c.seq, _head.c.hash)
)
SEAL = update(_head).where(_IS_HEAD).values(hash=bindparam("b_hash"), updated_at=bindparam("b_now"))
INSERT_RECORDS = insert(_records)
# PostgreSQL, one record (every API request): reserve, hash, insert and seal in one statement. ``old``
# locks the head (a writer that waited sees the head its predecessor committed), ``moved`` moves it on
# and returns the previous hash, and the record's hash is sha256(head || prev_hash || mid || seq ||
# tail) over the canonical bytes that ``record_splice`` cut around those two values. Returns no row
# only before the very first append (no head row yet).
_APPEND_ONE_SQL = """
WITH old AS (
    SELECT seq, hash FROM audit_chain_head WHERE id = 1 FOR UPDATE
), moved AS (
    UPDATE audit_chain_head AS h
    SET seq = old.seq + 1,
        hash = encode(sha256(:p_head || convert_to(old.hash, 'UTF8') || :p_mid
                             || convert_to(CAST(old.seq + 1 AS text), 'UTF8') || :p_tail), 'hex'),
        updated_at = :r_recorded_at
    FROM old
    WHERE h.id = 1
    RETURNING h.seq, h.hash, old.hash AS prev_hash
)
INSERT INTO audit_records (seq, recorded_at, event_type, actor_role, actor_id, patient_ref, nudge_id, decision,
                           rule_ids, ruleset_digest, details, prev_hash, hash)
SELECT moved.seq, :r_recorded_at, :r_event_type, :r_actor_role, :r_actor_id, :r_patient_ref, :r_nudge_id,
       :r_decision, CAST(:r_rule_ids AS json), :r_ruleset_digest, CAST(:r_details AS json), moved.prev_hash,
       moved.hash
FROM {rows}
RETURNING seq
"""
_SPLICE_PARAMS = (
    bindparam("p_head", type_=LargeBinary()), bindparam("p_mid", type_=LargeBinary()),
    bindparam("p_tail", type_=LargeBinary()), bindparam("r_recorded_at", type_=_records.c.recorded_at.type),
)
APPEND_ONE = text(_APPEND_ONE_SQL.format(rows="moved")).bindparams(*_SPLICE_PARAMS)
# The same, inserting a row whatever happens: without a head row its seq is null and the statement fails
# (the message it is sent in, see ``AuditTrail.append_and_commit``, then stops before its COMMIT).
APPEND_ONE_OR_FAIL_SQL = _APPEND_ONE_SQL.format(rows="(SELECT 1) AS one LEFT JOIN moved ON true")


# SQLite, one record: inserted with its hash (``audit_record_hash``, registered on the connection by
# ``_append_one_sqlite``) computed from the head it is selected with. The insert fires the trigger of
# migration 0008, which seals the head (its seq, hash and time become the record's) in the same
# statement. Inserts no row only before the very first append (no head row yet).
INSERT_ONE = text(
    """
INSERT INTO audit_records (seq, recorded_at, event_type, actor_role, actor_id, patient_ref, nudge_id, decision,
                           rule_ids, ruleset_digest, details, prev_hash, hash)
SELECT seq + 1, :r_recorded_at, :r_event_type, :r_actor_role, :r_actor_id, :r_patient_ref, :r_nudge_id, :r_decision,
       :r_rule_ids, :r_ruleset_digest, :r_details, hash, audit_record_hash(:p_head, hash, :p_mid, seq + 1, :p_tail)
FROM audit_chain_head WHERE id = 1
"""
).bindparams(
    bindparam("p_head", type_=LargeBinary()), bindparam("p_mid", type_=LargeBinary()),
    bindparam("p_tail", type_=LargeBinary()), bindparam("r_recorded_at", type_=_records.c.recorded_at.type),
)
HASH_FUNCTION = "audit_record_hash"
# Without the trigger (a database not upgraded) records would go in unsealed: checked once per connection.
SEAL_TRIGGER_PRESENT = "SELECT 1 FROM sqlite_master WHERE type = 'trigger' AND name = 'audit_records_seal_head'"
# run inside SQLite's write lock: compiled once, its values made before the lock (see ``append_and_commit``)
INSERT_ONE_SQLITE = DriverStatement(INSERT_ONE)


def spliced_hash(head: bytes, prev_hash: str, mid: bytes, seq: int, tail: bytes) -> str:
    """The record hash from :func:`~nudge_engine.audit.canonical.record_splice`'s parts (SQLite's SQL function)."""
    return hashlib.sha256(head + prev_hash.encode() + mid + str(int(seq)).encode() + tail).hexdigest()


def _reserve(connection: Connection, count: int, now: datetime) -> tuple[int, str]:
    """Lock the chain head and move it ``count`` places on; returns the previous (seq, hash)."""
    row = connection.execute(RESERVE, {"b_count": count}).first()
    if row is None:  # the very first append: create the head, racing other first writers safely
        dialect = connection.dialect.name
        genesis: dict[str, Any] = {"id": HEAD_ID, "seq": 0, "hash": GENESIS_HASH, "updated_at": now}
        if dialect == "postgresql":
            connection.execute(postgresql.insert(_head).values(genesis).on_conflict_do_nothing())
        elif dialect == "sqlite":
            connection.execute(sqlite.insert(_head).values(genesis).on_conflict_do_nothing())
        else:  # pragma: no cover - only SQLite and PostgreSQL are supported
            connection.execute(insert(_head).values(genesis))
        row = connection.execute(RESERVE, {"b_count": count}).one()
    new_seq, prev_hash = row
    return int(new_seq) - count, str(prev_hash)


class AuditTrail:
    """Appends records to the chain, signs checkpoints of its head, and verifies it.

    ``AuditTrail()`` can append; checkpoints and verification need the Ed25519 signing key and the
    checkpoint directory (``AuditTrail.from_settings``).
    """

    def __init__(self, *, signing_key: bytes | None = None, checkpoint_dir: Path | None = None) -> None:
        self._key = Ed25519PrivateKey.from_private_bytes(signing_key) if signing_key is not None else None
        self.checkpoint_dir = checkpoint_dir

    def _signing_key(self) -> Ed25519PrivateKey:
        if self._key is None:
            raise ConfigurationError("NUDGE_AUDIT_SIGNING_KEY is not set")
        return self._key

    def checkpoint(self, session: Session, *, now: datetime) -> Checkpoint | None:
        """Sign the committed chain head into a new file and a row (None while the trail is empty).

        Run it in its own unit of work and commit; the scheduler does so periodically and the
        build does so at the end of each cycle.
        """
        if self.checkpoint_dir is None:
            raise ConfigurationError("no audit checkpoint directory configured")
        return create_checkpoint(session, key=self._signing_key(), directory=self.checkpoint_dir, now=now)

    def verify(self, session: Session) -> VerifyResult:
        """Check chain, head and checkpoints; the result names the first bad record."""
        public = self._key.public_key() if self._key is not None else None
        return verify_trail(session, public_key=public, checkpoint_dir=self.checkpoint_dir)

    @classmethod
    def from_settings(cls, settings: Settings) -> AuditTrail:
        from nudge_engine.privacy.keys import signing_key_bytes

        return cls(signing_key=signing_key_bytes(settings), checkpoint_dir=settings.resolved_checkpoint_dir)

    def append_and_commit(
        self, uow: UnitOfWork, events: Sequence[AuditEvent], *, now: datetime, first: Sequence[CommitStep] = ()
    ) -> None:
        """Chain ``events`` as the use case's last step, then commit ``uow``: :meth:`append` and ``uow.commit()``.

        ``first``: writes that must succeed for anything to commit (a compare-and-set, say), run ahead of
        the records: :meth:`CommitStep.run` on the transaction's connection, or on PostgreSQL's one-message
        path a call of the step's session function inside that message. A step that fails (raises)
        commits nothing.

        On PostgreSQL, once this database connection has seen the chain head, the records and the
        COMMIT go to the server in **one** message (:func:`_committing_message`): the head's row lock,
        which every audited request queues on, is then held only while the server runs them. Sent
        apart, the lock was also held while this thread, back from the append, waited for the
        interpreter lock to send COMMIT (milliseconds behind the other request threads of a busy
        worker): what the waiting serves queued behind, most of the time. Nothing of the session
        is left to write after that COMMIT (pending ORM changes are flushed first). A failing record
        (no head row: :data:`APPEND_ONE_OR_FAIL_SQL`) stops the message before its COMMIT, so nothing is
        committed and the unit of work rolls back, as with :meth:`append` and ``commit()``.
        """
        session = uow.session
        one_sqlite: tuple[Any, ...] | None = None
        bound = session.get_bind().dialect
        if len(events) == 1 and bound.name == "sqlite":
            # the record's values are made before the transaction begins: SQLite's BEGIN takes the write lock
            one_sqlite = INSERT_ONE_SQLITE.values(bound, _one_params(events[0], recorded_at=timestamp(now), now=now))
        connection = session.connection()
        pooled = connection.connection
        postgres = connection.dialect.name == "postgresql"
        if postgres and pooled.info.get(_ONE_MESSAGE) and 0 < len(events) <= MAX_IN_ONE_MESSAGE:
            session.flush()
            from psycopg import ClientCursor

            cursor = ClientCursor(pooled.driver_connection)  # type: ignore[arg-type]
            message, creates = _committing_message(connection, cursor, events, now, first)
            _send(connection, cursor, message)
            for function in creates:
                pooled.info[function.name] = True  # created by the message, committed with the records
            uow.commit()  # the server's transaction has ended: this ends the session's (no statement sent)
            return
        for step in first:
            step.run(connection)
        if one_sqlite is not None:
            _append_one_sqlite(connection, one_sqlite, now)
        else:
            self.append(session, events, now=now)
        may_create = postgres and events and _ONE_MESSAGE not in pooled.info and _may_create_temp(connection)
        uow.commit()
        if postgres and events:
            # committed records: the head row exists. Without the right to create session functions
            # (TEMPORARY revoked), this connection keeps appending and committing apart.
            pooled.info[_ONE_MESSAGE] = pooled.info.get(_ONE_MESSAGE, False) or bool(may_create)

    def append(self, session: Session, events: Sequence[AuditEvent], *, now: datetime) -> None:
        """Chain ``events`` (in order) onto the trail within the caller's transaction; never commits.

        Three statements on the session's connection (reserve, insert, seal); for a single record one
        on PostgreSQL (:data:`APPEND_ONE`) and on SQLite (:data:`INSERT_ONE`, sealed by its trigger).
        """
        if not events:
            return
        connection = session.connection()
        recorded_at = timestamp(now)
        if len(events) == 1 and connection.dialect.name in ("postgresql", "sqlite"):
            _append_one(connection, events[0], recorded_at=recorded_at, now=now)
            return
        seq, prev = _reserve(connection, len(events), now)
        rows: list[dict[str, Any]] = []
        sha256 = hashlib.sha256
        for event in events:
            seq += 1
            rule_ids = json_text(list(event.rule_ids))
            details = json_text(dict(event.details))
            digest = sha256(
                record_bytes(
                    seq=seq,
                    recorded_at=recorded_at,
                    event_type=event.event_type,
                    actor_role=event.actor_role,
                    actor_id=event.actor_id,
                    patient_ref=event.patient_ref,
                    nudge_id=event.nudge_id,
                    decision=event.decision,
                    rule_ids_json=rule_ids,
                    ruleset_digest=event.ruleset_digest,
                    details_json=details,
                    prev_hash=prev,
                )
            ).hexdigest()
            rows.append(
                {
                    "seq": seq,
                    "recorded_at": now,
                    "event_type": event.event_type,
                    "actor_role": event.actor_role,
                    "actor_id": event.actor_id,
                    "patient_ref": event.patient_ref,
                    "nudge_id": event.nudge_id,
                    "decision": event.decision,
                    "rule_ids": rule_ids,  # canonical text, stored as is
                    "ruleset_digest": event.ruleset_digest,
                    "details": details,
                    "prev_hash": prev,
                    "hash": digest,
                }
            )
            prev = digest
        connection.execute(INSERT_RECORDS, rows)
        connection.execute(SEAL, {"b_hash": prev, "b_now": now})


def _one_params(event: AuditEvent, *, recorded_at: str, now: datetime) -> dict[str, Any]:
    """The bound values of :data:`APPEND_ONE` (and :data:`INSERT_ONE`) for ``event``."""
    rule_ids = json_text(list(event.rule_ids))
    details = json_text(dict(event.details))
    head, mid, tail = record_splice(
        recorded_at=recorded_at, event_type=event.event_type, actor_role=event.actor_role,
        actor_id=event.actor_id, patient_ref=event.patient_ref, nudge_id=event.nudge_id, decision=event.decision,
        rule_ids_json=rule_ids, ruleset_digest=event.ruleset_digest, details_json=details,
    )
    return {
        "p_head": head, "p_mid": mid, "p_tail": tail, "r_recorded_at": now, "r_event_type": event.event_type,
        "r_actor_role": event.actor_role, "r_actor_id": event.actor_id, "r_patient_ref": event.patient_ref,
        "r_nudge_id": event.nudge_id, "r_decision": event.decision, "r_rule_ids": rule_ids,
        "r_ruleset_digest": event.ruleset_digest, "r_details": details,
    }


def _append_one(connection: Connection, event: AuditEvent, *, recorded_at: str, now: datetime) -> None:
    """One record: on PostgreSQL reserved, hashed, inserted and sealed by :data:`APPEND_ONE`; on SQLite
    inserted by :data:`INSERT_ONE`, whose trigger seals the head."""
    params = _one_params(event, recorded_at=recorded_at, now=now)
    if connection.dialect.name == "sqlite":
        _append_one_sqlite(connection, INSERT_ONE_SQLITE.values(connection.dialect, params), now)
    elif connection.execute(APPEND_ONE, params).first() is None:  # no head yet: create it, then append
        _reserve(connection, 0, now)
        connection.execute(APPEND_ONE, params).one()


MAX_IN_ONE_MESSAGE = 16  # records an API request appends (a build shard's thousands go the bulk way)
# Per database connection: True once the chain head is known to exist and this session may create
# functions in ``pg_temp`` (the one-message path is open); False when it may not (TEMPORARY revoked).
_ONE_MESSAGE = "audit_one_message_path"


@dataclass(frozen=True)
class SessionFunction:
    """A PL/pgSQL function of one database session (``pg_temp``: no schema change, gone with the
    connection), created by the first committing message on a connection that calls it."""

    name: str
    create: str  # the CREATE FUNCTION statement

    def call(self, cursor: Any, args: Sequence[Any]) -> str:
        """``SELECT name (...)`` with ``args`` rendered as literals by ``cursor`` (psycopg's ``ClientCursor``)."""
        rendered: str = cursor.mogrify(f"SELECT {self.name} ({', '.join('%s' for _ in args)})", list(args))
        return rendered


class CommitStep(Protocol):
    """A write that must succeed for a request's records to commit (see :meth:`AuditTrail.append_and_commit`)."""

    @property
    def function(self) -> SessionFunction:
        """The session function that does the write and raises when it cannot (PostgreSQL's one message)."""
        ...

    def args(self) -> Sequence[Any]:
        """The function's arguments, in order."""
        ...

    def run(self, connection: Connection) -> None:
        """The same write as statements on the transaction's connection; raises when it cannot."""
        ...

# :data:`APPEND_ONE_OR_FAIL_SQL` in a PL/pgSQL function of the database session (``pg_temp``: no schema
# change, gone with the connection). PL/pgSQL plans its statement once per session and keeps the plan,
# so a message that calls it with literal values costs the server about what a prepared statement
# does. (Not a prepared statement: psycopg deallocates all of those on every rollback.)
SESSION_FUNCTION = "pg_temp.nudge_audit_append_one"
_FUNCTION_PARAMS = (
    ("p_head", "bytea"), ("p_mid", "bytea"), ("p_tail", "bytea"), ("r_recorded_at", "timestamptz"),
    ("r_event_type", "text"), ("r_actor_role", "text"), ("r_actor_id", "text"), ("r_patient_ref", "text"),
    ("r_nudge_id", "text"), ("r_decision", "text"), ("r_rule_ids", "text"), ("r_ruleset_digest", "text"),
    ("r_details", "text"),
)
_POSITION = {name: f"${i}" for i, (name, _) in enumerate(_FUNCTION_PARAMS, start=1)}
CREATE_SESSION_FUNCTION = (
    f"CREATE FUNCTION {SESSION_FUNCTION} ({', '.join(kind for _, kind in _FUNCTION_PARAMS)}) RETURNS void "
    "LANGUAGE plpgsql AS $function$\nBEGIN\n"
    + re.sub(r"(?<!:):([a-z_]+)", lambda m: _POSITION[m.group(1)],
             APPEND_ONE_OR_FAIL_SQL.replace("RETURNING seq", "").strip())
    + ";\nEND\n$function$"
)
TEMP_ALLOWED = "SELECT has_database_privilege(current_database(), 'TEMPORARY')"
APPEND_FUNCTION = SessionFunction(SESSION_FUNCTION, CREATE_SESSION_FUNCTION)


def _may_create_temp(connection: Connection) -> bool:
    """Whether this session may create the function in ``pg_temp`` (asked once per connection)."""
    return bool(connection.exec_driver_sql(TEMP_ALLOWED).scalar())


def _committing_message(
    connection: Connection, cursor: Any, events: Sequence[AuditEvent], now: datetime, first: Sequence[CommitStep] = ()
) -> tuple[str, list[SessionFunction]]:
    """``SELECT <step>(...); SELECT pg_temp.nudge_audit_append_one(...); ...; COMMIT``: each step of ``first``,
    one record per call, then the COMMIT; and the session functions the message also creates (those
    not yet created on this connection).

    Values are rendered as literals by ``cursor``, psycopg's ``ClientCursor`` (client-side binding, the
    driver's own quoting): a message without bound parameters goes by the simple query protocol,
    which allows several statements in one message, and stops at the first that fails. Each record
    chains onto the head its predecessor moved in this transaction. A function is created by the
    first message on a connection that calls it and commits with it.
    """
    pooled = connection.connection
    recorded_at = timestamp(now)
    creates: list[SessionFunction] = []
    for function in [*(step.function for step in first), APPEND_FUNCTION]:
        if not pooled.info.get(function.name) and function not in creates:
            creates.append(function)
    statements = [function.create for function in creates]
    statements += [step.function.call(cursor, step.args()) for step in first]
    for event in events:
        params = _one_params(event, recorded_at=recorded_at, now=now)
        statements.append(APPEND_FUNCTION.call(cursor, [params[name] for name, _ in _FUNCTION_PARAMS]))
    return ";\n".join([*statements, "COMMIT"]), creates


def _send(connection: Connection, cursor: Any, message: str) -> None:
    """Run the committing ``message`` on the driver's ``cursor``; a failure raises SQLAlchemy's ``DBAPIError``.

    Not through ``Connection.exec_driver_sql``: its execution context and result, built for an answer
    nobody reads, cost about as much of the request's interpreter time as sending the message. What
    SQLAlchemy would do on a failure is done by :func:`run_on_cursor`: the driver's error is wrapped
    (``.orig`` keeps the SQLSTATE callers look at), and a connection found dead is invalidated.
    """
    try:
        run_on_cursor(connection, cursor, message)
    finally:
        cursor.close()


def _append_one_sqlite(connection: Connection, values: tuple[Any, ...], now: datetime) -> None:
    """:data:`INSERT_ONE` on the driver's ``values`` (:data:`INSERT_ONE_SQLITE`), sealed by the trigger it fires
    (migration 0008)."""
    pooled = connection.connection
    if HASH_FUNCTION not in pooled.info:  # once per database connection (re-registering expires its statements)
        if connection.exec_driver_sql(SEAL_TRIGGER_PRESENT).first() is None:  # a schema behind migration 0008
            raise ConfigurationError(
                "the database schema is behind this version (no audit seal trigger): run 'nudge-engine db upgrade'"
            )
        pooled.driver_connection.create_function(HASH_FUNCTION, 5, spliced_hash, deterministic=True)  # type: ignore[union-attr]
        pooled.info[HASH_FUNCTION] = True
    if INSERT_ONE_SQLITE.execute_values(connection, values).rowcount == 1:
        return
    _reserve(connection, 0, now)  # no head yet: create it, then append
    if INSERT_ONE_SQLITE.execute_values(connection, values).rowcount != 1:
        raise RuntimeError("the audit record was not appended: the chain head row is missing")
