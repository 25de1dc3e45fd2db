"""Dagster wiring of the synthetic inputs: one asset and its checks."""

import json
from collections.abc import Iterator

import pandas as pd
from dagster import (
    AssetCheckResult,
    AssetCheckSeverity,
    AssetCheckSpec,
    AssetExecutionContext,
    MaterializeResult,
    MetadataValue,
)
from duckdb import DuckDBPyConnection

from evals_pipeline.judging.client import JudgeClient, RunStats
from evals_pipeline.metadata import markdown_table, replaced_with
from evals_pipeline.pools.references import ReferenceSource
from evals_pipeline.project import ProjectResource
from evals_pipeline.records import SYNTHETIC_INPUTS
from evals_pipeline.specs import table_asset
from evals_pipeline.synthetic.admission import synthetic_run
from evals_pipeline.synthetic.dimensions import below_floor
from evals_pipeline.warehouse import Warehouse


# It also reads the active pool (to de-duplicate against it) and judge_calibration (who may
# filter) as they stand; declaring them would close a loop in the asset graph, since the
# admitted inputs flow on into the pools and calibration.
@table_asset(
    SYNTHETIC_INPUTS,
    group="synthetic",
    kinds=("duckdb", "litellm", "sklearn"),
    check_specs=[
        AssetCheckSpec(
            "synthetic_coverage",
            asset=SYNTHETIC_INPUTS.name,
            description="Every value of every dimension is carried by at least synthetic.floor "
            "admitted inputs (warns, naming the values short of it).",
        ),
        AssetCheckSpec(
            "synthetic_unique",
            asset=SYNTHETIC_INPUTS.name,
            description="No two admitted inputs, and no admitted input and active case, are "
            "the same or near-duplicates (TF-IDF cosine below synthetic.near_duplicate).",
        ),
    ],
)
def synthetic_inputs(
    context: AssetExecutionContext,
    warehouse: Warehouse,
    judge_client: JudgeClient,
    reference_source: ReferenceSource,
    project: ProjectResource,
) -> Iterator[MaterializeResult | AssetCheckResult]:
    """Inputs generated from the dimension file's tuples (every value at least synthetic.floor
    times) through litellm (cached, costed, budgeted), exact and near duplicates removed
    (TF-IDF), then judged realistic and on-topic by the realism filter's trusted judges only:
    without a trusted filter nothing is admitted. Admitted inputs with references enter the
    active pool (never the holdout) at the next rotation run, as why: synthetic."""
    cfg = project.config()
    with warehouse.get_connection() as conn:
        if cfg.synthetic is None:
            empty = pd.DataFrame(columns=SYNTHETIC_INPUTS.column_names)
            yield replaced_with(conn, SYNTHETIC_INPUTS, empty, "status")
            yield from (_coverage_check([], False), _unique_check(0.0, 1.0))
            return
        reference_source.load(conn)
        frame, dims, judges, stats, closest = synthetic_run(
            conn, judge_client, cfg, context.log.info, context.run_id
        )
        yield _materialized(conn, frame, judges, stats)
    admitted = [json.loads(d) for d in frame.loc[frame["status"] == "admitted", "dimensions"]]
    yield _coverage_check(below_floor(admitted, dims, cfg.synthetic.floor), bool(judges))
    yield _unique_check(closest, cfg.synthetic.near_duplicate)


def _materialized(
    conn: DuckDBPyConnection, frame: pd.DataFrame, judges: list[str], stats: RunStats
) -> MaterializeResult:
    """Write the rows; describe them by status and category, with the generation's calls."""
    by_category = frame.pivot_table(
        index="category", columns="status", values="synthetic_id", aggfunc="count", fill_value=0
    ).reset_index()
    return replaced_with(
        conn,
        SYNTHETIC_INPUTS,
        frame,
        "status",
        shown=frame.groupby("status").size().rename("inputs").reset_index(),
        extra={
            "filter_judges": MetadataValue.text(", ".join(judges) or "none trusted yet"),
            "generation_calls": MetadataValue.json(
                {
                    "made": stats.called,
                    "cached": stats.cached,
                    "errors": stats.errors,
                    "cost_usd": round(stats.cost_usd, 6),
                }
            ),
            "by_category": MetadataValue.md(markdown_table(by_category)),
        },
    )


def _coverage_check(short: list[str], filtering: bool) -> AssetCheckResult:
    return AssetCheckResult(
        check_name="synthetic_coverage",
        passed=not short,
        severity=AssetCheckSeverity.WARN,
        metadata={
            "below_floor": MetadataValue.json(short),
            "filter_trusted": MetadataValue.bool(filtering),
        },
    )


def _unique_check(closest: float, threshold: float) -> AssetCheckResult:
    return AssetCheckResult(
        check_name="synthetic_unique",
        passed=closest < threshold,
        metadata={
            "closest_pair_similarity": MetadataValue.float(round(closest, 4)),
            "near_duplicate_at": MetadataValue.float(threshold),
        },
    )
