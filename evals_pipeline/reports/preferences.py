"""Bradley-Terry ratings of systems from any pairwise evidence (`preference_ratings`).

Three kinds of evidence, each fitted on its own (they need not agree, and comparing them is
the point):

- `human`: the gold pairwise labels that name their two systems (gold.py: the annotators'
  majority or the principal's label; a tie counts half a win for each side);
- each imported pairwise judge (`external/<name>`): per item, its winner when its verdicts in
  every presentation order agree, else a tie (as for our own judges);
- each of our pairwise judges (`pairwise_verdicts`): its outcome after both orders.

Per evidence, over all items and per segment with enough items (evidence.min_segment_items),
with a percentile bootstrap over items (judging/bradley_terry.py).
"""

from __future__ import annotations

import pandas as pd

from evals_pipeline.judging.bradley_terry import bt_ratings
from evals_pipeline.records import (
    EXTERNAL_VERDICTS,
    GOLD_LABELS,
    GOLDEN_CASES,
    PAIRWISE_VERDICTS,
    PREFERENCE_RATINGS,
)

PAIRWISE_OUTCOMES_SQL = f"""
SELECT 'human' AS evidence, subject_id AS case_id, system_a AS a, system_b AS b,
       lower(verdict) AS outcome, segment
FROM {GOLD_LABELS}
WHERE kind = 'pairwise' AND verdict IS NOT NULL AND system_a IS NOT NULL AND system_b IS NOT NULL
UNION ALL
SELECT judge, subject_id, system_a, system_b,
       CASE WHEN count(DISTINCT winner) = 1 THEN any_value(winner) ELSE 'tie' END, min(segment)
FROM {EXTERNAL_VERDICTS}
WHERE kind = 'pairwise' AND current AND system_a IS NOT NULL AND system_b IS NOT NULL
GROUP BY judge, subject_id, system_a, system_b
UNION ALL
SELECT v.judge, v.case_id, v.version_a, v.version_b, v.outcome, coalesce(c.category, 'all')
FROM {PAIRWISE_VERDICTS} v LEFT JOIN {GOLDEN_CASES} c USING (case_id)
WHERE v.outcome IS NOT NULL
ORDER BY ALL
"""


def preference_rows(
    outcomes: pd.DataFrame, min_segment_items: int, n_boot: int = 200, seed: int = 0
) -> pd.DataFrame:
    """`preference_ratings` from rows (evidence, case_id, a, b, outcome, segment)."""
    frames = []
    for evidence, g in outcomes.groupby("evidence", sort=True):
        parts = [("all", g)] + [
            (segment, part)
            for segment, part in sorted(g.groupby("segment"))
            if segment != "all" and part["case_id"].nunique() >= min_segment_items
        ]
        for segment, part in parts:
            r = bt_ratings(part, n_boot=n_boot, seed=seed).rename(columns={"app_version": "system"})
            r["rank"] = r["rating"].rank(ascending=False, method="min").astype(int)
            frames.append(r.assign(evidence=evidence, segment=segment))
    if not frames:
        return pd.DataFrame(columns=PREFERENCE_RATINGS.column_names)
    return pd.concat(frames, ignore_index=True)[PREFERENCE_RATINGS.column_names]
