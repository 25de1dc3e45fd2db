"""Ingest on engine spark: the same rules as `validation.py`, written to the Parquet lake.

1. The days' files are spread over Spark's tasks, one file per unit of work; each task reads
   its files with the DuckDB engine's own staging (`stage_file`: JSONL split by Arrow, gzip
   and zstd, Parquet as JSON text, a file that cannot be read as one row with its reason),
   so both engines see the same raw rows.
2. `validate_sql` with the Spark dialect below, generated from the same field specs in
   `records/`: the same reasons in the same order. JSON is parsed once per line into a
   VARIANT; its types are named as DuckDB names them.
3. Duplicates over the whole ingest (a copy seen earlier, or a trace id stored in another
   partition within `duplicate_window_days`), as in `_move_duplicates`.
4. The days of the table and of its quarantine are replaced in the lake; sealed traces go in
   full to the holdout store (written by the driver, never to the lake).
Rows in = stored + quarantined, checked as on DuckDB.
"""

from __future__ import annotations

import shutil
import uuid
from collections import Counter
from collections.abc import Iterator, Mapping, Sequence
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa

from evals_pipeline.ingest.validation import (
    BATCH_ROWS,
    ISO8601_PATTERN,
    RAW_PREVIEW_CHARS,
    ROW_KEY,
    Dialect,
    IngestCounts,
    IngestRules,
    Reservoir,
    StagedFiles,
    StreamSpec,
    _data_file,
    stage_file,
    validate_sql,
)
from evals_pipeline.pools.store import RESERVOIR_SALT
from evals_pipeline.records import (
    PARTITION_VERSIONS,
    RESERVOIR_TRACES,
    SEALED_TEXT_COLUMNS,
    FieldSpec,
    sql_literal,
)
from evals_pipeline.spark_lake import read_lake, replace_days, typed, unit_key_sql
from evals_pipeline.warehouse import transaction

# Staging rows as Spark's Python workers hand them over (Arrow's string, not large_string).
SPARK_STAGING = pa.schema(
    [
        ("partition_date", pa.date32()),
        ("source_file", pa.string()),
        ("source_row", pa.int64()),
        ("line", pa.string()),
        ("utf8_ok", pa.bool_()),
        ("file_error", pa.string()),
    ]
)
STAGING_DDL = (
    "partition_date date, source_file string, source_row bigint, line string, "
    "utf8_ok boolean, file_error string"
)
# JSON's non-standard NaN and ±Infinity, which DuckDB's parser reads as numbers (and the
# rules then refuse as no measurement), are made strings with this prefix when a line does
# not parse otherwise, and typed DOUBLE again.
NONFINITE = "__evals_nonfinite__"
_NONFINITE_TOKEN = r"(?<=[:\[,]\s{0,16})(-?Infinity|NaN)(?=\s*[,\]}])"


def _literal(text: str) -> str:
    """A Spark SQL string literal (backslashes are escapes there)."""
    return "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"


def _type_name(j: str, fixed: str) -> str:
    """DuckDB's name of the JSON type of variant `j` (see `Dialect`)."""
    s = f"schema_of_variant({j})"
    return f"""CASE WHEN {s} IS NULL THEN NULL
        WHEN {s} = 'STRING' THEN CASE WHEN {fixed} AND startswith(variant_get({j}, '$', 'string'), '{NONFINITE}')
                                       THEN 'DOUBLE' ELSE 'VARCHAR' END
        WHEN {s} IN ('BIGINT', 'INT', 'SMALLINT', 'TINYINT') OR {s} LIKE 'DECIMAL(%,0)' THEN 'BIGINT'
        WHEN {s} LIKE 'DECIMAL%' OR {s} IN ('DOUBLE', 'FLOAT') THEN 'DOUBLE'
        WHEN {s} = 'VOID' THEN 'NULL'
        WHEN {s} LIKE 'OBJECT%' THEN 'OBJECT'
        WHEN {s} LIKE 'ARRAY%' THEN 'ARRAY'
        ELSE {s} END"""


def _spark_fields(stream: StreamSpec, source: str) -> str:
    cols = ", ".join(SPARK_STAGING.names)
    pattern = _literal(_NONFINITE_TOKEN)
    replacement = _literal(f'"{NONFINITE}$1"')
    per_field = ", ".join(
        f"CASE WHEN is_object THEN variant_get(j, '$.{s.name}') END AS j_{s.name}"
        for s in stream.fields
    )
    named = ", ".join(
        f"{_type_name(f'j_{s.name}', 'nonfinite_fix')} AS t_{s.name}, "
        f"CASE WHEN nonfinite_fix AND startswith(variant_get(j_{s.name}, '$', 'string'), '{NONFINITE}') "
        f"THEN substr(variant_get(j_{s.name}, '$', 'string'), {len(NONFINITE) + 1}) "
        f"ELSE variant_get(j_{s.name}, '$', 'string') END AS v_{s.name}"
        for s in stream.fields
    )
    return f"""parsed AS (
    SELECT {cols}, CASE WHEN file_error IS NULL AND utf8_ok THEN try_parse_json(line) END AS j0
    FROM {source}
), repaired AS (
    SELECT *, CASE WHEN j0 IS NULL AND file_error IS NULL AND utf8_ok
                        AND (line LIKE '%NaN%' OR line LIKE '%Infinity%')
                   THEN try_parse_json(regexp_replace(line, {pattern}, {replacement})) END AS j1
    FROM parsed
), objects AS (
    SELECT {cols}, coalesce(j0, j1) AS j, j0 IS NULL AND j1 IS NOT NULL AS nonfinite_fix,
           coalesce(schema_of_variant(coalesce(j0, j1)) LIKE 'OBJECT%', false) AS is_object
    FROM repaired
), values AS (
    SELECT *, {per_field} FROM objects
), named AS (
    SELECT *, {named} FROM values
)"""


def _spark_timestamp(text_sql: str) -> str:
    return (
        f"CASE WHEN {text_sql} RLIKE {_literal(ISO8601_PATTERN)} "
        f"THEN CAST(try_cast(upper({text_sql}) AS TIMESTAMP) AS TIMESTAMP_NTZ) END"
    )


def _messages(name: str) -> str:
    return f"try_variant_get(j_{name}, '$', 'array<variant>')"


def _spark_messages_ok(name: str, speaker: str) -> str:
    msgs = _messages(name)
    return (
        f"size(filter({msgs}, m -> coalesce(schema_of_variant(variant_get(m, '$.role')), '') <> 'STRING'"
        f" OR coalesce(schema_of_variant(variant_get(m, '$.content')), '') <> 'STRING')) = 0"
        f" AND size(filter({msgs}, m -> variant_get(m, '$.role', 'string') = '{speaker}')) > 0"
    )


SPARK = Dialect(
    fields=_spark_fields,
    timestamp=_spark_timestamp,
    finite=lambda x: f"(NOT isnan({x}) AND abs({x}) < double('Infinity'))",
    messages_ok=_spark_messages_ok,
    json_bytes=lambda name: f"octet_length(to_json(j_{name}))",
    string_type="STRING",
    strlen="octet_length",
)


def _field_value(spec: FieldSpec) -> str:
    """Spark SQL of a field's stored value (the DuckDB projection's `StreamSpec.projection`)."""
    name, t, v = spec.name, f"t_{spec.name}", f"v_{spec.name}"
    if spec.kind == "timestamp":
        return "ts_utc"
    if spec.kind == "text_or_messages":
        turns = (
            f"filter({_messages(name)}, m -> variant_get(m, '$.role', 'string') = '{spec.speaker}')"
        )
        return (
            f"CASE WHEN {t} = 'VARCHAR' THEN {v} "
            f"WHEN {t} = 'ARRAY' THEN variant_get(element_at({turns}, -1), '$.content', 'string') END"
        )
    if spec.kind == "json":
        return f"CASE WHEN coalesce({t}, 'NULL') = 'NULL' THEN NULL ELSE to_json(j_{name}) END"
    if spec.kind == "number":
        return f"try_cast({v} AS DOUBLE)"
    if spec.kind == "integer":
        return f"try_cast(try_cast({v} AS DOUBLE) AS BIGINT)"
    if name == "category_source":
        return f"coalesce({v}, 'source')"
    return v


def spark_projection(stream: StreamSpec) -> dict[str, str]:
    """Stored column -> Spark SQL over the validated row, for every column the stream's table
    (and the holdout reservoir) holds."""
    fields = {s.name: s for s in stream.fields}
    out: dict[str, str] = {}
    for column in stream.projection:
        if column in fields:
            out[column] = _field_value(fields[column])
        elif column.endswith("_messages") and column.removesuffix("_messages") in fields:
            base = column.removesuffix("_messages")
            out[column] = f"CASE WHEN t_{base} = 'ARRAY' THEN to_json(j_{base}) END"
        else:
            out[column] = column  # partition_date, source_file, source_row, sealed
    return out


def reservoir_spark_sql(trace_id_sql: str, share: float) -> str:
    """Spark SQL boolean: does the trace id fall in the holdout reservoir bucket? A 64-bit
    hash like DuckDB's, but not the same function: a deployment seals with one engine."""
    return f"({unit_key_sql(trace_id_sql, RESERVOIR_SALT)} < {float(share)!r})"


def _stage_files(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
    """mapInArrow: the staging rows of each (day, path, shown) file of the task."""
    conn = duckdb.connect()
    try:
        for batch in batches:
            listed = batch.to_pydict()
            for day, path, shown in zip(
                listed["partition_date"], listed["path"], listed["shown"], strict=True
            ):
                for piece in stage_file(conn, day, Path(path), shown, BATCH_ROWS):
                    yield from piece.cast(SPARK_STAGING).to_batches()
    finally:
        conn.close()


def _validated(
    spark: Any, stream: StreamSpec, rules: IngestRules, reservoir: Reservoir | None, view: str
) -> Any:
    """Every staged row with its reason, stored columns, and what quarantine and sealing need."""
    trace_id = "CASE WHEN is_object THEN v_trace_id END"
    sealed = (
        f"coalesce({reservoir_spark_sql(trace_id, reservoir.share)}, false)"
        if reservoir
        else "false"
    )
    keep_raw = f"CASE WHEN NOT sealed THEN left(line, {RAW_PREVIEW_CHARS}) END"
    columns = spark_projection(stream) | {
        "reason": "reason",
        "detail": "detail",
        "sealed": "sealed",
        "file_error": "file_error",
        "_trace_id": trace_id,
        "_raw": keep_raw,
    }
    projected = ", ".join(f"{e} AS {c}" for c, e in columns.items())
    return spark.sql(
        f"SELECT {projected} FROM (SELECT *, {sealed} AS sealed "
        f"FROM ({validate_sql(stream, view, rules, SPARK)}))"
    )


def _duplicates(
    spark: Any, stream: StreamSpec, rules: IngestRules, lake: str, days: list[date]
) -> Any:
    """The later copies of a key in this ingest, and (traces) the first copies of a trace id
    already stored in another partition within the window: as `_move_duplicates` decides."""
    keys = ", ".join(stream.dedupe_key)
    order = ", ".join(ROW_KEY)
    numbered = f"""SELECT {order}, {keys}, sealed, _trace_id, _raw,
               row_number() OVER (PARTITION BY {keys} ORDER BY {order}) AS copy_no
        FROM _checked WHERE reason IS NULL"""
    if stream.dedupe_key != ("trace_id",):
        return spark.sql(
            f"SELECT * EXCEPT (copy_no), 'seen earlier in this ingest' AS detail "
            f"FROM ({numbered}) WHERE copy_no > 1"
        )
    stored = read_lake(spark, lake, stream.table, ["trace_id"]).where(
        ~stored_filter(days, rules.duplicate_window_days)
    )
    stored.select("trace_id").distinct().createOrReplaceTempView("_stored_elsewhere")
    # A key's first copy stays unless its id is stored elsewhere; every later copy moves.
    return spark.sql(
        f"""SELECT n.* EXCEPT (copy_no),
               CASE WHEN copy_no > 1 THEN 'seen earlier in this ingest'
                    ELSE 'already stored in another partition' END AS detail
        FROM ({numbered}) n LEFT JOIN _stored_elsewhere s ON n.trace_id = s.trace_id
        WHERE n.copy_no > 1 OR s.trace_id IS NOT NULL"""
    )


def stored_filter(days: list[date], window: int | None) -> Any:
    """Column: NOT the rows to compare against (the days themselves, and outside the window)."""
    from pyspark.sql import functions as F

    col = F.col("partition_date")
    outside = col.isin(days)
    if window is not None:
        lo, hi = min(days) - timedelta(days=window), max(days) + timedelta(days=window)
        outside = outside | (col < F.lit(lo)) | (col > F.lit(hi))
    return outside


def ingest_days_spark(
    spark: Any,
    conn: duckdb.DuckDBPyConnection,
    stream: StreamSpec,
    files_by_day: Mapping[date, Sequence[Path]],
    rules: IngestRules,
    lake: str,
    root: Path | None = None,
    reservoir: Reservoir | None = None,
    sealed_dir: Path | None = None,
) -> IngestCounts:
    """`ingest_days` on Spark: validate the days' files and replace those days of the table
    and its quarantine in the lake. With a `reservoir`, sealed traces are kept in the table
    without text and written in full to the holdout store attached to `conn` (by way of
    `sealed_dir`, a folder beside the store, removed afterwards)."""
    from pyspark.storagelevel import StorageLevel

    staged = StagedFiles()
    days = sorted(files_by_day)
    tasks = [
        (day, str(path), shown)
        for day in days
        for path in sorted(files_by_day[day])
        if (shown := _data_file(path, root, staged)) is not None
    ]
    parallelism = spark.sparkContext.defaultParallelism
    listed = spark.createDataFrame(tasks, "partition_date date, path string, shown string")
    if tasks:
        listed = listed.repartition(min(len(tasks), 4 * parallelism))
    raw_view = f"_raw_{stream.name}"
    listed.mapInArrow(_stage_files, STAGING_DDL).createOrReplaceTempView(raw_view)
    sealable = reservoir is not None and stream.sealable
    checked = _validated(spark, stream, rules, reservoir if sealable else None, raw_view)
    # Kept on local disk, not in the heap: a day's validated rows carry all of its text, and
    # the writes, the counts and the duplicates read them again.
    checked = checked.persist(StorageLevel.DISK_ONLY)
    try:
        checked.createOrReplaceTempView("_checked")
        dups = _duplicates(spark, stream, rules, lake, days).persist(StorageLevel.DISK_ONLY)
        try:
            counts = _write(
                spark,
                conn,
                stream,
                checked,
                dups,
                lake,
                days,
                reservoir if sealable else None,
                sealed_dir,
            )
        finally:
            dups.unpersist()
    finally:
        checked.unpersist()
    rows_in, by_reason, by_day, unreadable = counts
    staged.rows = rows_in
    staged.unreadable.extend(unreadable)
    result = IngestCounts(
        rows_in,
        sum(s for s, _ in by_day.values()),
        sum(q for _, q in by_day.values()),
        by_reason,
        by_day,
        staged,
    )
    if not result.balanced:
        raise RuntimeError(
            f"{stream.name}: {rows_in} rows in but {result.stored} stored + "
            f"{result.quarantined} quarantined"
        )
    return result


def _write(
    spark: Any,
    conn: duckdb.DuckDBPyConnection,
    stream: StreamSpec,
    checked: Any,
    dups: Any,
    lake: str,
    days: list[date],
    reservoir: Reservoir | None,
    sealed_dir: Path | None,
) -> tuple[int, dict[str, int], dict[str, tuple[int, int]], list[str]]:
    """Replace the days in the lake (and the sealed rows in the holdout store); return rows
    in, rows quarantined by reason, (stored, quarantined) by day, and the unreadable files."""
    same = [checked[c].eqNullSafe(dups[c]) for c in (*ROW_KEY, *stream.dedupe_key)]
    good = checked.where("reason IS NULL").join(dups, on=same, how="left_anti")
    table_cols = [
        f"CASE WHEN sealed THEN NULL ELSE {c} END AS {c}" if c in SEALED_TEXT_COLUMNS else c
        for c in stream.table.column_names
    ]
    replace_days(spark, good.selectExpr(*table_cols), lake, stream.table, days)
    reason = sql_literal(stream.dedupe_reason)
    quarantined = checked.where("reason IS NOT NULL").selectExpr(
        *ROW_KEY, "reason", "detail", "_trace_id AS trace_id", "_raw AS raw", "sealed"
    )
    moved = dups.selectExpr(
        *ROW_KEY, f"{reason} AS reason", "detail", "_trace_id AS trace_id", "_raw AS raw", "sealed"
    )
    replace_days(spark, quarantined.unionByName(moved), lake, stream.quarantine, days)
    if reservoir is not None:
        _seal(conn, good.where("sealed"), reservoir.alias, days, sealed_dir)
    with transaction(conn):
        conn.executemany(
            f"INSERT OR REPLACE INTO {PARTITION_VERSIONS} VALUES (?, ?, now()::TIMESTAMP)",
            [[stream.table.name, d] for d in days],
        )
    # One pass over the validated rows: rows in per day, and the bad ones by reason.
    per_reason = checked.groupBy("partition_date", "reason").count().collect()
    moved_by_day = dict(dups.groupBy("partition_date").count().collect())
    totals: Counter[date] = Counter()
    by_reason: Counter[str] = Counter()
    quarantined_by_day: Counter[date] = Counter()
    for day, why, n in per_reason:
        totals[day] += n
        if why is not None:
            by_reason[why] += n
            quarantined_by_day[day] += n
    for day, n in moved_by_day.items():
        by_reason[stream.dedupe_reason] += n
        quarantined_by_day[day] += n
    by_day = {
        str(d): (n - quarantined_by_day[d], quarantined_by_day[d])
        for d, n in sorted(totals.items())
    }
    unreadable = [
        f"{shown}: {problem.replace('|', ': ', 1)}"
        for shown, problem in checked.where("file_error IS NOT NULL AND source_row = 0")
        .select("source_file", "file_error")
        .collect()
    ]
    return sum(totals.values()), dict(sorted(by_reason.items())), by_day, sorted(unreadable)


def _seal(
    conn: duckdb.DuckDBPyConnection,
    sealed: Any,
    alias: str,
    days: list[date],
    sealed_dir: Path | None,
) -> None:
    """The sealed traces of the days, in full, into the holdout store's reservoir (attached to
    `conn` as `alias`): written by Spark beside the store (never to the lake), loaded by
    DuckDB in one transaction, removed."""
    if sealed_dir is None:
        raise ValueError("sealing on Spark needs a folder beside the holdout store")
    target = f"{alias}.{RESERVOIR_TRACES.name}"
    folder = sealed_dir / uuid.uuid4().hex
    names = ", ".join(RESERVOIR_TRACES.column_names)
    try:
        typed(sealed, RESERVOIR_TRACES).write.parquet(str(folder))
        files = sql_literal(str(folder / "*.parquet"))
        with transaction(conn):
            conn.execute(
                f"DELETE FROM {target} WHERE partition_date IN (SELECT unnest(?::DATE[]))", [days]
            )
            if any(folder.glob("*.parquet")):
                conn.execute(
                    f"INSERT INTO {target} ({names}) SELECT {names} FROM read_parquet({files}) "
                    "ORDER BY ts"
                )
    finally:
        shutil.rmtree(folder, ignore_errors=True)
