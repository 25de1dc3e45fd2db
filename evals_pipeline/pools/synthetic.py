"""Admitted synthetic inputs enter the active pool: at every run of the quarter's rotation,
after it (so a run again of the latest quarter admits what the synthetic job admitted since).

A synthetic case is active only: it never enters the holdout, which stays drawn from traffic.
It needs references (a reviewer's, keyed by its synthetic id), one case per question (its
de-duplication key may not be in any pool already), and none of its references may be a
sealed holdout string. It has no user (user segment `synthetic`) and no production output.
"""

from __future__ import annotations

from datetime import date

import duckdb

from evals_pipeline.pools.references import REFERENCES_TABLE
from evals_pipeline.pools.sealing import sealed_sql
from evals_pipeline.pools.store import log_pool_event
from evals_pipeline.records import (
    GOLDEN_CASES,
    GOLDEN_POOLS,
    POOL_EVENTS,
    POOL_SIZES,
    SYNTHETIC_INPUTS,
    SYNTHETIC_SEGMENT,
    SYNTHETIC_WHY,
)
from evals_pipeline.warehouse import table_names, transaction

_KEY = "md5(coalesce(r.case_key, regexp_replace(lower(trim(s.input)), '[^a-z0-9]+', ' ', 'g')))"


def admit_synthetic(
    conn: duckdb.DuckDBPyConnection, run_id: str, quarter: date, rotated_at: date
) -> dict[str, int]:
    """Move the admitted synthetic inputs not yet in a pool into the active pool (one
    transaction; again changes nothing). `_references` must be loaded. Returns how many
    entered and, by reason, how many admitted inputs could not."""
    if SYNTHETIC_INPUTS.name not in table_names(conn):
        return {"entered": 0}
    sealed = " OR ".join(sealed_sql(f"r.{c}") for c in ("reference_good", "reference_borderline"))
    rows = conn.execute(
        f"""CREATE OR REPLACE TEMP TABLE _synthetic AS
        SELECT 'gc_' || s.synthetic_id AS case_id, s.synthetic_id, s.category, s.input,
               r.reference_good, r.reference_borderline, {_KEY} AS case_key_hash,
               CASE WHEN r.trace_id IS NULL THEN 'no references'
                    WHEN coalesce({sealed}, false) THEN 'a reference is sealed (holdout)'
                    WHEN {_KEY} IN (SELECT case_key_hash FROM {GOLDEN_POOLS}) THEN 'its question is in a pool already'
               END AS why_not
        FROM {SYNTHETIC_INPUTS} s LEFT JOIN {REFERENCES_TABLE} r ON r.trace_id = s.synthetic_id
        WHERE s.status = 'admitted' AND 'gc_' || s.synthetic_id NOT IN (SELECT case_id FROM {GOLDEN_POOLS})
        QUALIFY row_number() OVER (PARTITION BY {_KEY} ORDER BY s.synthetic_id) = 1;
        SELECT coalesce(why_not, 'entered'), count(*) FROM _synthetic GROUP BY 1"""
    ).fetchall()
    counts = {k: int(n) for k, n in rows}
    if not counts.get("entered"):
        return {"entered": 0, **counts}
    with transaction(conn):
        conn.execute(
            f"""INSERT INTO {GOLDEN_POOLS} ({", ".join(GOLDEN_POOLS.column_names)})
            SELECT case_id, synthetic_id, category, '{SYNTHETIC_SEGMENT}', NULL, 'active', '{SYNTHETIC_WHY}',
                   $1, $2, $1, NULL, 1, case_key_hash
            FROM _synthetic WHERE why_not IS NULL ORDER BY case_id""",
            [rotated_at, quarter],
        )
        conn.execute(
            f"""INSERT INTO {GOLDEN_CASES} ({", ".join(GOLDEN_CASES.column_names)})
            SELECT case_id, synthetic_id, category, '{SYNTHETIC_SEGMENT}', input, NULL,
                   reference_good, reference_borderline, '{SYNTHETIC_WHY}', 1
            FROM _synthetic WHERE why_not IS NULL ORDER BY case_id"""
        )
        conn.execute(
            f"""INSERT INTO {POOL_EVENTS} SELECT now()::TIMESTAMP, $1, $2, 'entered_active', case_id, NULL,
                       'active', 'synthetic input admitted by the trusted realism filter', 1
                FROM _synthetic WHERE why_not IS NULL ORDER BY case_id""",
            [run_id, quarter],
        )
        conn.execute(f"DELETE FROM {POOL_SIZES} WHERE quarter = ?", [quarter])
        conn.execute(
            f"""INSERT INTO {POOL_SIZES} ({", ".join(POOL_SIZES.column_names)})
            SELECT $1, $2, category, pool, count(*) FROM {GOLDEN_POOLS} GROUP BY ALL ORDER BY 3, 4""",
            [quarter, rotated_at],
        )
        log_pool_event(
            conn,
            run_id,
            quarter,
            "synthetic_admitted",
            "synthetic inputs entered active",
            counts["entered"],
        )
    return counts
