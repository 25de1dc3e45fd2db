"""Ingest benchmark: one day of N traces through our ingest vs DuckDB's plain read (the floor).

In one run: write N realistic traces (about 750 bytes each as JSON) for one day as JSONL or
Parquet, then time, each in its own fresh process so peak memory is measured apart:
  - ours: `ingest_days` into a fresh warehouse under the project file's
    `warehouse.memory_limit` (staging in batches, validation generated from the records,
    quarantine, duplicate checks, the day replaced in one transaction);
  - floor: DuckDB reading the same file into the same typed columns (`read_json` with the
    columns given / `read_parquet`) and storing it: what any ingest must pay.
With `--format otel` the same traces are OpenTelemetry GenAI spans in OTLP JSON (two spans
each), read by the span reader (`ingest/spans.py`); its floor is DuckDB reading the lines and
unnesting them into one row per span (`OTLP_FLOOR`).
Prints one JSON line: rows, seconds, floor_seconds, ratio_vs_floor, peak_rss_mb, and the
rows stored and quarantined (every row is valid, so all are stored).
"""

from __future__ import annotations

import argparse
import tempfile
import time
from datetime import date
from pathlib import Path
from typing import Any

import duckdb

from evals_pipeline.bench.process import in_fresh_process, spark_report, timed

DAY = date(2026, 1, 1)
FLOOR_COLUMNS = {
    "trace_id": "VARCHAR",
    "ts": "TIMESTAMP",
    "session_id": "VARCHAR",
    "user_id": "VARCHAR",
    "app_version": "VARCHAR",
    "category": "VARCHAR",
    "user_segment": "VARCHAR",
    "input": "VARCHAR",
    "output": "VARCHAR",
    "latency_ms": "DOUBLE",
    "cost_usd": "DOUBLE",
    "input_tokens": "BIGINT",
    "output_tokens": "BIGINT",
    "metadata": "JSON",
}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--rows", type=int, default=1_000_000, help="traces in the day (1M)")
    parser.add_argument(
        "--format",
        choices=["jsonl", "parquet", "otel"],
        default="jsonl",
        help="otel: the same traces as OpenTelemetry GenAI spans in OTLP JSON (a root and a "
        "chat span each, 100 traces per line), read by `source.kind: otel`",
    )
    parser.add_argument("--repeat", type=int, default=1, help="timings each; the best is kept")
    parser.add_argument("--workdir", type=Path, default=None, help="where to write the files")
    parser.add_argument(
        "--files",
        type=int,
        default=1,
        help="write the day as this many files (JSONL or Parquet): engine spark reads a day's "
        "files in parallel, one task per file",
    )
    parser.add_argument(
        "--engine",
        choices=["duckdb", "spark"],
        default="duckdb",
        help="spark: also ingest the day with engine spark (local[2], into a Parquet lake), "
        "beside DuckDB in the same run",
    )


def write_day(path: Path, rows: int, fmt: str, lo: int = 0, hi: int | None = None) -> None:
    """Traces lo..hi of a day of N valid traces, generated inside DuckDB (no Python loop)."""
    hi = rows if hi is None else hi
    con = duckdb.connect()
    words = "'lorem ipsum dolor sit amet consectetur adipiscing elit sed do eiusmod tempor '"
    con.execute(
        f"""COPY (
            SELECT 'tr_' || lpad(to_hex(hash(i, 1)), 16, '0') AS trace_id,
                   strftime(TIMESTAMP '{DAY}' + to_milliseconds((i * 86400000 // {rows})::BIGINT),
                            '%Y-%m-%dT%H:%M:%S.%gZ') AS ts,
                   's_' || (i // 4)::VARCHAR AS session_id, 'u_' || (hash(i, 2) % 50000)::VARCHAR AS user_id,
                   ['v1', 'v2', 'v3'][1 + (hash(i, 3) % 3)::INT] AS app_version,
                   ['factual_lookup', 'how_to', 'reasoning', 'refusal_sensitive', 'edge_case'][1 + (hash(i, 4) % 5)::INT] AS category,
                   ['free', 'pro'][1 + (hash(i, 5) % 2)::INT] AS user_segment,
                   'Question ' || i::VARCHAR || ': ' || repeat({words}, 2) AS input,
                   'Answer ' || i::VARCHAR || ': ' || repeat({words}, 5) AS output,
                   (100 + hash(i, 6) % 4000)::DOUBLE AS latency_ms,
                   round((hash(i, 7) % 1000) / 1e6, 6) AS cost_usd,
                   (hash(i, 8) % 800)::BIGINT AS input_tokens, (hash(i, 9) % 1200)::BIGINT AS output_tokens,
                   {{'channel': 'web', 'locale': 'en'}} AS metadata
            FROM range({lo}, {hi}) t(i)
        ) TO '{path}' (FORMAT {"json" if fmt == "jsonl" else "parquet"})"""
    )
    con.close()


def _attr(key: str, value_sql: str, kind: str = "stringValue") -> str:
    """SQL: one OTLP attribute ({key, value: AnyValue}) with a JSON value."""
    return f"{{'key': '{key}', 'value': json_object('{kind}', {value_sql})}}"


def write_otel_day(path: Path, rows: int) -> None:
    """The traces of `write_day` as OTLP JSON lines, generated inside DuckDB: per trace an
    invoke_agent root span (ids, session, user, category and segment attributes) and a chat
    span (GenAI messages, model, tokens, cost), 100 traces per TracesData line."""
    con = duckdb.connect()
    words = "'lorem ipsum dolor sit amet consectetur adipiscing elit sed do eiusmod tempor '"
    start = f"(epoch_us(TIMESTAMP '{DAY}') * 1000 + i * (86400000000000 // {rows}))::HUGEINT"
    root = f"""{{'traceId': lpad(to_hex(hash(i, 1)), 32, '0'), 'spanId': lpad(to_hex(hash(i, 11)), 16, '0'),
        'parentSpanId': '', 'name': 'invoke_agent app', 'kind': 2,
        'startTimeUnixNano': {start}::VARCHAR, 'endTimeUnixNano': ({start} + 800000000)::VARCHAR,
        'attributes': [{_attr("gen_ai.operation.name", "'invoke_agent'")},
            {_attr("session.id", "'s_' || (i // 4)::VARCHAR")},
            {_attr("user.id", "'u_' || (hash(i, 2) % 50000)::VARCHAR")},
            {_attr("app.category", "['factual_lookup', 'how_to', 'reasoning', 'refusal_sensitive', 'edge_case'][1 + (hash(i, 4) % 5)::INT]")},
            {_attr("app.user.plan", "['free', 'pro'][1 + (hash(i, 5) % 2)::INT]")}],
        'status': {{}}}}"""
    msgs_in = f"to_json([{{'role': 'user', 'parts': [{{'type': 'text', 'content': 'Question ' || i::VARCHAR || ': ' || repeat({words}, 2)}}]}}])::VARCHAR"
    msgs_out = f"to_json([{{'role': 'assistant', 'finish_reason': 'stop', 'parts': [{{'type': 'text', 'content': 'Answer ' || i::VARCHAR || ': ' || repeat({words}, 5)}}]}}])::VARCHAR"
    chat = f"""{{'traceId': lpad(to_hex(hash(i, 1)), 32, '0'), 'spanId': lpad(to_hex(hash(i, 12)), 16, '0'),
        'parentSpanId': lpad(to_hex(hash(i, 11)), 16, '0'), 'name': 'chat model', 'kind': 3,
        'startTimeUnixNano': ({start} + 1000)::VARCHAR, 'endTimeUnixNano': ({start} + 799000000)::VARCHAR,
        'attributes': [{_attr("gen_ai.operation.name", "'chat'")},
            {_attr("gen_ai.request.model", "'model-' || ['v1', 'v2', 'v3'][1 + (hash(i, 3) % 3)::INT]")},
            {_attr("gen_ai.input.messages", msgs_in)}, {_attr("gen_ai.output.messages", msgs_out)},
            {_attr("gen_ai.usage.input_tokens", "(hash(i, 8) % 800)::VARCHAR", "intValue")},
            {_attr("gen_ai.usage.output_tokens", "(hash(i, 9) % 1200)::VARCHAR", "intValue")},
            {_attr("gen_ai.usage.cost", "round((hash(i, 7) % 1000) / 1e6, 6)", "doubleValue")}],
        'status': {{}}}}"""
    con.execute(
        f"""COPY (
            SELECT [{{'resource': {{'attributes': [{_attr("service.name", "'app'")}]}},
                      'scopeSpans': [{{'scope': {{'name': 'bench'}}, 'spans': flatten(list(spans ORDER BY i))}}]}}]
                   AS resourceSpans
            FROM (SELECT i, i // 100 AS line, [{root}, {chat}] AS spans FROM range({rows}) t(i))
            GROUP BY line ORDER BY line
        ) TO '{path}' (FORMAT json)"""
    )
    con.close()


def _write(path: str, rows: int, fmt: str, files: int = 1) -> dict[str, Any]:
    if fmt == "otel":
        write_otel_day(Path(path), rows)
        return {"paths": [path]}
    if files == 1:
        write_day(Path(path), rows, fmt)
        return {"paths": [path]}
    paths = []
    for k in range(files):
        part = Path(path).with_name(f"day-{k:03d}{Path(path).suffix}")
        write_day(part, rows, fmt, k * rows // files, (k + 1) * rows // files)
        paths.append(str(part))
    return {"paths": paths}


def _ours(paths: list[str], workdir: str, repeat: int, fmt: str = "jsonl") -> dict[str, Any]:
    from evals_pipeline.ingest.spans import Derivation
    from evals_pipeline.ingest.validation import (
        TRACE_STREAM,
        IngestRules,
        SpanReading,
        ingest_days,
    )
    from evals_pipeline.project import load_project
    from evals_pipeline.records import DEFAULT_CATEGORIES
    from evals_pipeline.warehouse import connect, set_up

    con = connect(Path(workdir) / "warehouse.duckdb")
    # as the pipeline's warehouse runs: under the project file's memory limit
    for key, value in load_project().warehouse.connection_config().items():
        con.execute(f"SET {key} = '{value}'")
    set_up(con)
    reading = None
    if fmt == "otel":
        derive = Derivation(
            category_from=("app.category",),
            segment_from=(("plan", "app.user.plan"),),
            categories=DEFAULT_CATEGORIES,
        )
        reading = SpanReading("otel", derive)
    seconds, counts = timed(
        lambda: ingest_days(
            con, TRACE_STREAM, {DAY: [Path(p) for p in paths]}, IngestRules(), span_reading=reading
        ),
        repeat,
    )
    return {"seconds": seconds, "stored": counts.stored, "quarantined": counts.quarantined}


# The floor of a span export: DuckDB reading the OTLP lines and unnesting them into one row
# per span with its ids, times and attributes. Any reader pays this; grouping spans into
# interactions and reading the conventions is the work on top.
OTLP_FLOOR = """(
    WITH doc AS (SELECT unnest(resourceSpans) AS r FROM read_json('{path}', format = 'newline_delimited',
                 columns = {{'resourceSpans': 'JSON[]'}})),
    ss AS (SELECT unnest(CAST(r->'scopeSpans' AS JSON[])) AS s FROM doc),
    sp AS (SELECT unnest(CAST(s->'spans' AS JSON[])) AS span FROM ss)
    SELECT span->>'traceId' AS trace_id, span->>'spanId' AS span_id, span->>'parentSpanId' AS parent_id,
           span->>'name' AS name, (span->>'startTimeUnixNano')::HUGEINT AS start_ns,
           (span->>'endTimeUnixNano')::HUGEINT AS end_ns, span->'attributes' AS attributes
    FROM sp)"""


def _spark(paths: list[str], workdir: str, repeat: int) -> dict[str, Any]:
    """`ingest_days_spark` of the day on a local[2] master, into a lake beside a warehouse."""
    from evals_pipeline.bench.process import jvm_peak_mb, spark_session
    from evals_pipeline.ingest.spark import ingest_days_spark
    from evals_pipeline.ingest.validation import TRACE_STREAM, IngestRules
    from evals_pipeline.warehouse import connect, set_up

    lake = str(Path(workdir) / "lake")
    con = connect(Path(workdir) / "warehouse.duckdb")
    set_up(con, lake)
    t0 = time.perf_counter()
    spark = spark_session()
    started = time.perf_counter() - t0
    seconds, counts = timed(
        lambda: ingest_days_spark(
            spark, con, TRACE_STREAM, {DAY: [Path(p) for p in paths]}, IngestRules(), lake
        ),
        repeat,
    )
    out = {"seconds": seconds, "session_seconds": started, "jvm_peak_mb": jvm_peak_mb()}
    out |= {"stored": counts.stored, "quarantined": counts.quarantined}
    spark.stop()
    return out


def _floor(path: str, workdir: str, fmt: str, repeat: int) -> dict[str, Any]:
    con = duckdb.connect(str(Path(workdir) / "floor.duckdb"))
    columns = ", ".join(f"'{k}': '{v}'" for k, v in FLOOR_COLUMNS.items())
    reader = {
        "jsonl": f"read_json('{path}', format = 'newline_delimited', columns = {{{columns}}})",
        "parquet": f"read_parquet('{path}')",
        "otel": OTLP_FLOOR.format(path=path),
    }[fmt]
    seconds, n = timed(
        lambda: (
            con.execute(f"CREATE OR REPLACE TABLE floor AS SELECT * FROM {reader}").fetchall()
            and con.execute("SELECT count(*) FROM floor").fetchall()[0][0]
        ),
        repeat,
    )
    return {"seconds": seconds, "rows": n}


def run(args: argparse.Namespace) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(dir=args.workdir) as tmp:
        suffix = "parquet" if args.format == "parquet" else "jsonl"
        path = Path(tmp) / f"day.{suffix}"
        t0 = time.perf_counter()
        # Written in a process of its own: see in_fresh_process on peak memory.
        paths = in_fresh_process(
            "evals_pipeline.bench.ingest",
            "_write",
            path=str(path),
            rows=args.rows,
            fmt=args.format,
            files=args.files,
        )["paths"]
        size_mb = sum(Path(p).stat().st_size for p in paths) / 2**20
        print(
            f"wrote {args.rows:,} traces ({size_mb:,.0f} MB {args.format}) in {time.perf_counter() - t0:.1f} s",
            flush=True,
        )
        (Path(tmp) / "ours").mkdir()
        (Path(tmp) / "floor").mkdir()
        ours = in_fresh_process(
            "evals_pipeline.bench.ingest",
            "_ours",
            paths=paths,
            workdir=str(Path(tmp) / "ours"),
            repeat=args.repeat,
            fmt=args.format,
        )
        print(f"ours:  {ours['seconds']:.2f} s, peak {ours['peak_rss_mb']:.0f} MB", flush=True)
        spark = None
        if args.engine == "spark":
            (Path(tmp) / "spark").mkdir()
            spark = in_fresh_process(
                "evals_pipeline.bench.ingest",
                "_spark",
                paths=paths,
                workdir=str(Path(tmp) / "spark"),
                repeat=args.repeat,
            )
            print(spark_report(spark, ours["seconds"])[0], flush=True)
        floor = in_fresh_process(
            "evals_pipeline.bench.ingest",
            "_floor",
            path=str(path) if len(paths) == 1 else str(Path(tmp) / f"day-*{path.suffix}"),
            workdir=str(Path(tmp) / "floor"),
            fmt=args.format,
            repeat=args.repeat,
        )
        print(f"floor: {floor['seconds']:.2f} s, peak {floor['peak_rss_mb']:.0f} MB", flush=True)
    return {
        "bench": "ingest",
        "format": args.format,
        "rows": args.rows,
        "file_mb": round(size_mb, 1),
        "seconds": round(ours["seconds"], 3),
        "floor_seconds": round(floor["seconds"], 3),
        "ratio_vs_floor": round(ours["seconds"] / floor["seconds"], 2),
        "peak_rss_mb": round(ours["peak_rss_mb"], 1),
        "floor_peak_rss_mb": round(floor["peak_rss_mb"], 1),
        "stored": ours["stored"],
        "quarantined": ours["quarantined"],
        "duckdb_version": duckdb.__version__,
        "files": len(paths),
        **(
            {
                **spark_report(spark, ours["seconds"])[1],
                "spark_stored": spark["stored"],
                "spark_quarantined": spark["quarantined"],
            }
            if spark is not None
            else {}
        ),
    }
