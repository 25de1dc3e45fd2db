"""Human label files -> `human_labels` (append-only history) and `quarantined_labels`.

Label files live in `data/labels/` as JSONL or CSV (one record per line, a header row for
CSV); each annotator writes their own files and never edits old lines. Fields:

    subject_id | trace_id | case_id   what was labelled (one of them is required)
    annotator                         who (required)
    verdict                           pass / fail (pointwise) or A / B / tie (pairwise) (required)
    critique                          free text, required when verdict is fail
    failure_mode                      from the failure taxonomy (optional)
    labelled_at                       ISO timestamp (optional; later lines win ties)

The newest label of an annotator for a subject is `current`. Splits are by a stable hash of
the subject id: train 20% (few-shot examples only), dev 40%, test 40%; the hash ignores the
label, so each label class is split 20/40/40 in expectation (realized sizes are reported).
Labels on candidate outputs (`case_id|app_version`, from the review app's disagreement queue)
are train-only: they were chosen because the judges disagreed.
"""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import duckdb
import pyarrow as pa

from evals_pipeline.files import file_kind, is_marker, text_file_lines
from evals_pipeline.ingest.validation import RAW_PREVIEW_CHARS, utc_timestamp_sql
from evals_pipeline.records import HUMAN_LABELS, QUARANTINED_LABELS
from evals_pipeline.sampling.stratified import U_SCALE, sample_key_sql
from evals_pipeline.warehouse import registered, transaction

SPLIT_SALT = 424_242
LABEL_SUFFIXES = (".jsonl", ".csv")
LABEL_FORMATS = "JSONL (.jsonl) or CSV with a header row (.csv), optionally .gz or .zst"


def split_sql(subject_sql: str) -> str:
    u = f"({sample_key_sql(subject_sql, SPLIT_SALT)}::DOUBLE / {U_SCALE})"
    return f"CASE WHEN {u} < 0.2 THEN 'train' WHEN {u} < 0.6 THEN 'dev' ELSE 'test' END"


def label_split_sql(subject_sql: str) -> str:
    """The split of a label. Candidate outputs (subject `case_id|app_version`) reach an expert
    only because the judges disagreed on them: chosen on the judges' behaviour, they would
    bias every TPR/TNR measured on them, so their labels are train-only (few-shot examples,
    the classifier judge, error analysis), never dev or test."""
    return f"CASE WHEN contains({subject_sql}, '|') THEN 'train' ELSE {split_sql(subject_sql)} END"


def _rows(path: Path, shown: str) -> list[tuple[str, int, str, bool, str | None]]:
    """(file, row, JSON text, UTF-8 ok, file-level problem) per record; a file that cannot
    be read is one row carrying its reason."""
    lines, problem = text_file_lines(path, LABEL_SUFFIXES, LABEL_FORMATS)
    if problem:
        return [(shown, 0, None, True, problem)]
    if file_kind(path, LABEL_SUFFIXES).format == "jsonl":
        return [(shown, n, text, ok, None) for n, text, ok in lines]
    if not lines:
        return []
    header = next(csv.reader([lines[0][1]]))
    out = []
    for n, text, ok in lines[1:]:
        if not ok:
            out.append((shown, n, text, False, None))
            continue
        values = next(csv.reader(io.StringIO(text)))
        record = {k: (v if v != "" else None) for k, v in zip(header, values, strict=False)}
        if len(values) != len(header):
            out.append((shown, n, text, True, None))  # raw text: fails as malformed below
            continue
        out.append((shown, n, json.dumps(record), True, None))
    return out


_LABELLED_AT = utc_timestamp_sql("labelled_at_raw")

VALIDATE_SQL = f"""
WITH p AS (
    SELECT *, CASE WHEN utf8_ok AND json_valid(line) AND json_type(line) = 'OBJECT' THEN line::JSON END AS j FROM _label_rows
), f AS (
    SELECT *, coalesce(j->>'subject_id', j->>'trace_id', j->>'case_id') AS subject_id,
           j->>'annotator' AS annotator, j->>'verdict' AS verdict_raw, j->>'critique' AS critique,
           j->>'failure_mode' AS failure_mode, j->>'labelled_at' AS labelled_at_raw
    FROM p
), r AS (
    SELECT *,
        CASE WHEN lower(verdict_raw) IN ('pass', 'fail') THEN lower(verdict_raw)
             WHEN upper(verdict_raw) IN ('A', 'B') THEN upper(verdict_raw)
             WHEN lower(verdict_raw) = 'tie' THEN 'tie' END AS verdict,
        {_LABELLED_AT} AS labelled_at,
        CASE WHEN file_error IS NOT NULL THEN file_error
             WHEN NOT utf8_ok THEN 'invalid_utf8|line is not valid UTF-8'
             WHEN j IS NULL THEN 'malformed_json|not a JSON object (or a CSV row of the wrong width)'
             WHEN coalesce(subject_id, '') = '' THEN 'missing_field|subject_id, trace_id or case_id'
             WHEN coalesce(annotator, '') = '' THEN 'missing_field|annotator'
             WHEN coalesce(verdict_raw, '') = '' THEN 'missing_field|verdict'
             WHEN NOT (lower(verdict_raw) IN ('pass', 'fail', 'tie') OR upper(verdict_raw) IN ('A', 'B'))
                  THEN 'unknown_verdict|' || verdict_raw
             WHEN lower(verdict_raw) = 'fail' AND coalesce(trim(critique), '') = '' THEN 'missing_critique|a fail needs a critique'
             WHEN labelled_at_raw IS NOT NULL AND {_LABELLED_AT} IS NULL
                  THEN 'wrong_type|labelled_at ' || labelled_at_raw
        END AS why
    FROM f
)
SELECT *, split_part(why, '|', 1) AS reason, nullif(substr(why, strlen(split_part(why, '|', 1)) + 2), '') AS detail FROM r
"""


def load_labels(conn: duckdb.DuckDBPyConnection, folder: Path) -> dict[str, int]:
    """Rebuild human_labels and quarantined_labels from every label file in `folder`."""
    # Every file but hidden ones: one of another kind is quarantined as
    # unsupported_file, never silently skipped.
    files = sorted(p for p in folder.iterdir() if not is_marker(p)) if folder.is_dir() else []
    rows = [r for f in files for r in _rows(f, f.name)]
    batch = pa.table(
        {
            "source_file": pa.array([r[0] for r in rows], pa.string()),
            "source_row": pa.array([r[1] for r in rows], pa.int64()),
            "line": pa.array([r[2] for r in rows], pa.string()),
            "utf8_ok": pa.array([r[3] for r in rows], pa.bool_()),
            "file_error": pa.array([r[4] for r in rows], pa.string()),
        }
    )
    with registered(conn, _label_rows=batch):
        conn.execute(f"CREATE OR REPLACE TEMP TABLE _labels_checked AS {VALIDATE_SQL}")
    with transaction(conn):
        conn.execute(f"DELETE FROM {HUMAN_LABELS.name}")
        conn.execute(
            f"""INSERT INTO {HUMAN_LABELS.name} ({", ".join(HUMAN_LABELS.column_names)})
            SELECT subject_id, CASE WHEN verdict IN ('pass', 'fail') THEN 'pointwise' ELSE 'pairwise' END,
                   annotator, verdict, critique, failure_mode, labelled_at,
                   row_number() OVER (PARTITION BY subject_id, annotator, verdict IN ('pass', 'fail')
                                      ORDER BY labelled_at DESC NULLS LAST, source_file DESC, source_row DESC) = 1,
                   {label_split_sql("subject_id")}, source_file, source_row
            FROM _labels_checked WHERE why IS NULL ORDER BY source_file, source_row"""
        )
        conn.execute(f"DELETE FROM {QUARANTINED_LABELS.name}")
        conn.execute(
            f"""INSERT INTO {QUARANTINED_LABELS.name} ({", ".join(QUARANTINED_LABELS.column_names)})
            SELECT NULL, source_file, source_row, reason, detail, subject_id, left(line, {RAW_PREVIEW_CHARS}), false
            FROM _labels_checked WHERE why IS NOT NULL ORDER BY source_file, source_row"""
        )
    stored = conn.execute(f"SELECT count(*) FROM {HUMAN_LABELS.name}").fetchall()[0][0]
    quarantined = conn.execute(f"SELECT count(*) FROM {QUARANTINED_LABELS.name}").fetchall()[0][0]
    if stored + quarantined != len(rows):
        raise RuntimeError(
            f"labels: {len(rows)} rows in but {stored} stored + {quarantined} quarantined"
        )
    return {"files": len(files), "rows_in": len(rows), "stored": stored, "quarantined": quarantined}


def import_pandalm(source: Path, dest: Path) -> int:
    """PandaLM's pairwise test set (three annotators; 0 = tie, 1 = first, 2 = second) as a
    label file: one line per (item, annotator) with verdict A / B / tie."""
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
                        "critique": None,
                        "failure_mode": None,
                        "source_pair": item["cmp_key"],
                    }
                )
            )
    dest.parent.mkdir(parents=True, exist_ok=True)
    dest.write_text("\n".join(lines) + "\n")
    return len(lines)
