"""Stratified sampling with per-category floors, deterministic and cheap at 10M rows.

Each row gets a key u = hash(trace_id mixed with seed) / 2^64 in [0, 1). Within a (partition, category)
stratum the sample is the n_c rows with the smallest u: a simple random sample without
replacement, so every row's inclusion probability is exactly n_c / N_c and the sum of
1 / inclusion_prob over the stratum's sampled rows is N_c.

Sorting every row by u is what makes naive samplers slow (a full window sort). Instead:
1. one group-by gives N_c per stratum (by category alone when the run is a single day),
   and `allocate` turns it into n_c;
2. one scan keeps only rows with u below a per-stratum threshold t_c, chosen so that about
   n_c + 5 sqrt(n_c) + 10 rows survive; since u is uniform, falling short is a > 5-sigma
   event, and when it happens that stratum is redone with no threshold (still exact);
3. the few survivors are ranked and the first n_c kept.
Cost: one scan + one hashing scan of (partition, trace_id, category); memory: the survivors.

DuckDB's hash() changed between DuckDB 1.2 and 1.3: duckdb is pinned and its version is
recorded with every sampled row, so a re-materialized partition reproduces its sample.
"""

from __future__ import annotations

import hashlib
import math
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date

import duckdb
import pyarrow as pa

from evals_pipeline.records import (
    NEGATIVE_SIGNALS,
    TRACE_FEEDBACK,
    TRACE_SAMPLE,
    TRACES,
    sql_literal,
)
from evals_pipeline.sampling.allocation import allocate
from evals_pipeline.warehouse import registered, transaction

U_SCALE = 18446744073709551616.0  # 2^64: maps hash() (UBIGINT) into [0, 1)


def threshold_for(n_alloc: int, traffic: int) -> float:
    """Hash threshold expected to keep n_alloc + 5 sqrt(n_alloc) + 10 of `traffic` rows."""
    if n_alloc <= 0:
        return 0.0
    return min(1.0, (n_alloc + 5.0 * math.sqrt(n_alloc) + 10.0) / traffic)


def sample_key_sql(column: str, seed: int) -> str:
    """The row's hash key as UBIGINT. The seed is hashed and mixed in before a second hash:
    `hash(id, seed)` alone combines the two hashes so weakly that samples for nearby seeds
    overlap far more than chance (a test catches it)."""
    return f"hash(xor(hash({column}), hash({int(seed)}::BIGINT)))"


def salted_seed(seed: int, purpose: str) -> int:
    """A seed for a second draw over the same rows. Keys must be independent of the sample's
    own keys: ranking sampled rows by the key that sampled them prefers one stratum."""
    digest = hashlib.sha256(f"{purpose}:{int(seed)}".encode()).digest()
    return int.from_bytes(digest[:8], "big") >> 1


def _hash_cutoff(threshold: float) -> int:
    """Largest hash value h with h / 2^64 < threshold (a UBIGINT literal)."""
    return min(2**64 - 1, int(threshold * U_SCALE))


def _stratum_counts(conn: duckdb.DuckDBPyConnection, source_sql: str) -> dict[date, dict[str, int]]:
    """Rows per (partition, category). Grouping by category alone is several times faster
    (DuckDB aggregates the dictionary-encoded column directly), and a scheduled run covers a
    single day: try that first and fall back to the two-key grouping for a range of days."""
    by_category = conn.execute(
        f"SELECT category, count(*), min(partition_date), max(partition_date) FROM ({source_sql}) GROUP BY ALL"
    ).fetchall()
    days = {d for _, _, lo, hi in by_category for d in (lo, hi)}
    if len(days) <= 1:
        return {d: {c: int(n) for c, n, _, _ in by_category} for d in days}
    counts: dict[date, dict[str, int]] = defaultdict(dict)
    for day, category, n in conn.execute(
        f"SELECT partition_date, category, count(*) FROM ({source_sql}) GROUP BY ALL"
    ).fetchall():
        counts[day][category] = int(n)
    return counts


def draw_sample(
    conn: duckdb.DuckDBPyConnection,
    source_sql: str,
    size: int,
    floor: float,
    seed: int,
    into: str,
) -> dict[tuple[date, str], tuple[int, int]]:
    """Sample `size` rows per partition from `source_sql` (columns partition_date, trace_id,
    category) into temp table `into`; return {(partition, category): (n_alloc, traffic)}.
    """
    counts = _stratum_counts(conn, source_sql)
    plan: dict[tuple[date, str], tuple[int, int]] = {}
    for day, per_cat in counts.items():
        for category, n_alloc in allocate(per_cat, size, floor).items():
            plan[(day, category)] = (n_alloc, per_cat[category])
    keys = sorted(plan)
    alloc = pa.table(
        {
            "partition_date": pa.array([k[0] for k in keys], pa.date32()),
            "category": pa.array([k[1] for k in keys]),
            "n_alloc": pa.array([plan[k][0] for k in keys], pa.int64()),
            "traffic": pa.array([plan[k][1] for k in keys], pa.int64()),
            "threshold": pa.array([threshold_for(*plan[k]) for k in keys], pa.float64()),
        }
    )
    with registered(conn, _alloc_arrow=alloc):
        conn.execute("CREATE OR REPLACE TEMP TABLE _alloc AS SELECT * FROM _alloc_arrow")
    # Filter in hash space (UBIGINT) with the largest threshold first: one comparison per row
    # keeps the join with _alloc, and the conversion to [0, 1), to the few survivors.
    max_threshold = max((threshold_for(*v) for v in plan.values()), default=0.0)
    keyed = f"""SELECT partition_date, trace_id, category, h::DOUBLE / {U_SCALE} AS u
                FROM (SELECT s.partition_date, s.trace_id, s.category, {sample_key_sql("s.trace_id", seed)} AS h
                      FROM ({source_sql}) s)
                WHERE h <= {{cutoff}}::UBIGINT"""
    conn.execute(
        f"""CREATE OR REPLACE TEMP TABLE _survivors AS
        SELECT k.* FROM ({keyed.format(cutoff=_hash_cutoff(max_threshold))}) k
        JOIN _alloc a USING (partition_date, category)
        WHERE k.u < a.threshold"""
    )
    # Strata that fell short of their allocation (a > 5-sigma event): redo them in full.
    short = conn.execute(
        """SELECT a.partition_date, a.category FROM _alloc a
           LEFT JOIN (SELECT partition_date, category, count(*) AS n FROM _survivors GROUP BY ALL) s
           USING (partition_date, category)
           WHERE coalesce(s.n, 0) < a.n_alloc AND a.threshold < 1.0"""
    ).fetchall()
    if short:
        conn.execute(
            "UPDATE _alloc SET threshold = 1.0 WHERE (partition_date, category) IN "
            f"(SELECT * FROM (VALUES {', '.join(f'(DATE {sql_literal(str(d))}, {sql_literal(c)})' for d, c in short)}))"
        )
        conn.execute(
            f"""DELETE FROM _survivors WHERE (partition_date, category) IN
                (SELECT partition_date, category FROM _alloc WHERE threshold = 1.0);
            INSERT INTO _survivors SELECT k.* FROM ({keyed.format(cutoff=_hash_cutoff(1.0))}) k
                JOIN _alloc a USING (partition_date, category)
                WHERE a.threshold = 1.0"""
        )
    conn.execute(
        f"""CREATE OR REPLACE TEMP TABLE {into} AS
        SELECT s.partition_date, s.trace_id, s.category, s.u AS sample_key,
               a.n_alloc::DOUBLE / a.traffic AS inclusion_prob, a.traffic AS category_traffic
        FROM _survivors s JOIN _alloc a USING (partition_date, category)
        QUALIFY row_number() OVER (PARTITION BY s.partition_date, s.category ORDER BY s.u, s.trace_id) <= a.n_alloc"""
    )
    conn.execute("DROP TABLE IF EXISTS _survivors; DROP TABLE IF EXISTS _alloc")
    return plan


@dataclass(frozen=True)
class SampleSettings:
    size: int = 40
    floor: float = 0.15
    seed: int = 20260101
    flashlight_size: int = 10


def write_trace_sample(
    conn: duckdb.DuckDBPyConnection, days: Sequence[date], settings: SampleSettings
) -> dict[tuple[date, str], tuple[int, int]]:
    """Replace `trace_sample` for `days`: a 'traffic' stratum and a 'flashlight' stratum.

    The flashlight stratum oversamples traces that drew negative feedback (thumbs down,
    regenerate, escalation) among the feedback ingested so far; it uses its own hash salt
    and its own inclusion probabilities (relative to the flagged traces of its category).
    """
    conn.execute("CREATE OR REPLACE TEMP TABLE _sample_days (d DATE)")
    conn.executemany("INSERT INTO _sample_days VALUES (?)", [[d] for d in days])
    traffic = f"SELECT partition_date, trace_id, category FROM {TRACES} WHERE partition_date IN (SELECT d FROM _sample_days)"
    negative = ", ".join(sql_literal(s) for s in NEGATIVE_SIGNALS)
    flagged = f"""{traffic} AND trace_id IN
        (SELECT trace_id FROM {TRACE_FEEDBACK} WHERE signal IN ({negative}))"""
    plan = draw_sample(
        conn, traffic, settings.size, settings.floor, settings.seed, "_traffic_sample"
    )
    draw_sample(
        conn,
        flagged,
        settings.flashlight_size,
        settings.floor,
        settings.seed + 1,
        "_flashlight_sample",
    )
    cols = ", ".join(TRACE_SAMPLE.column_names)
    version = sql_literal(duckdb.__version__)
    engine = sql_literal(f"duckdb {duckdb.__version__}")
    with transaction(conn):
        conn.execute(
            f"DELETE FROM {TRACE_SAMPLE} WHERE partition_date IN (SELECT d FROM _sample_days)"
        )
        for stratum, table, seed in (
            ("traffic", "_traffic_sample", settings.seed),
            ("flashlight", "_flashlight_sample", settings.seed + 1),
        ):
            conn.execute(
                f"""INSERT INTO {TRACE_SAMPLE} ({cols})
                SELECT partition_date, trace_id, category, '{stratum}', inclusion_prob, 1.0 / inclusion_prob,
                       category_traffic, sample_key, {int(seed)}, {version}, {engine}
                FROM {table} ORDER BY partition_date, category, sample_key"""
            )
    conn.execute(
        "DROP TABLE IF EXISTS _traffic_sample; DROP TABLE IF EXISTS _flashlight_sample; DROP TABLE _sample_days"
    )
    return plan
