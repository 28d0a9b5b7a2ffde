"""patient events stored in (patient, time) order

SQLite: ``patient_events`` becomes a WITHOUT ROWID table keyed by (patient_id, occurred_at, id), so
a patient's events sit together on disk and a build reads them in one range; the separate
(patient_id, occurred_at) index is then the table itself. PostgreSQL: the same key replaces that
index. The event id stays unique.

Revision ID: 0007
Revises: 0005
Create Date: 2026-12-01 00:40:00
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = '0007'
down_revision: str | None = '0005'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _recreate() -> str:
    return "always" if op.get_bind().dialect.name == "sqlite" else "auto"


def upgrade() -> None:
    with op.batch_alter_table("patient_events", recreate=_recreate(),
                              table_kwargs={"sqlite_with_rowid": False}) as batch_op:
        batch_op.drop_index("ix_patient_events_patient_time")
        batch_op.drop_constraint("pk_patient_events", type_="primary")
        batch_op.create_primary_key("pk_patient_events", ["patient_id", "occurred_at", "id"])
        batch_op.create_unique_constraint("uq_patient_events_id", ["id"])


def downgrade() -> None:
    with op.batch_alter_table("patient_events", recreate=_recreate()) as batch_op:
        batch_op.drop_constraint("uq_patient_events_id", type_="unique")
        batch_op.drop_constraint("pk_patient_events", type_="primary")
        batch_op.create_primary_key("pk_patient_events", ["id"])
        batch_op.create_index("ix_patient_events_patient_time", ["patient_id", "occurred_at"], unique=False)
