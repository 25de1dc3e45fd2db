"""Dagster wiring of the analytics snapshot."""

from collections.abc import Iterator

import pandas as pd
from dagster import (
    AssetCheckResult,
    AssetCheckSpec,
    AssetExecutionContext,
    Failure,
    MaterializeResult,
    MetadataValue,
    asset,
)

from evals_pipeline.analytics.snapshot import publish
from evals_pipeline.metadata import markdown_table
from evals_pipeline.paths import analytics_path
from evals_pipeline.pools.assets import seal_check_result
from evals_pipeline.records import ANALYST_TABLES
from evals_pipeline.specs import deps_of
from evals_pipeline.warehouse import Warehouse


@asset(
    group_name="analytics",
    kinds={"duckdb"},
    deps=deps_of(ANALYST_TABLES),
    check_specs=[
        AssetCheckSpec(
            "snapshot_sealed",
            asset="analytics_snapshot",
            description="Before publishing: no holdout case in golden_cases, no text on sealed traces, and no "
            "string of a holdout case in any analyst text column. Blocking: a leak fails the run and the "
            "previous snapshot stays in place.",
            blocking=True,
        )
    ],
)
def analytics_snapshot(
    context: AssetExecutionContext, warehouse: Warehouse
) -> Iterator[MaterializeResult | AssetCheckResult]:
    """data/analytics.duckdb: what analysts open (read-only). Rebuilt beside the working
    warehouse at the end of every run and swapped in atomically, so a reader never blocks the
    pipeline and the pipeline never blocks a reader. Every job ends here, and nothing is
    published while the seal check finds holdout content. Tables and columns carry comments."""
    target = analytics_path()
    with warehouse.get_connection() as conn:
        done = publish(conn, target, ANALYST_TABLES)
    if done.removed:
        context.log.info(
            f"removed {len(done.removed)} temporaries of an interrupted snapshot build"
        )
    if done.violations:
        yield seal_check_result(
            "snapshot_sealed", "analytics_snapshot", done.violations, done.sealed_strings
        )
        raise Failure(
            "the warehouse holds holdout content; the snapshot was NOT published",
            metadata={"where": MetadataValue.md(markdown_table(pd.DataFrame(done.violations)))},
        )
    counts, refreshed = done.counts, done.refreshed
    context.log.info(
        "snapshot built whole"
        if refreshed is None
        else "snapshot refreshed, changed day partitions: "
        + ", ".join(f"{t} {n}" for t, n in refreshed.items())
    )
    context.log.info(
        f"analytics snapshot at {target}: " + ", ".join(f"{k}={v:,}" for k, v in counts.items())
    )
    frame = pd.DataFrame(sorted(counts.items()), columns=["table", "rows"])
    yield MaterializeResult(
        metadata={
            "path": MetadataValue.path(str(target)),
            "tables": MetadataValue.md(markdown_table(frame)),
            "dagster/row_count": MetadataValue.int(sum(counts.values())),
            "open_with": MetadataValue.text(f"duckdb -readonly {target}"),
            "stale_temporaries_removed": MetadataValue.int(len(done.removed)),
            "refresh": MetadataValue.json(
                {"whole": True} if refreshed is None else {"changed_days": refreshed}
            ),
        }
    )
    yield seal_check_result("snapshot_sealed", "analytics_snapshot", [], done.sealed_strings)
