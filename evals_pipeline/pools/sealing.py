"""Is the holdout still sealed? Checks, and withholding, on the warehouse the snapshot copies.

The rotation (the only asset that both moves cases and reads the holdout store) refreshes
`sealed_fingerprints`: the sha256 and length of every string of the cases now in the holdout
pool, computed inside DuckDB so the strings never reach Python. Every other job uses the
fingerprints, never the store:

- `seal_violations` lists every place holdout content shows in an analyst table; the rotation
  and the analytics snapshot (part of every job) run it as blocking checks, so a leak fails the
  run and is never published.
- `withhold_sealed` blanks holdout strings in a table about to become analyst-visible (e.g. a
  reference shared by a holdout case and a production trace of the same question).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import date

import duckdb

from evals_pipeline.pools.store import read_holdout
from evals_pipeline.records import (
    ANALYST_TABLES,
    GOLDEN_CASES,
    GOLDEN_POOLS,
    HOLDOUT_CASES,
    SEALED_FINGERPRINTS,
    SEALED_TEXT_COLUMNS,
    TRACES,
    Table,
)
from evals_pipeline.warehouse import replace_table, table_names

HOLDOUT_TEXT_COLUMNS = ("input", "output", "reference_good", "reference_borderline")


def refresh_fingerprints(
    conn: duckdb.DuckDBPyConnection, holdout_alias: str, run_id: str, quarter: date
) -> int:
    """Replace `sealed_fingerprints` with those of the current holdout pool (a logged read);
    returns how many distinct strings are sealed."""
    union = " UNION ".join(
        f"SELECT h.{c} AS s FROM {holdout_alias}.{HOLDOUT_CASES.name} h "
        f"JOIN {GOLDEN_POOLS} p ON p.case_id = h.case_id AND p.pool = 'holdout'"
        for c in HOLDOUT_TEXT_COLUMNS
    )
    rows = read_holdout(
        conn,
        f"SELECT DISTINCT sha256(s) AS fingerprint, strlen(s) AS length FROM ({union}) WHERE s IS NOT NULL",
        [],
        run_id=run_id,
        quarter=quarter,
        reason="seal: fingerprint the holdout pool's strings (hashes only leave the store)",
    )
    replace_table(conn, SEALED_FINGERPRINTS, rows)
    return rows.num_rows


def _has_fingerprints(conn: duckdb.DuckDBPyConnection) -> bool:
    return SEALED_FINGERPRINTS.name in table_names(conn)


def sealed_string_count(conn: duckdb.DuckDBPyConnection) -> int:
    """How many distinct holdout strings the fingerprints cover (0 before any rotation)."""
    if not _has_fingerprints(conn):
        return 0
    return conn.execute(f"SELECT count(*) FROM {SEALED_FINGERPRINTS.name}").fetchall()[0][0]


def sealed_sql(expr: str) -> str:
    """SQL boolean: is the string `expr` exactly a sealed holdout string? Hashes only the
    strings whose length some sealed string has."""
    fp = SEALED_FINGERPRINTS.name
    return (
        f"(strlen({expr}) IN (SELECT length FROM {fp}) "
        f"AND sha256({expr}) IN (SELECT fingerprint FROM {fp}))"
    )


def find_public_strings(
    conn: duckdb.DuckDBPyConnection, values_sql: str, out: str = "_public_strings"
) -> int:
    """Temp table `out`(s): those strings yielded by `values_sql` (one column `s`) that
    already show in an analyst text column. Such a string cannot be sealed any more: a case
    carrying it must not enter the holdout. Returns how many there are."""
    conn.execute(
        f"CREATE OR REPLACE TEMP TABLE _probe AS SELECT DISTINCT s FROM ({values_sql}) WHERE s IS NOT NULL"
    )
    existing = table_names(conn)
    parts = [
        f"SELECT {c.name} AS s FROM {t.name} WHERE {c.name} IN (SELECT s FROM _probe)"
        for t in ANALYST_TABLES
        if t.name in existing
        for c in t.columns
        if c.sql_type == "VARCHAR"
    ] or ["SELECT NULL::VARCHAR AS s WHERE false"]
    conn.execute(
        f"CREATE OR REPLACE TEMP TABLE {out} AS SELECT DISTINCT s FROM ({' UNION ALL '.join(parts)})"
    )
    conn.execute("DROP TABLE _probe")
    return conn.execute(f"SELECT count(*) FROM {out}").fetchall()[0][0]


def withhold_sealed(conn: duckdb.DuckDBPyConnection, table: str, columns: Sequence[str]) -> int:
    """Set every sealed string in `columns` of `table` to NULL; returns the cells withheld."""
    if not _has_fingerprints(conn):
        return 0
    withheld = 0
    for col in columns:
        withheld += conn.execute(
            f"UPDATE {table} SET {col} = NULL WHERE {col} IS NOT NULL AND {sealed_sql(col)}"
        ).fetchall()[0][0]
    return withheld


def seal_violations(
    conn: duckdb.DuckDBPyConnection,
    tables: Sequence[Table] = ANALYST_TABLES,
    only_days: Mapping[str, Sequence[date]] | None = None,
) -> list[dict[str, object]]:
    """Every place holdout content shows in an analyst table (empty when sealed).

    Looks for: holdout cases in golden_cases; text on traces sealed at ingest; raw text on
    quarantined rows of sealed traces; and any string of a case in the holdout pool as the
    value of any text column of any analyst table (by fingerprint).

    `only_days` (table -> days) limits those tables to the given day partitions: the
    snapshot's refresh passes the days it is about to publish when the fingerprints are the
    ones its published days were checked against.
    """
    only_days = only_days or {}

    def rows_of(table: str) -> str:
        if table not in only_days:
            return table
        days = ", ".join(f"DATE '{d.isoformat()}'" for d in only_days[table]) or "NULL"
        return f"(SELECT * FROM {table} WHERE partition_date IN ({days}))"

    found: list[dict[str, object]] = []

    def note(where: str, n: int) -> None:
        if n:
            found.append({"where": where, "rows": int(n)})

    existing = table_names(conn)
    if {"golden_cases", "golden_pools"} <= existing:
        note(
            "golden_cases holds holdout cases",
            conn.execute(
                f"SELECT count(*) FROM {GOLDEN_CASES} WHERE case_id IN (SELECT case_id FROM {GOLDEN_POOLS} WHERE pool = 'holdout')"
            ).fetchall()[0][0],
        )
    if TRACES.name in existing:
        text_on_sealed = " OR ".join(f"{c} IS NOT NULL" for c in SEALED_TEXT_COLUMNS)
        note(
            "sealed traces with text",
            conn.execute(
                f"SELECT count(*) FROM {rows_of(TRACES.name)} WHERE sealed AND ({text_on_sealed})"
            ).fetchall()[0][0],
        )
    for q in ("quarantined_traces", "quarantined_feedback"):
        if q in existing:
            note(
                f"{q}: raw text of sealed rows",
                conn.execute(
                    f"SELECT count(*) FROM {q} WHERE sealed AND raw IS NOT NULL"
                ).fetchall()[0][0],
            )
    if not _has_fingerprints(conn):
        return found
    for table in tables:
        if table.name not in existing:
            continue
        for col in (c.name for c in table.columns if c.sql_type == "VARCHAR"):
            n = conn.execute(
                f"SELECT count(*) FROM {rows_of(table.name)} WHERE {col} IS NOT NULL AND {sealed_sql(col)}"
            ).fetchall()[0][0]
            note(f"{table.name}.{col} equals a holdout string", n)
    return found
