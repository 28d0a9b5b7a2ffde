"""SQLite: an audit record that chains onto the head seals it as it is inserted

A trigger after each insert into ``audit_records`` moves ``audit_chain_head`` to the new record
(sequence number, hash, time) when the record follows the head directly: its ``seq`` is the head's
plus one and its ``prev_hash`` is the head's hash. A single record (every API request) is then
inserted and sealed by one statement, where an UPDATE of the head followed it, inside the database's
one write lock. Records appended in a batch (the head reserved ahead of them, then sealed by the
engine) do not follow the head as they go in, so the trigger leaves them alone. PostgreSQL is
unchanged: there one statement already reserves, inserts and seals a record.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-01 08:45:00
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TRIGGER = "audit_records_seal_head"
CREATE = f"""
CREATE TRIGGER {TRIGGER} AFTER INSERT ON audit_records
BEGIN
    UPDATE audit_chain_head SET seq = NEW.seq, hash = NEW.hash, updated_at = NEW.recorded_at
    WHERE id = 1 AND seq = NEW.seq - 1 AND hash = NEW.prev_hash;
END
"""


def upgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        op.execute(f"DROP TRIGGER IF EXISTS {TRIGGER}")
        op.execute(CREATE)


def downgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        op.execute(f"DROP TRIGGER IF EXISTS {TRIGGER}")
