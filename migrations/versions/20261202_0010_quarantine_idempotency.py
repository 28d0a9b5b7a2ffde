"""A quarantined event keeps its Idempotency-Key: a retry gets the first answer, not a second intake row

``event_intake_issues`` gains ``idempotency_key`` and ``request`` (the request's fingerprint) and a
unique index on (patient, key), on which concurrent duplicates race as they do for stored events.

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-02 07:20:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("event_intake_issues") as batch:
        batch.add_column(sa.Column("idempotency_key", sa.String(length=128), nullable=True))
        batch.add_column(sa.Column("request", sa.String(length=64), nullable=True))
    op.create_index("ix_event_intake_issues_key", "event_intake_issues", ["patient_id", "idempotency_key"],
                    unique=True)


def downgrade() -> None:
    op.drop_index("ix_event_intake_issues_key", table_name="event_intake_issues")
    with op.batch_alter_table("event_intake_issues") as batch:
        batch.drop_column("request")
        batch.drop_column("idempotency_key")
