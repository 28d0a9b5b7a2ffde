"""clinical packs: each patient's clinical rows per origin, packed for columnar reading

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-30 19:20:00

Existing rows are packed here (``backfill_packs``), so the columnar reader never sees a patient
whose rows have no pack.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.orm import Session

revision: str = '0005'
down_revision: str | None = '0004'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('clinical_packs',
    sa.Column('patient_id', sa.String(length=32), nullable=False),
    sa.Column('origin', sa.String(length=16), nullable=False),
    sa.Column('format', sa.Integer(), nullable=False),
    sa.Column('term_count', sa.Integer(), nullable=False),
    sa.Column('terms', sa.LargeBinary(), nullable=False),
    sa.Column('records', sa.LargeBinary(), nullable=False),
    sa.ForeignKeyConstraint(['patient_id'], ['patients.id'], name=op.f('fk_clinical_packs_patient_id_patients'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('patient_id', 'origin', name=op.f('pk_clinical_packs'))
    )
    from nudge_engine.adapters.clinical_packs import backfill_packs

    backfill_packs(Session(bind=op.get_bind()))


def downgrade() -> None:
    op.drop_table('clinical_packs')
