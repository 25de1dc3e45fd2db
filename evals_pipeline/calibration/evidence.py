"""Evidence files a team already has, read like traces: JSONL or CSV (BOM-safe, optionally
.gz or .zst), every row either stored or quarantined with its reason (rows in = stored +
quarantined), and every column the format does not name kept as an attribute.

Three drop folders under the data directory, each rebuilt whole from its files on every run
(annotators and tools append files; nothing is edited in the warehouse):

    data/labels/          human labels, pointwise or pairwise        -> human_labels
    data/verdicts/        an external judge's verdicts               -> external_verdicts
    data/online_metrics/  per-system (or cell) metrics with a date   -> online_metrics

The formats are documented in docs/evidence.md; `evals import ...` checks a file with the same
SQL before copying it into its folder.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import duckdb
import pyarrow as pa

from evals_pipeline.files import file_kind, is_marker, text_file_lines
from evals_pipeline.ingest.validation import RAW_PREVIEW_CHARS, utc_timestamp_sql
from evals_pipeline.paths import data_dir
from evals_pipeline.records import (
    EXTERNAL_VERDICTS,
    HUMAN_LABELS,
    QUARANTINED_LABELS,
    QUARANTINED_VERDICTS,
    Table,
    sql_literal,
)
from evals_pipeline.sampling.stratified import U_SCALE, sample_key_sql
from evals_pipeline.warehouse import registered, transaction

EVIDENCE_SUFFIXES = (".jsonl", ".csv")
EVIDENCE_FORMATS = "JSONL (.jsonl) or CSV with a header row (.csv), optionally .gz or .zst"
SPLIT_SALT = 424_242
# The attribute naming an item's segment when the project file does not say (evidence.segment_by).
DEFAULT_SEGMENT_BY = "segment"
# Imported judges are named external/<name>, beside litellm model strings.
EXTERNAL_PREFIX = "external/"


def evidence_dir(kind: str) -> Path:
    """The drop folder of one kind of evidence: labels, verdicts or online_metrics."""
    return data_dir() / kind


def files_state(folder: Path) -> dict[str, list[int]]:
    """name -> [mtime_ns, size] of the folder's data files (what a run read; sensors compare)."""
    if not folder.is_dir():
        return {}
    return {
        p.name: [p.stat().st_mtime_ns, p.stat().st_size]
        for p in sorted(folder.iterdir())
        if not is_marker(p) and p.is_file()
    }


def split_sql(subject_sql: str) -> str:
    u = f"({sample_key_sql(subject_sql, SPLIT_SALT)}::DOUBLE / {U_SCALE})"
    return f"CASE WHEN {u} < 0.2 THEN 'train' WHEN {u} < 0.6 THEN 'dev' ELSE 'test' END"


def label_split_sql(subject_sql: str) -> str:
    """The split of a label. Candidate outputs (subject `case_id|app_version`) reach an expert
    only because the judges disagreed on them: chosen on the judges' behaviour, they would
    bias every TPR/TNR measured on them, so their labels are train-only (few-shot examples,
    the classifier judge, error analysis), never dev or test."""
    return f"CASE WHEN contains({subject_sql}, '|') THEN 'train' ELSE {split_sql(subject_sql)} END"


def segment_sql(attributes_sql: str, segment_by: str) -> str:
    """An item's segment: its `segment_by` attribute, 'all' when it has none."""
    return f"coalesce(nullif(trim({attributes_sql}->>{sql_literal(segment_by)}), ''), 'all')"


def file_records(path: Path, shown: str) -> list[tuple[str, int, str | None, bool, str | None]]:
    """(file, row, JSON text, UTF-8 ok, file-level problem) per record; a file that cannot
    be read is one row carrying its reason. CSV rows become JSON objects of strings (empty
    cells are null); a CSV row of the wrong width is kept raw and fails as malformed."""
    lines, problem = text_file_lines(path, EVIDENCE_SUFFIXES, EVIDENCE_FORMATS)
    if problem:
        return [(shown, 0, None, True, problem)]
    if file_kind(path, EVIDENCE_SUFFIXES).format == "jsonl":
        return [(shown, n, text, ok, None) for n, text, ok in lines]
    if not lines:
        return []
    header = [h.strip() for h in next(csv.reader([lines[0][1]]))]
    out: list[tuple[str, int, str | None, bool, str | None]] = []
    for n, text, ok in lines[1:]:
        if not ok:
            out.append((shown, n, text, False, None))
            continue
        values = next(csv.reader(io.StringIO(text)))
        if len(values) != len(header):
            out.append((shown, n, text, True, None))
            continue
        record = {k: (v if v != "" else None) for k, v in zip(header, values, strict=True)}
        out.append((shown, n, json.dumps(record), True, None))
    return out


def folder_batch(folder: Path) -> tuple[int, pa.Table]:
    """(files, one Arrow row per record of every file in `folder`). Every file but hidden
    ones and job markers is read: one of another kind is a row quarantined as
    unsupported_file, never silently skipped."""
    files = sorted(p for p in folder.iterdir() if not is_marker(p)) if folder.is_dir() else []
    return len(files), _batch([r for f in files for r in file_records(f, f.name)])


def _batch(rows: list[tuple[str, int, str | None, bool, str | None]]) -> pa.Table:
    return pa.table(
        {
            "source_file": pa.array([r[0] for r in rows], pa.string()),
            "source_row": pa.array([r[1] for r in rows], pa.int64()),
            "line": pa.array([r[2] for r in rows], pa.string()),
            "utf8_ok": pa.array([r[3] for r in rows], pa.bool_()),
            "file_error": pa.array([r[4] for r in rows], pa.string()),
        }
    )


# The first CTE of every evidence format: the row as a JSON object, or null with the reason
# carried by `why` below. `_evidence_rows` is the folder's batch.
PARSED_CTE = """p AS (
    SELECT *, CASE WHEN utf8_ok AND json_valid(line) AND json_type(line) = 'OBJECT' THEN line::JSON END AS j
    FROM _evidence_rows
)"""

# Reasons every format starts with, in this order.
READ_REASONS_SQL = """WHEN file_error IS NOT NULL THEN file_error
             WHEN NOT utf8_ok THEN 'invalid_utf8|line is not valid UTF-8'
             WHEN j IS NULL THEN 'malformed_json|not a JSON object (or a CSV row of the wrong width)'"""


def attributes_sql(known: Sequence[str]) -> str:
    """SQL: the row's columns other than `known`, as a JSON object (the segment attributes)."""
    names = ", ".join(sql_literal(k) for k in known)
    return (
        "to_json(map_from_entries(list_filter(map_entries(TRY_CAST(j AS MAP(VARCHAR, JSON))), "
        f"lambda e: e.key NOT IN ({names}))))"
    )


def stem_sql(file_sql: str) -> str:
    """SQL: a file name without its data extensions (`gpt4_judge.csv.gz` -> `gpt4_judge`)."""
    return f"regexp_replace({file_sql}, '(\\.(jsonl|ndjson|json|csv|gz|gzip|zst|zstd))+$', '', 'i')"


def reason_columns(why_sql: str = "why") -> str:
    """`reason` and `detail` from a `reason|detail` text."""
    return (
        f"split_part({why_sql}, '|', 1) AS reason, "
        f"nullif(substr({why_sql}, strlen(split_part({why_sql}, '|', 1)) + 2), '') AS detail"
    )


# Pass/fail, A/B/tie; with the pair's systems named, a system's name stands for its letter.
VERDICT_SQL = """CASE WHEN lower(verdict_raw) IN ('pass', 'fail') THEN lower(verdict_raw)
             WHEN upper(verdict_raw) IN ('A', 'B') THEN upper(verdict_raw)
             WHEN lower(verdict_raw) = 'tie' THEN 'tie'
             WHEN verdict_raw = system_a THEN 'A'
             WHEN verdict_raw = system_b THEN 'B' END"""

UNKNOWN_VERDICT_SQL = """WHEN verdict IS NULL THEN 'unknown_verdict|' || verdict_raw
                  || ' (expected pass, fail, A, B, tie' || CASE WHEN system_a IS NOT NULL THEN ', or a system of the pair' ELSE '' END || ')'
             WHEN verdict IN ('A', 'B', 'tie') AND (system_a IS NULL) <> (system_b IS NULL)
                  THEN 'missing_field|' || CASE WHEN system_a IS NULL THEN 'system_a' ELSE 'system_b' END
                  || ' (a pairwise row names both systems or neither)'"""


@dataclass(frozen=True)
class EvidenceFormat:
    """One kind of evidence file: its table, quarantine table and validation SQL (a query over
    `_evidence_rows` with the table's columns, plus `why`, `reason`, `detail`, `key_id`, `line`)."""

    kind: str
    table: Table
    quarantine: Table
    validate_sql: str
    # the table's columns computed from the valid rows, in order
    select: str
    # where `select` reads the valid rows from (a subquery may expand one row into several)
    rows_from: str = "_evidence_checked"


LABEL_FIELDS = (
    "subject_id",
    "trace_id",
    "case_id",
    "annotator",
    "verdict",
    "winner",
    "critique",
    "failure_mode",
    "labelled_at",
    "system_a",
    "system_b",
)


def _labels_sql() -> str:
    labelled_at = utc_timestamp_sql("labelled_at_raw")
    return f"""
WITH {PARSED_CTE}, f AS (
    SELECT *, coalesce(j->>'subject_id', j->>'trace_id', j->>'case_id') AS subject_raw,
           j->>'annotator' AS annotator, coalesce(j->>'verdict', j->>'winner') AS verdict_raw,
           j->>'critique' AS critique, j->>'failure_mode' AS failure_mode, j->>'labelled_at' AS labelled_at_raw,
           nullif(trim(j->>'system_a'), '') AS system_a, nullif(trim(j->>'system_b'), '') AS system_b,
           {attributes_sql(LABEL_FIELDS)} AS attributes
    FROM p
), v AS (
    SELECT *, {VERDICT_SQL} AS verdict, {labelled_at} AS labelled_at,
           -- a pairwise outcome between named systems may come without an item id (arena battles)
           coalesce(nullif(subject_raw, ''), CASE WHEN system_a IS NOT NULL AND system_b IS NOT NULL
                    THEN source_file || '#' || source_row END) AS subject_id
    FROM f
), r AS (
    SELECT *,
        CASE {READ_REASONS_SQL}
             WHEN coalesce(annotator, '') = '' THEN 'missing_field|annotator'
             WHEN coalesce(verdict_raw, '') = '' THEN 'missing_field|verdict'
             {UNKNOWN_VERDICT_SQL}
             WHEN coalesce(subject_id, '') = '' THEN 'missing_field|subject_id, trace_id or case_id'
             WHEN verdict = 'fail' AND coalesce(trim(critique), '') = '' THEN 'missing_critique|a fail needs a critique'
             WHEN labelled_at_raw IS NOT NULL AND labelled_at IS NULL
                  THEN 'wrong_type|labelled_at ' || labelled_at_raw
        END AS why
    FROM v
)
SELECT *, {reason_columns()}, subject_id AS key_id FROM r
"""


LABELS = EvidenceFormat(
    "labels",
    HUMAN_LABELS,
    QUARANTINED_LABELS,
    _labels_sql(),
    f"""subject_id, CASE WHEN verdict IN ('pass', 'fail') THEN 'pointwise' ELSE 'pairwise' END,
        annotator, verdict, critique, failure_mode, labelled_at,
        row_number() OVER (PARTITION BY subject_id, annotator, verdict IN ('pass', 'fail')
                           ORDER BY labelled_at DESC NULLS LAST, source_file DESC, source_row DESC) = 1,
        {label_split_sql("subject_id")}, source_file, source_row, system_a, system_b, attributes""",
)


VERDICT_FIELDS = (
    "judge",
    "subject_id",
    "trace_id",
    "case_id",
    "verdict",
    "winner",
    "presentation",
    "order",
    "system_a",
    "system_b",
    "rubric",
    "rubric_version",
    "judged_at",
)


def _verdicts_sql() -> str:
    judged_at = utc_timestamp_sql("judged_at_raw")
    return f"""
WITH {PARSED_CTE}, f AS (
    SELECT *, coalesce(j->>'subject_id', j->>'trace_id', j->>'case_id') AS subject_id,
           coalesce(nullif(trim(j->>'judge'), ''), {stem_sql("source_file")}) AS judge_name,
           coalesce(j->>'verdict', j->>'winner') AS verdict_raw,
           lower(trim(coalesce(j->>'presentation', j->>'order'))) AS presentation_raw,
           nullif(trim(j->>'system_a'), '') AS system_a, nullif(trim(j->>'system_b'), '') AS system_b,
           coalesce(nullif(trim(j->>'rubric'), ''), 'external') AS rubric,
           coalesce(nullif(trim(j->>'rubric_version'), ''), '1') AS rubric_version,
           j->>'judged_at' AS judged_at_raw, {attributes_sql(VERDICT_FIELDS)} AS attributes
    FROM p
), v AS (
    SELECT *, {VERDICT_SQL} AS given, {judged_at} AS judged_at,
           CASE WHEN starts_with(judge_name, '{EXTERNAL_PREFIX}') THEN judge_name ELSE '{EXTERNAL_PREFIX}' || judge_name END AS judge,
           -- a system's name is the winner itself, whatever the order it was shown in
           coalesce(presentation_raw, 'ab') AS presentation_or_default,
           verdict_raw = system_a OR verdict_raw = system_b AS named_winner
    FROM f
), w AS (
    SELECT *, given AS verdict,
           CASE WHEN given IN ('pass', 'fail') THEN NULL
                WHEN given = 'tie' THEN 'tie'
                WHEN named_winner THEN CASE WHEN verdict_raw = system_a THEN 'a' ELSE 'b' END
                WHEN (given = 'A') = (presentation_or_default = 'ab') THEN 'a' ELSE 'b' END AS winner
    FROM v
), r AS (
    SELECT *,
        CASE {READ_REASONS_SQL}
             WHEN coalesce(subject_id, '') = '' THEN 'missing_field|subject_id, trace_id or case_id'
             WHEN coalesce(verdict_raw, '') = '' THEN 'missing_field|verdict'
             {UNKNOWN_VERDICT_SQL.replace("verdict IS NULL", "given IS NULL").replace("verdict IN", "given IN")}
             WHEN given NOT IN ('pass', 'fail') AND presentation_raw IS NOT NULL AND presentation_raw NOT IN ('ab', 'ba')
                  THEN 'wrong_type|presentation ' || presentation_raw || ' (expected ab or ba)'
             WHEN judged_at_raw IS NOT NULL AND judged_at IS NULL THEN 'wrong_type|judged_at ' || judged_at_raw
        END AS why
    FROM w
)
SELECT *, {reason_columns()}, subject_id AS key_id FROM r
"""


def verdicts_format(segment_by: str) -> EvidenceFormat:
    return EvidenceFormat(
        "verdicts",
        EXTERNAL_VERDICTS,
        QUARANTINED_VERDICTS,
        _verdicts_sql(),
        f"""judge, CASE WHEN verdict IN ('pass', 'fail') THEN 'pointwise' ELSE 'pairwise' END, subject_id,
            rubric, rubric_version,
            -- a pairwise verdict given as a system's name is stored by position, like the others
            CASE WHEN named_winner THEN CASE WHEN (winner = 'a') = (presentation_or_default = 'ab') THEN 'A' ELSE 'B' END
                 ELSE verdict END,
            CASE WHEN verdict NOT IN ('pass', 'fail') THEN presentation_or_default END, winner,
            system_a, system_b, {segment_sql("attributes", segment_by)}, attributes,
            row_number() OVER (PARTITION BY judge, rubric, rubric_version, subject_id, verdict IN ('pass', 'fail'),
                               CASE WHEN verdict NOT IN ('pass', 'fail') THEN presentation_or_default END
                               ORDER BY judged_at DESC NULLS LAST, source_file DESC, source_row DESC) = 1,
            source_file, source_row""",
    )


def check_rows(conn: duckdb.DuckDBPyConnection, fmt: EvidenceFormat, batch: pa.Table) -> None:
    """Validate a batch of rows into the temp table `_evidence_checked`."""
    with registered(conn, _evidence_rows=batch):
        conn.execute(f"CREATE OR REPLACE TEMP TABLE _evidence_checked AS {fmt.validate_sql}")


def load_evidence(
    conn: duckdb.DuckDBPyConnection, fmt: EvidenceFormat, folder: Path
) -> dict[str, int]:
    """Rebuild `fmt.table` and its quarantine table from every file in `folder`, in one
    transaction; raises if rows in != stored + quarantined."""
    files, batch = folder_batch(folder)
    check_rows(conn, fmt, batch)
    with transaction(conn):
        conn.execute(f"DELETE FROM {fmt.table}")
        conn.execute(
            f"""INSERT INTO {fmt.table} ({", ".join(fmt.table.column_names)})
            SELECT {fmt.select} FROM {fmt.rows_from} WHERE why IS NULL ORDER BY source_file, source_row"""
        )
        conn.execute(f"DELETE FROM {fmt.quarantine}")
        conn.execute(
            f"""INSERT INTO {fmt.quarantine} ({", ".join(fmt.quarantine.column_names)})
            SELECT NULL, source_file, source_row, reason, detail, key_id, left(line, {RAW_PREVIEW_CHARS}), false
            FROM _evidence_checked WHERE why IS NOT NULL ORDER BY source_file, source_row"""
        )
    # rows of files, not of the table: one wide metrics row stores one value per metric
    stored = conn.execute(
        f"SELECT count(DISTINCT (source_file, source_row)) FROM {fmt.table}"
    ).fetchall()[0][0]
    quarantined = conn.execute(f"SELECT count(*) FROM {fmt.quarantine}").fetchall()[0][0]
    if stored + quarantined != batch.num_rows:
        raise RuntimeError(
            f"{fmt.kind}: {batch.num_rows} rows in but {stored} stored + {quarantined} quarantined"
        )
    return {"files": files, "rows_in": batch.num_rows, "stored": stored, "quarantined": quarantined}


def check_file(conn: duckdb.DuckDBPyConnection, fmt: EvidenceFormat, path: Path) -> dict:
    """What loading one file would store and quarantine (by reason), without touching a table:
    `evals import` shows it before copying the file into its drop folder."""
    rows = file_records(path, path.name)
    batch = _batch(rows)
    check_rows(conn, fmt, batch)
    reasons = dict(
        conn.execute(
            "SELECT reason, count(*) FROM _evidence_checked WHERE why IS NOT NULL GROUP BY 1 ORDER BY 2 DESC"
        ).fetchall()
    )
    examples = conn.execute(
        "SELECT source_row, reason, detail FROM _evidence_checked WHERE why IS NOT NULL ORDER BY source_row LIMIT 5"
    ).fetchall()
    return {
        "rows": len(rows),
        "ok": len(rows) - sum(reasons.values()),
        "quarantined": reasons,
        "examples": examples,
    }
