"""Randomised tampering of a 10,000-record trail, by raw SQL: every kind is detected, clean trails pass.

Each trial tampers inside one transaction, verifies in that same transaction, then rolls back, so
all trials share one trail. On PostgreSQL the attacker first disables the append-only trigger, as
somebody with DDL rights would.
"""

from __future__ import annotations

import random
import shutil
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from sqlalchemy import Engine, text
from sqlalchemy.orm import Session

from nudge_engine.adapters.database import make_engine
from nudge_engine.audit.trail import AuditTrail, VerifyResult
from tests.integration.audit.trail_kit import (
    Attacker,
    build_trail,
    edited_value,
    forge_checkpoint_file,
    new_signing_key,
)

RECORDS = 10_000
COLUMNS = [
    "event_type", "actor_role", "actor_id", "patient_ref", "nudge_id", "decision", "rule_ids",
    "ruleset_digest", "details", "hash", "prev_hash", "recorded_at",
]  # fmt: skip


@dataclass
class TrailUnderTest:
    engine: Engine
    trail: AuditTrail
    checkpoints: list[int]
    directory: Path
    trials: int

    def attempt(self, tamper: Callable[[Attacker], None]) -> VerifyResult:
        with Session(self.engine) as session:
            tamper(Attacker(session))
            result = self.trail.verify(session)
            session.rollback()
        return result


@pytest.fixture(scope="module", params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def trail_under_test(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[TrailUnderTest]:
    base = tmp_path_factory.mktemp("tamper")
    if request.param == "sqlite":
        target = base / "nudge.db"
        shutil.copyfile(request.getfixturevalue("sqlite_template"), target)
        url, drop = f"sqlite:///{target}", None
    else:
        server = request.getfixturevalue("postgres_server")
        template = request.getfixturevalue("postgres_template")
        name = f"tamper_{uuid.uuid4().hex[:10]}"
        admin = make_engine(server.admin_url)
        with admin.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.execute(text(f'CREATE DATABASE "{name}" TEMPLATE "{template}"'))
        admin.dispose()
        url, drop = server.url(name), name
    engine = make_engine(url)
    trail = AuditTrail(signing_key=new_signing_key(), checkpoint_dir=base / "checkpoints")
    checkpoints = build_trail(engine, trail, records=RECORDS, seed=7)
    yield TrailUnderTest(engine, trail, checkpoints, base / "checkpoints", 24 if request.param == "sqlite" else 8)
    engine.dispose()
    if drop:
        admin = make_engine(request.getfixturevalue("postgres_server").admin_url)
        with admin.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{drop}" WITH (FORCE)'))
        admin.dispose()


def test_the_clean_trail_verifies_with_every_checkpoint(trail_under_test: TrailUnderTest) -> None:
    result = trail_under_test.attempt(lambda attacker: None)
    assert result.ok, result
    assert result.records_checked == RECORDS
    assert result.checkpoints_checked == 2 * len(trail_under_test.checkpoints)  # database rows and files


def test_clean_trails_never_raise_a_false_alarm_after_further_appends(trail_under_test: TrailUnderTest) -> None:
    from tests.integration.audit.trail_kit import START, random_event

    rng = random.Random(11)
    with Session(trail_under_test.engine) as session:
        for _ in range(trail_under_test.trials):
            batch = [random_event(rng, [f"{rng.getrandbits(128):032x}"]) for _ in range(rng.randint(1, 300))]
            trail_under_test.trail.append(session, batch, now=START)
            result = trail_under_test.trail.verify(session)
            assert result.ok, result
        session.rollback()


def test_an_edited_field_is_detected_at_that_record(trail_under_test: TrailUnderTest) -> None:
    rng = random.Random(1)
    for trial in range(trail_under_test.trials * 2):
        seq, column = rng.randint(1, RECORDS), rng.choice(COLUMNS)

        def tamper(a: Attacker, seq: int = seq, column: str = column) -> None:
            if column == "recorded_at":
                a.shift_time(seq)
            else:
                a.set_column(seq, column, edited_value(rng, column, a.row(seq)))

        result = trail_under_test.attempt(tamper)
        assert not result.ok and result.first_bad_seq == seq, (trial, seq, column, result)


def test_a_deleted_record_is_detected_where_it_was(trail_under_test: TrailUnderTest) -> None:
    rng = random.Random(2)
    for trial in range(trail_under_test.trials):
        seq = rng.choice([rng.randint(1, RECORDS), 1, RECORDS])
        result = trail_under_test.attempt(lambda a, seq=seq: a.delete("seq = :k", k=seq))
        assert not result.ok and result.first_bad_seq == seq, (trial, seq, result)


def test_an_inserted_record_is_detected(trail_under_test: TrailUnderTest) -> None:
    rng = random.Random(3)
    for trial in range(trail_under_test.trials):
        seq = rng.randint(1, RECORDS - 1)
        appended = trial % 2 == 1

        def tamper(a: Attacker, seq: int = seq, appended: bool = appended) -> None:
            forged = a.row(rng.randint(1, RECORDS))
            if appended:  # a record added after the head, even with a correctly linked hash
                forged.update(seq=RECORDS + 1, prev_hash=a.row(RECORDS)["hash"])
                a.insert(forged)
                a.rehash_from(RECORDS + 1)
                a.set_head(RECORDS, a.row(RECORDS)["hash"])  # the head still says RECORDS
            else:  # squeezed in between seq and seq + 1
                a.renumber_after(seq, 1)
                forged.update(seq=seq + 1, prev_hash=a.row(seq)["hash"])
                a.insert(forged)

        result = trail_under_test.attempt(tamper)
        expected = {RECORDS + 1} if appended else {seq + 1, seq + 2}
        assert not result.ok and result.first_bad_seq in expected, (trial, seq, appended, result)


def test_swapped_records_are_detected_at_the_first_of_them(trail_under_test: TrailUnderTest) -> None:
    rng = random.Random(4)
    for trial in range(trail_under_test.trials):
        i, j = sorted(rng.sample(range(1, RECORDS + 1), 2))
        result = trail_under_test.attempt(lambda a, i=i, j=j: a.swap(i, j))
        assert not result.ok and result.first_bad_seq == i, (trial, i, j, result)


def test_a_truncated_tail_is_detected_through_the_signed_checkpoints(trail_under_test: TrailUnderTest) -> None:
    rng = random.Random(5)
    for trial in range(trail_under_test.trials):
        keep = rng.randint(1, RECORDS - 1)

        def tamper(a: Attacker, keep: int = keep) -> None:
            a.delete("seq > :k", k=keep)
            a.set_head(keep, a.row(keep)["hash"])  # a careful attacker fixes the head too

        result = trail_under_test.attempt(tamper)
        assert not result.ok and result.first_bad_seq == keep + 1, (trial, keep, result)
        assert result.reason is not None and "truncated" in result.reason


def test_a_rewritten_record_with_the_chain_recomputed_is_caught_by_the_checkpoint(
    trail_under_test: TrailUnderTest,
) -> None:
    rng = random.Random(6)
    pins = trail_under_test.checkpoints
    for trial in range(trail_under_test.trials):
        seq, column = rng.randint(1, RECORDS), rng.choice(["decision", "nudge_id", "details", "patient_ref"])

        def tamper(a: Attacker, seq: int = seq, column: str = column) -> None:
            a.set_column(seq, column, edited_value(rng, column, a.row(seq)))
            a.rehash_from(seq)

        result = trail_under_test.attempt(tamper)
        covering = min(p for p in pins if p >= seq)
        previous = max([p for p in pins if p < seq], default=0)
        assert not result.ok and result.first_bad_seq == previous + 1, (trial, seq, result)
        assert result.reason is not None and f"..{covering} differ from the signed" in result.reason


def test_a_forged_checkpoint_is_detected(trail_under_test: TrailUnderTest) -> None:
    rng = random.Random(8)
    own_key = trail_under_test.trail._signing_key()
    from cryptography.hazmat.primitives.serialization import Encoding, NoEncryption, PrivateFormat

    real_key = own_key.private_bytes(Encoding.Raw, PrivateFormat.Raw, NoEncryption())
    for trial in range(trail_under_test.trials):
        variant = trial % 4
        seq = rng.randint(1, RECORDS)
        forged_file: list[Path] = []

        def tamper(a: Attacker, seq: int = seq, variant: int = variant) -> None:
            if variant == 0:  # signed with the attacker's own key, over the true head
                a.forge_checkpoint_row(
                    head_seq=seq, head_hash=a.row(seq)["hash"], key=new_signing_key(), break_signature=False
                )
            elif variant == 1:  # the engine's public key, but a signature that does not verify
                a.forge_checkpoint_row(head_seq=seq, head_hash=a.row(seq)["hash"], key=real_key, break_signature=True)
            elif variant == 2:  # a chain rewritten from seq on, vouched for by a forged checkpoint file
                a.set_column(seq, "decision", "deliver" if a.row(seq)["decision"] != "deliver" else "block")
                head = a.rehash_from(seq)
                forged_file.append(
                    forge_checkpoint_file(
                        trail_under_test.directory, head_seq=RECORDS, head_hash=head, key=new_signing_key()
                    )
                )
            else:  # a checkpoint row pinning a hash that is not the chain's, with a broken signature
                a.forge_checkpoint_row(head_seq=seq, head_hash="ab" * 32, key=real_key, break_signature=True)

        try:
            result = trail_under_test.attempt(tamper)
        finally:
            for path in forged_file:
                path.chmod(0o600)
                path.unlink()
        assert not result.ok, (trial, variant, result)
        assert result.reason is not None and "signature does not verify" in result.reason, (trial, variant, result)
