"""Signed checkpoints: Ed25519 statements of the chain head, kept in the database and in files.

A checkpoint signs the canonical bytes of ``(head_seq, head_hash, record_count, created_at)``
(:func:`~nudge_engine.audit.canonical.checkpoint_statement`). It is written twice:

- as a new file ``<head_seq>-<created_at>.json`` in ``settings.resolved_checkpoint_dir``, created
  with ``O_CREAT | O_EXCL`` and mode 0444: the application never opens an existing checkpoint file
  for writing, so files only accumulate (ship the directory to WORM storage for full effect);
- as a row of ``audit_checkpoints`` (append-only, like the records).

The file is written first: a crash between the two leaves a file without a row, which is harmless,
because verification checks every checkpoint it finds, from either place, on its own. Before
signing, the records added since the previous checkpoint are verified, so the engine never signs a
chain that is already broken.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from sqlalchemy import insert, select
from sqlalchemy.orm import Session

from nudge_engine.adapters.orm.audit import AuditChainHeadRow, AuditCheckpointRow
from nudge_engine.audit.canonical import checkpoint_statement, timestamp
from nudge_engine.domain.errors import IntegrityError


def public_key_hex(key: Ed25519PublicKey) -> str:
    return key.public_bytes(Encoding.Raw, PublicFormat.Raw).hex()


@dataclass(frozen=True, slots=True)
class Checkpoint:
    """One signed statement of the chain head, from the database or from a file (``source``)."""

    head_seq: int
    head_hash: str
    record_count: int
    created_at: str
    public_key: str
    signature: str
    source: str = ""

    def statement(self) -> bytes:
        return checkpoint_statement(
            head_seq=self.head_seq,
            head_hash=self.head_hash,
            record_count=self.record_count,
            created_at=self.created_at,
        )

    def is_signed_by(self, key: Ed25519PublicKey) -> bool:
        try:
            key.verify(bytes.fromhex(self.signature), self.statement())
        except (InvalidSignature, ValueError):
            return False
        return True

    def document(self) -> dict[str, Any]:
        doc = asdict(self)
        doc.pop("source")
        return doc


def sign_checkpoint(
    key: Ed25519PrivateKey, *, head_seq: int, head_hash: str, record_count: int, created_at: datetime
) -> Checkpoint:
    when = timestamp(created_at)
    statement = checkpoint_statement(head_seq=head_seq, head_hash=head_hash, record_count=record_count, created_at=when)
    return Checkpoint(
        head_seq=head_seq,
        head_hash=head_hash,
        record_count=record_count,
        created_at=when,
        public_key=public_key_hex(key.public_key()),
        signature=key.sign(statement).hex(),
    )


def write_checkpoint_file(directory: Path, checkpoint: Checkpoint) -> Path:
    """A new read-only file for ``checkpoint``; never overwrites (O_EXCL)."""
    directory.mkdir(parents=True, exist_ok=True)
    stamp = checkpoint.created_at.replace(":", "").replace("-", "").replace("+0000", "Z")
    path = directory / f"{checkpoint.head_seq:012d}-{stamp}.json"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o444)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        json.dump(checkpoint.document(), fh, sort_keys=True)
        fh.write("\n")
        fh.flush()
        os.fsync(fh.fileno())
    return path


def load_checkpoints(session: Session, directory: Path | None) -> tuple[list[Checkpoint], list[str]]:
    """Every checkpoint in the database and in ``directory``, and the problems met reading them."""
    found = [
        Checkpoint(
            head_seq=row.head_seq,
            head_hash=row.head_hash,
            record_count=row.record_count,
            created_at=timestamp(row.created_at),
            public_key=row.public_key,
            signature=row.signature,
            source=f"database checkpoint {row.id}",
        )
        for row in session.scalars(select(AuditCheckpointRow).order_by(AuditCheckpointRow.id))
    ]
    problems: list[str] = []
    if directory is not None and directory.is_dir():
        for path in sorted(directory.glob("*.json")):
            try:
                doc = json.loads(path.read_text(encoding="utf-8"))
                found.append(
                    Checkpoint(
                        head_seq=int(doc["head_seq"]),
                        head_hash=str(doc["head_hash"]),
                        record_count=int(doc["record_count"]),
                        created_at=str(doc["created_at"]),
                        public_key=str(doc["public_key"]),
                        signature=str(doc["signature"]),
                        source=f"checkpoint file {path.name}",
                    )
                )
            except (OSError, ValueError, KeyError, TypeError):
                problems.append(f"checkpoint file {path.name} is unreadable")
    return found, problems


def latest_checkpoint(session: Session) -> Checkpoint | None:
    row = session.scalars(select(AuditCheckpointRow).order_by(AuditCheckpointRow.head_seq.desc()).limit(1)).first()
    if row is None:
        return None
    return Checkpoint(
        head_seq=row.head_seq,
        head_hash=row.head_hash,
        record_count=row.record_count,
        created_at=timestamp(row.created_at),
        public_key=row.public_key,
        signature=row.signature,
        source=f"database checkpoint {row.id}",
    )


def create_checkpoint(session: Session, *, key: Ed25519PrivateKey, directory: Path, now: datetime) -> Checkpoint | None:
    """Sign the committed chain head (after checking the records since the last checkpoint)."""
    from nudge_engine.audit.verify import verify_segment

    head = session.get(AuditChainHeadRow, 1)
    if head is None or head.seq == 0:
        return None
    previous = latest_checkpoint(session)
    if previous is not None and not previous.is_signed_by(key.public_key()):
        raise IntegrityError(f"{previous.source}: signature does not verify; run 'audit verify'")
    start_seq, start_hash = (previous.head_seq, previous.head_hash) if previous else (0, None)
    problem = verify_segment(session, after_seq=start_seq, after_hash=start_hash, end_seq=head.seq)
    if problem is not None:
        seq, reason = problem
        raise IntegrityError(f"audit record {seq}: {reason}; checkpoint not written")
    if previous is not None and previous.head_seq == head.seq:
        return previous
    checkpoint = sign_checkpoint(key, head_seq=head.seq, head_hash=head.hash, record_count=head.seq, created_at=now)
    write_checkpoint_file(directory, checkpoint)
    session.execute(
        insert(AuditCheckpointRow).values(
            created_at=now,
            head_seq=checkpoint.head_seq,
            head_hash=checkpoint.head_hash,
            record_count=checkpoint.record_count,
            public_key=checkpoint.public_key,
            signature=checkpoint.signature,
        )
    )
    return checkpoint
