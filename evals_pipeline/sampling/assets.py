"""Dagster wiring of sampling: `trace_sample` with its floor and weight checks and the drift
alarms on incoming traffic."""

from collections.abc import Iterator
from datetime import date

from dagster import (
    AssetCheckResult,
    AssetCheckSeverity,
    AssetCheckSpec,
    AssetExecutionContext,
    BackfillPolicy,
    Config,
    MaterializeResult,
    MetadataValue,
)
from dagster_pyspark import LazyPySparkResource
from duckdb import DuckDBPyConnection
from pydantic import Field

from evals_pipeline.metadata import markdown_table, table_metadata
from evals_pipeline.partitions import daily_partitions, partition_days
from evals_pipeline.project import DriftSpec, ProjectResource
from evals_pipeline.records import TRACE_FEEDBACK, TRACE_SAMPLE, TRACES
from evals_pipeline.sampling.drift import category_mix_drift, golden_staleness
from evals_pipeline.sampling.spark import write_trace_sample_spark
from evals_pipeline.sampling.stratified import SampleSettings, write_trace_sample
from evals_pipeline.spark_lake import spark_engine
from evals_pipeline.specs import table_asset
from evals_pipeline.warehouse import Warehouse


def drift_checks(
    conn: DuckDBPyConnection, day: date, drift: DriftSpec, settings: SampleSettings
) -> tuple[AssetCheckResult, AssetCheckResult]:
    """The two drift alarms as of traffic day `day` (sampling/drift.py)."""
    fresh, why = golden_staleness(conn, day, drift.max_days_without_new_cases)
    mix, note = category_mix_drift(
        conn,
        day,
        drift.category_window_days,
        drift.category_baseline_days,
        drift.max_share_change,
        settings.floor,
        settings.size,
    )
    moved = mix[mix["share_moved"] | mix["floor_unmet"]]
    shown = mix.assign(
        baseline_share=mix["baseline_share"].round(4),
        recent_share=mix["recent_share"].round(4),
        change=mix["change"].round(3),
    )
    return (
        AssetCheckResult(
            check_name="golden_set_fresh",
            asset_key=TRACE_SAMPLE.name,
            passed=fresh,
            severity=AssetCheckSeverity.WARN,
            metadata={"why": MetadataValue.text(why)},
        ),
        AssetCheckResult(
            check_name="category_mix_stable",
            asset_key=TRACE_SAMPLE.name,
            passed=moved.empty,
            severity=AssetCheckSeverity.WARN,
            metadata={
                "moved": MetadataValue.json(moved["category"].tolist()),
                "shares": MetadataValue.md(markdown_table(shown)),
                "note": MetadataValue.text(note or "enough history in both windows"),
            },
        ),
    )


class SampleConfig(Config):
    size: int = Field(
        default=SampleSettings.size, description="Rows per day in the 'traffic' stratum."
    )
    floor: float = Field(
        default=SampleSettings.floor,
        description="Minimum share of the sample per category (all its rows if it has fewer).",
    )
    seed: int = Field(
        default=SampleSettings.seed, description="Sampling seed; same (day, seed) = same sample."
    )
    flashlight_size: int = Field(
        default=SampleSettings.flashlight_size,
        description="Rows per day in the 'flashlight' stratum (traces with negative feedback).",
    )


FLOOR_VIOLATIONS_SQL = f"""
WITH traffic AS (
    SELECT partition_date, category, count(*) AS n, any_value(category_traffic) AS traffic,
           sum(weight) AS weight_sum
    FROM {TRACE_SAMPLE} WHERE stratum = 'traffic' AND partition_date BETWEEN ? AND ?
    GROUP BY ALL
), day AS (
    -- With more categories than 1/floor, floors cannot all be met: the floor is 1/categories.
    SELECT partition_date, sum(n) AS total, least(?, 1.0 / count(*)) AS day_floor FROM traffic GROUP BY ALL
)
SELECT t.partition_date, t.category, t.n, t.traffic, d.total, t.weight_sum,
       abs(t.weight_sum - t.traffic) > 1e-6 * t.traffic AS weight_mismatch,
       t.n < least(t.traffic, floor(d.day_floor * d.total)) AS under_floor
FROM traffic t JOIN day d USING (partition_date)
WHERE abs(t.weight_sum - t.traffic) > 1e-6 * t.traffic OR t.n < least(t.traffic, floor(d.day_floor * d.total))
ORDER BY 1, 2
"""


@table_asset(
    TRACE_SAMPLE,
    group="sampling",
    # golden_pools is read by the staleness alarm only: not a dependency (the pools come from
    # the sample)
    reads=[TRACES, TRACE_FEEDBACK],
    partitions_def=daily_partitions,
    backfill_policy=BackfillPolicy.single_run(),
    check_specs=[
        AssetCheckSpec(
            "trace_sample_floors_and_weights",
            asset=TRACE_SAMPLE.name,
            description="Every category reaches its floor (or all its rows); sum of 1/inclusion_prob = category traffic.",
        ),
        AssetCheckSpec(
            "golden_set_fresh",
            asset=TRACE_SAMPLE.name,
            description="Drift alarm: a case entered the golden set within drift.max_days_without_new_cases "
            "days of the newest traffic (warns otherwise: the golden set is going stale).",
        ),
        AssetCheckSpec(
            "category_mix_stable",
            asset=TRACE_SAMPLE.name,
            description="Drift alarm: no category's traffic share moved by more than drift.max_share_change "
            "of its baseline, and every category that filled its sampling floor still does (warns otherwise).",
        ),
    ],
)
def trace_sample(
    context: AssetExecutionContext,
    config: SampleConfig,
    warehouse: Warehouse,
    project: ProjectResource,
    pyspark: LazyPySparkResource,
) -> Iterator[MaterializeResult | AssetCheckResult]:
    """Daily stratified sample of traces: every category gets at least `floor` of the sample
    (or all its rows), the rest proportional to traffic; deterministic for (day, seed). Each
    row carries inclusion_prob so aggregates re-weight to the traffic mix. A separate,
    labelled 'flashlight' stratum oversamples traces with negative online feedback. On engine
    spark the sample is drawn by Spark into the Parquet lake (the same method, other rows)."""
    days = partition_days(context)
    settings = SampleSettings(config.size, config.floor, config.seed, config.flashlight_size)
    with warehouse.get_connection() as conn:
        if (spark := spark_engine(project.config(), conn, pyspark)) is not None:
            write_trace_sample_spark(*spark, days, settings)
        else:
            write_trace_sample(conn, days, settings)
        bounds = [min(days), max(days)]
        shares = conn.execute(
            f"""SELECT category,
                      count(*) FILTER (WHERE stratum = 'traffic') AS sampled,
                      sum(weight) FILTER (WHERE stratum = 'traffic') AS traffic,
                      count(*) FILTER (WHERE stratum = 'flashlight') AS flashlight
               FROM {TRACE_SAMPLE} WHERE partition_date BETWEEN ? AND ? GROUP BY category""",
            bounds,
        ).df()
        shares["sample_share_pct"] = (100 * shares["sampled"] / shares["sampled"].sum()).round(1)
        shares["traffic_share_pct"] = (100 * shares["traffic"] / shares["traffic"].sum()).round(1)
        shares = shares.sort_values("traffic", ascending=False)
        yield MaterializeResult(
            metadata={
                **table_metadata(conn, TRACE_SAMPLE, "partition_date BETWEEN ? AND ?", bounds),
                "realized_vs_traffic_share": MetadataValue.md(markdown_table(shares)),
                "size": MetadataValue.int(settings.size),
                "floor": MetadataValue.float(settings.floor),
                "seed": MetadataValue.int(settings.seed),
            }
        )
        bad = conn.execute(FLOOR_VIOLATIONS_SQL, [*bounds, settings.floor]).df()
        drift = drift_checks(conn, max(days), project.config().drift, settings)
    yield from drift
    yield AssetCheckResult(
        check_name="trace_sample_floors_and_weights",
        passed=bad.empty,
        metadata={
            "violations": MetadataValue.int(len(bad)),
            "examples": MetadataValue.md(markdown_table(bad.head(10)) if not bad.empty else "none"),
        },
    )
