"""Dagster wiring of the golden pools: quarterly rotation, holdout evaluation, export.

Only `golden_pools` (rotation) and `holdout_evaluation` declare the `holdout_store` resource
(plus ingest, which writes the reservoir); everything that evaluates the active pool cannot
reach holdout content.
"""

from collections.abc import Iterator

import pandas as pd
from dagster import (
    AssetCheckResult,
    AssetCheckSpec,
    AssetExecutionContext,
    AssetSpec,
    BackfillPolicy,
    Config,
    MaterializeResult,
    MetadataValue,
    asset,
    multi_asset,
)
from pydantic import Field

from evals_pipeline.metadata import markdown_table, table_metadata
from evals_pipeline.partitions import quarter_window, quarterly_partitions
from evals_pipeline.paths import golden_dir
from evals_pipeline.pools.evaluation import (
    EVALUATORS,
    already_evaluated,
    evaluate_holdout,
    score_by_category,
)
from evals_pipeline.pools.export import export_active_pool
from evals_pipeline.pools.references import ReferenceSource
from evals_pipeline.pools.rotation import RotationSettings, rotate
from evals_pipeline.pools.sealing import refresh_fingerprints, seal_violations
from evals_pipeline.pools.store import HoldoutStore
from evals_pipeline.records import (
    ACTIVE_EVALUATION,
    GOLDEN_CASES,
    GOLDEN_POOLS,
    HOLDOUT_EVALUATION,
    POOL_EVENTS,
    POOL_SIZES,
)
from evals_pipeline.warehouse import Warehouse, ensure_tables

_DEFAULTS = RotationSettings()


class RotationConfig(Config):
    new_cases: int = Field(
        default=_DEFAULTS.new_cases, description="New golden cases per quarter (all categories)."
    )
    holdout_share: float = Field(
        default=_DEFAULTS.holdout_share,
        description="Share of new cases that enter holdout (per category).",
    )
    floor: float = Field(
        default=_DEFAULTS.floor, description="Minimum share of new cases per category."
    )
    graduate_fraction: float = Field(
        default=_DEFAULTS.graduate_fraction,
        description="Share of the holdout pool that graduates to active each rotation.",
    )
    min_sealed_days: int = Field(
        default=_DEFAULTS.min_sealed_days,
        description="Days a holdout case stays sealed before it may graduate.",
    )
    active_cap: int = Field(
        default=_DEFAULTS.active_cap,
        description="Maximum active cases; the oldest beyond it retire.",
    )
    seed: int = Field(default=_DEFAULTS.seed, description="Seed of the deterministic draws.")


POOL_TABLES = (GOLDEN_POOLS, GOLDEN_CASES, POOL_EVENTS, POOL_SIZES)


@multi_asset(
    name="golden_pool_rotation",
    specs=[
        AssetSpec(
            "golden_pools",
            description="Every golden case's pool (active / holdout / retired) with dates; rotated quarterly. No content.",
            group_name="pools",
            kinds={"duckdb"},
            deps=["trace_sample", "traces"],
        ),
        AssetSpec(
            "golden_cases",
            description="Content of active and retired golden cases (never holdout).",
            group_name="pools",
            kinds={"duckdb"},
        ),
        AssetSpec(
            "pool_events",
            description="Audit log: every pool move and every read of holdout content.",
            group_name="pools",
            kinds={"duckdb"},
        ),
        AssetSpec(
            "pool_sizes",
            description="Cases per pool and category after each rotation.",
            group_name="pools",
            kinds={"duckdb"},
        ),
    ],
    check_specs=[
        AssetCheckSpec(
            "holdout_sealed",
            asset="golden_pools",
            description="No holdout case in golden_cases, no text on sealed traces, and no holdout string in any analyst text column. "
            "Blocking: a leak fails the run.",
            blocking=True,
        )
    ],
    partitions_def=quarterly_partitions,
    backfill_policy=BackfillPolicy.multi_run(1),
)
def golden_pool_rotation(
    context: AssetExecutionContext,
    config: RotationConfig,
    warehouse: Warehouse,
    holdout_store: HoldoutStore,
    reference_source: ReferenceSource,
) -> Iterator[MaterializeResult | AssetCheckResult]:
    """Quarterly rotation of the golden pools: new cases split 70/30 active/holdout by
    category (active from the sampled traffic, holdout from the reservoir sealed at ingest),
    a fraction of holdout graduates, the oldest active beyond the cap retire. One warehouse
    transaction; rotating the same quarter again changes nothing."""
    start, end = quarter_window(context)
    settings = RotationSettings(**config.model_dump())
    with warehouse.get_connection() as conn, holdout_store.attached(conn) as alias:
        ensure_tables(conn, POOL_TABLES)
        summary = rotate(conn, alias, start, end, settings, context.run_id, reference_source.load)
        if summary.already_done:
            context.log.info(f"quarter {start} was already rotated: nothing changes")
        else:
            context.log.info(
                f"rotated {start}: +{summary.entered_active} active, +{summary.entered_holdout} holdout, "
                f"{summary.graduated} graduated, {summary.retired} retired"
            )
        sizes = conn.execute(
            "SELECT category, pool, cases FROM pool_sizes WHERE quarter = ? ORDER BY 1, 2", [start]
        ).df()
        pivot = (
            sizes.pivot_table(
                index="category", columns="pool", values="cases", fill_value=0
            ).reset_index()
            if not sizes.empty
            else sizes
        )
        moves = {
            "entered_active": MetadataValue.int(summary.entered_active),
            "entered_holdout": MetadataValue.int(summary.entered_holdout),
            "graduated": MetadataValue.int(summary.graduated),
            "retired": MetadataValue.int(summary.retired),
            "already_rotated": MetadataValue.bool(summary.already_done),
            "shortfall": MetadataValue.json(summary.shortfall),
        }
        if summary.references is not None:
            moves["reviewed_rows_rejected"] = MetadataValue.json(summary.references.rejected)
        yield MaterializeResult(
            asset_key="golden_pools",
            metadata={
                **table_metadata(conn, "golden_pools"),
                **moves,
                "pool_sizes": MetadataValue.md(markdown_table(pivot)),
            },
        )
        yield MaterializeResult(
            asset_key="golden_cases",
            metadata=table_metadata(
                conn, "golden_cases", preview_columns=["case_id", "category", "why", "input"]
            ),
        )
        yield MaterializeResult(
            asset_key="pool_events",
            metadata=table_metadata(conn, "pool_events", "quarter = ?", [start]),
        )
        yield MaterializeResult(
            asset_key="pool_sizes",
            metadata=table_metadata(conn, "pool_sizes", "quarter = ?", [start]),
        )
        sealed_strings = refresh_fingerprints(conn, alias, context.run_id, start)
        violations = seal_violations(conn)
    yield seal_check_result("holdout_sealed", "golden_pools", violations, sealed_strings)


def seal_check_result(
    check_name: str, asset_key: str, violations: list[dict[str, object]], sealed_strings: int
) -> AssetCheckResult:
    """The outcome of `seal_violations` as a (blocking, ERROR) check result."""
    return AssetCheckResult(
        check_name=check_name,
        asset_key=asset_key,
        passed=not violations,
        metadata={
            "sealed_strings": MetadataValue.int(sealed_strings),
            "violations": MetadataValue.int(len(violations)),
            "where": MetadataValue.md(
                markdown_table(pd.DataFrame(violations)) if violations else "none"
            ),
        },
    )


class HoldoutEvaluationConfig(Config):
    evaluator: str = Field(
        default="reference_token_f1", description=f"One of {sorted(EVALUATORS)}."
    )
    force: bool = Field(
        default=False,
        description="Evaluate again although this rotation was already evaluated (recorded).",
    )


@asset(
    group_name="pools",
    kinds={"duckdb"},
    deps=["golden_pools"],
    partitions_def=quarterly_partitions,
    backfill_policy=BackfillPolicy.multi_run(1),
)
def holdout_evaluation(
    context: AssetExecutionContext,
    config: HoldoutEvaluationConfig,
    warehouse: Warehouse,
    holdout_store: HoldoutStore,
) -> MaterializeResult:
    """Scores of the sealed holdout pool, computed once per rotation (the rotation window
    only; a second look needs force=true and is logged). Per-category aggregates only."""
    start, _ = quarter_window(context)
    with warehouse.get_connection() as conn, holdout_store.attached(conn) as alias:
        ensure_tables(conn, [HOLDOUT_EVALUATION])
        if already_evaluated(conn, start, config.evaluator) and not config.force:
            # A re-run of the quarterly job takes no second look: it reports what exists.
            context.log.info(
                f"holdout of {start} already evaluated by {config.evaluator}; not read again"
            )
            frame = conn.execute(
                "SELECT * FROM holdout_evaluation WHERE quarter = ? AND evaluator = ?",
                [start, config.evaluator],
            ).df()
        else:
            rows = evaluate_holdout(
                conn, alias, start, context.run_id, config.evaluator, config.force
            )
            frame = pd.DataFrame(rows, columns=HOLDOUT_EVALUATION.column_names)
        return MaterializeResult(
            metadata={
                **table_metadata(conn, "holdout_evaluation", "quarter = ?", [start]),
                "scores": MetadataValue.md(
                    markdown_table(frame.round({"mean_score": 3, "std_error": 3}))
                ),
            }
        )


@asset(group_name="pools", kinds={"json"}, deps=["golden_pools", "golden_cases", "pool_events"])
def golden_export(context: AssetExecutionContext, warehouse: Warehouse) -> MaterializeResult:
    """The active pool as data/golden/active.jsonl with a CHANGELOG.md entry per rotation,
    so a team can keep its golden set in git and review changes as diffs."""
    folder = golden_dir()
    with warehouse.get_connection() as conn:
        ensure_tables(conn, POOL_TABLES)
        counts = export_active_pool(conn, folder)
    context.log.info(f"exported {counts['active_cases']} active cases to {folder}")
    return MaterializeResult(
        metadata={
            "path": MetadataValue.path(str(folder / "active.jsonl")),
            "changelog": MetadataValue.path(str(folder / "CHANGELOG.md")),
            "dagster/row_count": MetadataValue.int(counts["active_cases"]),
            "rotations": MetadataValue.int(counts["rotations"]),
        }
    )


@asset(
    group_name="pools",
    kinds={"duckdb"},
    deps=["golden_pools", "golden_cases"],
    partitions_def=quarterly_partitions,
    backfill_policy=BackfillPolicy.multi_run(1),
)
def active_evaluation(context: AssetExecutionContext, warehouse: Warehouse) -> MaterializeResult:
    """The active pool scored at the rotation by the holdout's evaluator (reference_token_f1),
    from the warehouse only: the active side of the holdout gap."""
    start, _ = quarter_window(context)
    with warehouse.get_connection() as conn:
        ensure_tables(conn, [ACTIVE_EVALUATION, GOLDEN_CASES, GOLDEN_POOLS])
        cases = conn.execute("SELECT * FROM active_cases ORDER BY case_id").df()
        rows = score_by_category(cases, start, "reference_token_f1")
        conn.execute("DELETE FROM active_evaluation WHERE quarter = ?", [start])
        if rows:
            conn.executemany(f"INSERT INTO active_evaluation VALUES ({', '.join('?' * 6)})", rows)
        return MaterializeResult(
            metadata=table_metadata(conn, "active_evaluation", "quarter = ?", [start])
        )
