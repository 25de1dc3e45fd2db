"""Daily-run benchmark: does a day cost the same on day 1 and on day 365?

In one run: simulate `--days` + 1 days of demo-volume traffic, fill one warehouse with the
first `--days` days (one backfill run), then time the daily job (ingest, sample, snapshot)
for the last day on that warehouse and on a fresh one (the baseline), alternating, best of
`--repeat` each. Re-running a day replaces it, so every timing does the same work. Prints
one JSON line: seconds on the full and the fresh warehouse, their ratio, and the snapshot's
share of each.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from datetime import date, timedelta
from pathlib import Path
from typing import Any


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--days", type=int, default=365, help="days of history (default 365)")
    parser.add_argument("--traces-per-day", type=int, default=1250, help="the demo's volume")
    parser.add_argument("--repeat", type=int, default=3, help="timings each; the best is kept")
    parser.add_argument("--workdir", type=Path, default=None)


def _resources(root: Path, data: Path) -> dict[str, object]:
    from evals_pipeline.ingest.sources import FileTraceSource
    from evals_pipeline.pools.store import HoldoutStore
    from evals_pipeline.project import ProjectResource
    from evals_pipeline.warehouse import Warehouse

    return {
        "warehouse": Warehouse(database=str(data / "warehouse.duckdb")),
        "trace_source": FileTraceSource(root=str(root)),
        "holdout_store": HoldoutStore(),
        "project": ProjectResource(),
    }


def _daily(root: Path, data: Path, start: str, end: str) -> tuple[float, float]:
    """Seconds of one daily run over [start, end] in data dir `data`, and its snapshot step's."""
    from dagster import DagsterInstance

    from evals_pipeline.definitions import defs

    os.environ["EVALS_DATA_DIR"] = str(data)
    job = defs.resolve_job_def("evals_daily")
    tags = {"dagster/asset_partition_range_start": start, "dagster/asset_partition_range_end": end}
    with DagsterInstance.ephemeral() as instance:
        t0 = time.perf_counter()
        result = job.execute_in_process(
            tags=tags,
            resources=_resources(root, data),
            instance=instance,
            run_config={"loggers": {"console": {"config": {"log_level": "WARNING"}}}},
        )
        seconds = time.perf_counter() - t0
        if not result.success:
            raise RuntimeError(f"the daily run over {start}..{end} failed")
        snapshot = [
            s.end_time - s.start_time
            for s in instance.get_run_step_stats(result.run_id)
            if s.step_key == "analytics_snapshot" and s.start_time and s.end_time
        ]
    return seconds, snapshot[0] if snapshot else float("nan")


def run(args: argparse.Namespace) -> dict[str, Any]:
    import warnings

    from evals_pipeline.simulator.offline_models import register_provider
    from evals_pipeline.simulator.traffic import SimulationConfig, simulate

    warnings.filterwarnings("ignore")
    register_provider()
    first = date(2026, 1, 1)
    last = first + timedelta(days=args.days)
    with tempfile.TemporaryDirectory(dir=args.workdir) as tmp:
        root = Path(tmp) / "traffic"
        cfg = SimulationConfig(
            seed=5,
            start=first.isoformat(),
            end=last.isoformat(),
            traces_per_day=args.traces_per_day,
            label_count=0,
        )
        t0 = time.perf_counter()
        summary = simulate(cfg, root)
        print(f"simulated {summary['traces']:,} traces in {time.perf_counter() - t0:.0f} s")
        full, fresh = Path(tmp) / "full", Path(tmp) / "fresh"
        t0 = time.perf_counter()
        history_end = (last - timedelta(days=1)).isoformat()
        _daily(root, full, first.isoformat(), history_end)
        print(f"history: {args.days} days in {time.perf_counter() - t0:.0f} s")
        day = last.isoformat()
        timings: dict[str, list[tuple[float, float]]] = {"full": [], "fresh": []}
        for _ in range(args.repeat):
            for name, data in (("full", full), ("fresh", fresh)):
                timings[name].append(_daily(root, data, day, day))
                print(f"{name}: {timings[name][-1][0]:.2f} s", flush=True)
    best = {k: min(v) for k, v in timings.items()}
    return {
        "bench": "daily",
        "history_days": args.days,
        "traces_per_day": args.traces_per_day,
        "history_traces": summary["traces"],
        "seconds_full": round(best["full"][0], 3),
        "seconds_fresh": round(best["fresh"][0], 3),
        "ratio_full_vs_fresh": round(best["full"][0] / best["fresh"][0], 3),
        "snapshot_seconds_full": round(best["full"][1], 3),
        "snapshot_seconds_fresh": round(best["fresh"][1], 3),
    }
