"""Human label files -> `human_labels` (append-only history) and `quarantined_labels`.

Label files live in `data/labels/` as JSONL or CSV (one record per line, a header row for
CSV); each annotator writes their own files and never edits old lines. Fields (docs/evidence.md):

    subject_id | trace_id | case_id   what was labelled (required, except for a pairwise
                                      outcome between named systems: then file#row)
    annotator                         who (required)
    verdict (or winner)               pass / fail (pointwise), or A / B / tie (pairwise; with
                                      the systems named, a system's name stands for its letter)
    critique                          free text, required when verdict is fail
    failure_mode                      from the failure taxonomy (optional)
    labelled_at                       ISO timestamp (optional; later lines win ties)
    system_a, system_b                pairwise: the systems whose outputs are A and B
    anything else                     kept in `attributes` (segment, model pair, ...)

The newest label of an annotator for a subject is `current`. Splits are by a stable hash of
the subject id: train 20% (few-shot examples only), dev 40%, test 40%; the hash ignores the
label, so each label class is split 20/40/40 in expectation (realized sizes are reported).
Labels on candidate outputs (`case_id|app_version`, from the review app's disagreement queue)
are train-only: they were chosen because the judges disagreed.
"""

from __future__ import annotations

import json
from pathlib import Path

import duckdb
import pandas as pd

from evals_pipeline.calibration.evidence import (
    EVIDENCE_SUFFIXES,
    LABELS,
    label_split_sql,
    load_evidence,
    split_sql,
)
from evals_pipeline.records import HUMAN_LABELS

LABEL_SUFFIXES = EVIDENCE_SUFFIXES
__all__ = [
    "LABEL_SUFFIXES",
    "import_pandalm",
    "label_split_sql",
    "label_splits",
    "load_labels",
    "split_sql",
]


def load_labels(conn: duckdb.DuckDBPyConnection, folder: Path) -> dict[str, int]:
    """Rebuild human_labels and quarantined_labels from every label file in `folder`."""
    return load_evidence(conn, LABELS, folder)


def label_splits(conn: duckdb.DuckDBPyConnection) -> pd.DataFrame:
    """Current labels per kind and split, with the pass-or-A and fail-or-B counts."""
    return conn.execute(
        f"""SELECT kind, split, count(*) FILTER (WHERE verdict IN ('pass', 'A')) AS pass_or_a,
                  count(*) FILTER (WHERE verdict IN ('fail', 'B')) AS fail_or_b, count(*) AS total
           FROM {HUMAN_LABELS} WHERE current GROUP BY ALL ORDER BY ALL"""
    ).df()


def import_pandalm(source: Path, dest: Path) -> int:
    """PandaLM's pairwise test set (three annotators; 0 = tie, 1 = first, 2 = second) as a
    label file: one line per (item, annotator) with verdict A / B / tie, the two models of
    `cmp_key` (`modelA_modelB`, response1 from modelA) as system_a / system_b, and
    `motivation_app` kept as an attribute (the segment of docs/evidence.md's example)."""
    items = json.loads(source.read_text())
    mapping = {0: "tie", 1: "A", 2: "B"}
    lines = []
    for item in items:
        for k in (1, 2, 3):
            lines.append(
                json.dumps(
                    {
                        "subject_id": f"pandalm-{item['idx']}",
                        "annotator": f"pandalm_annotator{k}",
                        "verdict": mapping[item[f"annotator{k}"]],
                        "system_a": item["cmp_key"].split("_", 1)[0],
                        "system_b": item["cmp_key"].split("_", 1)[1],
                        "cmp_key": item["cmp_key"],
                        "motivation_app": item["motivation_app"],
                    }
                )
            )
    dest.parent.mkdir(parents=True, exist_ok=True)
    dest.write_text("\n".join(lines) + "\n")
    return len(lines)
