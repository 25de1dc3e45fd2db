"""The judge ensemble and the review queue, in SQL over `judge_verdicts`.

Binary rubrics: majority of the valid votes (no majority -> no verdict); a split vote or a
judge error queues the case. Dimensional rubrics: per-dimension median over the judges that
answered; any two judges more than one point apart on a dimension queue the case.
"""

from __future__ import annotations

import duckdb

from evals_pipeline.judging.rubrics import Rubric
from evals_pipeline.records import JUDGE_ENSEMBLE, REVIEW_QUEUE, sql_literal
from evals_pipeline.warehouse import transaction

BINARY_SQL = """
SELECT v.case_id, v.app_version, any_value(g.category) AS category, v.rubric, v.rubric_version,
       CASE WHEN 2 * count(*) FILTER (WHERE v.verdict = 'pass') > count(v.verdict) THEN 'pass'
            WHEN 2 * count(*) FILTER (WHERE v.verdict = 'pass') < count(v.verdict) THEN 'fail' END AS verdict,
       NULL::JSON AS scores,
       count(*) AS n_judges, count(v.verdict) AS n_valid, count(*) FILTER (WHERE v.verdict = 'pass') AS n_pass,
       count(v.verdict) = count(*) AND count(DISTINCT v.verdict) <= 1 AS unanimous,
       CASE WHEN count(v.verdict) < count(*) THEN 'judge_error: ' || string_agg(v.judge, ', ') FILTER (WHERE v.verdict IS NULL)
            WHEN count(DISTINCT v.verdict) > 1 THEN 'split_vote: ' || count(*) FILTER (WHERE v.verdict = 'pass')
                 || ' pass / ' || count(*) FILTER (WHERE v.verdict = 'fail') || ' fail' END AS queue_reason
FROM judge_verdicts v JOIN golden_pools g USING (case_id)
WHERE v.rubric = $rubric AND v.rubric_version = $version
GROUP BY v.case_id, v.app_version, v.rubric, v.rubric_version
"""

DIMENSIONAL_SQL = """
WITH s AS (
    SELECT v.case_id, v.app_version, v.rubric, v.rubric_version, v.judge,
           unnest(map_keys(v.scores::MAP(VARCHAR, INTEGER))) AS dim,
           unnest(map_values(v.scores::MAP(VARCHAR, INTEGER))) AS score
    FROM judge_verdicts v WHERE v.rubric = $rubric AND v.rubric_version = $version AND v.scores IS NOT NULL
), d AS (
    SELECT case_id, app_version, rubric, rubric_version, dim, median(score) AS med, max(score) - min(score) AS spread
    FROM s GROUP BY ALL
), c AS (
    SELECT case_id, app_version, rubric, rubric_version, json_group_object(dim, med) AS scores,
           max(spread) AS spread,
           string_agg(dim, ', ' ORDER BY dim) FILTER (WHERE spread > 1) AS split_dims
    FROM d GROUP BY ALL
), n AS (
    SELECT case_id, app_version, rubric, rubric_version, count(*) AS n_judges, count(scores) AS n_valid,
           string_agg(judge, ', ') FILTER (WHERE scores IS NULL) AS failed
    FROM judge_verdicts WHERE rubric = $rubric AND rubric_version = $version GROUP BY ALL
)
SELECT n.case_id, n.app_version, g.category, n.rubric, n.rubric_version, NULL::VARCHAR AS verdict, c.scores,
       n.n_judges, n.n_valid, NULL::INTEGER AS n_pass,
       n.n_valid = n.n_judges AND coalesce(c.spread, 0) <= 1 AS unanimous,
       CASE WHEN n.n_valid < n.n_judges THEN 'judge_error: ' || n.failed
            WHEN c.spread > 1 THEN 'dimension_disagreement: ' || c.split_dims END AS queue_reason
FROM n LEFT JOIN c USING (case_id, app_version, rubric, rubric_version) JOIN golden_pools g USING (case_id)
"""


def write_ensemble(conn: duckdb.DuckDBPyConnection, rubrics: list[Rubric]) -> None:
    """Replace `judge_ensemble` and `review_queue` for the given rubrics."""
    parts = [
        (BINARY_SQL if r.kind == "binary" else DIMENSIONAL_SQL)
        .replace("$rubric", sql_literal(r.name))
        .replace("$version", sql_literal(r.version))
        for r in rubrics
    ]
    union = " UNION ALL ".join(f"SELECT * FROM ({p})" for p in parts)
    conn.execute(f"CREATE OR REPLACE TEMP TABLE _ensemble AS {union}")
    cols = ", ".join(JUDGE_ENSEMBLE.column_names)
    with transaction(conn):
        conn.execute(f"DELETE FROM {JUDGE_ENSEMBLE.name}")
        conn.execute(
            f"INSERT INTO {JUDGE_ENSEMBLE.name} ({cols}) SELECT {cols} FROM _ensemble ORDER BY ALL"
        )
        conn.execute(f"DELETE FROM {REVIEW_QUEUE.name}")
        conn.execute(
            f"""INSERT INTO {REVIEW_QUEUE.name} ({", ".join(REVIEW_QUEUE.column_names)})
            SELECT case_id, app_version, category, rubric, rubric_version, queue_reason, now()::TIMESTAMP
            FROM _ensemble WHERE queue_reason IS NOT NULL ORDER BY case_id, app_version, rubric"""
        )
    conn.execute("DROP TABLE _ensemble")
