"""Sampling benchmark: our sampler vs the scan floor vs a pandas baseline, on N traces.

In one run: simulate N traces into one Parquet file (ids, categories with the simulator's
skewed mix), then time, each in its own fresh process so peak memory is measured apart:
  - ours: `draw_sample` (floor allocation, one hashing filter scan, rank the survivors);
  - scan: reading the ids and hashing each once, grouped by category: the floor any
    deterministic sampler must pay (DESIGN.md), and what `ratio_vs_scan` divides by;
  - group_only: grouping by category alone (dictionary-encoded: reported, not a fair floor);
  - pandas: read the two columns and `groupby(...).sample(n=...)` per category.
Each is the best of `--repeat` timings. The sample is checked (size, floors, weights).
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path
from typing import Any

import duckdb

from evals_pipeline.bench.process import in_fresh_process, spark_report, timed
from evals_pipeline.sampling.allocation import allocate
from evals_pipeline.sampling.stratified import draw_sample
from evals_pipeline.simulator.traffic import DEFAULT_CATEGORY_MIX


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--rows", type=int, default=10_000_000, help="traces to simulate (default 10M)"
    )
    parser.add_argument("--size", type=int, default=10_000, help="sample size (default 10,000)")
    parser.add_argument(
        "--floor", type=float, default=0.15, help="per-category floor (default 0.15)"
    )
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument(
        "--repeat", type=int, default=3, help="timings per method; the best is kept"
    )
    parser.add_argument(
        "--workdir", type=Path, default=None, help="where to write the Parquet file"
    )
    parser.add_argument(
        "--engine",
        choices=["duckdb", "spark"],
        default="duckdb",
        help="spark: also draw the same sample with engine spark's sampler on a local[2] "
        "master, beside DuckDB's in the same run",
    )


def write_traces(path: Path, rows: int, seed: int) -> None:
    """N traces with the simulator's category mix, generated inside DuckDB (no Python loop)."""
    cum, cases = 0.0, []
    for cat, share in DEFAULT_CATEGORY_MIX.items():
        cum += share
        cases.append(f"WHEN u < {cum!r} THEN '{cat}'")
    con = duckdb.connect()
    con.execute(
        f"""COPY (
            SELECT 'tr_' || lpad(to_hex(hash(i, {seed})), 16, '0') AS trace_id,
                   TIMESTAMP '2026-01-01' + to_milliseconds((i * 86400000 // {rows})::BIGINT) AS ts,
                   CASE {" ".join(cases)} ELSE 'edge_case' END AS category,
                   ['v1', 'v2', 'v3'][1 + (hash(i, {seed + 2}) % 3)::INT] AS app_version
            FROM (SELECT i, hash(i, {seed + 1})::DOUBLE / 18446744073709551616.0 AS u FROM range({rows}) t(i))
        ) TO '{path}' (FORMAT parquet)"""
    )
    con.close()


def _ours(path: str, size: int, floor: float, seed: int, repeat: int) -> dict[str, Any]:
    con = duckdb.connect()
    source = f"SELECT DATE '2026-01-01' AS partition_date, trace_id, category FROM read_parquet('{path}')"

    def once() -> list[tuple]:
        draw_sample(con, source, size, floor, seed, "bench_sample")
        return con.execute(
            "SELECT category, count(*), sum(1 / inclusion_prob), any_value(category_traffic) FROM bench_sample GROUP BY 1"
        ).fetchall()

    seconds, check = timed(once, repeat)
    return {"seconds": seconds, "check": check}


def _spark(path: str, size: int, floor: float, seed: int, repeat: int) -> dict[str, Any]:
    from evals_pipeline.bench.process import jvm_peak_mb, spark_session
    from evals_pipeline.sampling.spark import draw_sample_spark

    t0 = time.perf_counter()
    spark = spark_session()
    started = time.perf_counter() - t0
    frame = spark.read.parquet(path).selectExpr(
        "DATE'2026-01-01' AS partition_date", "trace_id", "category"
    )

    def once() -> list[tuple]:
        _, sample = draw_sample_spark(spark, frame, size, floor, seed)
        sample.createOrReplaceTempView("_bench_sample")
        return [
            tuple(r)
            for r in spark.sql(
                "SELECT category, count(*), sum(1 / inclusion_prob), max(category_traffic) "
                "FROM _bench_sample GROUP BY 1"
            ).collect()
        ]

    seconds, check = timed(once, repeat)
    out = {"seconds": seconds, "session_seconds": started, "check": check}
    out["jvm_peak_mb"] = jvm_peak_mb()
    spark.stop()
    return out


def _scan(path: str, repeat: int) -> dict[str, Any]:
    con = duckdb.connect()
    seconds, _ = timed(
        lambda: con.execute(
            f"SELECT category, count(*), min(hash(trace_id)) FROM read_parquet('{path}') GROUP BY category"
        ).fetchall(),
        repeat,
    )
    group_only, _ = timed(
        lambda: con.execute(
            f"SELECT category, count(*) FROM read_parquet('{path}') GROUP BY category"
        ).fetchall(),
        repeat,
    )
    return {"seconds": seconds, "group_only_seconds": group_only}


def _pandas(path: str, size: int, floor: float, seed: int, repeat: int) -> dict[str, Any]:
    import pandas as pd

    def once() -> int:
        frame = pd.read_parquet(path, columns=["trace_id", "category"])
        alloc = allocate(frame["category"].value_counts().to_dict(), size, floor)
        parts = [g.sample(n=alloc[c], random_state=seed) for c, g in frame.groupby("category")]
        return len(pd.concat(parts))

    seconds, n = timed(once, repeat)
    return {"seconds": seconds, "rows_sampled": n}


def run(args: argparse.Namespace) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(dir=args.workdir) as tmp:
        path = Path(tmp) / "traces.parquet"
        t0 = time.perf_counter()
        write_traces(path, args.rows, args.seed)
        print(
            f"simulated {args.rows:,} traces into {path} in {time.perf_counter() - t0:.1f} s",
            flush=True,
        )
        common = {"path": str(path), "repeat": args.repeat}
        ours = in_fresh_process(
            "evals_pipeline.bench.sampling",
            "_ours",
            size=args.size,
            floor=args.floor,
            seed=args.seed,
            **common,
        )
        print(f"ours:   {ours['seconds']:.3f} s, peak {ours['peak_rss_mb']:.0f} MB", flush=True)
        scan = in_fresh_process("evals_pipeline.bench.sampling", "_scan", **common)
        print(
            f"scan:   {scan['seconds']:.3f} s (group only {scan['group_only_seconds']:.3f} s), peak {scan['peak_rss_mb']:.0f} MB",
            flush=True,
        )
        pandas = in_fresh_process(
            "evals_pipeline.bench.sampling",
            "_pandas",
            size=args.size,
            floor=args.floor,
            seed=args.seed,
            **common,
        )
        print(f"pandas: {pandas['seconds']:.3f} s, peak {pandas['peak_rss_mb']:.0f} MB", flush=True)

        spark = None
        if args.engine == "spark":
            spark = in_fresh_process(
                "evals_pipeline.bench.sampling",
                "_spark",
                size=args.size,
                floor=args.floor,
                seed=args.seed,
                **common,
            )
            print(spark_report(spark, ours["seconds"])[0], flush=True)

    def checks(rows: list[tuple]) -> tuple[int, bool, bool]:
        weights = all(abs(r[2] - r[3]) <= 1e-6 * r[3] for r in rows)
        floors = all(r[1] >= min(r[3], int(args.floor * args.size)) for r in rows)
        return sum(r[1] for r in rows), weights, floors

    sampled, weights_ok, floor_ok = checks(ours["check"])
    extra: dict[str, Any] = {}
    if spark is not None:
        n, weights, floors = checks(spark["check"])
        sizes = sorted((r[0], r[1]) for r in spark["check"])
        extra = {
            **spark_report(spark, ours["seconds"])[1],
            "spark_sampled": n,
            "spark_weights_ok": weights,
            "spark_floors_ok": floors,
            "spark_same_sizes": sizes == sorted((r[0], r[1]) for r in ours["check"]),
        }
    return {
        "bench": "sampling",
        "rows": args.rows,
        "sample_size": args.size,
        "sampled": sampled,
        "seconds": round(ours["seconds"], 4),
        "scan_seconds": round(scan["seconds"], 4),
        "group_only_seconds": round(scan["group_only_seconds"], 4),
        "pandas_seconds": round(pandas["seconds"], 4),
        "ratio_vs_scan": round(ours["seconds"] / scan["seconds"], 3),
        "speedup_vs_pandas": round(pandas["seconds"] / ours["seconds"], 2),
        "peak_rss_mb": round(ours["peak_rss_mb"], 1),
        "scan_peak_rss_mb": round(scan["peak_rss_mb"], 1),
        "pandas_peak_rss_mb": round(pandas["peak_rss_mb"], 1),
        "weights_ok": weights_ok,
        "floors_ok": floor_ok,
        "duckdb_version": duckdb.__version__,
        **extra,
    }
