"""Failure modes per category and app version (the seeds' root-cause table), in SQL."""

from __future__ import annotations

import duckdb

from evals_pipeline.records import (
    CANDIDATE_OUTPUTS,
    FAILURE_MODE_DISTRIBUTION,
    HUMAN_LABELS,
    TRACES,
    UNSEALED_POOL,
)
from evals_pipeline.review.taxonomy import Taxonomy, mode_map
from evals_pipeline.warehouse import registered, transaction

DISTRIBUTION_SQL = f"""
WITH subjects AS (
    -- a sealed trace's category and version are public (only its text is sealed)
    SELECT trace_id AS subject_id, category, app_version FROM {TRACES}
    UNION ALL
    SELECT case_id, category, app_version FROM {UNSEALED_POOL}
    UNION ALL
    SELECT o.case_id || '|' || o.app_version, p.category, o.app_version
    FROM {CANDIDATE_OUTPUTS} o JOIN {UNSEALED_POOL} p USING (case_id)
), labels AS (
    -- one label per output: the principal expert's, else the newest
    SELECT subject_id, verdict, failure_mode FROM {HUMAN_LABELS}
    WHERE kind = 'pointwise' AND current
    QUALIFY row_number() OVER (
        PARTITION BY subject_id
        ORDER BY (annotator = $principal) DESC, labelled_at DESC NULLS LAST, source_file DESC, source_row DESC) = 1
), j AS (
    -- a label on a trace that never made it into the warehouse (quarantined at ingest)
    SELECT coalesce(s.category, 'not_ingested') AS category, coalesce(s.app_version, 'not_ingested') AS app_version,
           l.verdict, m.failure_mode, m.defined
    FROM labels l
    LEFT JOIN (SELECT * FROM subjects QUALIFY row_number() OVER (PARTITION BY subject_id) = 1) s USING (subject_id)
    LEFT JOIN _mode_map m ON m.raw IS NOT DISTINCT FROM l.failure_mode
), slices AS (
    SELECT coalesce(category, 'all') AS category, coalesce(app_version, 'all') AS app_version,
           count(*) AS reviewed, count(*) FILTER (WHERE verdict = 'fail') AS failing
    FROM j GROUP BY GROUPING SETS ((), (category), (app_version), (category, app_version))
), modes AS (
    SELECT failure_mode, bool_or(defined) AS defined, coalesce(category, 'all') AS category,
           coalesce(app_version, 'all') AS app_version, count(*) AS n
    FROM j WHERE verdict = 'fail'
    GROUP BY GROUPING SETS ((failure_mode), (failure_mode, category), (failure_mode, app_version),
                            (failure_mode, category, app_version))
)
SELECT m.failure_mode, m.defined, m.category, m.app_version, m.n, m.n / s.failing, m.n / s.reviewed,
       s.failing, s.reviewed, $version
FROM modes m JOIN slices s USING (category, app_version)
ORDER BY m.category <> 'all', m.category, m.app_version <> 'all', m.app_version, m.n DESC, m.failure_mode
"""


def write_failure_mode_distribution(
    conn: duckdb.DuckDBPyConnection, tax: Taxonomy, principal: str
) -> int:
    """Replace failure_mode_distribution from human_labels, resolving names through `tax`."""
    names = [
        r[0] for r in conn.execute(f"SELECT DISTINCT failure_mode FROM {HUMAN_LABELS}").fetchall()
    ]
    with registered(conn, _mode_map=mode_map(tax, names)), transaction(conn):
        conn.execute(f"DELETE FROM {FAILURE_MODE_DISTRIBUTION.name}")
        conn.execute(
            f"INSERT INTO {FAILURE_MODE_DISTRIBUTION.name} {DISTRIBUTION_SQL}",
            {"principal": principal, "version": tax.version},
        )
    return conn.execute(f"SELECT count(*) FROM {FAILURE_MODE_DISTRIBUTION.name}").fetchall()[0][0]
