"""Dagster wiring of the analytics snapshot."""

import pandas as pd
from dagster import AssetExecutionContext, MaterializeResult, MetadataValue, asset

from evals_pipeline.analytics.snapshot import build_snapshot
from evals_pipeline.metadata import markdown_table
from evals_pipeline.paths import analytics_path
from evals_pipeline.records import ANALYST_TABLES
from evals_pipeline.warehouse import Warehouse


@asset(
    group_name="analytics",
    kinds={"duckdb"},
    deps=[t.name for t in ANALYST_TABLES],
)
def analytics_snapshot(context: AssetExecutionContext, warehouse: Warehouse) -> MaterializeResult:
    """data/analytics.duckdb: what analysts open (read-only). Rebuilt beside the working
    warehouse at the end of every run and swapped in atomically, so a reader never blocks the
    pipeline and the pipeline never blocks a reader. Tables and columns carry comments."""
    target = analytics_path()
    with warehouse.get_connection() as conn:
        counts = build_snapshot(conn, target, ANALYST_TABLES)
    context.log.info(
        f"analytics snapshot at {target}: " + ", ".join(f"{k}={v:,}" for k, v in counts.items())
    )
    frame = pd.DataFrame(sorted(counts.items()), columns=["table", "rows"])
    return MaterializeResult(
        metadata={
            "path": MetadataValue.path(str(target)),
            "tables": MetadataValue.md(markdown_table(frame)),
            "dagster/row_count": MetadataValue.int(sum(counts.values())),
            "open_with": MetadataValue.text(f"duckdb -readonly {target}"),
        }
    )
