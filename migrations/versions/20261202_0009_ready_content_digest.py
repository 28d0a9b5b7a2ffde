"""Ready nudges record the nudge content their decision read (``content_digest``)

A queued nudge was decided on the catalog's content of that nudge at build time (category,
intensity, duration, tags). When the catalog changes that content, the serve must decide it
again before showing it, as it does after a context or rule-set change. Rows queued before this
revision have no digest and are re-checked at their serve.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-02 07:20:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("ready_nudges") as batch:
        batch.add_column(sa.Column("content_digest", sa.String(length=16), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("ready_nudges") as batch:
        batch.drop_column("content_digest")
