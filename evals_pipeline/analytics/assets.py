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

from evals_pipeline.analytics.snapshot import (
    build_snapshot,
    record_published,
    refresh_plan,
    refresh_snapshot,
    remove_stale_temporaries,
    seal_digest,
)
from evals_pipeline.metadata import markdown_table
from evals_pipeline.paths import analytics_path
from evals_pipeline.pools.assets import seal_check_result
from evals_pipeline.pools.sealing import seal_violations, sealed_string_count
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
        # Holding the warehouse means no other build is in flight: what is left is stale.
        removed = remove_stale_temporaries(target)
        if removed:
            context.log.info(f"removed {len(removed)} temporaries of an interrupted snapshot build")
        plan = refresh_plan(conn, target)
        seal = seal_digest(conn)
        # Days already published were checked against the same fingerprints: only the days
        # about to be published need the check then. Any other change checks everything.
        only_days = plan.changed if plan is not None and plan.seal_digest == seal else None
        violations = seal_violations(conn, only_days=only_days)
        sealed = sealed_string_count(conn)
        if violations:
            yield seal_check_result("snapshot_sealed", "analytics_snapshot", violations, sealed)
            raise Failure(
                "the warehouse holds holdout content; the snapshot was NOT published",
                metadata={"where": MetadataValue.md(markdown_table(pd.DataFrame(violations)))},
            )
        if plan is None:
            counts = build_snapshot(conn, target, ANALYST_TABLES)
        else:
            counts = refresh_snapshot(conn, target, ANALYST_TABLES, plan)
        record_published(conn, target, seal)
    refreshed = {t: len(d) for t, d in plan.changed.items()} if plan is not None else None
    context.log.info(
        "snapshot built whole"
        if refreshed is None
        else "snapshot refreshed: changed day partitions "
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
            "stale_temporaries_removed": MetadataValue.int(len(removed)),
            "refresh": MetadataValue.json(
                {"whole": True} if refreshed is None else {"changed_days": refreshed}
            ),
        }
    )
    yield seal_check_result("snapshot_sealed", "analytics_snapshot", [], sealed)
