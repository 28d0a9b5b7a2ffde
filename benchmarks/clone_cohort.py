"""Make a large benchmark database quickly: copies of a prepared cohort under fresh surrogate ids.

    .venv/bin/python benchmarks/clone_cohort.py SOURCE_DB TARGET_DB --copies 10

Importing a synthetic patient through the importer (identifier encryption, FHIR rows, packs, 8
weeks of events) runs at a few hundred patients per second here, so a 1,000,000-patient database
would take over an hour. This script instead copies every patient of an already imported cohort
``--copies`` times inside SQLite (``INSERT ... SELECT``): each copy gets a new random surrogate id
and the shard key of that id (as an import gives it, so a shard is a range of ids), new row ids
(the copy's number and the source row's number, so index pages fill in order), and keeps the
source patient's clinical rows, clinical pack, preferences and app events. Identifiers (the
vault) are not copied: the build never reads them. The result is a cohort with the source's
distributions, for throughput benchmarks only.
"""

from __future__ import annotations

import argparse
import secrets
import sqlite3
import time
from pathlib import Path

from nudge_engine.adapters.orm.patients import shard_key_of

# tables copied per patient; the 'id' column (when there is one) gets a fresh id
PATIENT_TABLES = ("patient_preferences", "conditions", "observations", "medications", "procedures", "clinical_facts",
                  "clinical_packs")
EVENTS = "patient_events"  # WITHOUT ROWID, in (patient, time) order: copied in that order


def _columns(db: sqlite3.Connection, table: str) -> list[str]:
    return [row[1] for row in db.execute(f"PRAGMA main.table_info({table})")]


def _copy(db: sqlite3.Connection, table: str, key: str, copy: int) -> None:
    columns = _columns(db, table)
    new_id = f"printf('%02x%030x', {copy}, t.rowid)"
    values = [("m.new" if c == key else new_id if c == "id" else "m.shard_key" if c == "shard_key"
               else f"t.{c}") for c in columns]
    db.execute(f"INSERT INTO main.{table} ({', '.join(columns)}) SELECT {', '.join(values)} "
               f"FROM src.{table} t JOIN temp.idmap m ON m.old = t.{key} AND m.copy = {copy}")


def _copy_events(db: sqlite3.Connection) -> None:
    """Every copy's events in one pass in key order, so the clustered table is written front to back.

    An event's new id is its copy's patient id prefix and the source id's tail: unique, and
    increasing with the key, so the id index fills in order too.
    """
    columns = _columns(db, EVENTS)
    values = [("m.new" if c == "patient_id" else "substr(m.new, 1, 16) || substr(t.id, 17)" if c == "id"
               else f"t.{c}") for c in columns]
    db.execute(f"INSERT INTO main.{EVENTS} ({', '.join(columns)}) SELECT {', '.join(values)} "
               f"FROM temp.idmap m JOIN src.{EVENTS} t ON t.patient_id = m.old ORDER BY m.new, t.occurred_at, t.id")


def _secondary_indexes(db: sqlite3.Connection, tables: tuple[str, ...]) -> list[str]:
    """CREATE statements of the named indexes (not those of primary keys and unique constraints)."""
    marks = ",".join("?" * len(tables))
    return [sql for (sql,) in db.execute(
        f"SELECT sql FROM main.sqlite_master WHERE type = 'index' AND sql IS NOT NULL AND tbl_name IN ({marks})",
        tables)]


def _id_map(db: sqlite3.Connection, copies: int) -> None:
    """temp.idmap: for every copy of every source patient a fresh random surrogate id and its shard key."""
    db.execute("DROP TABLE IF EXISTS temp.idmap")
    db.execute("CREATE TEMP TABLE idmap (new TEXT PRIMARY KEY, old TEXT NOT NULL, copy INTEGER NOT NULL, "
               "shard_key INTEGER NOT NULL) WITHOUT ROWID")
    sources = [old for (old,) in db.execute("SELECT id FROM src.patients WHERE erased_at IS NULL")]
    rows = []
    for k in range(1, copies + 1):
        for old in sources:
            new = secrets.token_hex(16)
            rows.append((new, old, k, shard_key_of(new)))
    db.executemany("INSERT INTO temp.idmap VALUES (?, ?, ?, ?)", rows)
    db.execute("CREATE INDEX temp.ix_idmap_copy_old ON idmap (copy, old)")


def clone(source: Path, target: Path, copies: int) -> None:
    db = sqlite3.connect(target, isolation_level=None)
    db.execute("PRAGMA cache_size=-4000000")  # 4 GB: some indexes are written in random key order
    # A cache being filled, not data to keep safe: no journal (a crash means preparing it again).
    db.execute("PRAGMA journal_mode=OFF")
    db.execute("PRAGMA synchronous=OFF")
    db.execute(f"ATTACH DATABASE 'file:{source}?mode=ro' AS src")
    # Rows arrive in the source's order, so an index on, say, event time would be written at random
    # places across millions of entries: drop the named indexes and build them once at the end.
    indexes = _secondary_indexes(db, ("patients", *PATIENT_TABLES, EVENTS))
    for sql in indexes:
        db.execute("DROP INDEX main." + sql.split()[2])
    _id_map(db, copies)
    for k in range(1, copies + 1):
        started = time.perf_counter()
        db.execute("BEGIN")
        _copy(db, "patients", "id", k)
        for table in PATIENT_TABLES:
            _copy(db, table, "patient_id", k)
        db.execute("COMMIT")
        print(f"  copy {k}/{copies} in {time.perf_counter() - started:.0f} s", flush=True)
    started = time.perf_counter()
    db.execute("BEGIN")
    _copy_events(db)
    db.execute("COMMIT")
    print(f"  app events of every copy in {time.perf_counter() - started:.0f} s", flush=True)
    started = time.perf_counter()
    for sql in indexes:
        db.execute(sql)
    print(f"  {len(indexes)} indexes built in {time.perf_counter() - started:.0f} s", flush=True)
    db.execute("PRAGMA journal_mode=WAL")
    db.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("source", type=Path)
    parser.add_argument("target", type=Path, help="a migrated database (it may already hold patients)")
    parser.add_argument("--copies", type=int, default=10)
    args = parser.parse_args()
    clone(args.source, args.target, args.copies)


if __name__ == "__main__":
    main()
