"""Dagster wiring of the golden pools: quarterly rotation, holdout evaluation (the sanity
evaluator and the trusted judges inside the seal), export.

Only `golden_pools` (rotation), `holdout_evaluation` and `holdout_panel_evaluation` declare
the `holdout_store` resource (plus ingest, which writes the reservoir); everything that
evaluates the active pool cannot reach holdout content.
"""

from collections.abc import Iterator
from datetime import date

import pandas as pd
from dagster import (
    AssetCheckResult,
    AssetCheckSpec,
    AssetExecutionContext,
    BackfillPolicy,
    Config,
    MaterializeResult,
    MetadataValue,
    asset,
    multi_asset,
)
from duckdb import DuckDBPyConnection
from pydantic import Field

from evals_pipeline.judging.candidates import AppVersion
from evals_pipeline.judging.client import JudgeClient
from evals_pipeline.judging.few_shot import project_rubric
from evals_pipeline.judging.trust import trusted_judges
from evals_pipeline.metadata import markdown_table, table_metadata
from evals_pipeline.partitions import quarter_window, quarterly_partitions
from evals_pipeline.paths import golden_dir
from evals_pipeline.pools import holdout_panel
from evals_pipeline.pools.evaluation import (
    EVALUATORS,
    already_evaluated,
    evaluate_holdout,
    score_by_category,
)
from evals_pipeline.pools.export import export_active_pool
from evals_pipeline.pools.references import ReferenceSource
from evals_pipeline.pools.rotation import RotationSettings, RotationSummary, rotate
from evals_pipeline.pools.sealing import refresh_fingerprints, seal_violations
from evals_pipeline.pools.store import HoldoutStore
from evals_pipeline.pools.synthetic import admit_synthetic
from evals_pipeline.project import ProjectResource
from evals_pipeline.records import (
    ACTIVE_CASES,
    ACTIVE_EVALUATION,
    GOLDEN_CASES,
    GOLDEN_POOLS,
    HOLDOUT_EVALUATION,
    HOLDOUT_PANEL_EVALUATION,
    JUDGE_CALIBRATION,
    JUDGE_VERDICTS,
    POOL_EVENTS,
    POOL_SIZES,
    SYNTHETIC_INPUTS,
    SYNTHETIC_WHY,
    TRACE_SAMPLE,
    TRACES,
)
from evals_pipeline.specs import deps_of, table_asset, table_spec
from evals_pipeline.warehouse import Warehouse

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


@multi_asset(
    name="golden_pool_rotation",
    specs=[
        table_spec(GOLDEN_POOLS, group="pools", reads=[TRACE_SAMPLE, TRACES, SYNTHETIC_INPUTS]),
        table_spec(GOLDEN_CASES, group="pools"),
        table_spec(POOL_EVENTS, group="pools"),
        table_spec(POOL_SIZES, group="pools"),
    ],
    check_specs=[
        AssetCheckSpec(
            "holdout_sealed",
            asset=GOLDEN_POOLS.name,
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
    transaction; rotating the same quarter again changes nothing. Then (at every run) the
    synthetic inputs the realism filter admitted enter the active pool, never the holdout."""
    start, end = quarter_window(context)
    settings = RotationSettings(**config.model_dump())
    with warehouse.get_connection() as conn, holdout_store.attached(conn) as alias:
        summary = rotate(conn, alias, start, end, settings, context.run_id, reference_source.load)
        if summary.already_done:
            reference_source.load(conn)  # the synthetic inputs' references
            context.log.info(f"quarter {start} was already rotated: only synthetic inputs enter")
        else:
            context.log.info(
                f"rotated {start}: +{summary.entered_active} active, +{summary.entered_holdout} holdout, "
                f"{summary.graduated} graduated, {summary.retired} retired"
            )
        summary.synthetic = admit_synthetic(conn, context.run_id, start, end)
        yield from _rotation_results(conn, summary, start)
        sealed_strings = refresh_fingerprints(conn, alias, context.run_id, start)
        violations = seal_violations(conn)
    yield seal_check_result("holdout_sealed", GOLDEN_POOLS.name, violations, sealed_strings)


def _rotation_results(
    conn: DuckDBPyConnection, summary: RotationSummary, start: date
) -> Iterator[MaterializeResult]:
    """One materialization per pool table: the moves, the sizes per category and pool."""
    sizes = conn.execute(
        f"SELECT category, pool, cases FROM {POOL_SIZES} WHERE quarter = ? ORDER BY 1, 2",
        [start],
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
        "synthetic": MetadataValue.json(summary.synthetic),
    }
    if summary.references is not None:
        moves["reviewed_rows_rejected"] = MetadataValue.json(summary.references.rejected)
    yield MaterializeResult(
        asset_key=GOLDEN_POOLS.name,
        metadata={
            **table_metadata(conn, GOLDEN_POOLS),
            **moves,
            "pool_sizes": MetadataValue.md(markdown_table(pivot)),
        },
    )
    yield MaterializeResult(
        asset_key=GOLDEN_CASES.name,
        metadata=table_metadata(
            conn, GOLDEN_CASES, preview_columns=["case_id", "category", "why", "input"]
        ),
    )
    for table in (POOL_EVENTS, POOL_SIZES):
        yield MaterializeResult(
            asset_key=table.name, metadata=table_metadata(conn, table, "quarter = ?", [start])
        )


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


@table_asset(
    HOLDOUT_EVALUATION,
    group="pools",
    reads=[GOLDEN_POOLS],
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
        if already_evaluated(conn, start, config.evaluator) and not config.force:
            # A re-run of the quarterly job takes no second look: it reports what exists.
            context.log.info(
                f"holdout of {start} already evaluated by {config.evaluator}; not read again"
            )
            frame = conn.execute(
                f"SELECT * FROM {HOLDOUT_EVALUATION} WHERE quarter = ? AND evaluator = ?",
                [start, config.evaluator],
            ).df()
        else:
            rows = evaluate_holdout(
                conn, alias, start, context.run_id, config.evaluator, config.force
            )
            frame = pd.DataFrame(rows, columns=HOLDOUT_EVALUATION.column_names)
        return MaterializeResult(
            metadata={
                **table_metadata(conn, HOLDOUT_EVALUATION, "quarter = ?", [start]),
                "scores": MetadataValue.md(
                    markdown_table(frame.round({"mean_score": 3, "std_error": 3}))
                ),
            }
        )


@asset(
    group_name="pools",
    kinds={"json"},
    deps=deps_of([ACTIVE_CASES, POOL_EVENTS]),
)
def golden_export(context: AssetExecutionContext, warehouse: Warehouse) -> MaterializeResult:
    """The active pool as data/golden/active.jsonl with a CHANGELOG.md entry per rotation,
    so a team can keep its golden set in git and review changes as diffs."""
    folder = golden_dir()
    with warehouse.get_connection() as conn:
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


@table_asset(
    ACTIVE_EVALUATION,
    group="pools",
    reads=[ACTIVE_CASES],
    partitions_def=quarterly_partitions,
    backfill_policy=BackfillPolicy.multi_run(1),
)
def active_evaluation(context: AssetExecutionContext, warehouse: Warehouse) -> MaterializeResult:
    """The active pool scored at the rotation by the holdout's evaluator (reference_token_f1),
    from the warehouse only: the active side of the holdout gap."""
    start, _ = quarter_window(context)
    with warehouse.get_connection() as conn:
        # Traffic cases only: the holdout is traffic, and a synthetic case has no production output.
        cases = conn.execute(
            f"SELECT * FROM {ACTIVE_CASES} WHERE why <> '{SYNTHETIC_WHY}' ORDER BY case_id"
        ).df()
        rows = score_by_category(cases, start, "reference_token_f1")
        conn.execute(f"DELETE FROM {ACTIVE_EVALUATION} WHERE quarter = ?", [start])
        if rows:
            conn.executemany(f"INSERT INTO {ACTIVE_EVALUATION} VALUES ({', '.join('?' * 6)})", rows)
        return MaterializeResult(
            metadata=table_metadata(conn, ACTIVE_EVALUATION, "quarter = ?", [start])
        )


class HoldoutPanelConfig(Config):
    force: bool = Field(
        default=False,
        description="Judge the holdout again although this rotation was already judged (recorded).",
    )


def _role_versions(project: ProjectResource) -> list[AppVersion]:
    """The candidate and the baseline, as the project file defines them."""
    p = project.config()
    wanted = {p.version("candidate"), p.version("baseline")} - {""}
    return [
        AppVersion(v.name, v.model, p.system_prompt(v))
        for v in p.app_versions
        if v.name in wanted and v.generate
    ]


@table_asset(
    HOLDOUT_PANEL_EVALUATION,
    group="pools",
    reads=[GOLDEN_POOLS, JUDGE_VERDICTS, JUDGE_CALIBRATION],
    kinds=("duckdb", "litellm"),
    partitions_def=quarterly_partitions,
    backfill_policy=BackfillPolicy.multi_run(1),
)
def holdout_panel_evaluation(
    context: AssetExecutionContext,
    config: HoldoutPanelConfig,
    warehouse: Warehouse,
    holdout_store: HoldoutStore,
    judge_client: JudgeClient,
    project: ProjectResource,
) -> MaterializeResult:
    """The holdout judged like the active pool, inside the seal: at the rotation, the candidate
    and baseline answer the holdout cases and the trusted judges judge them with the active
    pool's rubric; answers, verdicts and the call cache stay in the holdout store. Only pass
    rates per side, version and category come out (one logged read), beside the same judges'
    rates on the active pool: the gap the `holdout` gate reads."""
    start, _ = quarter_window(context)
    with warehouse.get_connection() as conn, holdout_store.attached(conn) as alias:
        rubric = project_rubric(conn, project.config().judges)
        judges = trusted_judges(conn, project.config().judges.panel, rubric)
        holdout_panel.evaluate(
            conn,
            alias,
            start,
            holdout_panel.PanelRun(judge_client, _role_versions(project), judges, rubric),
            config.force,
            context.log,
            context.run_id,
        )
        shown = conn.execute(
            f"""SELECT side, app_version, sum(n) AS n, round(sum(n * pass_rate) / nullif(sum(n), 0), 3) AS pass_rate
               FROM {HOLDOUT_PANEL_EVALUATION} WHERE quarter = ? GROUP BY ALL ORDER BY ALL""",
            [start],
        ).df()
        return MaterializeResult(
            metadata={
                **table_metadata(conn, HOLDOUT_PANEL_EVALUATION, "quarter = ?", [start]),
                "pass_rates": MetadataValue.md(markdown_table(shown)),
                "trusted_judges": MetadataValue.json(judges),
            }
        )
