"""The judge ensemble and the review queue, in SQL over `judge_verdicts`.

Only trusted judges vote (`trust.trusted_judges`): an untrusted or uncalibrated judge's
answer is reported beside the verdict (`untrusted_votes`), never counted in it, and its
disagreements queue nothing. Binary rubrics: majority of the trusted judges' valid votes (no
majority -> no verdict); a split vote or an error among them queues the case. Dimensional
rubrics: per-dimension median over the trusted judges that answered; any two of them more
than one point apart on a dimension queue the case.

Quorum: a verdict (or a median) needs at least `quorum` valid trusted answers, by default a
majority of the panel. With fewer trusted judges than the quorum there is no ensemble at all
(`too_few_trusted`: no verdict, nothing queued; the remedy is calibrating judges, not
reviewing cases); with two of three trusted judges down, the third's vote is not the
ensemble's: the case is `no_quorum`, has no verdict (so it is left out of every rate and
gate, which count it), and goes to the review queue.
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

# Each verdict row marked `t`: is its judge trusted (votes)?
VOTES = f"""(SELECT *, list_contains($trusted, judge) AS t FROM {JUDGE_VERDICTS}
            WHERE rubric = $rubric AND rubric_version = $version)"""

BINARY_SQL = f"""
WITH v AS (
    SELECT v.case_id, v.app_version, any_value(g.category) AS category, v.rubric, v.rubric_version,
           count(*) FILTER (WHERE t) AS n_judges, count(v.verdict) FILTER (WHERE t) AS n_valid,
           count(*) FILTER (WHERE t AND v.verdict = 'pass') AS n_pass,
           count(DISTINCT v.verdict) FILTER (WHERE t) AS n_kinds,
           string_agg(v.judge, ', ' ORDER BY v.judge) FILTER (WHERE t AND v.verdict IS NULL) AS failed,
           string_agg(v.judge || ': ' || coalesce(v.verdict, 'error'), ', ' ORDER BY v.judge)
               FILTER (WHERE NOT t) AS untrusted_votes
    FROM {VOTES} v JOIN {GOLDEN_POOLS} g USING (case_id)
    GROUP BY v.case_id, v.app_version, v.rubric, v.rubric_version
)
SELECT case_id, app_version, category, rubric, rubric_version,
       CASE WHEN $too_few OR n_valid < $quorum THEN NULL
            WHEN 2 * n_pass > n_valid THEN 'pass' WHEN 2 * n_pass < n_valid THEN 'fail' END AS verdict,
       CASE WHEN $too_few THEN 'too_few_trusted' WHEN n_valid < $quorum THEN 'no_quorum'
            WHEN 2 * n_pass = n_valid THEN 'no_majority' ELSE 'verdict' END AS status,
       NULL::JSON AS scores, n_judges, n_valid, n_pass,
       NOT $too_few AND n_valid = n_judges AND n_kinds <= 1 AS unanimous,
       CASE WHEN $too_few THEN NULL
            WHEN n_valid < $quorum THEN 'no_quorum: ' || n_valid || ' of ' || n_judges
                 || ' trusted judges answered (quorum ' || $quorum || '); failed: ' || failed
            WHEN n_valid < n_judges THEN 'judge_error: ' || failed
            WHEN n_kinds > 1 THEN 'split_vote: ' || n_pass || ' pass / ' || (n_valid - n_pass) || ' fail' END AS queue_reason,
       untrusted_votes
FROM v
"""

DIMENSIONAL_SQL = f"""
WITH s AS (
    SELECT v.case_id, v.app_version, v.rubric, v.rubric_version, v.judge,
           unnest(map_keys(v.scores::MAP(VARCHAR, INTEGER))) AS dim,
           unnest(map_values(v.scores::MAP(VARCHAR, INTEGER))) AS score
    FROM {VOTES} v WHERE v.t AND v.scores IS NOT NULL
), d AS (
    SELECT case_id, app_version, rubric, rubric_version, dim, median(score) AS med, max(score) - min(score) AS spread
    FROM s GROUP BY ALL
), c AS (
    SELECT case_id, app_version, rubric, rubric_version, json_group_object(dim, med) AS scores,
           max(spread) AS spread,
           string_agg(dim, ', ' ORDER BY dim) FILTER (WHERE spread > 1) AS split_dims
    FROM d GROUP BY ALL
), n AS (
    SELECT case_id, app_version, rubric, rubric_version, count(*) FILTER (WHERE t) AS n_judges,
           count(scores) FILTER (WHERE t) AS n_valid,
           string_agg(judge, ', ') FILTER (WHERE t AND scores IS NULL) AS failed,
           string_agg(judge || ': ' || coalesce(scores::VARCHAR, 'error'), ', ' ORDER BY judge)
               FILTER (WHERE NOT t) AS untrusted_votes
    FROM {VOTES} GROUP BY ALL
)
SELECT n.case_id, n.app_version, g.category, n.rubric, n.rubric_version, NULL::VARCHAR AS verdict,
       CASE WHEN NOT $too_few AND n.n_valid >= $quorum THEN c.scores END AS scores,
       CASE WHEN $too_few THEN 'too_few_trusted' WHEN n.n_valid >= $quorum THEN 'verdict' ELSE 'no_quorum' END AS status,
       n.n_judges, n.n_valid, NULL::INTEGER AS n_pass,
       NOT $too_few AND n.n_valid = n.n_judges AND coalesce(c.spread, 0) <= 1 AS unanimous,
       CASE WHEN $too_few THEN NULL
            WHEN n.n_valid < $quorum THEN 'no_quorum: ' || n.n_valid || ' of ' || n.n_judges
                 || ' trusted judges answered (quorum ' || $quorum || '); failed: ' || n.failed
            WHEN n.n_valid < n.n_judges THEN 'judge_error: ' || n.failed
            WHEN c.spread > 1 THEN 'dimension_disagreement: ' || c.split_dims END AS queue_reason,
       n.untrusted_votes
FROM n LEFT JOIN c USING (case_id, app_version, rubric, rubric_version) JOIN {GOLDEN_POOLS} g USING (case_id)
"""


def panel_quorum(panel_size: int, quorum: int = 0) -> int:
    """Valid answers an ensemble verdict needs: `quorum` if set, else a majority of the panel."""
    if panel_size < 1:
        raise ValueError("the judge panel is empty")
    if quorum < 0 or quorum > panel_size:
        raise ValueError(f"quorum {quorum} is not between 1 and the panel's {panel_size} judges")
    return quorum or panel_size // 2 + 1


def write_ensemble(
    conn: duckdb.DuckDBPyConnection, rubrics: list[Rubric], quorum: int, trusted: list[str]
) -> None:
    """Replace `judge_ensemble` and `review_queue` for the given rubrics; only the `trusted`
    judges vote, and a case needs `quorum` valid trusted answers for a verdict (see
    `panel_quorum`)."""
    judges = "[" + ", ".join(sql_literal(j) for j in trusted) + "]::VARCHAR[]"
    too_few = "true" if len(trusted) < quorum else "false"
    parts = [
        (BINARY_SQL if r.kind == "binary" else DIMENSIONAL_SQL)
        .replace("$rubric", sql_literal(r.name))
        .replace("$version", sql_literal(r.version))
        .replace("$quorum", str(int(quorum)))
        .replace("$trusted", judges)
        .replace("$too_few", too_few)
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
