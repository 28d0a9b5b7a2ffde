"""PostgreSQL guard: the audit tables accept INSERT only.

The statements below are frozen into the Alembic migration ``0002`` (``op.execute`` each, in
order; the downgrade runs :data:`DROP_AUDIT_APPEND_ONLY`). UPDATE, DELETE and TRUNCATE on ``audit_records`` and
``audit_checkpoints`` raise ``insufficient_privilege``. The chain head (``audit_chain_head``) is
updated by every append and is not guarded; it is cross-checked by verification instead.

The trigger is a seat belt, not the security model: somebody with DDL rights can disable it, and
the hash chain and signed checkpoints are what catch them.
"""

from __future__ import annotations

from sqlalchemy import Connection, text

GUARDED_TABLES = ("audit_records", "audit_checkpoints")

_FUNCTION = """
CREATE OR REPLACE FUNCTION audit_reject_change() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'audit table % is append-only: % rejected', TG_TABLE_NAME, TG_OP
        USING ERRCODE = 'insufficient_privilege';
END
$$
"""


def _triggers(table: str) -> tuple[str, ...]:
    return (
        f"DROP TRIGGER IF EXISTS {table}_append_only ON {table}",
        f"CREATE TRIGGER {table}_append_only BEFORE UPDATE OR DELETE ON {table} "
        "FOR EACH ROW EXECUTE FUNCTION audit_reject_change()",
        f"DROP TRIGGER IF EXISTS {table}_no_truncate ON {table}",
        f"CREATE TRIGGER {table}_no_truncate BEFORE TRUNCATE ON {table} "
        "FOR EACH STATEMENT EXECUTE FUNCTION audit_reject_change()",
    )


AUDIT_APPEND_ONLY: tuple[str, ...] = (_FUNCTION.strip(), *(s for t in GUARDED_TABLES for s in _triggers(t)))
"""Statements that install the guard (idempotent)."""

DROP_AUDIT_APPEND_ONLY: tuple[str, ...] = (
    *(f"DROP TRIGGER IF EXISTS {t}_{kind} ON {t}" for t in GUARDED_TABLES for kind in ("append_only", "no_truncate")),
    "DROP FUNCTION IF EXISTS audit_reject_change()",
)
"""Statements that remove it (downgrade)."""

AUDIT_APPEND_ONLY_SQL = ";\n".join(AUDIT_APPEND_ONLY) + ";\n"
DROP_AUDIT_APPEND_ONLY_SQL = ";\n".join(DROP_AUDIT_APPEND_ONLY) + ";\n"


def disable_append_only(connection: Connection) -> None:
    """What an attacker with DDL rights would do first (used by the tamper tests)."""
    for table in GUARDED_TABLES:
        connection.execute(text(f"ALTER TABLE {table} DISABLE TRIGGER USER"))
