"""audit tables are append-only on PostgreSQL

A trigger rejects UPDATE, DELETE and TRUNCATE on audit_records and audit_checkpoints. SQLite has
no such guard: there the hash chain and the signed checkpoints are what catch tampering.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-30
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

INSTALL = (
    "CREATE OR REPLACE FUNCTION audit_reject_change() RETURNS trigger\nLANGUAGE plpgsql AS $$\nBEGIN\n    RAISE EXCEPTION 'audit table % is append-only: % rejected', TG_TABLE_NAME, TG_OP\n        USING ERRCODE = 'insufficient_privilege';\nEND\n$$",
    'DROP TRIGGER IF EXISTS audit_records_append_only ON audit_records',
    'CREATE TRIGGER audit_records_append_only BEFORE UPDATE OR DELETE ON audit_records FOR EACH ROW EXECUTE FUNCTION audit_reject_change()',
    'DROP TRIGGER IF EXISTS audit_records_no_truncate ON audit_records',
    'CREATE TRIGGER audit_records_no_truncate BEFORE TRUNCATE ON audit_records FOR EACH STATEMENT EXECUTE FUNCTION audit_reject_change()',
    'DROP TRIGGER IF EXISTS audit_checkpoints_append_only ON audit_checkpoints',
    'CREATE TRIGGER audit_checkpoints_append_only BEFORE UPDATE OR DELETE ON audit_checkpoints FOR EACH ROW EXECUTE FUNCTION audit_reject_change()',
    'DROP TRIGGER IF EXISTS audit_checkpoints_no_truncate ON audit_checkpoints',
    'CREATE TRIGGER audit_checkpoints_no_truncate BEFORE TRUNCATE ON audit_checkpoints FOR EACH STATEMENT EXECUTE FUNCTION audit_reject_change()',
)

REMOVE = (
    'DROP TRIGGER IF EXISTS audit_records_append_only ON audit_records',
    'DROP TRIGGER IF EXISTS audit_records_no_truncate ON audit_records',
    'DROP TRIGGER IF EXISTS audit_checkpoints_append_only ON audit_checkpoints',
    'DROP TRIGGER IF EXISTS audit_checkpoints_no_truncate ON audit_checkpoints',
    'DROP FUNCTION IF EXISTS audit_reject_change()',
)


def upgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        for statement in INSTALL:
            op.execute(statement)


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        for statement in REMOVE:
            op.execute(statement)
