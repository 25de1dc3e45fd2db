"""Ingest benchmark: one day of N traces through our ingest vs DuckDB's plain read (the floor).

In one run: write N realistic traces (about 750 bytes each as JSON) for one day as JSONL or
Parquet, then time, each in its own fresh process so peak memory is measured apart:
  - ours: `ingest_days` into a fresh warehouse under the project file's
    `warehouse.memory_limit` (staging in batches, validation generated from the records,
    quarantine, duplicate checks, the day replaced in one transaction);
  - floor: DuckDB reading the same file into the same typed columns (`read_json` with the
    columns given / `read_parquet`) and storing it: what any ingest must pay.
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

from evals_pipeline.bench.process import in_fresh_process, timed

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
    parser.add_argument("--format", choices=["jsonl", "parquet"], default="jsonl")
    parser.add_argument("--repeat", type=int, default=1, help="timings each; the best is kept")
    parser.add_argument("--workdir", type=Path, default=None, help="where to write the files")


def write_day(path: Path, rows: int, fmt: str) -> None:
    """N valid traces of one day, generated inside DuckDB (no Python loop)."""
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
            FROM range({rows}) t(i)
        ) TO '{path}' (FORMAT {"json" if fmt == "jsonl" else "parquet"})"""
    )
    con.close()


def _ours(path: str, workdir: str, repeat: int) -> dict[str, Any]:
    from evals_pipeline.ingest.validation import TRACE_STREAM, IngestRules, ingest_days
    from evals_pipeline.project import load_project
    from evals_pipeline.warehouse import connect, set_up

    con = connect(Path(workdir) / "warehouse.duckdb")
    # as the pipeline's warehouse runs: under the project file's memory limit
    for key, value in load_project().warehouse.connection_config().items():
        con.execute(f"SET {key} = '{value}'")
    set_up(con)
    seconds, counts = timed(
        lambda: ingest_days(con, TRACE_STREAM, {DAY: [Path(path)]}, IngestRules()), repeat
    )
    return {"seconds": seconds, "stored": counts.stored, "quarantined": counts.quarantined}


def _floor(path: str, workdir: str, fmt: str, repeat: int) -> dict[str, Any]:
    con = duckdb.connect(str(Path(workdir) / "floor.duckdb"))
    columns = ", ".join(f"'{k}': '{v}'" for k, v in FLOOR_COLUMNS.items())
    reader = (
        f"read_json('{path}', format = 'newline_delimited', columns = {{{columns}}})"
        if fmt == "jsonl"
        else f"read_parquet('{path}')"
    )
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
        suffix = "jsonl" if args.format == "jsonl" else "parquet"
        path = Path(tmp) / f"day.{suffix}"
        t0 = time.perf_counter()
        write_day(path, args.rows, args.format)
        size_mb = path.stat().st_size / 2**20
        print(
            f"wrote {args.rows:,} traces ({size_mb:,.0f} MB {args.format}) in {time.perf_counter() - t0:.1f} s",
            flush=True,
        )
        (Path(tmp) / "ours").mkdir()
        (Path(tmp) / "floor").mkdir()
        ours = in_fresh_process(
            "evals_pipeline.bench.ingest",
            "_ours",
            path=str(path),
            workdir=str(Path(tmp) / "ours"),
            repeat=args.repeat,
        )
        print(f"ours:  {ours['seconds']:.2f} s, peak {ours['peak_rss_mb']:.0f} MB", flush=True)
        floor = in_fresh_process(
            "evals_pipeline.bench.ingest",
            "_floor",
            path=str(path),
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
    }
