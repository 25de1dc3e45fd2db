"""Pairwise judges measured against the gold preference (`pairwise_calibration`).

A pairwise verdict says which of two outputs is better, or tie. Each verdict is put in the
gold label's terms (a = the gold's system_a won, b = its system_b, tie) whatever order the
outputs were shown in, so one item judged in both orders gives two verdicts:

- accuracy_ab / accuracy_ba: share of verdicts equal to the gold label with system_a's output
  shown first / second; `accuracy` is their mean (position bias cannot hide in it);
- positional_agreement: of the items judged in both orders, the share with the same winner;
- kappa: Cohen's kappa over the three classes a / b / tie, all verdicts, with a bootstrap
  interval.

Ties: a judge's tie against a gold A or B is a wrong verdict and a gold tie needs a judge tie
(three classes, no partial credit); items whose annotators have no majority have no gold label
and are not measured (gold.py). A judge is trusted (test split, all segments) when its
accuracy in each order reaches judges.trust_threshold, as TPR and TNR must for a pass/fail
judge.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from evals_pipeline.calibration.metrics import kappa_with_interval, wilson
from evals_pipeline.records import (
    EXTERNAL_VERDICTS,
    GOLD_LABELS,
    PAIRWISE_CALIBRATION,
    PAIRWISE_VERDICTS,
)

# A judge's winner in the gold's orientation: by the systems' names when both sides name
# them (null when the judge compared another pair), else by letter.
_ORIENTED = """CASE WHEN j.winner = 'tie' THEN 'tie'
     WHEN g.system_a IS NULL OR j.system_a IS NULL THEN j.winner
     WHEN (CASE j.winner WHEN 'a' THEN j.system_a ELSE j.system_b END) = g.system_a THEN 'a'
     WHEN (CASE j.winner WHEN 'a' THEN j.system_a ELSE j.system_b END) = g.system_b THEN 'b' END"""

# Every pairwise verdict on a gold-labelled item: imported judges' and our own (judged on
# golden cases in both orders), with the item's split and segment.
PAIRWISE_MEASURED_SQL = f"""
WITH j AS (
    SELECT judge, subject_id, presentation, winner, system_a, system_b
    FROM {EXTERNAL_VERDICTS} WHERE kind = 'pairwise' AND current
    UNION ALL
    SELECT judge, case_id, 'ab', ab_winner, version_a, version_b FROM {PAIRWISE_VERDICTS} WHERE ab_winner IS NOT NULL
    UNION ALL
    SELECT judge, case_id, 'ba', ba_winner, version_a, version_b FROM {PAIRWISE_VERDICTS} WHERE ba_winner IS NOT NULL
)
SELECT j.judge, j.subject_id, j.presentation, {_ORIENTED} AS judged, lower(g.verdict) AS gold,
       g.split, g.segment
FROM j JOIN {GOLD_LABELS} g ON g.subject_id = j.subject_id AND g.kind = 'pairwise' AND g.verdict IS NOT NULL
ORDER BY j.judge, j.subject_id, j.presentation
"""


def _mean(values: pd.Series) -> float:
    return float(values.mean()) if len(values) else math.nan


def pairwise_metrics(
    part: pd.DataFrame, rng: np.random.Generator
) -> tuple[int, int, float, float, float, float, float, float, float, float, float, float, float]:
    """(items, verdicts, accuracy_ab, accuracy_ba, accuracy, its Wilson bounds, positional
    agreement, kappa and its bounds, judge and gold tie rates) of one judge's verdicts
    (columns subject_id, presentation, judged, gold)."""
    correct = part["judged"] == part["gold"]
    acc_ab = _mean(correct[part["presentation"] == "ab"])
    acc_ba = _mean(correct[part["presentation"] == "ba"])
    accuracy = float(np.nanmean([acc_ab, acc_ba])) if len(part) else math.nan
    low, high = wilson(int(correct.sum()), len(part))
    both = part.pivot_table(
        index="subject_id", columns="presentation", values="judged", aggfunc="first"
    )
    if {"ab", "ba"} <= set(both.columns):
        both = both.dropna(subset=["ab", "ba"])
        positional = _mean(both["ab"] == both["ba"])
    else:
        positional = math.nan
    k, k_low, k_high = kappa_with_interval(part["gold"].to_numpy(), part["judged"].to_numpy(), rng)
    gold_per_item = part.drop_duplicates("subject_id")["gold"]
    return (
        int(part["subject_id"].nunique()),
        len(part),
        acc_ab,
        acc_ba,
        accuracy,
        low,
        high,
        positional,
        k,
        k_low,
        k_high,
        _mean(part["judged"] == "tie"),
        _mean(gold_per_item == "tie"),
    )


def pairwise_calibration_rows(
    measured: pd.DataFrame, threshold: float, min_segment_items: int, seed: int = 0
) -> pd.DataFrame:
    """`pairwise_calibration`: per judge, split (train / dev / test, and 'all') and segment
    ('all', and each segment with at least `min_segment_items` items). Verdicts whose pair is
    not the gold label's pair (`judged` null) are left out."""
    rng = np.random.default_rng(seed)
    measured = measured[measured["judged"].notna()]
    rows = []
    for judge, g in measured.groupby("judge", sort=True):
        for split, s in [("all", g), *sorted(g.groupby("split"))]:
            parts = [("all", s)] + [
                (seg, p)
                for seg, p in sorted(s.groupby("segment"))
                if seg != "all" and p["subject_id"].nunique() >= min_segment_items
            ]
            for segment, part in parts:
                m = pairwise_metrics(part, rng)
                trusted = (
                    bool(m[2] >= threshold and m[3] >= threshold)
                    if split == "test" and segment == "all"
                    else None
                )
                rows.append((judge, split, segment, *m, trusted, threshold))
    return pd.DataFrame(rows, columns=PAIRWISE_CALIBRATION.column_names)
