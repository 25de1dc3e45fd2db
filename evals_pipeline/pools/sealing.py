"""Is the holdout still sealed? Checks run on the warehouse the analysts' snapshot copies."""

from __future__ import annotations

from datetime import date

import duckdb

from evals_pipeline.pools.store import read_holdout
from evals_pipeline.records import ANALYST_TABLES, HOLDOUT_CASES, SEALED_TEXT_COLUMNS, TRACES
from evals_pipeline.warehouse import registered

HOLDOUT_TEXT_COLUMNS = ("input", "output", "reference_good", "reference_borderline")


def seal_violations(
    conn: duckdb.DuckDBPyConnection, holdout_alias: str, run_id: str, quarter: date
) -> list[dict[str, object]]:
    """Every place holdout content shows in an analyst table (empty when sealed).

    Looks for: holdout cases in golden_cases; text on traces sealed at ingest; raw text on
    quarantined rows of sealed traces; and any holdout case's input, output or reference as
    the value of any text column of any analyst table (reading those strings is logged).
    """
    found: list[dict[str, object]] = []

    def note(where: str, n: int) -> None:
        if n:
            found.append({"where": where, "rows": int(n)})

    tables = {
        r[0]
        for r in conn.execute(
            "SELECT table_name FROM duckdb_tables() WHERE database_name = current_database()"
        ).fetchall()
    }
    if "golden_cases" in tables:
        note(
            "golden_cases holds holdout cases",
            conn.execute(
                "SELECT count(*) FROM golden_cases WHERE case_id IN (SELECT case_id FROM golden_pools WHERE pool = 'holdout')"
            ).fetchall()[0][0],
        )
    text_on_sealed = " OR ".join(f"{c} IS NOT NULL" for c in SEALED_TEXT_COLUMNS)
    note(
        "sealed traces with text",
        conn.execute(
            f"SELECT count(*) FROM {TRACES.name} WHERE sealed AND ({text_on_sealed})"
        ).fetchall()[0][0],
    )
    for q in ("quarantined_traces", "quarantined_feedback"):
        if q in tables:
            note(
                f"{q}: raw text of sealed rows",
                conn.execute(
                    f"SELECT count(*) FROM {q} WHERE sealed AND raw IS NOT NULL"
                ).fetchall()[0][0],
            )

    union = " UNION ".join(
        f"SELECT h.{c} AS s FROM {holdout_alias}.{HOLDOUT_CASES.name} h JOIN holdout USING (case_id)"
        for c in HOLDOUT_TEXT_COLUMNS
    )
    conn.execute(
        "CREATE OR REPLACE TEMP TABLE holdout AS SELECT case_id FROM golden_pools WHERE pool = 'holdout'"
    )
    strings = read_holdout(
        conn,
        f"SELECT DISTINCT s FROM ({union}) WHERE s IS NOT NULL",
        [],
        run_id=run_id,
        quarter=quarter,
        reason="seal check: look for holdout strings in analyst tables",
    )
    try:
        with registered(conn, _sealed_strings=strings):
            for table in ANALYST_TABLES:
                if table.name not in tables:
                    continue
                for col in (c.name for c in table.columns if c.sql_type == "VARCHAR"):
                    n = conn.execute(
                        f"SELECT count(*) FROM {table.name} t JOIN _sealed_strings h ON t.{col} = h.s"
                    ).fetchall()[0][0]
                    note(f"{table.name}.{col} equals a holdout string", n)
    finally:
        conn.execute("DROP TABLE IF EXISTS holdout")
    return found
