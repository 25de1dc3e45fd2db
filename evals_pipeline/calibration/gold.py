"""Gold labels: the annotators' current labels of an item become one label the judges are
measured against (`gold_labels`).

- majority: the verdict more than half of the item's annotators gave. With no strict majority
  (1-1, 1-1-1, 2-2) the item has no gold label: it stays in `gold_labels` with a null verdict,
  so it is counted, and no judge is measured on it (a tie between annotators is not a "tie"
  preference; a pairwise `tie` label is an ordinary verdict).
- principal: the principal annotator's label (judges.principal_annotator, else the annotator
  with most pointwise labels); items they did not label have no gold label.

Per item, `item_agreement` is the share of its annotators who gave the gold label.
"""

from __future__ import annotations

from collections.abc import Sequence

import duckdb
import pandas as pd

from evals_pipeline.calibration.evidence import label_split_sql, segment_sql
from evals_pipeline.calibration.failure_modes import add_mode_gold
from evals_pipeline.project import GoldSpec
from evals_pipeline.records import GOLD_LABELS, HUMAN_LABELS
from evals_pipeline.warehouse import transaction

# One row per item and kind (the first label's systems and attributes describe the item).
GOLD_SQL = f"""
WITH cur AS (SELECT * FROM {HUMAN_LABELS} WHERE current),
n AS (
    SELECT subject_id, kind, verdict, count(*) AS k,
           sum(count(*)) OVER (PARTITION BY subject_id, kind) AS total
    FROM cur GROUP BY subject_id, kind, verdict
),
items AS (
    SELECT subject_id, kind, any_value(total)::INT AS annotators, max(k)::INT AS top,
           any_value(verdict) FILTER (WHERE 2 * k > total) AS majority
    FROM n GROUP BY ALL
),
principal AS (SELECT subject_id, kind, verdict FROM cur WHERE annotator = $principal),
meta AS (
    SELECT subject_id, kind,
           arg_min(system_a, (source_file, source_row)) AS system_a,
           arg_min(system_b, (source_file, source_row)) AS system_b,
           arg_min(attributes, (source_file, source_row)) AS attributes,
           date_trunc('quarter', min(labelled_at))::DATE AS labelled_quarter
    FROM cur GROUP BY ALL
),
gold AS (
    SELECT i.*, CASE WHEN (i.kind = 'pointwise' AND $pointwise_majority) OR (i.kind = 'pairwise' AND $pairwise_majority)
                     THEN i.majority ELSE p.verdict END AS verdict,
           CASE WHEN (i.kind = 'pointwise' AND $pointwise_majority) OR (i.kind = 'pairwise' AND $pairwise_majority)
                THEN 'majority' ELSE 'principal:' || $principal END AS method
    FROM items i LEFT JOIN principal p USING (subject_id, kind)
)
SELECT g.subject_id, g.kind, g.verdict, g.method, g.annotators,
       coalesce(n.k, g.top)::INT AS agreeing, coalesce(n.k, g.top) / g.annotators AS item_agreement,
       {label_split_sql("g.subject_id")} AS split, m.system_a, m.system_b,
       {{segment}} AS segment, m.attributes, m.labelled_quarter
FROM gold g JOIN meta m USING (subject_id, kind) LEFT JOIN n ON n.subject_id = g.subject_id AND n.kind = g.kind AND n.verdict = g.verdict
ORDER BY g.kind, g.subject_id
"""


def build_gold_labels(
    conn: duckdb.DuckDBPyConnection,
    gold: GoldSpec,
    principal: str,
    segment_by: str,
    failure_modes: Sequence[str] = (),
) -> dict[str, int]:
    """Rebuild gold_labels from human_labels, with the per-failure-mode labels of the modes
    that have a judge (calibration/failure_modes.py); counts per kind of gold labels and of
    items without one."""
    sql = GOLD_SQL.replace("{segment}", segment_sql("m.attributes", segment_by))
    params = {
        "principal": principal,
        "pointwise_majority": gold.pointwise == "majority",
        "pairwise_majority": gold.pairwise == "majority",
    }
    with transaction(conn):
        conn.execute(f"DELETE FROM {GOLD_LABELS}")
        conn.execute(
            f"INSERT INTO {GOLD_LABELS} ({', '.join(GOLD_LABELS.column_names)}) {sql}", params
        )
        add_mode_gold(conn, list(failure_modes))
    counts = conn.execute(
        f"""SELECT kind, count(verdict), count(*) - count(verdict) FROM {GOLD_LABELS} GROUP BY 1"""
    ).fetchall()
    out: dict[str, int] = {}
    for kind, with_gold, without in counts:
        out[f"{kind}_gold"] = with_gold
        out[f"{kind}_without_gold"] = without
    return out


def gold_summary(conn: duckdb.DuckDBPyConnection) -> pd.DataFrame:
    """Gold labels per kind, method and verdict, with the mean per-item agreement."""
    return conn.execute(
        f"""SELECT kind, method, coalesce(verdict, '(no majority)') AS verdict, count(*) AS items,
                  round(avg(item_agreement), 3) AS mean_item_agreement
           FROM {GOLD_LABELS} GROUP BY ALL ORDER BY ALL"""
    ).df()
