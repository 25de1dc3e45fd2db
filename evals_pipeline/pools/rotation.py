"""The quarterly rotation of the golden pools (DESIGN.md "Pools"), as plain functions.

For the quarter [start, end), rotated on `end`:
1. new cases: `new_cases` split over categories (floor, then by the quarter's traffic), and
   within each category 70/30 active/holdout. Active cases come from the quarter's
   `trace_sample` (unsealed traces); holdout cases from the quarter's holdout reservoir
   (sealed at ingest, so their text was never in an analyst table). Only traces with
   references are promoted; one case per de-duplication key (same question), and never a
   key already in any pool, so no question is both in active and holdout.
2. graduation: `graduate_fraction` of the holdout cases, oldest first among those whose
   `sealed_until` has passed, move to active (their content then enters `golden_cases`).
3. retirement: the oldest active cases beyond `active_cap` retire.
The pool state (golden_pools, golden_cases, pool_events, pool_sizes) changes in one warehouse
transaction; a failure anywhere before COMMIT leaves the previous state. A completed quarter
is marked in pool_events (`rotation_complete`) and rotating it again changes nothing.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, timedelta

import duckdb

from evals_pipeline.pools.references import REFERENCES_TABLE, ReferenceLoad
from evals_pipeline.pools.sealing import find_public_strings, sealed_sql
from evals_pipeline.pools.store import log_pool_event, read_holdout
from evals_pipeline.records import (
    GOLDEN_CASES,
    GOLDEN_POOLS,
    HOLDOUT_CASES,
    POOL_EVENTS,
    POOL_SIZES,
    TRACE_SAMPLE,
    TRACES,
)
from evals_pipeline.sampling.allocation import allocate
from evals_pipeline.sampling.stratified import salted_seed, sample_key_sql
from evals_pipeline.warehouse import registered, transaction


@dataclass(frozen=True)
class RotationSettings:
    new_cases: int = 200
    holdout_share: float = 0.3
    floor: float = 0.15
    graduate_fraction: float = 0.3
    min_sealed_days: int = 90
    active_cap: int = 400
    seed: int = 20260101


@dataclass
class RotationSummary:
    quarter: date
    rotated_at: date
    already_done: bool = False
    entered_active: int = 0
    entered_holdout: int = 0
    graduated: int = 0
    retired: int = 0
    shortfall: dict[str, int] = field(default_factory=dict)
    references: ReferenceLoad | None = None
    synthetic: dict[str, int] = field(default_factory=dict)


class RotationOrderError(RuntimeError):
    """Quarters must be rotated in order: a later one already ran."""


# The de-duplication key: the reviewer's, else the input with case, punctuation and spacing
# folded (the simulator's references give the topic). Only its hash reaches analyst tables.
CASE_KEY_SQL = "coalesce(r.case_key, regexp_replace(lower(trim(c.input)), '[^a-z0-9]+', ' ', 'g'))"
WHY_SQL = """coalesce(r.why, CASE WHEN c.category = 'edge_case' THEN 'edge_case'
                              WHEN c.stratum = 'flashlight' THEN 'known_failure_mode'
                              ELSE 'real_traffic' END)"""


def completed_quarters(conn: duckdb.DuckDBPyConnection) -> list[date]:
    return [
        r[0]
        for r in conn.execute(
            f"SELECT DISTINCT quarter FROM {POOL_EVENTS} WHERE event = 'rotation_complete' ORDER BY 1"
        ).fetchall()
    ]


def _allocation(
    conn: duckdb.DuckDBPyConnection, start: date, end: date, settings: RotationSettings
) -> dict[str, tuple[int, int]]:
    traffic = dict(
        conn.execute(
            f"SELECT category, count(*) FROM {TRACES} WHERE partition_date >= ? AND partition_date < ? GROUP BY 1",
            [start, end],
        ).fetchall()
    )
    per_category = allocate(traffic, settings.new_cases, settings.floor)
    # The holdout share of the total, apportioned over categories by their new cases
    # (largest remainder): each category within one case of holdout_share, the total exact.
    holdout = allocate(
        per_category, round(settings.holdout_share * sum(per_category.values())), 0.0
    )
    return {c: (n - holdout.get(c, 0), holdout.get(c, 0)) for c, n in per_category.items()}


def _pick_new_cases(
    conn: duckdb.DuckDBPyConnection,
    start: date,
    end: date,
    settings: RotationSettings,
    quotas: dict[str, tuple[int, int]],
) -> None:
    """Temp table _new_cases(case_id, trace_id, category, user_segment, app_version, pool, why, case_key, k)."""
    conn.execute(
        "CREATE OR REPLACE TEMP TABLE _quota (category VARCHAR, n_active INTEGER, n_holdout INTEGER)"
    )
    conn.executemany(
        "INSERT INTO _quota VALUES (?, ?, ?)", [[c, a, h] for c, (a, h) in quotas.items()]
    )
    key = sample_key_sql("c.trace_id", salted_seed(settings.seed, "rotation"))
    # A reference already shown to analysts (e.g. another trace of the same question in a
    # review queue) cannot be sealed: its case stays out of the holdout. And an active case
    # may not carry a holdout case's reference.
    find_public_strings(
        conn,
        f"""SELECT unnest([r.reference_good, r.reference_borderline]) AS s
        FROM {REFERENCES_TABLE} r JOIN {TRACES} t USING (trace_id)
        WHERE t.sealed AND t.partition_date >= DATE '{start}' AND t.partition_date < DATE '{end}'""",
    )
    refs = ("r.reference_good", "r.reference_borderline")
    public = " OR ".join(f"{r} IN (SELECT s FROM _public_strings)" for r in refs)
    sealed = " OR ".join(sealed_sql(r) for r in refs)
    # Candidates by ids and categories only: sealed traces are visible without their text, so
    # choosing holdout cases reads no holdout content.
    conn.execute(
        f"""CREATE OR REPLACE TEMP TABLE _candidates AS
        WITH c AS (
            SELECT t.trace_id, t.category, t.user_segment, t.app_version, t.input, t.sealed,
                   coalesce(s.stratum, 'reservoir') AS stratum
            FROM {TRACES} t
            LEFT JOIN (SELECT trace_id, min(stratum) AS stratum FROM {TRACE_SAMPLE}
                       WHERE partition_date >= $1 AND partition_date < $2 GROUP BY 1) s USING (trace_id)
            WHERE t.partition_date >= $1 AND t.partition_date < $2 AND (t.sealed OR s.trace_id IS NOT NULL)
        )
        SELECT c.trace_id, c.category, c.user_segment, c.app_version,
               CASE WHEN c.sealed THEN 'holdout' ELSE 'active' END AS pool,
               {WHY_SQL} AS why,
               md5(CASE WHEN c.sealed THEN coalesce(r.case_key, c.trace_id) ELSE {CASE_KEY_SQL} END) AS case_key_hash,
               {key} AS k
        FROM c JOIN {REFERENCES_TABLE} r USING (trace_id)
        WHERE md5(CASE WHEN c.sealed THEN coalesce(r.case_key, c.trace_id) ELSE {CASE_KEY_SQL} END)
              NOT IN (SELECT case_key_hash FROM {GOLDEN_POOLS})
          AND NOT coalesce(CASE WHEN c.sealed THEN {public} ELSE {sealed} END, false)""",
        [start, end],
    )
    # Holdout first (the scarcer pool), then active among keys holdout did not take.
    conn.execute(
        """CREATE OR REPLACE TEMP TABLE _new_cases AS
        WITH h AS (
            SELECT * FROM (SELECT * FROM _candidates WHERE pool = 'holdout'
                           QUALIFY row_number() OVER (PARTITION BY case_key_hash ORDER BY k) = 1) x
            JOIN _quota q USING (category)
            QUALIFY row_number() OVER (PARTITION BY category ORDER BY k) <= q.n_holdout
        ), a AS (
            SELECT * FROM (SELECT * FROM _candidates WHERE pool = 'active'
                             AND case_key_hash NOT IN (SELECT case_key_hash FROM h)
                           QUALIFY row_number() OVER (PARTITION BY case_key_hash ORDER BY k) = 1) x
            JOIN _quota q USING (category)
            QUALIFY row_number() OVER (PARTITION BY category ORDER BY k) <= q.n_active
        )
        SELECT 'gc_' || trace_id AS case_id, trace_id, category, user_segment, app_version, pool, why, case_key_hash, k FROM h
        UNION ALL
        SELECT 'gc_' || trace_id, trace_id, category, user_segment, app_version, pool, why, case_key_hash, k FROM a"""
    )


def rotate(
    conn: duckdb.DuckDBPyConnection,
    holdout_alias: str,
    start: date,
    end: date,
    settings: RotationSettings,
    run_id: str,
    load_references: Callable[[duckdb.DuckDBPyConnection], ReferenceLoad],
    before_commit: Callable[[duckdb.DuckDBPyConnection], None] | None = None,
) -> RotationSummary:
    """Rotate the pools for the quarter [start, end). Idempotent; atomic on the warehouse."""
    summary = RotationSummary(quarter=start, rotated_at=end)
    done = completed_quarters(conn)
    if start in done:
        summary.already_done = True
        return summary
    later = [q for q in done if q > start]
    if later:
        raise RotationOrderError(
            f"quarter {start} cannot be rotated after {later[-1]}: rotations run in quarter order"
        )

    summary.references = load_references(conn)
    quotas = _allocation(conn, start, end, settings)
    _pick_new_cases(conn, start, end, settings, quotas)
    got = dict(
        ((c, p), n)
        for c, p, n in conn.execute(
            "SELECT category, pool, count(*) FROM _new_cases GROUP BY ALL"
        ).fetchall()
    )
    for category, (n_active, n_holdout) in quotas.items():
        for pool, want in (("active", n_active), ("holdout", n_holdout)):
            if got.get((category, pool), 0) < want:
                summary.shortfall[f"{category}/{pool}"] = want - got.get((category, pool), 0)

    # Graduation and retirement are decided on ids and dates alone.
    holdout_now = conn.execute(
        f"SELECT count(*) FROM {GOLDEN_POOLS} WHERE pool = 'holdout'"
    ).fetchall()[0][0]
    n_graduate = math.floor(settings.graduate_fraction * holdout_now)
    conn.execute(
        f"""CREATE OR REPLACE TEMP TABLE _graduating AS
        SELECT case_id FROM {GOLDEN_POOLS} WHERE pool = 'holdout' AND sealed_until <= $1
        ORDER BY pool_since, {sample_key_sql("case_id", salted_seed(settings.seed, "graduation"))} LIMIT {int(n_graduate)}""",
        [end],
    )
    active_after = (
        conn.execute(f"SELECT count(*) FROM {GOLDEN_POOLS} WHERE pool = 'active'").fetchall()[0][0]
        + conn.execute("SELECT count(*) FROM _new_cases WHERE pool = 'active'").fetchall()[0][0]
        + conn.execute("SELECT count(*) FROM _graduating").fetchall()[0][0]
    )
    n_retire = max(0, active_after - settings.active_cap)
    conn.execute(
        f"""CREATE OR REPLACE TEMP TABLE _retiring AS
        SELECT case_id FROM {GOLDEN_POOLS} WHERE pool = 'active'
        ORDER BY pool_since, entered_at, {sample_key_sql("case_id", salted_seed(settings.seed, "retirement"))} LIMIT {int(n_retire)}"""
    )

    # Reads of holdout content, each logged (and committed) before anything else changes.
    quarter_label = f"{start:%Y}-Q{(start.month - 1) // 3 + 1}"
    new_holdout_content = read_holdout(
        conn,
        f"""SELECT n.case_id, n.trace_id, n.category, n.user_segment, r.input, r.output,
                   ref.reference_good, ref.reference_borderline, n.why, 1 AS version
            FROM {holdout_alias}.reservoir_traces r JOIN _new_cases n USING (trace_id)
            JOIN {REFERENCES_TABLE} ref USING (trace_id)
            WHERE n.pool = 'holdout' ORDER BY n.case_id""",
        [],
        run_id=run_id,
        quarter=start,
        reason=f"rotation {quarter_label}: copy new holdout cases from the reservoir",
    )
    graduating_content = read_holdout(
        conn,
        f"""SELECT h.* FROM {holdout_alias}.{HOLDOUT_CASES.name} h JOIN _graduating g USING (case_id)
            ORDER BY h.case_id""",
        [],
        run_id=run_id,
        quarter=start,
        reason=f"rotation {quarter_label}: graduate holdout cases to active",
    )
    with registered(
        conn, _new_holdout_arrow=new_holdout_content, _graduating_arrow=graduating_content
    ):
        # The holdout store first, in its own transaction (one transaction writes one file).
        # It only adds content under new case ids, replacing them if a failed run left them:
        # until the warehouse commits, no pool refers to them.
        cols = ", ".join(HOLDOUT_CASES.column_names)
        with transaction(conn):
            conn.execute(
                f"DELETE FROM {holdout_alias}.{HOLDOUT_CASES.name} WHERE case_id IN (SELECT case_id FROM _new_holdout_arrow)"
            )
            conn.execute(
                f"INSERT INTO {holdout_alias}.{HOLDOUT_CASES.name} ({cols}) SELECT {cols} FROM _new_holdout_arrow"
            )
        with transaction(conn):
            _apply(conn, start, end, settings, run_id, quarter_label)
            if before_commit is not None:
                before_commit(conn)

    counts = dict(
        conn.execute(
            f"SELECT event, count(*) FROM {POOL_EVENTS} WHERE quarter = ? AND case_id IS NOT NULL GROUP BY 1",
            [start],
        ).fetchall()
    )
    summary.entered_active = counts.get("entered_active", 0)
    summary.entered_holdout = counts.get("entered_holdout", 0)
    summary.graduated = counts.get("graduated", 0)
    summary.retired = counts.get("retired", 0)
    return summary


def _apply(
    conn: duckdb.DuckDBPyConnection,
    start: date,
    end: date,
    settings: RotationSettings,
    run_id: str,
    label: str,
) -> None:
    """Every pool change of the rotation; runs inside the warehouse transaction."""
    sealed_until = end + timedelta(days=settings.min_sealed_days)
    cols = ", ".join(GOLDEN_POOLS.column_names)
    conn.execute(
        f"""INSERT INTO {GOLDEN_POOLS} ({cols})
        SELECT case_id, trace_id, category, user_segment, app_version, pool, why, $1, $2, $1,
               CASE WHEN pool = 'holdout' THEN $3::DATE END, 1, case_key_hash
        FROM _new_cases ORDER BY case_id""",
        [end, start, sealed_until],
    )
    case_cols = ", ".join(GOLDEN_CASES.column_names)
    conn.execute(
        f"""INSERT INTO {GOLDEN_CASES} ({case_cols})
        SELECT n.case_id, n.trace_id, n.category, n.user_segment, t.input, t.output,
               r.reference_good, r.reference_borderline, n.why, 1
        FROM _new_cases n JOIN {TRACES} t USING (trace_id) JOIN {REFERENCES_TABLE} r USING (trace_id)
        WHERE n.pool = 'active' ORDER BY n.case_id"""
    )
    conn.execute(
        f"INSERT INTO {GOLDEN_CASES} ({case_cols}) SELECT {case_cols} FROM _graduating_arrow ORDER BY case_id"
    )
    conn.execute(
        f"UPDATE {GOLDEN_POOLS} SET pool = 'active', pool_since = ? WHERE case_id IN (SELECT case_id FROM _graduating)",
        [end],
    )
    conn.execute(
        f"UPDATE {GOLDEN_POOLS} SET pool = 'retired', pool_since = ? WHERE case_id IN (SELECT case_id FROM _retiring)",
        [end],
    )

    def moves(event: str, sql: str, from_pool: str | None, to_pool: str, reason: str) -> None:
        conn.execute(
            f"""INSERT INTO {POOL_EVENTS} SELECT now()::TIMESTAMP, $1, $2, '{event}', case_id, $3, $4, $5, 1
                FROM ({sql}) ORDER BY case_id""",
            [run_id, start, from_pool, to_pool, reason],
        )

    moves(
        "entered_active",
        "SELECT case_id FROM _new_cases WHERE pool = 'active'",
        None,
        "active",
        f"{label}: promoted from the sampled traffic",
    )
    moves(
        "entered_holdout",
        "SELECT case_id FROM _new_cases WHERE pool = 'holdout'",
        None,
        "holdout",
        f"{label}: drawn from the holdout reservoir",
    )
    moves(
        "graduated",
        "SELECT case_id FROM _graduating",
        "holdout",
        "active",
        f"{label}: oldest holdout past sealed_until ({settings.graduate_fraction:.0%} of holdout graduates)",
    )
    moves(
        "retired",
        "SELECT case_id FROM _retiring",
        "active",
        "retired",
        f"{label}: oldest active beyond the cap of {settings.active_cap}",
    )
    conn.execute(f"DELETE FROM {POOL_SIZES} WHERE quarter = ?", [start])
    conn.execute(
        f"""INSERT INTO {POOL_SIZES} ({", ".join(POOL_SIZES.column_names)})
        SELECT $1, $2, category, pool, count(*) FROM {GOLDEN_POOLS} GROUP BY ALL ORDER BY 3, 4""",
        [start, end],
    )
    log_pool_event(conn, run_id, start, "rotation_complete", f"{label} rotated on {end}")
