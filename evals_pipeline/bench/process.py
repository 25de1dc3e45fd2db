"""What the benchmarks share: best-of-N timing, and running a contender in a fresh process
so that its peak memory is measured apart."""

from __future__ import annotations

import importlib
import multiprocessing as mp
import resource
import time
from pathlib import Path
from typing import Any


def timed(fn: Any, repeat: int) -> tuple[float, Any]:
    """The best of `repeat` timings of `fn()`, and its last result."""
    best, out = float("inf"), None
    for _ in range(repeat):
        t0 = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t0)
    return best, out


def _child(module: str, name: str, kwargs: dict[str, Any], queue: mp.Queue) -> None:
    out = getattr(importlib.import_module(module), name)(**kwargs)
    out["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB
    queue.put(out)


def in_fresh_process(module: str, name: str, **kwargs: Any) -> dict[str, Any]:
    """`module.name(**kwargs)` (a dict) in a spawned process, with its peak RSS added.

    Linux keeps ru_maxrss across fork and exec: a child spawned after the parent grew reports
    at least the parent's peak. Benchmarks therefore do their heavy set-up (writing the input
    files) in a fresh process too, and the parent stays small."""
    ctx = mp.get_context("spawn")
    queue = ctx.Queue()
    proc = ctx.Process(target=_child, args=(module, name, kwargs, queue))
    proc.start()
    # Waiting on the queue alone would hang forever if the child died before answering.
    while True:
        try:
            out = queue.get(timeout=1.0)
            break
        except Exception:  # queue.Empty: still working, or dead
            if not proc.is_alive():
                raise RuntimeError(
                    f"{name} benchmark process died with exit code {proc.exitcode}"
                ) from None
    proc.join()
    if proc.exitcode != 0:
        raise RuntimeError(f"{name} benchmark process failed with exit code {proc.exitcode}")
    return out


def spark_session(master: str = "local[2]") -> Any:
    """A Spark session as engine spark configures one (spark_lake.session_config)."""
    import os
    import sys

    from pyspark.sql import SparkSession

    from evals_pipeline.project import SparkSpec
    from evals_pipeline.spark_lake import session_config

    class _Cfg:
        engine = "spark"
        spark = SparkSpec(master=master)

    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    builder = SparkSession.builder
    for key, value in session_config(_Cfg).items():
        builder = builder.config(key, value)
    spark = builder.getOrCreate()
    spark.sparkContext.setLogLevel("ERROR")
    return spark


def jvm_peak_mb() -> float:
    """Peak resident memory (VmHWM) of this process's Java children: Spark's driver JVM, which
    on a local master also runs the executors."""
    import psutil

    peak = 0.0
    for child in psutil.Process().children(recursive=True):
        try:
            if "java" not in child.name():
                continue
            for line in Path(f"/proc/{child.pid}/status").read_text().splitlines():
                if line.startswith("VmHWM:"):
                    peak = max(peak, int(line.split()[1]) / 1024)
        except (psutil.Error, OSError):
            continue
    return peak


def spark_report(spark: dict[str, Any], duckdb_seconds: float) -> tuple[str, dict[str, Any]]:
    """The line printed and the JSON fields of a Spark contender beside DuckDB's."""
    line = (
        f"spark: {spark['seconds']:.3f} s (session start {spark['session_seconds']:.1f} s apart), "
        f"driver peak {spark['peak_rss_mb']:.0f} MB + JVM {spark['jvm_peak_mb']:.0f} MB"
    )
    fields = {
        "engine": "spark",
        "spark_seconds": round(spark["seconds"], 3),
        "spark_ratio_vs_duckdb": round(spark["seconds"] / duckdb_seconds, 2),
        "spark_session_seconds": round(spark["session_seconds"], 1),
        "spark_driver_peak_rss_mb": round(spark["peak_rss_mb"], 1),
        "spark_jvm_peak_rss_mb": round(spark["jvm_peak_mb"], 1),
    }
    return line, fields
