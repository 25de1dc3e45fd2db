"""The judge ensemble and the review queue, in SQL over `judge_verdicts`.

Binary rubrics: majority of the valid votes (no majority -> no verdict); a split vote or a
judge error queues the case. Dimensional rubrics: per-dimension median over the judges that
answered; any two judges more than one point apart on a dimension queue the case.

Quorum: a verdict (or a median) needs at least `quorum` valid answers, by default a majority
of the panel. With two of three judges down, the third judge's vote is not the ensemble's:
the case is `no_quorum`, has no verdict (so it is left out of every rate and gate, which
count it), and goes to the review queue.
"""

from __future__ import annotations

import duckdb

from evals_pipeline.judging.rubrics import Rubric
from evals_pipeline.records import (
    GOLDEN_POOLS,
    JUDGE_ENSEMBLE,
    JUDGE_VERDICTS,
    REVIEW_QUEUE,
    sql_literal,
)
from evals_pipeline.warehouse import transaction

BINARY_SQL = f"""
SELECT v.case_id, v.app_version, any_value(g.category) AS category, v.rubric, v.rubric_version,
       CASE WHEN count(v.verdict) < $quorum THEN NULL
            WHEN 2 * count(*) FILTER (WHERE v.verdict = 'pass') > count(v.verdict) THEN 'pass'
            WHEN 2 * count(*) FILTER (WHERE v.verdict = 'pass') < count(v.verdict) THEN 'fail' END AS verdict,
       CASE WHEN count(v.verdict) < $quorum THEN 'no_quorum'
            WHEN 2 * count(*) FILTER (WHERE v.verdict = 'pass') = count(v.verdict) THEN 'no_majority'
            ELSE 'verdict' END AS status,
       NULL::JSON AS scores,
       count(*) AS n_judges, count(v.verdict) AS n_valid, count(*) FILTER (WHERE v.verdict = 'pass') AS n_pass,
       count(v.verdict) = count(*) AND count(DISTINCT v.verdict) <= 1 AS unanimous,
       CASE WHEN count(v.verdict) < $quorum THEN 'no_quorum: ' || count(v.verdict) || ' of ' || count(*)
                 || ' judges answered (quorum ' || $quorum || '); failed: ' || string_agg(v.judge, ', ') FILTER (WHERE v.verdict IS NULL)
            WHEN count(v.verdict) < count(*) THEN 'judge_error: ' || string_agg(v.judge, ', ') FILTER (WHERE v.verdict IS NULL)
            WHEN count(DISTINCT v.verdict) > 1 THEN 'split_vote: ' || count(*) FILTER (WHERE v.verdict = 'pass')
                 || ' pass / ' || count(*) FILTER (WHERE v.verdict = 'fail') || ' fail' END AS queue_reason
FROM {JUDGE_VERDICTS} v JOIN {GOLDEN_POOLS} g USING (case_id)
WHERE v.rubric = $rubric AND v.rubric_version = $version
GROUP BY v.case_id, v.app_version, v.rubric, v.rubric_version
"""

DIMENSIONAL_SQL = f"""
WITH s AS (
    SELECT v.case_id, v.app_version, v.rubric, v.rubric_version, v.judge,
           unnest(map_keys(v.scores::MAP(VARCHAR, INTEGER))) AS dim,
           unnest(map_values(v.scores::MAP(VARCHAR, INTEGER))) AS score
    FROM {JUDGE_VERDICTS} v WHERE v.rubric = $rubric AND v.rubric_version = $version AND v.scores IS NOT NULL
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
    FROM {JUDGE_VERDICTS} WHERE rubric = $rubric AND rubric_version = $version GROUP BY ALL
)
SELECT n.case_id, n.app_version, g.category, n.rubric, n.rubric_version, NULL::VARCHAR AS verdict,
       CASE WHEN n.n_valid >= $quorum THEN c.scores END AS scores,
       CASE WHEN n.n_valid >= $quorum THEN 'verdict' ELSE 'no_quorum' END AS status,
       n.n_judges, n.n_valid, NULL::INTEGER AS n_pass,
       n.n_valid = n.n_judges AND coalesce(c.spread, 0) <= 1 AS unanimous,
       CASE WHEN n.n_valid < $quorum THEN 'no_quorum: ' || n.n_valid || ' of ' || n.n_judges
                 || ' judges answered (quorum ' || $quorum || '); failed: ' || n.failed
            WHEN n.n_valid < n.n_judges THEN 'judge_error: ' || n.failed
            WHEN c.spread > 1 THEN 'dimension_disagreement: ' || c.split_dims END AS queue_reason
FROM n LEFT JOIN c USING (case_id, app_version, rubric, rubric_version) JOIN {GOLDEN_POOLS} g USING (case_id)
"""


def panel_quorum(panel_size: int, quorum: int = 0) -> int:
    """Valid answers an ensemble verdict needs: `quorum` if set, else a majority of the panel."""
    if panel_size < 1:
        raise ValueError("the judge panel is empty")
    if quorum < 0 or quorum > panel_size:
        raise ValueError(f"quorum {quorum} is not between 1 and the panel's {panel_size} judges")
    return quorum or panel_size // 2 + 1


def write_ensemble(conn: duckdb.DuckDBPyConnection, rubrics: list[Rubric], quorum: int) -> None:
    """Replace `judge_ensemble` and `review_queue` for the given rubrics; a case needs
    `quorum` valid judge answers for a verdict (see `panel_quorum`)."""
    parts = [
        (BINARY_SQL if r.kind == "binary" else DIMENSIONAL_SQL)
        .replace("$rubric", sql_literal(r.name))
        .replace("$version", sql_literal(r.version))
        .replace("$quorum", str(int(quorum)))
        for r in rubrics
    ]
    union = " UNION ALL BY NAME ".join(f"SELECT * FROM ({p})" for p in parts)
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
