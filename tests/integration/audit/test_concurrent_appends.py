"""Several writers appending at once: the chain stays whole, with no gap and no duplicate."""

from __future__ import annotations

import random
import threading
from pathlib import Path

from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from nudge_engine.adapters.database import make_engine
from nudge_engine.adapters.orm.audit import AuditRecordRow
from nudge_engine.audit.trail import AuditEvent, AuditTrail
from tests.integration.audit.conftest import NOW
from tests.integration.audit.trail_kit import new_signing_key

WRITERS = 6
TRANSACTIONS = 15


def _writer(url: str, trail: AuditTrail, writer: int, committed: list[int], errors: list[BaseException]) -> None:
    rng = random.Random(writer)
    engine = make_engine(url)
    try:
        for n in range(TRANSACTIONS):
            size = rng.choice([1, 2, 50, 400])
            events = [
                AuditEvent(
                    event_type="built",
                    actor_role="system",
                    patient_ref=f"{rng.getrandbits(128):032x}",
                    details={"writer": writer, "transaction": n, "item": i},
                )
                for i in range(size)
            ]
            with Session(engine) as session:
                trail.append(session, events, now=NOW)
                if rng.random() < 0.2:
                    session.rollback()  # an aborted use case leaves nothing behind
                else:
                    session.commit()
                    committed.append(size)
    except BaseException as exc:  # surfaced by the test thread
        errors.append(exc)
    finally:
        engine.dispose()


def test_concurrent_writers_leave_one_dense_verifiable_chain(engine: Engine, tmp_path: Path) -> None:
    trail = AuditTrail(signing_key=new_signing_key(), checkpoint_dir=tmp_path)
    url = engine.url.render_as_string(hide_password=False)
    committed: list[int] = []
    errors: list[BaseException] = []
    threads = [threading.Thread(target=_writer, args=(url, trail, w, committed, errors)) for w in range(WRITERS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    with Session(engine) as session:
        seqs = session.scalars(select(AuditRecordRow.seq).order_by(AuditRecordRow.seq)).all()
        assert seqs == list(range(1, sum(committed) + 1))
        # each transaction's batch is contiguous: writers never interleave inside a batch
        owners = session.execute(select(AuditRecordRow.details).order_by(AuditRecordRow.seq)).scalars().all()
        batches = [(d["writer"], d["transaction"]) for d in owners]
        runs = [b for i, b in enumerate(batches) if i == 0 or batches[i - 1] != b]
        assert len(runs) == len(set(runs)) == len(committed)
        trail.checkpoint(session, now=NOW)
        session.commit()
        result = trail.verify(session)
    assert result.ok, result
    assert result.records_checked == sum(committed)
