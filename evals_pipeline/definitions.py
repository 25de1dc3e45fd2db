"""The Dagster code location: `dagster dev -w workspace.yaml` loads `defs` from here.

Stages follow DESIGN.md's data flow; each stage's assets live in its own package. Steps run
in one process (DuckDB allows a single writer per file), and multi-day backfills run as one
run (single-run backfill policy), so a quarter does not spawn 90 runs.
"""

from __future__ import annotations

import os

from dagster import (
    AssetSelection,
    DefaultScheduleStatus,
    Definitions,
    build_schedule_from_partitioned_job,
    define_asset_job,
    in_process_executor,
)

from evals_pipeline.analytics.assets import analytics_snapshot
from evals_pipeline.ingest.assets import trace_feedback_assets, traces_assets
from evals_pipeline.ingest.sources import FileTraceSource, SimulatedTraceSource
from evals_pipeline.paths import warehouse_path
from evals_pipeline.sampling.assets import trace_sample
from evals_pipeline.warehouse import Warehouse

daily_job = define_asset_job(
    "evals_daily",
    selection=AssetSelection.groups("ingest", "sampling", "analytics"),
    description="Ingest a day's traces and feedback, sample it, and refresh the analysts' snapshot.",
)

daily_schedule = build_schedule_from_partitioned_job(
    daily_job,
    hour_of_day=2,
    description="Every day at 02:00 UTC, for the UTC day that just ended.",
    default_status=DefaultScheduleStatus.STOPPED,
)


def resources() -> dict[str, object]:
    """The embedded default is simulated traffic; EVALS_TRACES_DIR points at real files."""
    traces_dir = os.environ.get("EVALS_TRACES_DIR")
    source = FileTraceSource(root=traces_dir) if traces_dir else SimulatedTraceSource()
    return {"warehouse": Warehouse(database=str(warehouse_path())), "trace_source": source}


defs = Definitions(
    assets=[traces_assets, trace_feedback_assets, trace_sample, analytics_snapshot],
    jobs=[daily_job],
    schedules=[daily_schedule],
    resources=resources(),
    executor=in_process_executor,
)
