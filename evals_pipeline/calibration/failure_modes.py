"""Per-failure-mode judges (seed 001): once a failure mode has about 100 labelled examples, a
binary judge for that mode alone, calibrated like any judge.

Its gold labels are derived from the pass/fail gold labels and the failure modes the
annotators named: a gold fail naming the mode (or one of its taxonomy aliases) is a fail of
the mode; a gold pass, or a gold fail naming another mode, is a pass; a gold fail naming no
mode has no gold label for it (counted, measures nothing). They live in `gold_labels` under
the kind `failure_mode:<mode>`, the mode rubric's name, with the item's split and quarter, so
the splits, re-validation windows and test-once rule apply unchanged.
"""

from __future__ import annotations

import json

import duckdb
import pandas as pd

from evals_pipeline.judging.rubrics import FAILURE_MODE_PREFIX, failure_mode_rubric
from evals_pipeline.paths import taxonomy_path
from evals_pipeline.records import FAILURE_MODE_JUDGES, GOLD_LABELS, HUMAN_LABELS
from evals_pipeline.warehouse import registered


def mode_names(modes: list[str]) -> dict[str, list[str]]:
    """Mode -> the label names that count as it: itself and its aliases in the taxonomy file
    (a merged or renamed mode's old name stays an alias; label files are never rewritten)."""
    path = taxonomy_path()
    defined = {}
    if path.exists():
        try:
            defined = json.loads(path.read_text(encoding="utf-8-sig")).get("modes", {})
        except (json.JSONDecodeError, UnicodeDecodeError, AttributeError):
            defined = {}  # the review stage reports a broken taxonomy file; names still count
    return {m: [m, *sorted((defined.get(m) or {}).get("aliases", []))] for m in modes}


MODE_GOLD_SQL = f"""
INSERT INTO {GOLD_LABELS} ({", ".join(GOLD_LABELS.column_names)})
WITH named AS (
    SELECT h.subject_id, m.rubric,
           bool_or(list_contains(m.names, h.failure_mode)) AS has_mode,
           bool_or(h.failure_mode IS NOT NULL AND trim(h.failure_mode) <> '') AS any_mode
    FROM {HUMAN_LABELS} h CROSS JOIN _modes m
    WHERE h.current AND h.kind = 'pointwise' AND h.verdict = 'fail'
    GROUP BY ALL
)
SELECT g.subject_id, m.rubric AS kind,
       CASE WHEN g.verdict = 'pass' THEN 'pass'
            WHEN g.verdict = 'fail' AND n.has_mode THEN 'fail'
            WHEN g.verdict = 'fail' AND n.any_mode THEN 'pass' END AS verdict,
       g.method, g.annotators, g.agreeing, g.item_agreement, g.split, g.system_a, g.system_b,
       g.segment, g.attributes, g.labelled_quarter
FROM {GOLD_LABELS} g CROSS JOIN _modes m
LEFT JOIN named n ON n.subject_id = g.subject_id AND n.rubric = m.rubric
WHERE g.kind = 'pointwise'
"""


def add_mode_gold(conn: duckdb.DuckDBPyConnection, modes: list[str]) -> None:
    """Append each configured mode's gold labels to gold_labels (rebuilt just before)."""
    if not modes:
        return
    names = mode_names(modes)
    frame = pd.DataFrame(
        {
            "rubric": [f"{FAILURE_MODE_PREFIX}{m}" for m in modes],
            "names": [names[m] for m in modes],
        }
    )
    with registered(conn, _modes=frame):
        conn.execute(MODE_GOLD_SQL)


def failure_mode_judges(
    conn: duckdb.DuckDBPyConnection, modes: dict[str, str], min_labels: int
) -> pd.DataFrame:
    """One row per configured mode: its rubric, label counts, and whether it is enabled."""
    names = mode_names(list(modes))
    counts = {
        kind: (fails, others)
        for kind, fails, others in conn.execute(
            f"""SELECT kind, count(*) FILTER (WHERE verdict = 'fail'), count(*) FILTER (WHERE verdict = 'pass')
                FROM {GOLD_LABELS} WHERE kind LIKE 'failure_mode:%' GROUP BY 1"""
        ).fetchall()
    }
    rows = []
    for mode, definition in modes.items():
        rubric = failure_mode_rubric(mode, definition)
        fails, others = counts.get(rubric.name, (0, 0))
        rows.append(
            (
                mode,
                definition,
                rubric.name,
                rubric.version,
                ", ".join(names[mode]),
                fails,
                others,
                min_labels,
                fails >= min_labels,
            )
        )
    return pd.DataFrame(rows, columns=FAILURE_MODE_JUDGES.column_names)
