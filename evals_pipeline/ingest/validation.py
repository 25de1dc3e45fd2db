"""Row-level validation of one stream's files into a table and its quarantine, in DuckDB.

The shape of the work, in bounded batches so memory stays flat however large a day is:
1. `staged_batches` reads the days' files a batch at a time as Arrow tables of raw rows
   (JSONL lines split by Arrow, or Parquet rows turned into JSON text by DuckDB), keeping
   file and row number. Python touches a line only when its piece of file is not UTF-8.
2. `validate_sql` (generated from the record specs in `records/`) parses each line once for
   the fields' JSON types and once for their values, and gives every row either no reason or
   the first failed rule.
3. Inside one transaction that first deleted the days' partitions, each batch is validated
   and its valid rows inserted in one statement (`BatchStatements`); a batch with bad rows is
   validated again to quarantine them; then the keys of the whole ingest
   are checked at once (a copy seen earlier in this ingest, or stored in another partition
   within `duplicate_window_days`) and the later copies move to the quarantine. Re-ingesting
   a day replaces it atomically, and rows in = rows stored + rows quarantined.
"""

from __future__ import annotations

import queue
import re
import threading
from collections import Counter
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import closing
from dataclasses import dataclass, field
from datetime import date, timedelta
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.compute as pc

from evals_pipeline.files import (
    check_readable,
    describe_error,
    file_kind,
    is_marker,
    iter_line_tables,
    unsupported,
)
from evals_pipeline.ingest import spans
from evals_pipeline.ingest.spans import Derivation
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
from evals_pipeline.warehouse import over_arrow, transaction

RAW_PREVIEW_CHARS = 2000


@dataclass(frozen=True)
class Reservoir:
    """Where sealed traces go: the attached holdout store's alias and the diverted share."""

    alias: str
    share: float


@dataclass(frozen=True)
class StreamSpec:
    """What makes a row of one stream valid, and where valid and bad rows go.

    Expressions (`projection`, checks) see each field `x` of the row as `t_x` (its JSON type:
    VARCHAR, BIGINT, DOUBLE, OBJECT, ARRAY, ..., 'NULL' for a JSON null, NULL when absent),
    `v_x` (its value as text: a string unquoted, anything else as JSON) and the raw `line`."""

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


def _messages_text(name: str = "input", role: str = "user") -> str:
    # Last message of the role in an OpenAI-style list; the text itself for a string.
    msgs = f"TRY_CAST(v_{name}::JSON AS JSON[])"
    last = f"list_filter({msgs}, lambda m: m->>'role' = '{role}')[-1]->>'content'"
    return f"CASE WHEN t_{name} = 'VARCHAR' THEN v_{name} WHEN t_{name} = 'ARRAY' THEN {last} END"


def _json_or_null(name: str) -> str:
    # A JSON string keeps its quotes: the value's JSON text is read from the line for it.
    return (
        f"CASE WHEN coalesce(t_{name}, 'NULL') = 'NULL' THEN NULL "
        f"WHEN t_{name} = 'VARCHAR' THEN json_extract(line, '$.{name}') ELSE v_{name}::JSON END"
    )


def _number(name: str) -> str:
    return f"TRY_CAST(v_{name} AS DOUBLE)"


def _integer(name: str) -> str:
    return f"TRY_CAST(TRY_CAST(v_{name} AS DOUBLE) AS BIGINT)"


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
        "trace_id": "v_trace_id",
        "ts": "ts_utc",
        "partition_date": "partition_date",
        "session_id": "v_session_id",
        "user_id": "v_user_id",
        "app_version": "v_app_version",
        "category": "v_category",
        "user_segment": "v_user_segment",
        "input": _messages_text(),
        "input_messages": "CASE WHEN t_input = 'ARRAY' THEN v_input::JSON END",
        "output": _messages_text("output", "assistant"),
        "output_messages": "CASE WHEN t_output = 'ARRAY' THEN v_output::JSON END",
        "category_source": "coalesce(v_category_source, 'source')",
        "context": _json_or_null("context"),
        "tool_calls": _json_or_null("tool_calls"),
        "latency_ms": _number("latency_ms"),
        "cost_usd": _number("cost_usd"),
        "input_tokens": _integer("input_tokens"),
        "output_tokens": _integer("output_tokens"),
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
        "trace_id": "v_trace_id",
        "ts": "ts_utc",
        "partition_date": "partition_date",
        "signal": "v_signal",
        "value": _number("value"),
        "source_file": "source_file",
        "source_row": "source_row",
    },
)


@dataclass(frozen=True)
class IngestRules:
    """Run-time knobs of validation."""

    max_field_bytes: int = 65_536
    categories: tuple[str, ...] = DEFAULT_CATEGORIES
    # A trace id stored in another partition this many days either side of the ingested days
    # is a duplicate; None looks at all of history (the check then grows with it).
    duplicate_window_days: int | None = 7


STAGING_SCHEMA = pa.schema(
    [
        ("partition_date", pa.date32()),
        ("source_file", pa.large_string()),
        ("source_row", pa.int64()),
        ("line", pa.large_string()),
        ("utf8_ok", pa.bool_()),
        ("file_error", pa.large_string()),
    ]
)


@dataclass
class StagedFiles:
    """What staging saw: rows staged (file-level problems count as one row each, so they are
    quarantined like any bad row), the marker files it ignored (hidden, `_SUCCESS`), and where
    each file it read is (by the name rows carry in `source_file`)."""

    rows: int = 0
    files: int = 0
    unreadable: list[str] = field(default_factory=list)
    ignored: list[str] = field(default_factory=list)
    paths: dict[str, Path] = field(default_factory=dict)


# Rows per batch: large enough that per-statement overhead is small, small enough that a
# batch's text and its validation stay well under the warehouse's memory limit.
BATCH_ROWS = 50_000
BATCH_BYTES = 4 << 20
# Text converted at once by the span reader (spans.add_lines): large enough that planning
# its statements is small beside the work, small enough for a 1 GB warehouse memory limit.
SPAN_PIECE_BYTES = 16 << 20


class SpanConversionError(RuntimeError):
    """Converting a span export failed on rows it could read: a fault of the pipeline, raised
    rather than quarantined."""


class _Unsupported(Exception):
    """A file of no format the pipeline reads (its message is the quarantine reason)."""


def _file_pieces(
    conn: duckdb.DuckDBPyConnection, path: Path, batch_rows: int
) -> Iterator[pa.Table]:
    """The rows of one file a piece at a time as (`source_row`, `line`, `utf8_ok`). Raises
    when the file cannot be read; a compressed file is read through first, so a truncated
    one yields nothing."""
    kind = file_kind(path)
    if kind.format == "parquet":
        if path.is_dir():
            raise IsADirectoryError(f"Is a directory: '{path}'")
        # Read on a cursor of its own: a file DuckDB cannot read raises there, and does not
        # abort the transaction the day is written in.
        cursor = conn.cursor()
        try:
            total = cursor.execute(
                "SELECT coalesce(sum(num_rows), 0) FROM parquet_file_metadata(?)", [str(path)]
            ).fetchall()[0][0]
            for start in range(0, int(total), batch_rows):
                # One code path for both formats: Parquet rows become JSON text. A row range
                # reads only its row groups (DuckDB prunes them by file_row_number).
                yield cursor.execute(
                    """SELECT file_row_number + 1 AS source_row, to_json(p)::VARCHAR AS line,
                              true AS utf8_ok
                    FROM read_parquet(?, file_row_number = true) p
                    WHERE file_row_number >= ? AND file_row_number < ?""",
                    [str(path), start, start + batch_rows],
                ).to_arrow_table()
        finally:
            cursor.close()
        return
    if kind.format != "jsonl":
        raise _Unsupported(unsupported(path))
    check_readable(path, kind)
    yield from iter_line_tables(path, kind, BATCH_BYTES)


def _staging_table(day: date, shown: str, piece: pa.Table) -> pa.Table:
    n = piece.num_rows
    lines = piece.column("line").cast(pa.large_string())
    return pa.table(
        {
            "partition_date": pa.repeat(pa.scalar(day, pa.date32()), n),
            "source_file": pa.repeat(pa.scalar(shown, pa.large_string()), n),
            "source_row": piece.column("source_row").cast(pa.int64()),
            "line": lines,
            "utf8_ok": piece.column("utf8_ok").cast(pa.bool_()),
            "file_error": _too_deep(lines),
        },
        schema=STAGING_SCHEMA,
    )


# JSON nested deeper than this is malformed for both engines (Spark's parser stops there;
# DuckDB's would go on): a line of 10,000 brackets is an attack, not a trace.
MAX_JSON_DEPTH = 1000
TOO_DEEP = f"malformed_json|nested deeper than {MAX_JSON_DEPTH} levels"
_JSON_STRING = re.compile(r'"(?:[^"\\]|\\.)*"')


def _too_deep(lines: pa.ChunkedArray) -> pa.ChunkedArray:
    """Per line, `TOO_DEEP` when its JSON nests deeper than `MAX_JSON_DEPTH`, else null.
    Only lines with that many opening brackets are scanned (in Arrow, then in Python)."""
    openers = pc.add(pc.count_substring(lines, "["), pc.count_substring(lines, "{"))
    candidates = pc.greater(pc.fill_null(openers, 0), MAX_JSON_DEPTH)
    out: list[str | None] = [None] * len(lines)
    if pc.any(candidates).as_py():
        for i in pc.indices_nonzero(candidates).to_pylist():
            if _depth(lines[i].as_py()) > MAX_JSON_DEPTH:
                out[i] = TOO_DEEP
    return pa.chunked_array([pa.array(out, pa.large_string())])


def _depth(text: str) -> int:
    """The deepest nesting of brackets outside JSON strings."""
    depth = deepest = 0
    for ch in _JSON_STRING.sub("", text):
        if ch in "[{":
            depth += 1
            deepest = max(deepest, depth)
        elif ch in "]}":
            depth -= 1
    return deepest


def staged_batches(
    conn: duckdb.DuckDBPyConnection,
    files_by_day: Mapping[date, Sequence[Path]],
    staged: StagedFiles,
    root: Path | None = None,
    batch_rows: int = BATCH_ROWS,
) -> Iterator[pa.Table]:
    """The raw rows of the given files, `batch_rows` at a time (small files share a batch, a
    large one spans several), as Arrow tables of `STAGING_SCHEMA`; the caller validates and
    writes a batch before asking for the next.

    A file that cannot be read (a directory named `.jsonl`, a truncated Parquet or gzip file)
    or is of no format the pipeline reads becomes one row with `file_error` set: it is
    quarantined with that reason while the day's other files ingest.
    """
    pending: list[pa.Table] = []
    filled = 0
    for day, files in sorted(files_by_day.items()):
        for path in sorted(files):
            shown = _data_file(path, root, staged)
            if shown is None:
                continue
            for piece in stage_file(conn, day, path, shown, batch_rows):
                if (problem := file_problem(piece)) is not None:
                    staged.unreadable.append(f"{shown}: {problem.replace('|', ': ', 1)}")
                pending.append(piece)
                filled += piece.num_rows
                while filled >= batch_rows:
                    whole = pa.concat_tables(pending)
                    yield _counted(staged, whole.slice(0, batch_rows))
                    rest = whole.slice(batch_rows)
                    pending, filled = [rest], rest.num_rows
    if filled:
        yield _counted(staged, pa.concat_tables(pending))


def stage_file(
    conn: duckdb.DuckDBPyConnection, day: date, path: Path, shown: str, batch_rows: int
) -> Iterator[pa.Table]:
    """The raw rows of one file as `STAGING_SCHEMA` tables of at most `batch_rows` rows; a
    file that cannot be read (or is of no format the pipeline reads) ends with one row
    carrying its `file_error`. The unit of work of both engines' staging."""
    problem = None
    try:
        for piece in _file_pieces(conn, path, batch_rows):
            yield _staging_table(day, shown, piece)
    except _Unsupported as exc:
        problem = str(exc)
    except Exception as exc:  # any failure to read is the file's reason, never a crash
        problem = f"unreadable_file|{describe_error(exc)}"
    if problem is not None:
        yield pa.table(
            {
                "partition_date": pa.array([day], pa.date32()),
                "source_file": pa.array([shown], pa.large_string()),
                "source_row": pa.array([0], pa.int64()),
                "line": pa.nulls(1, pa.large_string()),
                "utf8_ok": pa.array([True]),
                "file_error": pa.array([problem], pa.large_string()),
            },
            schema=STAGING_SCHEMA,
        )


def file_problem(piece: pa.Table) -> str | None:
    """The file-level reason a staging piece carries (its one row, numbered 0), if it is one."""
    if piece.num_rows != 1 or piece.column("source_row")[0].as_py() != 0:
        return None
    return piece.column("file_error")[0].as_py()


@dataclass(frozen=True)
class SpanReading:
    """How a span export is read into our records (source kinds otel, openinference,
    langfuse): its format, how fields are derived, and for the feedback stream which files
    are trace exports (read for their events and scores; their problems belong to traces)."""

    format: str
    derive: Derivation
    trace_files: frozenset[Path] = frozenset()


def span_batches(
    conn: duckdb.DuckDBPyConnection,
    stream: StreamSpec,
    reading: SpanReading,
    files_by_day: Mapping[date, Sequence[Path]],
    staged: StagedFiles,
    root: Path | None = None,
    batch_rows: int = BATCH_ROWS,
) -> Iterator[pa.Table]:
    """`staged_batches` of a span export: every file is read once into spans (`spans.py`),
    spans are grouped into one record per trace (or feedback events are read out of them),
    and the records and unreadable lines come back as staging rows of the requested days.
    A file in a flat export folder is listed for every day: it is read once, and its traces
    are partitioned by the day they started."""
    feedback = stream.name == FEEDBACK_STREAM.name
    spans.create_work_tables(conn)
    try:
        seen: set[Path] = set()
        for day, files in sorted(files_by_day.items()):
            for path in sorted(files):
                if path in seen:
                    continue
                seen.add(path)
                shown = _data_file(path, root, staged)
                if shown is None:
                    continue
                in_folder = spans.folder_day(path)
                pieces = _file_pieces(conn, path, batch_rows)
                pending: list[pa.Table] = []

                def convert(pending: list[pa.Table] = pending, shown: str = shown) -> None:
                    if not pending:
                        return
                    lines = pa.concat_tables(pending)
                    pending.clear()
                    try:
                        spans.add_lines(conn, reading.format, lines, feedback, reading.derive)
                    except Exception as exc:
                        raise SpanConversionError(f"{shown}: could not convert its spans") from exc

                try:
                    # Only reading the file is the file's problem; a failure to convert its
                    # spans is the pipeline's, and raises. Pieces are converted
                    # SPAN_PIECE_BYTES at a time: each conversion is a few large statements
                    # whose planning would dominate on small pieces.
                    while (piece := next(pieces, None)) is not None:
                        n = piece.num_rows
                        pending.append(
                            pa.table(
                                {
                                    "source_file": pa.repeat(
                                        pa.scalar(shown, pa.large_string()), n
                                    ),
                                    "source_row": piece.column("source_row").cast(pa.int64()),
                                    "folder_day": pa.repeat(pa.scalar(in_folder, pa.date32()), n),
                                    "line": piece.column("line").cast(pa.large_string()),
                                    "utf8_ok": piece.column("utf8_ok").cast(pa.bool_()),
                                }
                            )
                        )
                        if sum(t.nbytes for t in pending) >= SPAN_PIECE_BYTES:
                            convert()
                    convert()
                except SpanConversionError:
                    raise
                except Exception as exc:  # any failure to read is the file's reason, never a crash
                    convert()
                    problem = (
                        str(exc)
                        if isinstance(exc, _Unsupported)
                        else f"unreadable_file|{describe_error(exc)}"
                    )
                    spans.add_problem(conn, shown, in_folder or day, problem)
                    staged.unreadable.append(f"{shown}: {problem.replace('|', ': ', 1)}")
        if feedback:
            # Trace exports are read for their events and scores; what in them cannot be
            # read is quarantined by the traces stream, not twice.
            shown_traces = [_shown(p, root) for p in reading.trace_files]
            conn.execute(
                "DELETE FROM _span_problems WHERE list_contains(?, source_file)", [shown_traces]
            )
        select = (
            spans.feedback_sql(reading.derive)
            if feedback
            else spans.records_sql(reading.derive, reading.format)
        )
        for batch in spans.staged_records(conn, select, sorted(files_by_day), batch_rows):
            yield _counted(staged, batch.cast(STAGING_SCHEMA))
    finally:
        spans.drop_work_tables(conn)


def _data_file(path: Path, root: Path | None, staged: StagedFiles) -> str | None:
    """The name rows of `path` carry, with the file counted in `staged`; None for a hidden or
    marker file (counted as ignored)."""
    shown = _shown(path, root)
    if is_marker(path):
        staged.ignored.append(shown)
        return None
    staged.files += 1
    staged.paths[shown] = path
    return shown


def _shown(path: Path, root: Path | None) -> str:
    return path.relative_to(root).as_posix() if root and path.is_relative_to(root) else str(path)


def _prefetched(batches: Iterator[pa.Table], depth: int = 1) -> Iterator[pa.Table]:
    """The batches, read up to `depth` ahead in a thread: reading and splitting the next batch
    (Arrow and file reads release the GIL) overlaps DuckDB validating and writing this one.
    An error while reading is raised here; stopping early stops the reader."""
    done = object()
    ahead: queue.Queue[object] = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def put(item: object) -> bool:
        while not stop.is_set():
            try:
                ahead.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def read() -> None:
        try:
            for batch in batches:
                if not put(batch):
                    return
            put(done)
        except BaseException as exc:  # handed to the consumer, which raises it
            put(exc)

    thread = threading.Thread(target=read, name="ingest-reader", daemon=True)
    thread.start()
    try:
        while (item := ahead.get()) is not done:
            if isinstance(item, BaseException):
                raise item
            yield item  # type: ignore[misc]
    finally:
        stop.set()
        thread.join()


def _counted(staged: StagedFiles, batch: pa.Table) -> pa.Table:
    staged.rows += batch.num_rows
    return batch


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


@dataclass(frozen=True)
class Dialect:
    """What differs between the engines' validation SQL; the rules and the order of reasons
    (`validate_sql`) are one piece of code. `fields` is the first CTEs: every staging column,
    `is_object`, and per field `t_x` (its JSON type in DuckDB's names: VARCHAR, BIGINT,
    UBIGINT, DOUBLE, BOOLEAN, OBJECT, ARRAY, 'NULL' for a JSON null, NULL when absent) and
    `v_x` (its value as text), ending in a CTE named `named`."""

    fields: Callable[[StreamSpec, str], str]
    timestamp: Callable[[str], str]
    finite: Callable[[str], str]
    # SQL: the message list of field x is well formed and holds a turn of `speaker`.
    messages_ok: Callable[[str, str], str]
    # SQL: the byte length of field x's JSON text.
    json_bytes: Callable[[str], str]
    string_type: str
    strlen: str


def _duckdb_fields(stream: StreamSpec, source: str) -> str:
    paths = ", ".join(sql_literal(f"$.{s.name}") for s in stream.fields)
    root = len(stream.fields) + 1
    named = ", ".join(
        f"CASE WHEN is_object THEN ty[{i}] END AS t_{s.name}, sv[{i}] AS v_{s.name}"
        for i, s in enumerate(stream.fields, 1)
    )
    return f"""parsed AS (
    -- One parse for the types of the fields and of the whole line ('$'), one for the values.
    SELECT *, CASE WHEN file_error IS NULL AND utf8_ok AND json_valid(line)
                   THEN json_type(line, [{paths}, '$']) END AS ty
    FROM {source}
), fields AS (
    SELECT *, coalesce(ty[{root}] = 'OBJECT', false) AS is_object,
        CASE WHEN ty[{root}] = 'OBJECT' THEN json_extract_string(line, [{paths}]) END AS sv
    FROM parsed
), named AS (
    SELECT * EXCLUDE (ty, sv), {named} FROM fields
)"""


def _duckdb_messages_ok(name: str, speaker: str) -> str:
    # CASE, not AND: DuckDB evaluates both sides of an AND, and v_x of a string is no JSON.
    msgs = f"TRY_CAST(CASE WHEN t_{name} = 'ARRAY' THEN v_{name}::JSON END AS JSON[])"
    return (
        f"len(list_filter({msgs}, lambda m: coalesce(json_type(m, '$.role'), '') <> 'VARCHAR'"
        f" OR coalesce(json_type(m, '$.content'), '') <> 'VARCHAR')) = 0"
        f" AND len(list_filter({msgs}, lambda m: m->>'role' = '{speaker}')) > 0"
    )


DUCKDB = Dialect(
    fields=_duckdb_fields,
    timestamp=utc_timestamp_sql,
    finite=lambda x: f"isfinite({x})",
    messages_ok=_duckdb_messages_ok,
    json_bytes=lambda name: f"strlen(json_extract(line, '$.{name}')::VARCHAR)",
    string_type="VARCHAR",
    strlen="strlen",
)


def _type_ok(spec: FieldSpec, d: Dialect) -> str:
    t, v = f"t_{spec.name}", f"v_{spec.name}"
    if spec.kind == "string":
        return f"{t} = 'VARCHAR'"
    val = f"TRY_CAST({v} AS DOUBLE)"
    if spec.kind == "timestamp":
        return f"{t} = 'VARCHAR' AND {d.timestamp(v)} IS NOT NULL"
    if spec.kind == "number":
        # NaN and ±Infinity parse as JSON numbers here but are no measurement.
        return f"({t} IN ('BIGINT', 'UBIGINT') OR ({t} = 'DOUBLE' AND {d.finite(val)}))"
    if spec.kind == "integer":
        return f"({t} IN ('BIGINT', 'UBIGINT') OR ({t} = 'DOUBLE' AND {d.finite(val)} AND {val} = floor({val})))"
    if spec.kind == "text_or_messages":
        return f"({t} = 'VARCHAR' OR ({t} = 'ARRAY' AND {d.messages_ok(spec.name, spec.speaker)}))"
    return "true"  # json: any value


def _absent(spec: FieldSpec) -> str:
    t = f"coalesce(t_{spec.name}, 'NULL')"
    if spec.kind == "string":
        return f"({t} = 'NULL' OR v_{spec.name} = '')"
    return f"{t} = 'NULL'"


def _oversized(spec: FieldSpec, limit: int, d: Dialect) -> str:
    """The field's JSON text is over `limit` bytes. Its JSON text is written only for a line
    long enough to hold such a field (re-serializing can lengthen a value, by less than 8×)."""
    return f"{d.strlen}(line) > {limit // 8} AND coalesce({d.json_bytes(spec.name)}, 0) > {limit}"


def _names_where(conditions: Sequence[tuple[str, str]]) -> str:
    """SQL for the comma-joined names whose condition holds (empty string when none)."""
    if not conditions:
        return "''"
    parts = ", ".join(f"CASE WHEN {cond} THEN '{name}' END" for name, cond in conditions)
    return f"concat_ws(', ', {parts})"


def validate_sql(
    stream: StreamSpec, source: str, rules: IngestRules, dialect: Dialect = DUCKDB
) -> str:
    """SELECT over the raw rows in `source` (`STAGING_SCHEMA`) giving every row
    `reason`/`detail` (null when valid) and the `t_`/`v_` columns of its fields. Duplicates
    are not decided here: that needs the whole ingest (`_move_duplicates`)."""
    d = dialect
    missing = _names_where([(s.name, _absent(s)) for s in stream.fields if s.required])
    wrong = _names_where(
        [(s.name, f"NOT {_absent(s)} AND NOT ({_type_ok(s, d)})") for s in stream.fields]
    )
    limit = int(rules.max_field_bytes)
    oversized = _names_where([(s.name, _oversized(s, limit, d)) for s in stream.fields if s.text])
    out_of_range = _names_where(
        [
            (s.name, f"TRY_CAST(v_{s.name} AS DOUBLE) < {s.minimum!r}")
            for s in stream.fields
            if s.minimum is not None
        ]
    )
    enum_cases = []
    for name, default_allowed, reason in stream.enums:
        allowed = rules.categories if name == "category" else default_allowed
        values = ", ".join(sql_literal(v) for v in allowed)
        enum_cases.append(f"WHEN v_{name} NOT IN ({values}) THEN '{reason}' || '|' || v_{name}")
    text = d.string_type
    return f"""
WITH {d.fields(stream, source)}, checked AS (
    SELECT *,
        {d.timestamp("v_ts")} AS ts_utc,
        {missing} AS missing_names,
        {out_of_range} AS out_of_range_names,
        {wrong} AS wrong_names,
        {oversized} AS oversized_names
    FROM named
), reasoned AS (
    SELECT *, CASE
        WHEN file_error IS NOT NULL THEN file_error
        WHEN NOT utf8_ok THEN 'invalid_utf8|line is not valid UTF-8'
        WHEN NOT is_object THEN 'malformed_json|not a JSON object'
        WHEN missing_names <> '' THEN 'missing_field|' || missing_names
        WHEN wrong_names <> '' THEN 'wrong_type|' || wrong_names
        WHEN oversized_names <> '' THEN 'oversized_field|' || oversized_names || ' over {limit} bytes'
        WHEN out_of_range_names <> '' THEN 'out_of_range|' || out_of_range_names
        {" ".join(enum_cases)}
        WHEN CAST(ts_utc AS DATE) <> partition_date
            THEN 'ts_outside_partition|ts ' || CAST(ts_utc AS {text}) || ' is not on ' || CAST(partition_date AS {text})
    END AS why
    FROM checked
)
SELECT *, split_part(why, '|', 1) AS reason,
    nullif(substr(why, {d.strlen}(split_part(why, '|', 1)) + 2), '') AS detail
FROM reasoned
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
    span_reading: SpanReading | None = None,
) -> IngestCounts:
    """Validate the days' files and replace those days in the table and quarantine, atomically.

    The files are read and validated in batches of at most `batch_rows` rows, so memory does
    not grow with the day. With a `reservoir`, valid traces whose id falls in the reservoir
    bucket are written in full to the holdout store and kept in the table without text
    (`sealed`); quarantined rows with such an id keep no raw text either. With
    `span_reading`, the files are a span export read into records first (`span_batches`).
    """
    name = stream.name
    accepted, sealed_rows = f"_accepted_{name}", f"_sealed_{name}"
    sealable = reservoir is not None and stream.sealable
    conn.execute("CREATE OR REPLACE TEMP TABLE _replaced_days (d DATE)")
    conn.executemany("INSERT INTO _replaced_days VALUES (?)", [[d] for d in sorted(files_by_day)])
    key_columns = ", ".join(f"{k} {_key_type(stream, k)}" for k in stream.dedupe_key)
    conn.execute(
        f"CREATE OR REPLACE TEMP TABLE {accepted} ({key_columns}, key_hash UBIGINT, "
        "partition_date DATE, source_file VARCHAR, source_row BIGINT, sealed BOOLEAN, _trace_id VARCHAR)"
    )
    if sealable:
        conn.execute(
            f"CREATE OR REPLACE TEMP TABLE {sealed_rows} AS "
            f"SELECT * FROM {reservoir.alias}.{RESERVOIR_TRACES.name} LIMIT 0"  # type: ignore[union-attr]
        )
    statements = _batch_statements(stream, rules, reservoir if sealable else None)
    staged = StagedFiles()
    by_reason: Counter[str] = Counter()
    by_day: dict[str, list[int]] = {}
    # Files are read on a connection of their own, in a thread ahead of the validation.
    reader = conn.cursor()
    with closing(reader), transaction(conn):
        for table in (stream.table.name, stream.quarantine.name):
            conn.execute(
                f"DELETE FROM {table} WHERE partition_date IN (SELECT d FROM _replaced_days)"
            )
        batches = (
            span_batches(reader, stream, span_reading, files_by_day, staged, root, batch_rows)
            if span_reading is not None
            else staged_batches(reader, files_by_day, staged, root, batch_rows)
        )
        for batch in _prefetched(batches):
            # The valid rows go from the raw batch straight to the table in one statement; the
            # batch is validated a second time only when it had bad rows, to quarantine them.
            stored = over_arrow(conn, "_raw_batch", batch, statements.store).fetchall()[0][0]
            if statements.seal:
                over_arrow(conn, "_raw_batch", batch, statements.seal)
            bad: Counter[tuple[str, str]] = Counter()
            if stored < batch.num_rows:
                rows = over_arrow(conn, "_raw_batch", batch, statements.quarantine).fetchall()
                bad.update((str(d), reason) for d, reason in rows)
            days = batch.column("partition_date").value_counts().to_pylist()
            for entry in days:
                day = by_day.setdefault(str(entry["values"]), [0, 0])
                quarantined = sum(n for (d, _), n in bad.items() if d == str(entry["values"]))
                day[0] += entry["counts"] - quarantined
                day[1] += quarantined
            for (_, reason), n in bad.items():
                by_reason[reason] += n
        key_sealed = "sealed" if "sealed" in stream.table.column_names else "false"
        keys = ", ".join(stream.dedupe_key)
        conn.execute(
            f"INSERT INTO {accepted} SELECT {keys}, hash({keys}), partition_date, source_file, "
            f"source_row, {key_sealed}, trace_id FROM {stream.table} "
            "WHERE partition_date IN (SELECT d FROM _replaced_days)"
        )
        for d, n in _move_duplicates(conn, stream, accepted, sealable, staged, rules).items():
            by_day[d][0] -= n
            by_day[d][1] += n
            by_reason[stream.dedupe_reason] += n
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
            conn.execute(f"INSERT INTO {target} SELECT * FROM {sealed_rows} ORDER BY ts")
    for t in (accepted, "_replaced_days", sealed_rows, "_duplicates"):
        conn.execute(f"DROP TABLE IF EXISTS {t}")
    stored = sum(s for s, _ in by_day.values())
    quarantined = sum(q for _, q in by_day.values())
    counts = IngestCounts(
        staged.rows,
        stored,
        quarantined,
        dict(sorted((r, n) for r, n in by_reason.items() if n)),
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


@dataclass(frozen=True)
class BatchStatements:
    """The SQL run on each raw batch (`_raw_batch`): `store` validates it and writes its valid
    rows to the table (sealed rows without text), returning how many; `seal` writes the sealed
    rows in full for the holdout store (validating only rows whose id is in the reservoir);
    `quarantine`, run only when `store` left rows out, writes the bad rows to the quarantine
    and returns each one's day and reason."""

    store: str
    seal: str | None
    quarantine: str


def _batch_statements(
    stream: StreamSpec, rules: IngestRules, reservoir: Reservoir | None
) -> BatchStatements:
    trace_id = "CASE WHEN is_object THEN v_trace_id END"
    sealed = (
        f"coalesce({reservoir_sql(trace_id, reservoir.share)}, false)" if reservoir else "false"
    )
    columns = {c: stream.projection[c] for c in stream.table.column_names}
    if reservoir:
        columns |= {c: stream.projection[c] for c in RESERVOIR_TRACES.column_names}
    columns |= {
        "reason": "reason",
        "detail": "detail",
        "sealed": "sealed",
        "_trace_id": trace_id,
        "_raw": f"CASE WHEN reason IS NOT NULL AND NOT sealed THEN left(line, {RAW_PREVIEW_CHARS}) END",
    }
    projected = ", ".join(f"{e} AS {c}" for c, e in columns.items())

    def checked(source: str) -> str:
        return (
            f"SELECT {projected} FROM (SELECT *, {sealed} AS sealed "
            f"FROM ({validate_sql(stream, source, rules)}))"
        )

    cols = stream.table.column_names
    select = ", ".join(
        f"CASE WHEN sealed THEN NULL ELSE {c} END" if c in SEALED_TEXT_COLUMNS else c for c in cols
    )
    store = (
        f"INSERT INTO {stream.table} ({', '.join(cols)}) SELECT {select} "
        f"FROM ({checked('_raw_batch')}) WHERE reason IS NULL"
    )
    seal = None
    if reservoir:
        in_reservoir = reservoir_sql("json_extract_string(line, '$.trace_id')", reservoir.share)
        candidates = (
            "(SELECT * FROM _raw_batch WHERE file_error IS NULL AND utf8_ok AND json_valid(line) "
            f"AND json_type(line) = 'OBJECT' AND coalesce({in_reservoir}, false))"
        )
        seal = (
            f"INSERT INTO _sealed_{stream.name} SELECT {', '.join(RESERVOIR_TRACES.column_names)} "
            f"FROM ({checked(candidates)}) WHERE reason IS NULL AND sealed"
        )
    qcols = ", ".join(stream.quarantine.column_names)
    quarantine = (
        f"INSERT INTO {stream.quarantine} ({qcols}) SELECT partition_date, source_file, "
        f"source_row, reason, detail, _trace_id, _raw, sealed FROM ({checked('_raw_batch')}) "
        "WHERE reason IS NOT NULL RETURNING partition_date, reason"
    )
    return BatchStatements(store, seal, quarantine)


ROW_KEY = ("partition_date", "source_file", "source_row")


def _move_duplicates(
    conn: duckdb.DuckDBPyConnection,
    stream: StreamSpec,
    accepted: str,
    sealable: bool,
    staged: StagedFiles,
    rules: IngestRules,
) -> dict[str, int]:
    """Decide duplicates over the whole ingest and move them from the table to the quarantine;
    returns how many moved per day. The first copy of a key (by day, file, row) stays; later
    copies were 'seen earlier in this ingest'. For traces, a first copy whose id is stored in
    another partition (within the window) was 'already stored in another partition'.

    Keys are grouped by their hash first, so the work is one pass over the ingest's keys; only
    the rare duplicates are then compared by value, and their raw text re-read from the file."""
    keys = ", ".join(stream.dedupe_key)
    same = _same_row(stream)
    later = f"""SELECT {", ".join(ROW_KEY)}, {keys}, sealed, _trace_id, 'seen earlier in this ingest' AS detail
        FROM (SELECT *, row_number() OVER (PARTITION BY {keys} ORDER BY {", ".join(ROW_KEY)}) AS copy_no
              FROM {accepted}
              WHERE key_hash IN (SELECT key_hash FROM {accepted} GROUP BY 1 HAVING count(*) > 1))
        WHERE copy_no > 1"""
    stored_elsewhere = ""
    if stream.dedupe_key == ("trace_id",):
        window = ""
        if rules.duplicate_window_days is not None:
            days = [d for (d,) in conn.execute("SELECT d FROM _replaced_days").fetchall()]
            lo = min(days) - timedelta(days=rules.duplicate_window_days)
            hi = max(days) + timedelta(days=rules.duplicate_window_days)
            window = f"AND partition_date BETWEEN DATE '{lo}' AND DATE '{hi}'"
        stored_elsewhere = f"""UNION ALL
        SELECT {", ".join(ROW_KEY)}, {keys}, sealed, _trace_id, 'already stored in another partition'
        FROM {accepted} a
        WHERE trace_id IN (SELECT trace_id FROM {stream.table}
                           WHERE partition_date NOT IN (SELECT d FROM _replaced_days) {window})
          AND NOT EXISTS (SELECT 1 FROM later l WHERE {same("l", "a")})"""
    conn.execute(
        f"CREATE OR REPLACE TEMP TABLE _duplicates AS "
        f"WITH later AS ({later}) SELECT * FROM later {stored_elsewhere}"
    )
    moved = dict(
        conn.execute(
            "SELECT partition_date::VARCHAR, count(*) FROM _duplicates GROUP BY 1"
        ).fetchall()
    )
    if not moved:
        return {}
    raw = _raw_lines(conn, staged)
    over_arrow(
        conn,
        "_duplicate_raw",
        raw,
        f"""INSERT INTO {stream.quarantine} ({", ".join(stream.quarantine.column_names)})
            SELECT d.partition_date, d.source_file, d.source_row, '{stream.dedupe_reason}', d.detail,
                   d._trace_id, CASE WHEN NOT d.sealed THEN r.raw END, d.sealed
            FROM _duplicates d LEFT JOIN _duplicate_raw r USING (source_file, source_row)""",
    )
    targets = [str(stream.table)] + ([f"_sealed_{stream.name}"] if sealable else [])
    for target in targets:
        conn.execute(
            f"""DELETE FROM {target} t WHERE partition_date IN (SELECT d FROM _replaced_days)
            AND EXISTS (SELECT 1 FROM _duplicates d WHERE {same("d", "t")})"""
        )
    return moved


def _same_row(stream: StreamSpec):  # -> Callable[[str, str], str]
    """SQL comparing two rows' identity: their place, and their key (one line of a span
    export holds many traces and feedback events)."""
    columns = (*ROW_KEY, *stream.dedupe_key)
    return lambda a, b: " AND ".join(f"{a}.{c} IS NOT DISTINCT FROM {b}.{c}" for c in columns)


def _raw_lines(conn: duckdb.DuckDBPyConnection, staged: StagedFiles) -> pa.Table:
    """The raw text (as quarantined rows keep it) of the duplicates' rows, read again from
    their files: only the files that hold a duplicate are read."""
    wanted: dict[str, list[int]] = {}
    for shown, row in conn.execute(
        "SELECT source_file, source_row FROM _duplicates WHERE NOT sealed ORDER BY ALL"
    ).fetchall():
        wanted.setdefault(shown, []).append(row)
    found = []
    for shown, rows in wanted.items():
        rows_array = pa.array(rows, pa.int64())
        for piece in _file_pieces(conn, staged.paths[shown], BATCH_ROWS):
            hit = piece.filter(pc.is_in(piece.column("source_row"), rows_array))
            if hit.num_rows:
                found.append(
                    pa.table(
                        {
                            "source_file": pa.repeat(
                                pa.scalar(shown, pa.large_string()), hit.num_rows
                            ),
                            "source_row": hit.column("source_row").cast(pa.int64()),
                            "raw": pc.utf8_slice_codeunits(
                                hit.column("line").cast(pa.large_string()), 0, RAW_PREVIEW_CHARS
                            ),
                        }
                    )
                )
    schema = pa.schema(
        [("source_file", pa.large_string()), ("source_row", pa.int64()), ("raw", pa.large_string())]
    )
    return pa.concat_tables(found) if found else schema.empty_table()
