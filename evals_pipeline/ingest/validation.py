"""Row-level validation of one stream's files into a table and its quarantine, in DuckDB.

The shape of the work, in bounded batches so memory stays flat however large a day is:
1. `stage_batches` reads the days' files a batch at a time into a staging table of raw rows
   (JSONL lines, or Parquet rows turned into JSON text), keeping file and row number. Python
   only splits lines and checks UTF-8; everything after is SQL.
2. `validate_sql` (generated from the record specs in `records/`) gives every row of the
   batch either no reason or the first failed rule; a key seen in an earlier batch of the same
   ingest, or stored in another partition, is a duplicate.
3. Each batch's rows go to the target and quarantine tables inside one transaction that first
   deleted the days' partitions, so re-ingesting a day replaces it atomically.
So rows in = rows stored + rows quarantined.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path

import duckdb
import pyarrow as pa

from evals_pipeline.files import (
    check_readable,
    describe_error,
    file_kind,
    is_marker,
    iter_line_batches,
    unsupported,
)
from evals_pipeline.pools.store import reservoir_sql
from evals_pipeline.records import (
    DEFAULT_CATEGORIES,
    FEEDBACK_FIELDS,
    FEEDBACK_SIGNALS,
    PARTITION_VERSIONS,
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


# Rows per batch: large enough that per-statement overhead is small, small enough that a
# batch's JSON and its validation stay well under a gigabyte.
BATCH_ROWS = 50_000
BATCH_BYTES = 4 << 20


def _file_batches(
    conn: duckdb.DuckDBPyConnection, path: Path, batch_rows: int
) -> Iterator[tuple[str, tuple[int, int] | list[tuple[int, str, bool]]]]:
    """The rows of one file a batch at a time: ('parquet', (first row, end row)) or ('lines',
    [(line number, text, utf8 ok)]). Raises when the file cannot be read; a compressed file
    is read through first, so a truncated one yields nothing."""
    kind = file_kind(path)
    if kind.format == "parquet":
        if path.is_dir():
            raise IsADirectoryError(f"Is a directory: '{path}'")
        cursor = conn.cursor()  # see _stage: a failed read must not abort the transaction
        try:
            total = cursor.execute(
                "SELECT coalesce(sum(num_rows), 0) FROM parquet_file_metadata(?)", [str(path)]
            ).fetchall()[0][0]
        finally:
            cursor.close()
        for start in range(0, int(total), batch_rows):
            yield "parquet", (start, start + batch_rows)
        return
    if kind.format != "jsonl":
        raise _Unsupported(unsupported(path))
    check_readable(path, kind)
    pending: list[tuple[int, str, bool]] = []
    for lines in iter_line_batches(path, kind, BATCH_BYTES):
        pending.extend(lines)
        while len(pending) >= batch_rows:
            yield "lines", pending[:batch_rows]
            pending = pending[batch_rows:]
    if pending:
        yield "lines", pending


class _Unsupported(Exception):
    """A file of no format the pipeline reads (its message is the quarantine reason)."""


def stage_batches(
    conn: duckdb.DuckDBPyConnection,
    files_by_day: Mapping[date, Sequence[Path]],
    staging: str,
    staged: StagedFiles,
    root: Path | None = None,
    batch_rows: int = BATCH_ROWS,
) -> Iterator[int]:
    """Fill temp table `staging` with the next batch of rows of the given files (small files
    share a batch, a large one spans several), yielding its row count each time; the caller
    validates and writes the batch before asking for the next.

    A file that cannot be read (a directory named `.jsonl`, a truncated Parquet or gzip file)
    or is of no format the pipeline reads becomes one row with `file_error` set: it is
    quarantined with that reason while the day's other files ingest.
    """
    conn.execute(STAGING_DDL.format(name=staging))
    filled = 0
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
            problem = None
            try:
                for form, rows in _file_batches(conn, path, batch_rows):
                    filled += _stage(conn, staging, day, shown, path, form, rows)
                    if filled >= batch_rows:
                        yield _counted(staged, filled)
                        conn.execute(STAGING_DDL.format(name=staging))
                        filled = 0
            except _Unsupported as exc:
                problem = str(exc)
            except Exception as exc:  # any failure to read is the file's reason, never a crash
                problem = f"unreadable_file|{describe_error(exc)}"
            if problem is not None:
                conn.execute(
                    f"INSERT INTO {staging} VALUES (?, ?, 0, NULL, true, ?)", [day, shown, problem]
                )
                staged.unreadable.append(f"{shown}: {problem.replace('|', ': ', 1)}")
                filled += 1
    if filled:
        yield _counted(staged, filled)


def _counted(staged: StagedFiles, rows: int) -> int:
    staged.rows += rows
    return rows


def _stage(
    conn: duckdb.DuckDBPyConnection,
    staging: str,
    day: date,
    shown: str,
    path: Path,
    form: str,
    rows: tuple[int, int] | list[tuple[int, str, bool]],
) -> int:
    """Append one piece of a file to the staging table; returns its row count."""
    if form == "parquet":
        # One code path for both formats: Parquet rows become JSON text. A row range reads
        # only its row groups (DuckDB prunes them by file_row_number).
        start, end = rows  # type: ignore[misc]
        # Read on a cursor of its own: a file DuckDB cannot read raises there, and does not
        # abort the transaction the day is written in.
        cursor = conn.cursor()
        try:
            batch = cursor.execute(
                """SELECT ?::DATE AS partition_date, ?::VARCHAR AS source_file,
                          file_row_number + 1 AS source_row, to_json(p)::VARCHAR AS line,
                          true AS utf8_ok, NULL::VARCHAR AS file_error
                FROM read_parquet(?, file_row_number = true) p
                WHERE file_row_number >= ? AND file_row_number < ?""",
                [day, shown, str(path), start, end],
            ).to_arrow_table()
        finally:
            cursor.close()
        with registered(conn, _parquet_batch=batch):
            conn.execute(f"INSERT INTO {staging} SELECT * FROM _parquet_batch")
        return batch.num_rows
    line_no, text, ok = zip(*rows, strict=True)  # type: ignore[misc]
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
    return len(rows)


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
    stream: StreamSpec,
    staging: str,
    rules: IngestRules,
    replaced_days_table: str,
    accepted_table: str | None = None,
) -> str:
    """SELECT over the staging table giving every row `reason`/`detail` (null when valid).
    `accepted_table` holds the keys (`stream.dedupe_key`) of rows an earlier batch of the same
    ingest stored: the same key again is a duplicate, as within the batch."""
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
    key_match = " AND ".join(
        f"a.{k} IS NOT DISTINCT FROM {stream.projection[k]}" for k in stream.dedupe_key
    )
    seen_in_earlier_batch = (
        f"WHEN EXISTS (SELECT 1 FROM {accepted_table} a WHERE {key_match}) "
        "THEN 'seen earlier in this ingest'"
        if accepted_table
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
    SELECT * EXCLUDE (x), CASE WHEN x IS NOT NULL THEN {{{field_map}}} END AS f
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
             {seen_in_earlier_batch}
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
    batch_rows: int = BATCH_ROWS,
) -> IngestCounts:
    """Validate the days' files and replace those days in the table and quarantine, atomically.

    The files are read and validated in batches of at most `batch_rows` rows, so memory does
    not grow with the day. With a `reservoir`, valid traces whose id falls in the reservoir
    bucket are written in full to the holdout store and kept in the table without text
    (`sealed`); quarantined rows with such an id keep no raw text either.
    """
    name = stream.name
    staging, checked, accepted = f"_staging_{name}", f"_checked_{name}", f"_accepted_{name}"
    sealable = reservoir is not None and stream.sealable
    conn.execute("CREATE OR REPLACE TEMP TABLE _replaced_days (d DATE)")
    conn.executemany("INSERT INTO _replaced_days VALUES (?)", [[d] for d in sorted(files_by_day)])
    key_columns = ", ".join(f"{k} {_key_type(stream, k)}" for k in stream.dedupe_key)
    conn.execute(f"CREATE OR REPLACE TEMP TABLE {accepted} ({key_columns})")
    if sealable:
        conn.execute(
            f"CREATE OR REPLACE TEMP TABLE _sealed_{name} AS "
            f"SELECT * FROM {reservoir.alias}.{RESERVOIR_TRACES.name} LIMIT 0"  # type: ignore[union-attr]
        )
    trace_id = "CASE WHEN f IS NOT NULL THEN f['trace_id']->>'$' END"
    sealed = (
        f"coalesce({reservoir_sql(trace_id, reservoir.share)}, false)"  # type: ignore[union-attr]
        if sealable
        else "false"
    )
    validate = (
        f"CREATE OR REPLACE TEMP TABLE {checked} AS SELECT {_checked_columns(stream, sealable)} "
        f"FROM (SELECT *, {sealed} AS sealed "
        f"FROM ({validate_sql(stream, staging, rules, '_replaced_days', accepted)}))"
    )
    staged = StagedFiles()
    by_reason: Counter[str] = Counter()
    by_day: dict[str, list[int]] = {}
    # Batches land in temp tables (committed as they go, so DuckDB can spill them under its
    # memory limit); the day then replaces its partitions in one short transaction.
    stored_rows, quarantined_rows = f"_stored_{name}", f"_quarantined_{name}"
    for table, like in ((stored_rows, stream.table), (quarantined_rows, stream.quarantine)):
        conn.execute(f"CREATE OR REPLACE TEMP TABLE {table} AS SELECT * FROM {like} LIMIT 0")
    for _ in stage_batches(conn, files_by_day, staging, staged, root, batch_rows):
        conn.execute(validate)
        _write_batch(conn, stream, checked, accepted, sealable, stored_rows, quarantined_rows)
        for reason, n in conn.execute(
            f"SELECT reason, count(*) FROM {checked} WHERE reason IS NOT NULL GROUP BY 1"
        ).fetchall():
            by_reason[reason] += n
        for d, ok, bad in conn.execute(
            f"""SELECT partition_date, count(*) FILTER (WHERE reason IS NULL),
                   count(*) FILTER (WHERE reason IS NOT NULL) FROM {checked} GROUP BY 1"""
        ).fetchall():
            day = by_day.setdefault(str(d), [0, 0])
            day[0], day[1] = day[0] + ok, day[1] + bad
    with transaction(conn):
        for table in (stream.table.name, stream.quarantine.name):
            conn.execute(
                f"DELETE FROM {table} WHERE partition_date IN (SELECT d FROM _replaced_days)"
            )
        conn.execute(f"INSERT INTO {stream.table.name} SELECT * FROM {stored_rows} ORDER BY ts")
        conn.execute(
            f"INSERT INTO {stream.quarantine.name} SELECT * FROM {quarantined_rows} "
            "ORDER BY partition_date, source_file, source_row"
        )
        # What the snapshot refreshes next: these days of this table changed now.
        conn.execute(
            f"INSERT OR REPLACE INTO {PARTITION_VERSIONS} "
            "SELECT ?, d, now()::TIMESTAMP FROM _replaced_days",
            [stream.table.name],
        )
    if sealable:
        # The holdout store in its own transaction (one transaction writes one file); both
        # writes replace whole days, so a crash between them is mended by a re-run.
        target = f"{reservoir.alias}.{RESERVOIR_TRACES.name}"  # type: ignore[union-attr]
        with transaction(conn):
            conn.execute(
                f"DELETE FROM {target} WHERE partition_date IN (SELECT d FROM _replaced_days)"
            )
            conn.execute(f"INSERT INTO {target} SELECT * FROM _sealed_{name} ORDER BY ts")
    for t in (
        staging,
        checked,
        accepted,
        "_replaced_days",
        f"_sealed_{name}",
        stored_rows,
        quarantined_rows,
    ):
        conn.execute(f"DROP TABLE IF EXISTS {t}")
    stored = sum(s for s, _ in by_day.values())
    quarantined = sum(q for _, q in by_day.values())
    counts = IngestCounts(
        staged.rows,
        stored,
        quarantined,
        dict(sorted(by_reason.items())),
        {d: (s, q) for d, (s, q) in sorted(by_day.items())},
        staged,
    )
    if not counts.balanced:
        raise RuntimeError(
            f"{name}: {staged.rows} rows in but {stored} stored + {quarantined} quarantined"
        )
    return counts


def _key_type(stream: StreamSpec, key: str) -> str:
    return next(c.sql_type for c in stream.table.columns if c.name == key)


def _checked_columns(stream: StreamSpec, sealable: bool) -> str:
    """What a validated batch keeps: the typed columns its rows are written with, the reason,
    and the raw line only of a quarantined row (the JSON and the parsed fields stay behind,
    so a batch holds little more than its values)."""
    wanted = [*stream.table.column_names, *stream.dedupe_key]
    if sealable:
        wanted += RESERVOIR_TRACES.column_names
    exprs = {c: stream.projection[c] for c in dict.fromkeys(wanted)}
    exprs |= {
        "partition_date": "partition_date",
        "source_file": "source_file",
        "source_row": "source_row",
        "reason": "reason",
        "detail": "detail",
        "sealed": "sealed",
        "_trace_id": "CASE WHEN f IS NOT NULL THEN f['trace_id']->>'$' END",
        "_raw": f"CASE WHEN reason IS NOT NULL AND NOT sealed THEN left(line, {RAW_PREVIEW_CHARS}) END",
    }
    return ", ".join(f"{e} AS {c}" for c, e in exprs.items())


def _write_batch(
    conn: duckdb.DuckDBPyConnection,
    stream: StreamSpec,
    checked: str,
    accepted: str,
    sealable: bool,
    stored_rows: str,
    quarantined_rows: str,
) -> None:
    """One validated batch into the day's rows to store (sealed rows without text) and to
    quarantine, the keys accepted so far, and (sealed rows in full) the reservoir's."""
    cols = stream.table.column_names
    select = ", ".join(
        f"CASE WHEN sealed THEN NULL ELSE {c} END" if c in SEALED_TEXT_COLUMNS else c for c in cols
    )
    conn.execute(
        f"INSERT INTO {stored_rows} ({', '.join(cols)}) SELECT {select} "
        f"FROM {checked} WHERE reason IS NULL"
    )
    keys = ", ".join(stream.dedupe_key)
    conn.execute(f"INSERT INTO {accepted} SELECT {keys} FROM {checked} WHERE reason IS NULL")
    qcols = stream.quarantine.column_names
    conn.execute(
        f"""INSERT INTO {quarantined_rows} ({", ".join(qcols)})
        SELECT partition_date, source_file, source_row, reason, detail, _trace_id, _raw, sealed
        FROM {checked} WHERE reason IS NOT NULL"""
    )
    if sealable:
        full = ", ".join(RESERVOIR_TRACES.column_names)
        conn.execute(
            f"INSERT INTO _sealed_{stream.name} SELECT {full} FROM {checked} "
            "WHERE reason IS NULL AND sealed"
        )
