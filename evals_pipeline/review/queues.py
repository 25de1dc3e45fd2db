"""The review queues: what a domain expert reads next, built in the warehouse as SQL.

Three queues, one table (`review_items`), every row self-contained so the review app reads
one row per screen from the analysts' snapshot:

- `disagreement`: the judges' split votes, dimension disagreements and errors (`review_queue`)
  on candidate outputs of active golden cases; the label's subject is `case_id|app_version`.
  Splits among the judges the calibration trusts come first, splits only an untrusted judge
  causes last. Their labels are train-only (see `calibration.labels.label_split_sql`).
- `weekly`: the Friday review, a fresh uniform random sample of the latest week's production
  traces (`weekly_review_sample`, prepared by a schedule).
- `calibration_gap`: categories where the calibration set (the principal expert's current
  labels in the dev and test splits) has fewer than a target of its rarer class (passes
  for TPR, fails for TNR); unlabelled sampled traces of those categories whose stable split is
  dev or test, so each label lands where it is measured; drawn uniformly from the category's
  traffic stratum, so the judges are measured on what they score.

Holdout cases and sealed traces never enter: candidates come from active cases only,
traces must not be sealed; an asset check and the app verify it again.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date

import duckdb
import pandas as pd

from evals_pipeline.calibration.labels import split_sql
from evals_pipeline.judging.panel import Judgement
from evals_pipeline.judging.rubrics import Rubric
from evals_pipeline.pools.references import REFERENCES_TABLE
from evals_pipeline.records import (
    GOLDEN_POOLS,
    HUMAN_LABELS,
    JUDGE_VERDICTS,
    REVIEW_ITEMS,
    TRACES,
    VISIBLE_TRACES,
    WEEKLY_REVIEW_SAMPLE,
)
from evals_pipeline.sampling.stratified import U_SCALE, salted_seed, sample_key_sql
from evals_pipeline.sql import load_sql
from evals_pipeline.warehouse import registered, transaction


@dataclass(frozen=True)
class QueueSettings:
    disagreement_limit: int = 200
    gap_target: int = 100
    gap_batch: int = 15
    seed: int = 20260101


def write_weekly_sample(
    conn: duckdb.DuckDBPyConnection, week: date, week_end: date, size: int, seed: int
) -> int:
    """Replace the week's batch: `size` traces drawn uniformly from the week's unsealed,
    never-labelled traces by a seeded hash (same week and seed = same batch)."""
    key = f"{sample_key_sql('t.trace_id', salted_seed(seed, 'weekly_review'))}::DOUBLE / {U_SCALE}"
    with transaction(conn):
        conn.execute(f"DELETE FROM {WEEKLY_REVIEW_SAMPLE.name} WHERE week = ?", [week])
        conn.execute(
            f"""INSERT INTO {WEEKLY_REVIEW_SAMPLE.name} ({", ".join(WEEKLY_REVIEW_SAMPLE.column_names)})
            SELECT ?::DATE, t.trace_id, t.category, t.app_version, {key} AS k, now()
            FROM {VISIBLE_TRACES} t
            WHERE t.partition_date >= ? AND t.partition_date < ?
              AND NOT EXISTS (SELECT 1 FROM {HUMAN_LABELS} l WHERE l.subject_id = t.trace_id)
            ORDER BY k LIMIT ?""",
            [week, week, week_end, size],
        )
    return conn.execute(
        f"SELECT count(*) FROM {WEEKLY_REVIEW_SAMPLE.name} WHERE week = ?", [week]
    ).fetchall()[0][0]


# Trace content as the app shows it; references come from the configured reference source.
_TRACE_COLUMNS = """'trace' AS subject, t.trace_id, NULL::VARCHAR AS case_id, t.app_version, t.category,
    t.user_segment, t.ts, t.input, t.output, t.context, t.tool_calls, t.metadata, r.reference_good,
    r.reference_borderline"""
_TRACE_FROM = f"FROM {VISIBLE_TRACES} t LEFT JOIN {REFERENCES_TABLE} r ON r.trace_id = t.trace_id"

QUEUES_SQL = load_sql(
    __file__,
    "queues",
    trace_columns=_TRACE_COLUMNS,
    trace_from=_TRACE_FROM,
    disagreement_key=sample_key_sql("q.case_id || '|' || q.app_version", 7),
    gap_key=sample_key_sql("s.trace_id", salted_seed(20260101, "calibration_gap")),
    split=split_sql("s.trace_id"),
)


# Items that must never be shown: a case not in the active or retired pool (holdout), or a
# production trace sealed in the reservoir. A graduated case's source trace stays sealed
# (its raw trace is reservoir data) while the case itself is active and may be reviewed.
LEAKED_ITEMS_SQL = f"""
SELECT i.queue, i.item_id FROM {REVIEW_ITEMS} i
LEFT JOIN {GOLDEN_POOLS} p ON p.case_id = i.case_id
LEFT JOIN {TRACES} t ON t.trace_id = i.trace_id
WHERE (i.subject = 'candidate' AND (p.pool IS NULL OR p.pool = 'holdout'))
   OR (i.subject = 'trace' AND (t.trace_id IS NULL OR t.sealed OR i.item_id <> i.trace_id))
"""


def queue_items(
    conn: duckdb.DuckDBPyConnection, settings: QueueSettings, principal: str
) -> duckdb.DuckDBPyRelation:
    """All three queues (no judges' verdicts yet) as a relation; needs `_references` loaded."""
    return conn.sql(
        QUEUES_SQL,
        params={
            "principal": principal,
            "gap_target": settings.gap_target,
            "gap_batch": settings.gap_batch,
            "disagreement_limit": settings.disagreement_limit,
        },
    )


CANDIDATE_VERDICTS_SQL = f"""
SELECT case_id || '|' || app_version AS item_id,
       to_json(list({{'judge': judge, 'rubric': rubric || ' ' || rubric_version,
                     'verdict': coalesce(verdict, scores::VARCHAR), 'critique': critique, 'error': error}}
                    ORDER BY rubric, judge)) AS judge_verdicts
FROM {JUDGE_VERDICTS} GROUP BY ALL
"""


def write_review_items(
    conn: duckdb.DuckDBPyConnection, items: object, trace_verdicts: object
) -> None:
    """Replace review_items with `items` (queue rows) joined to the judges' verdicts: those of
    `judge_verdicts` for candidates, `trace_verdicts` (item_id, judge_verdicts JSON text)
    for traces."""
    with (
        registered(conn, _queue_items=items, _trace_verdicts=trace_verdicts),
        transaction(conn),
    ):
        conn.execute(f"DELETE FROM {REVIEW_ITEMS.name}")
        conn.execute(
            f"""INSERT INTO {REVIEW_ITEMS.name} ({", ".join(REVIEW_ITEMS.column_names)})
            WITH v AS ({CANDIDATE_VERDICTS_SQL}
                       UNION ALL SELECT item_id, judge_verdicts::JSON FROM _trace_verdicts)
            SELECT i.queue, i.position, i.item_id, i.subject, i.trace_id, i.case_id, i.app_version,
                   i.category, i.user_segment, i.ts, i.input, i.output, i.context::JSON,
                   i.tool_calls::JSON, i.metadata::JSON, i.reference_good, i.reference_borderline,
                   i.reason, coalesce(v.judge_verdicts, '[]'::JSON), now()
            FROM _queue_items i LEFT JOIN v USING (item_id)
            ORDER BY i.queue, i.position"""
        )


def revealed_verdicts(judged: Sequence[Judgement], rubric: Rubric) -> pd.DataFrame:
    """Per trace item, the judges' verdicts the app reveals after the expert decides (JSON)."""
    verdicts: dict[str, list[dict[str, object]]] = {}
    for j in judged:
        verdicts.setdefault(j.subject, []).append(
            {
                "judge": j.judge,
                "rubric": f"{rubric.name} {rubric.version}",
                "verdict": j.verdict,
                "critique": j.critique,
                "error": j.error,
            }
        )
    return pd.DataFrame(
        [(k, json.dumps(v)) for k, v in verdicts.items()], columns=["item_id", "judge_verdicts"]
    )


def trace_subjects(items: pd.DataFrame, rubric: Rubric) -> list[tuple[str, dict, list[Rubric]]]:
    """The queued production traces that have references, once each, to judge under `rubric`
    (candidate outputs were judged by the quarterly job)."""
    traces = items[(items["subject"] == "trace") & items["reference_good"].notna()]
    return [
        (r["item_id"], r, [rubric]) for r in traces.drop_duplicates("item_id").to_dict("records")
    ]
