"""Dagster wiring of ingest: `traces` and `trace_feedback`, each with its quarantine table and
a Great Expectations suite as an asset check. Logic lives in `validation.py`."""

from collections.abc import Iterator
from datetime import date
from pathlib import Path
from typing import Any

import pandas as pd
from dagster import (
    AssetCheckResult,
    AssetCheckSeverity,
    AssetCheckSpec,
    AssetExecutionContext,
    BackfillPolicy,
    Config,
    MaterializeResult,
    MetadataValue,
    multi_asset,
)
from dagster_pyspark import LazyPySparkResource
from duckdb import DuckDBPyConnection
from pydantic import Field

from evals_pipeline.ingest.categories import Categorized, categorize_days
from evals_pipeline.ingest.expectations import run_suite
from evals_pipeline.ingest.sources import TraceSource
from evals_pipeline.ingest.spans import Derivation
from evals_pipeline.ingest.spark import ingest_days_spark
from evals_pipeline.ingest.validation import (
    FEEDBACK_STREAM,
    TRACE_STREAM,
    IngestCounts,
    IngestRules,
    Reservoir,
    SpanReading,
    StreamSpec,
    ingest_days,
)
from evals_pipeline.judging.client import JudgeClient
from evals_pipeline.metadata import markdown_table, table_metadata
from evals_pipeline.partitions import daily_partitions, partition_days
from evals_pipeline.pools.store import HoldoutStore
from evals_pipeline.project import ProjectConfig, ProjectResource
from evals_pipeline.records import TRACE_FEEDBACK, TRACES, UNCATEGORIZED
from evals_pipeline.spark_lake import spark_engine
from evals_pipeline.specs import table_spec
from evals_pipeline.warehouse import Warehouse

GX_COLUMNS = {
    TRACES.name: "trace_id, ts, category, app_version, user_segment, strlen(output) AS output_bytes, sealed, latency_ms, cost_usd, input_tokens, output_tokens",
    TRACE_FEEDBACK.name: "trace_id, ts, signal, value",
}


class IngestConfig(Config):
    max_field_bytes: int = Field(
        default=65_536,
        description="A text field (input, output, context, ...) larger than this is quarantined.",
    )
    categories: list[str] = Field(
        default=[],
        description="Override: the task-category taxonomy (other categories are quarantined); "
        "empty = the project file's taxonomy.categories.",
    )


def _files(
    context: AssetExecutionContext, trace_source: TraceSource, source_stream: str
) -> tuple[dict[date, list[Path]], list[str]]:
    """The partition's files per day, and the days without any (logged)."""
    days = partition_days(context)
    files = {d: trace_source.files_for_day(source_stream, d) for d in days}
    missing = [str(d) for d, f in files.items() if not f]
    if missing:
        context.log.warning(
            f"no {source_stream} files for {len(missing)} day(s): {', '.join(missing[:10])}"
        )
    n_files = sum(len(f) for f in files.values())
    context.log.info(f"ingesting {n_files} {source_stream} files for {len(days)} day(s)")
    return files, missing


def span_reading(
    cfg: ProjectConfig, stream: StreamSpec, trace_source: TraceSource, days: list[date]
) -> SpanReading | None:
    """How the source's span export is read (None for our flat records): the derivations
    of the project file, and for feedback the trace files whose events it reads."""
    if cfg.span_format is None:
        return None
    tax = cfg.taxonomy
    derive = Derivation(
        category_from=tuple(tax.category_from),
        segment_from=tuple(tax.segment_from.items()),
        app_version_from=tuple(cfg.source.app_version_from),
        trace_id_from=tuple(cfg.source.trace_id_from),
        categories=tuple(tax.categories),
        strict=tax.strict,
        feedback_names=dict(cfg.source.feedback_names),
    )
    trace_files: frozenset[Path] = frozenset()
    if stream is FEEDBACK_STREAM:
        trace_files = frozenset(p for d in days for p in trace_source.trace_files_for_day(d))
    return SpanReading(cfg.span_format, derive, trace_files)


def _categorize(
    context: AssetExecutionContext,
    conn: DuckDBPyConnection,
    cfg: ProjectConfig,
    days: list[date],
    client: JudgeClient | None,
    alias: str | None,
) -> Categorized | None:
    """The categorizer of the project file over the days' uncategorized traces (if any)."""
    spec = cfg.taxonomy.categorizer
    if spec is None:
        return None
    done = categorize_days(
        conn, [str(d) for d in days], spec, tuple(cfg.taxonomy.categories), client, alias
    )
    if done is None:
        context.log.warning(
            f"categorizer: fewer than {spec.min_training} labelled traces (or one category) to "
            "train on; uncategorized traces stay uncategorized"
        )
    else:
        context.log.info(
            f"categorizer {done.name}: {done.assigned:,} of {done.asked:,} uncategorized traces "
            f"assigned ({done.sealed_assigned:,} sealed), {done.errors:,} failed calls, "
            f"${done.cost_usd:.4f}"
        )
    return done


def _category_metadata(
    conn: DuckDBPyConnection, bounds: list[date], done: Categorized | None
) -> dict[str, MetadataValue]:
    """How the partitions' traces got their categories (attribute, categorizer, none)."""
    how = conn.execute(
        f"SELECT category_source, count(*) FROM {TRACES} WHERE {IN_RANGE} GROUP BY 1 ORDER BY 1",
        bounds,
    ).df()
    out = {"category_sources": MetadataValue.md(markdown_table(how))}
    if done is not None:
        out |= {
            "categorizer": MetadataValue.text(done.name),
            "categorizer_assigned": MetadataValue.int(done.assigned),
            "categorizer_asked": MetadataValue.int(done.asked),
            "categorizer_failed_calls": MetadataValue.int(done.errors),
        }
    return out


def _log_counts(context: AssetExecutionContext, table: str, counts: IngestCounts) -> None:
    context.log.info(
        f"{table}: {counts.rows_in:,} rows in = {counts.stored:,} stored + {counts.quarantined:,} quarantined"
    )
    for problem in counts.files.unreadable:
        context.log.warning(f"file quarantined whole: {problem}")
    if counts.files.ignored:
        context.log.info(
            f"ignored {len(counts.files.ignored)} hidden or marker file(s): "
            + ", ".join(counts.files.ignored[:10])
        )


def _counts_metadata(counts: IngestCounts, missing: list[str]) -> dict[str, MetadataValue]:
    """Rows in / stored / quarantined and the files behind them, on both assets."""
    return {
        "rows_in": MetadataValue.int(counts.rows_in),
        "rows_stored": MetadataValue.int(counts.stored),
        "rows_quarantined": MetadataValue.int(counts.quarantined),
        "files": MetadataValue.int(counts.files.files),
        "files_quarantined_whole": MetadataValue.int(len(counts.files.unreadable)),
        "files_quarantined_whole_list": MetadataValue.md(
            "\n".join(f"- {p}" for p in counts.files.unreadable[:50]) or "none"
        ),
        "files_ignored_markers": MetadataValue.int(len(counts.files.ignored)),
        "days_without_files": MetadataValue.int(len(missing)),
    }


def _suite_result(
    conn: DuckDBPyConnection, stream: StreamSpec, bounds: list[date], categories: tuple[str, ...]
) -> AssetCheckResult:
    """The stream's Great Expectations suite over the partitions just written."""
    table = stream.table.name
    frame = conn.execute(f"SELECT {GX_COLUMNS[table]} FROM {table} WHERE {IN_RANGE}", bounds).df()
    outcome = run_suite(frame, table, categories)
    return AssetCheckResult(
        check_name=f"{table}_expectations",
        asset_key=table,
        passed=outcome.success,
        severity=AssetCheckSeverity.ERROR,
        metadata={
            "rows_checked": MetadataValue.int(len(frame)),
            "expectations_evaluated": MetadataValue.int(outcome.evaluated),
            "expectations_failed": MetadataValue.int(len(outcome.failed)),
            "failures": MetadataValue.md(
                markdown_table(pd.DataFrame(outcome.failed)) if outcome.failed else "none"
            ),
        },
    )


def _ingest(
    conn: DuckDBPyConnection,
    spark: tuple[Any, str] | None,
    stream: StreamSpec,
    files: dict[date, list[Path]],
    rules: IngestRules,
    trace_source: TraceSource,
    reservoir: Reservoir | None,
    reading: SpanReading | None,
    holdout_store: HoldoutStore | None = None,
) -> IngestCounts:
    """The days' files through the project's engine: DuckDB into the warehouse, or Spark into
    the lake (sealed traces then pass through a folder beside the holdout store)."""
    if spark is None:
        return ingest_days(
            conn, stream, files, rules, trace_source.root_dir(), reservoir, span_reading=reading
        )
    session, lake = spark
    sealed_dir = holdout_store.path().parent / ".spark_sealed" if holdout_store else None
    return ingest_days_spark(
        session, conn, stream, files, rules, lake, trace_source.root_dir(), reservoir, sealed_dir
    )


IN_RANGE = "partition_date BETWEEN ? AND ?"
QUARANTINE_PREVIEW = ["partition_date", "source_file", "source_row", "reason", "detail"]


def _ingest_asset(stream: StreamSpec, source_stream: str):  # -> AssetsDefinition
    table, quarantine = stream.table, stream.quarantine

    def run(
        context: AssetExecutionContext,
        config: IngestConfig,
        warehouse: Warehouse,
        trace_source: TraceSource,
        holdout_store: HoldoutStore | None,
        project: ProjectResource,
        pyspark: LazyPySparkResource,
        judge_client: JudgeClient | None = None,
    ) -> Iterator[MaterializeResult | AssetCheckResult]:
        files, missing = _files(context, trace_source, source_stream)
        cfg = project.config()
        categorized: Categorized | None = None
        reading = span_reading(cfg, stream, trace_source, list(files))
        categories = tuple(config.categories or cfg.taxonomy.categories)
        if reading is not None and not cfg.taxonomy.strict:
            categories += (UNCATEGORIZED,)
        rules = IngestRules(
            max_field_bytes=config.max_field_bytes,
            categories=categories,
            duplicate_window_days=cfg.source.duplicate_window_days,
        )
        bounds = [min(files), max(files)]
        with warehouse.get_connection() as conn:
            spark = spark_engine(cfg, conn, pyspark)
            if holdout_store is not None:
                with holdout_store.attached(conn) as alias:
                    reservoir = Reservoir(alias, holdout_store.reservoir_share)
                    counts = _ingest(conn, spark, stream, files, rules, trace_source, reservoir,
                                     reading, holdout_store)  # fmt: skip
                    categorized = _categorize(context, conn, cfg, list(files), judge_client, alias)
            else:
                counts = _ingest(conn, spark, stream, files, rules, trace_source, None, reading)
            _log_counts(context, table.name, counts)
            common = _counts_metadata(counts, missing)
            if stream.sealable:
                common |= _category_metadata(conn, bounds, categorized)
            if holdout_store is not None:
                sealed = conn.execute(
                    f"SELECT count(*) FROM {table} WHERE sealed AND {IN_RANGE}", bounds
                ).fetchall()[0][0]
                common["rows_sealed_in_holdout_reservoir"] = MetadataValue.int(sealed)
            reasons = pd.DataFrame(sorted(counts.by_reason.items()), columns=["reason", "rows"])
            yield MaterializeResult(
                asset_key=table.name,
                metadata={**table_metadata(conn, table, IN_RANGE, bounds), **common},
            )
            yield MaterializeResult(
                asset_key=quarantine.name,
                metadata={
                    **table_metadata(conn, quarantine, IN_RANGE, bounds, QUARANTINE_PREVIEW),
                    **common,
                    "by_reason": MetadataValue.md(markdown_table(reasons)),
                },
            )
            yield _suite_result(conn, stream, bounds, rules.categories)

    # Only the stream that carries text declares the holdout store (DESIGN: sealing at the door).
    if stream.sealable:

        def ingest(
            context: AssetExecutionContext,
            config: IngestConfig,
            warehouse: Warehouse,
            trace_source: TraceSource,
            holdout_store: HoldoutStore,
            project: ProjectResource,
            pyspark: LazyPySparkResource,
            judge_client: JudgeClient,
        ) -> Iterator[MaterializeResult | AssetCheckResult]:
            yield from run(
                context, config, warehouse, trace_source, holdout_store, project, pyspark,
                judge_client,
            )  # fmt: skip

    else:

        def ingest(
            context: AssetExecutionContext,
            config: IngestConfig,
            warehouse: Warehouse,
            trace_source: TraceSource,
            project: ProjectResource,
            pyspark: LazyPySparkResource,
        ) -> Iterator[MaterializeResult | AssetCheckResult]:
            yield from run(context, config, warehouse, trace_source, None, project, pyspark)

    how = (
        f"Read from the source's {source_stream} files, validated by the rules generated from "
        "the records (evals_pipeline/records/); rows in = stored + quarantined."
    )
    return multi_asset(
        name=f"ingest_{table}",
        specs=[
            table_spec(table, group="ingest", how=how),
            table_spec(quarantine, group="ingest"),
        ],
        check_specs=[
            AssetCheckSpec(
                f"{table}_expectations",
                asset=table.name,
                description=f"Great Expectations suite '{table}' over the partitions just written. "
                "Blocking: a failed expectation fails the run, so the snapshot does not publish the partitions.",
                blocking=True,
            )
        ],
        partitions_def=daily_partitions,
        backfill_policy=BackfillPolicy.single_run(),
    )(ingest)


traces_assets = _ingest_asset(TRACE_STREAM, "traces")
trace_feedback_assets = _ingest_asset(FEEDBACK_STREAM, "feedback")
