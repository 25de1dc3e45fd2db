"""Row-level validation of one stream's files into a table and its quarantine, in DuckDB.

The shape of the work:
1. `stage_files` reads every file of the days being ingested into one staging table of raw
   rows (JSONL lines, or Parquet rows turned into JSON text), keeping file and row number.
   Python only splits lines and checks UTF-8; everything after is SQL.
2. `validate_sql` (generated from the record specs in `records/`) gives every row either
   no reason or the first failed rule; `write_partitions` replaces the days' partitions in
   the target and quarantine tables in one transaction.
So rows in = rows stored + rows quarantined, and re-ingesting a day replaces it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path

import duckdb
import pyarrow as pa

from evals_pipeline.files import (
    describe_error,
    file_kind,
    is_marker,
    text_file_lines,
)
from evals_pipeline.pools.store import reservoir_sql
from evals_pipeline.records import (
    DEFAULT_CATEGORIES,
    FEEDBACK_FIELDS,
    FEEDBACK_SIGNALS,
    QUARANTINED_FEEDBACK,
    QUARANTINED_TRACES,
    RESERVOIR_TRACES,
    SEALED_TEXT_COLUMNS,
    TRACE_FEEDBACK,
    TRACE_FIELDS,
    TRACES,
    FieldSpec,
    Table,
    sql_literal,
)
from evals_pipeline.warehouse import registered, transaction

RAW_PREVIEW_CHARS = 2000


@dataclass(frozen=True)
class Reservoir:
    """Where sealed traces go: the attached holdout store's alias and the diverted share."""

    alias: str
    share: float


@dataclass(frozen=True)
class StreamSpec:
    """What makes a row of one stream valid, and where valid and bad rows go."""

    name: str
    fields: tuple[FieldSpec, ...]
    table: Table
    quarantine: Table
    # (field, allowed values, reason) rules checked after types.
    enums: tuple[tuple[str, tuple[str, ...], str], ...]
    dedupe_key: tuple[str, ...]
    dedupe_reason: str
    # SQL expression per stored column (over the validated row).
    projection: Mapping[str, str] = field(default_factory=dict)
    # Whether rows of this stream carry text that the holdout reservoir must seal.
    sealable: bool = False


def _messages_text() -> str:
    # Last user message of an OpenAI-style list; the text itself when input is a string.
    msgs = "TRY_CAST(f['input'] AS JSON[])"
    last_user = f"list_filter({msgs}, lambda m: m->>'role' = 'user')[-1]->>'content'"
    return f"CASE WHEN json_type(f['input']) = 'VARCHAR' THEN f['input']->>'$' ELSE {last_user} END"


def _json_or_null(name: str) -> str:
    return f"CASE WHEN coalesce(json_type(f['{name}']), 'NULL') = 'NULL' THEN NULL ELSE f['{name}'] END"


TRACE_STREAM = StreamSpec(
    name="traces",
    fields=TRACE_FIELDS,
    table=TRACES,
    quarantine=QUARANTINED_TRACES,
    enums=(("category", DEFAULT_CATEGORIES, "unknown_category"),),
    dedupe_key=("trace_id",),
    dedupe_reason="duplicate_trace_id",
    sealable=True,
    projection={
        "trace_id": "f['trace_id']->>'$'",
        "ts": "ts_utc",
        "partition_date": "partition_date",
        "session_id": "f['session_id']->>'$'",
        "user_id": "f['user_id']->>'$'",
        "app_version": "f['app_version']->>'$'",
        "category": "f['category']->>'$'",
        "user_segment": "f['user_segment']->>'$'",
        "input": _messages_text(),
        "input_messages": "CASE WHEN json_type(f['input']) = 'ARRAY' THEN f['input'] END",
        "output": "f['output']->>'$'",
        "context": _json_or_null("context"),
        "tool_calls": _json_or_null("tool_calls"),
        "latency_ms": "TRY_CAST(f['latency_ms']->>'$' AS DOUBLE)",
        "cost_usd": "TRY_CAST(f['cost_usd']->>'$' AS DOUBLE)",
        "input_tokens": "TRY_CAST(TRY_CAST(f['input_tokens']->>'$' AS DOUBLE) AS BIGINT)",
        "output_tokens": "TRY_CAST(TRY_CAST(f['output_tokens']->>'$' AS DOUBLE) AS BIGINT)",
        "metadata": _json_or_null("metadata"),
        "source_file": "source_file",
        "source_row": "source_row",
        "sealed": "sealed",
    },
)

FEEDBACK_STREAM = StreamSpec(
    name="feedback",
    fields=FEEDBACK_FIELDS,
    table=TRACE_FEEDBACK,
    quarantine=QUARANTINED_FEEDBACK,
    enums=(("signal", FEEDBACK_SIGNALS, "unknown_signal"),),
    dedupe_key=("trace_id", "ts", "signal", "value"),
    dedupe_reason="duplicate_event",
    projection={
        "trace_id": "f['trace_id']->>'$'",
        "ts": "ts_utc",
        "partition_date": "partition_date",
        "signal": "f['signal']->>'$'",
        "value": "TRY_CAST(f['value']->>'$' AS DOUBLE)",
        "source_file": "source_file",
        "source_row": "source_row",
    },
)


@dataclass(frozen=True)
class IngestRules:
    """Run-time knobs of validation."""

    max_field_bytes: int = 65_536
    categories: tuple[str, ...] = DEFAULT_CATEGORIES


STAGING_DDL = """CREATE OR REPLACE TEMP TABLE {name} (
    partition_date DATE, source_file VARCHAR, source_row BIGINT, line VARCHAR, utf8_ok BOOLEAN,
    file_error VARCHAR)"""


@dataclass
class StagedFiles:
    """What staging saw: rows staged (file-level problems count as one row each, so they are
    quarantined like any bad row), and the marker files it ignored (hidden, `_SUCCESS`)."""

    rows: int = 0
    files: int = 0
    unreadable: list[str] = field(default_factory=list)
    ignored: list[str] = field(default_factory=list)


def stage_files(
    conn: duckdb.DuckDBPyConnection,
    files_by_day: Mapping[date, Sequence[Path]],
    staging: str,
    root: Path | None = None,
) -> StagedFiles:
    """Load every row of the given files into temp table `staging`.

    A file that cannot be read (a directory named `.jsonl`, a truncated Parquet or gzip file)
    or is of no format the pipeline reads becomes one row with `file_error` set: it is
    quarantined with that reason while the day's other files ingest.
    """
    conn.execute(STAGING_DDL.format(name=staging))
    staged = StagedFiles()

    def file_problem(day: date, shown: str, problem: str) -> None:
        conn.execute(
            f"INSERT INTO {staging} VALUES (?, ?, 0, NULL, true, ?)", [day, shown, problem]
        )
        staged.unreadable.append(f"{shown}: {problem.replace('|', ': ', 1)}")

    for day, files in sorted(files_by_day.items()):
        for path in sorted(files):
            shown = (
                path.relative_to(root).as_posix()
                if root and path.is_relative_to(root)
                else str(path)
            )
            if is_marker(path):
                staged.ignored.append(shown)
                continue
            staged.files += 1
            if file_kind(path).format == "parquet":
                # One code path for both formats: Parquet rows become JSON text.
                try:
                    conn.execute(
                        f"""INSERT INTO {staging}
                        SELECT ?, ?, file_row_number + 1, to_json(p)::VARCHAR, true, NULL
                        FROM read_parquet(?, file_row_number = true) p""",
                        [day, shown, str(path)],
                    )
                except (duckdb.Error, OSError) as exc:
                    file_problem(day, shown, f"unreadable_file|{describe_error(exc)}")
                continue
            rows, problem = text_file_lines(path)
            if problem:
                file_problem(day, shown, problem)
            if not rows:
                continue
            line_no, text, ok = zip(*rows, strict=True)
            batch = pa.table(
                {
                    "partition_date": pa.array([day] * len(rows), pa.date32()),
                    "source_file": pa.array([shown] * len(rows)),
                    "source_row": pa.array(line_no, pa.int64()),
                    "line": pa.array(text),
                    "utf8_ok": pa.array(ok),
                    "file_error": pa.nulls(len(rows), pa.string()),
                }
            )
            with registered(conn, _jsonl_batch=batch):
                conn.execute(f"INSERT INTO {staging} SELECT * FROM _jsonl_batch")
    staged.rows = conn.execute(f"SELECT count(*) FROM {staging}").fetchall()[0][0]
    return staged


# ISO 8601 as exchanged in practice, parsed strictly: a date, optionally a time (T, t or a
# space), optionally fractional seconds and a Z or +hh:mm / +hhmm / +hh offset within ±23:59.
# Without an offset a time means UTC. Anything else (e.g. "+99:99", "March 1") is no timestamp.
ISO8601_PATTERN = (
    r"^\d{4}-\d{2}-\d{2}"
    r"([Tt ]([01]\d|2[0-4]):[0-5]\d(:[0-5]\d(\.\d{1,9})?)?([Zz]|[+-]([01]\d|2[0-3])(:?[0-5]\d)?)?)?$"
)


def utc_timestamp_sql(text_sql: str) -> str:
    """SQL: the UTC TIMESTAMP an ISO 8601 string denotes, or NULL when it is not one. The one
    timestamp parser of every reader (traces, feedback, labels)."""
    return (
        f"CASE WHEN regexp_full_match({text_sql}, '{ISO8601_PATTERN}') "
        f"THEN TRY_CAST(upper({text_sql}) AS TIMESTAMPTZ) AT TIME ZONE 'UTC' END"
    )


def _type_ok(spec: FieldSpec) -> str:
    t = f"json_type(f['{spec.name}'])"
    if spec.kind == "string":
        return f"{t} = 'VARCHAR'"
    val = f"TRY_CAST(f['{spec.name}']->>'$' AS DOUBLE)"
    if spec.kind == "timestamp":
        parsed = utc_timestamp_sql(f"f['{spec.name}']->>'$'")
        return f"{t} = 'VARCHAR' AND {parsed} IS NOT NULL"
    if spec.kind == "number":
        # NaN and ±Infinity parse as JSON numbers here but are no measurement.
        return f"({t} IN ('BIGINT', 'UBIGINT') OR ({t} = 'DOUBLE' AND isfinite({val})))"
    if spec.kind == "integer":
        return f"({t} IN ('BIGINT', 'UBIGINT') OR ({t} = 'DOUBLE' AND isfinite({val}) AND {val} = floor({val})))"
    if spec.kind == "text_or_messages":
        msgs = f"TRY_CAST(f['{spec.name}'] AS JSON[])"
        well_formed = (
            f"len(list_filter({msgs}, lambda m: coalesce(json_type(m, '$.role'), '') <> 'VARCHAR'"
            f" OR coalesce(json_type(m, '$.content'), '') <> 'VARCHAR')) = 0"
            f" AND len(list_filter({msgs}, lambda m: m->>'role' = 'user')) > 0"
        )
        return f"({t} = 'VARCHAR' OR ({t} = 'ARRAY' AND {well_formed}))"
    return "true"  # json: any value


def _absent(spec: FieldSpec) -> str:
    t = f"coalesce(json_type(f['{spec.name}']), 'NULL')"
    if spec.kind == "string":
        return f"({t} = 'NULL' OR f['{spec.name}']->>'$' = '')"
    return f"{t} = 'NULL'"


def _names_where(conditions: Sequence[tuple[str, str]]) -> str:
    """SQL for the comma-joined names whose condition holds (empty string when none)."""
    if not conditions:
        return "''"
    parts = ", ".join(f"CASE WHEN {cond} THEN '{name}' END" for name, cond in conditions)
    return f"concat_ws(', ', {parts})"


def validate_sql(
    stream: StreamSpec, staging: str, rules: IngestRules, replaced_days_table: str
) -> str:
    """SELECT over the staging table giving every row `reason`/`detail` (null when valid)."""
    paths = ", ".join(sql_literal(f"$.{s.name}") for s in stream.fields)
    field_map = ", ".join(f"'{s.name}': x[{i + 1}]" for i, s in enumerate(stream.fields))
    missing = _names_where([(s.name, _absent(s)) for s in stream.fields if s.required])
    wrong = _names_where(
        [(s.name, f"NOT {_absent(s)} AND NOT ({_type_ok(s)})") for s in stream.fields]
    )
    oversized = _names_where(
        [
            (s.name, f"coalesce(strlen(f['{s.name}']::VARCHAR), 0) > {int(rules.max_field_bytes)}")
            for s in stream.fields
            if s.text
        ]
    )
    out_of_range = _names_where(
        [
            (s.name, f"TRY_CAST(f['{s.name}']->>'$' AS DOUBLE) < {s.minimum!r}")
            for s in stream.fields
            if s.minimum is not None
        ]
    )
    enum_cases = []
    for name, default_allowed, reason in stream.enums:
        allowed = rules.categories if name == "category" else default_allowed
        values = ", ".join(sql_literal(v) for v in allowed)
        enum_cases.append(
            f"WHEN f['{name}']->>'$' NOT IN ({values}) THEN '{reason}' || '|' || {name}_value"
        )
    enum_values = ", ".join(f"f['{name}']->>'$' AS {name}_value" for name, _, _ in stream.enums)
    key_exprs = ", ".join(stream.projection[k] for k in stream.dedupe_key)
    already_stored = (
        f"WHEN {stream.projection['trace_id']} IN (SELECT trace_id FROM {stream.table.name} "
        f"WHERE partition_date NOT IN (SELECT d FROM {replaced_days_table})) "
        "THEN 'already stored in another partition'"
        if stream.dedupe_key == ("trace_id",)
        else ""
    )
    return f"""
WITH parsed AS (
    SELECT *, CASE WHEN utf8_ok AND json_valid(line) AND json_type(line) = 'OBJECT'
                   THEN line::JSON END AS j
    FROM {staging}
), fields AS (
    SELECT *, CASE WHEN j IS NOT NULL THEN json_extract(j, [{paths}]) END AS x
    FROM parsed
), typed AS (
    SELECT * EXCLUDE (x), CASE WHEN x IS NOT NULL THEN MAP {{{field_map}}} END AS f
    FROM fields
), checked AS (
    SELECT *,
        {utc_timestamp_sql("f['ts']->>'$'")} AS ts_utc,
        {missing} AS missing_names,
        {out_of_range} AS out_of_range_names,
        {wrong} AS wrong_names,
        {oversized} AS oversized_names,
        {enum_values}
    FROM typed
), reasoned AS (
    SELECT *, CASE
        WHEN file_error IS NOT NULL THEN file_error
        WHEN NOT utf8_ok THEN 'invalid_utf8|line is not valid UTF-8'
        WHEN j IS NULL THEN 'malformed_json|not a JSON object'
        WHEN missing_names <> '' THEN 'missing_field|' || missing_names
        WHEN wrong_names <> '' THEN 'wrong_type|' || wrong_names
        WHEN oversized_names <> '' THEN 'oversized_field|' || oversized_names || ' over {int(rules.max_field_bytes)} bytes'
        WHEN out_of_range_names <> '' THEN 'out_of_range|' || out_of_range_names
        {" ".join(enum_cases)}
        WHEN CAST(ts_utc AS DATE) <> partition_date
            THEN 'ts_outside_partition|ts ' || CAST(ts_utc AS VARCHAR) || ' is not on ' || CAST(partition_date AS VARCHAR)
    END AS why
    FROM checked
), ranked AS (
    SELECT *, CASE WHEN why IS NULL THEN row_number() OVER (
        PARTITION BY why IS NULL, {key_exprs} ORDER BY partition_date, source_file, source_row) END AS copy_no
    FROM reasoned
), final AS (
    SELECT *, split_part(why, '|', 1) AS why_code, nullif(substr(why, strlen(split_part(why, '|', 1)) + 2), '') AS why_detail,
        CASE WHEN why IS NOT NULL THEN NULL
             WHEN copy_no > 1 THEN 'seen earlier in this ingest'
             {already_stored}
        END AS duplicate_detail
    FROM ranked
)
SELECT *,
    CASE WHEN duplicate_detail IS NOT NULL THEN '{stream.dedupe_reason}' ELSE why_code END AS reason,
    coalesce(duplicate_detail, why_detail) AS detail
FROM final
"""


@dataclass(frozen=True)
class IngestCounts:
    rows_in: int
    stored: int
    quarantined: int
    by_reason: dict[str, int]
    by_day: dict[str, tuple[int, int]]
    files: StagedFiles = field(default_factory=StagedFiles)

    @property
    def balanced(self) -> bool:
        return self.rows_in == self.stored + self.quarantined


def ingest_days(
    conn: duckdb.DuckDBPyConnection,
    stream: StreamSpec,
    files_by_day: Mapping[date, Sequence[Path]],
    rules: IngestRules,
    root: Path | None = None,
    reservoir: Reservoir | None = None,
) -> IngestCounts:
    """Validate the days' files and replace those days in the table and quarantine, atomically.

    With a `reservoir`, valid traces whose id falls in the reservoir bucket are written in
    full to the holdout store and kept in the table without text (`sealed`); quarantined rows
    with such an id keep no raw text either.
    """
    staging = f"_staging_{stream.name}"
    staged = stage_files(conn, files_by_day, staging, root)
    rows_in = staged.rows
    conn.execute("CREATE OR REPLACE TEMP TABLE _replaced_days (d DATE)")
    conn.executemany("INSERT INTO _replaced_days VALUES (?)", [[d] for d in sorted(files_by_day)])
    trace_id = "CASE WHEN f IS NOT NULL THEN f['trace_id']->>'$' END"
    sealed = (
        f"coalesce({reservoir_sql(trace_id, reservoir.share)}, false)"
        if reservoir and stream.sealable
        else "false"
    )
    conn.execute(
        f"CREATE OR REPLACE TEMP TABLE _checked_{stream.name} AS "
        f"SELECT *, {sealed} AS sealed FROM ({validate_sql(stream, staging, rules, '_replaced_days')})"
    )
    cols = stream.table.column_names
    select = ", ".join(
        f"CASE WHEN sealed THEN NULL ELSE {stream.projection[c]} END AS {c}"
        if c in SEALED_TEXT_COLUMNS
        else f"{stream.projection[c]} AS {c}"
        for c in cols
    )
    qcols = stream.quarantine.column_names
    if reservoir and stream.sealable:
        # The holdout store first, in its own transaction (one transaction writes one file);
        # both writes replace whole days, so a crash between them is mended by a re-run.
        full = ", ".join(f"{stream.projection[c]} AS {c}" for c in RESERVOIR_TRACES.column_names)
        target = f"{reservoir.alias}.{RESERVOIR_TRACES.name}"
        with transaction(conn):
            conn.execute(
                f"DELETE FROM {target} WHERE partition_date IN (SELECT d FROM _replaced_days)"
            )
            conn.execute(
                f"INSERT INTO {target} SELECT {full} FROM _checked_{stream.name} WHERE reason IS NULL AND sealed ORDER BY ts"
            )
    with transaction(conn):
        for table in (stream.table.name, stream.quarantine.name):
            conn.execute(
                f"DELETE FROM {table} WHERE partition_date IN (SELECT d FROM _replaced_days)"
            )
        conn.execute(
            f"INSERT INTO {stream.table.name} ({', '.join(cols)}) SELECT {select} "
            f"FROM _checked_{stream.name} WHERE reason IS NULL ORDER BY ts"
        )
        conn.execute(
            f"""INSERT INTO {stream.quarantine.name} ({", ".join(qcols)})
            SELECT partition_date, source_file, source_row, reason, detail,
                   CASE WHEN f IS NOT NULL THEN f['trace_id']->>'$' END,
                   CASE WHEN sealed THEN NULL ELSE left(line, {RAW_PREVIEW_CHARS}) END, sealed
            FROM _checked_{stream.name} WHERE reason IS NOT NULL ORDER BY partition_date, source_file, source_row"""
        )
    by_reason = dict(
        conn.execute(
            f"SELECT reason, count(*) FROM _checked_{stream.name} WHERE reason IS NOT NULL GROUP BY 1 ORDER BY 1"
        ).fetchall()
    )
    by_day = {
        str(d): (int(s), int(q))
        for d, s, q in conn.execute(
            f"""SELECT partition_date, count(*) FILTER (WHERE reason IS NULL), count(*) FILTER (WHERE reason IS NOT NULL)
            FROM _checked_{stream.name} GROUP BY 1 ORDER BY 1"""
        ).fetchall()
    }
    stored = sum(s for s, _ in by_day.values())
    quarantined = sum(q for _, q in by_day.values())
    for t in (staging, f"_checked_{stream.name}", "_replaced_days"):
        conn.execute(f"DROP TABLE IF EXISTS {t}")
    counts = IngestCounts(rows_in, stored, quarantined, by_reason, by_day, staged)
    if not counts.balanced:
        raise RuntimeError(
            f"{stream.name}: {rows_in} rows in but {stored} stored + {quarantined} quarantined"
        )
    return counts
