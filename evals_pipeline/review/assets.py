"""Dagster wiring of review: the weekly batch, the review app's queues, and error analysis
(failure modes per category and app version)."""

from collections import Counter
from collections.abc import Iterator
from pathlib import Path

from dagster import (
    AssetCheckResult,
    AssetCheckSeverity,
    AssetCheckSpec,
    AssetExecutionContext,
    Config,
    MaterializeResult,
    MetadataValue,
)
from duckdb import DuckDBPyConnection
from pydantic import Field

from evals_pipeline.calibration.measurement import principal_annotator
from evals_pipeline.judging.client import JudgeClient, RunStats
from evals_pipeline.judging.few_shot import project_rubric
from evals_pipeline.judging.panel import judge_outputs
from evals_pipeline.metadata import FILES_STATE, markdown_table, table_metadata
from evals_pipeline.partitions import weekly_partitions
from evals_pipeline.pools.references import REFERENCES_TABLE, ReferenceSource
from evals_pipeline.pools.sealing import withhold_sealed
from evals_pipeline.pools.store import HoldoutStore
from evals_pipeline.project import ProjectResource
from evals_pipeline.records import (
    ACTIVE_POOL,
    CANDIDATE_OUTPUTS,
    FAILURE_MODE_DISTRIBUTION,
    GOLDEN_CASES,
    GOLDEN_POOLS,
    HOLDOUT_PANEL_EVALUATION,
    HOLDOUT_REVIEW,
    HUMAN_LABELS,
    JUDGE_CALIBRATION,
    JUDGE_VERDICTS,
    REVIEW_ITEMS,
    REVIEW_QUEUE,
    TRACE_SAMPLE,
    UNSEALED_POOL,
    VISIBLE_TRACES,
    WEEKLY_REVIEW_SAMPLE,
)
from evals_pipeline.review import holdout
from evals_pipeline.review.distribution import write_failure_mode_distribution
from evals_pipeline.review.queues import (
    LEAKED_ITEMS_SQL,
    QueueSettings,
    queue_items,
    revealed_verdicts,
    trace_subjects,
    write_review_items,
    write_weekly_sample,
)
from evals_pipeline.review.sealed import area_state
from evals_pipeline.review.taxonomy import load_taxonomy, taxonomy_path
from evals_pipeline.specs import table_asset
from evals_pipeline.warehouse import Warehouse, replace_table

REFERENCE_COLUMNS = ("reference_good", "reference_borderline")
REVIEW_TEXT_COLUMNS = ("input", "output", *REFERENCE_COLUMNS)


class WeeklySampleConfig(Config):
    size: int = Field(default=20, description="Traces in the Friday review batch.")
    seed: int = Field(default=QueueSettings.seed, description="Seed of the batch's random draw.")


@table_asset(
    WEEKLY_REVIEW_SAMPLE,
    group="review",
    reads=[VISIBLE_TRACES, HUMAN_LABELS],
    partitions_def=weekly_partitions,
)
def weekly_review_sample(
    context: AssetExecutionContext, config: WeeklySampleConfig, warehouse: Warehouse
) -> MaterializeResult:
    """The Friday review (seeds 002): a fresh uniform random sample of the past week's
    production traces (Friday to Thursday), never a sealed or already-labelled trace. The
    schedule prepares it every Friday morning; re-running a week replaces its batch."""
    window = context.partition_time_window
    week, week_end = window.start.date(), window.end.date()
    with warehouse.get_connection() as conn:
        n = write_weekly_sample(conn, week, week_end, config.size, config.seed)
        if n < config.size:
            context.log.warning(f"week {week}: only {n} unlabelled, unsealed traces to draw from")
        mix = conn.execute(
            f"SELECT category, app_version, count(*) AS n FROM {WEEKLY_REVIEW_SAMPLE} WHERE week = ? GROUP BY ALL ORDER BY ALL",
            [week],
        ).df()
        return MaterializeResult(
            metadata={
                **table_metadata(conn, WEEKLY_REVIEW_SAMPLE, "week = ?", [week]),
                "mix": MetadataValue.md(markdown_table(mix)),
            }
        )


class ReviewItemsConfig(Config):
    disagreement_limit: int = Field(
        default=QueueSettings.disagreement_limit,
        description="Most recent judge disagreements to queue (the rest wait for the next build).",
    )
    gap_target: int = Field(
        default=QueueSettings.gap_target,
        description="Passing and failing outputs (each) per category wanted in the dev and test splits; a category whose rarer class is below it gets calibration-gap items.",
    )
    gap_batch: int = Field(
        default=QueueSettings.gap_batch, description="Most gap items queued per category per build."
    )
    judges: list[str] = Field(
        default=[],
        description="Override: judges whose verdicts the app reveals after the expert decides "
        "(traces are judged here, through the shared cache); empty = judges.panel.",
    )
    rubric: str = Field(default="", description="Override: binary rubric; empty = judges.rubric.")
    principal_annotator: str = Field(
        default="",
        description="Override: whose labels make the calibration set; empty = "
        "judges.principal_annotator, else most labels.",
    )


@table_asset(
    REVIEW_ITEMS,
    group="review",
    kinds=("duckdb", "litellm"),
    reads=[
        REVIEW_QUEUE,
        WEEKLY_REVIEW_SAMPLE,
        HUMAN_LABELS,
        TRACE_SAMPLE,
        VISIBLE_TRACES,
        ACTIVE_POOL,
        GOLDEN_CASES,
        CANDIDATE_OUTPUTS,
        JUDGE_VERDICTS,
        JUDGE_CALIBRATION,
    ],
    check_specs=[
        AssetCheckSpec(
            "review_items_never_holdout",
            asset=REVIEW_ITEMS.name,
            description="No queued item is a holdout case or a sealed trace. Blocking: a leak fails the run.",
            blocking=True,
        )
    ],
)
def review_items(
    context: AssetExecutionContext,
    config: ReviewItemsConfig,
    warehouse: Warehouse,
    judge_client: JudgeClient,
    reference_source: ReferenceSource,
    project: ProjectResource,
) -> Iterator[MaterializeResult | AssetCheckResult]:
    """The review app's queues, one self-contained row per queue x item: judge disagreements
    on candidate outputs, the Friday batch, and calibration gaps (categories whose calibration
    set is below target). Traces are judged here through the shared cache so the app can
    reveal the judges' verdicts after the expert decides. `make review` serves them."""
    settings = QueueSettings(
        **config.model_dump(include={"disagreement_limit", "gap_target", "gap_batch"})
    )
    panel = project.config().judges
    judges = config.judges or panel.panel
    pii: Counter[str] = Counter()
    with warehouse.get_connection() as conn:
        rubric = project_rubric(conn, panel, config.rubric or None)
        reference_source.load(conn)
        # A production trace may share its question, hence its references, with a holdout
        # case: those references stay sealed (not shown, not sent to a judge).
        withheld = withhold_sealed(conn, REFERENCES_TABLE, REFERENCE_COLUMNS)
        who = principal_annotator(conn, config.principal_annotator or panel.principal_annotator)
        items = queue_items(conn, settings, who).df()
        judged, stats = judge_outputs(
            judge_client,
            conn,
            trace_subjects(items, rubric),
            judges,
            pii,
            context.log.info,
            context.run_id,
        )
        trace_verdicts = revealed_verdicts(judged, rubric)
        write_review_items(conn, items, trace_verdicts)
        # Trace text can equal a holdout string too (the same question asked twice).
        withheld += withhold_sealed(conn, REVIEW_ITEMS.name, REVIEW_TEXT_COLUMNS)
        yield MaterializeResult(metadata=_items_metadata(conn, who, withheld, stats))
        yield _never_holdout(conn)


def _items_metadata(
    conn: DuckDBPyConnection, who: str, withheld: int, stats: RunStats
) -> dict[str, MetadataValue]:
    per_queue = conn.execute(
        f"SELECT queue, count(*) AS items, count(DISTINCT category) AS categories FROM {REVIEW_ITEMS} GROUP BY 1 ORDER BY 1"
    ).df()
    return {
        **table_metadata(
            conn,
            REVIEW_ITEMS,
            preview_columns=["queue", "position", "item_id", "category", "reason"],
        ),
        "queues": MetadataValue.md(markdown_table(per_queue)),
        "principal_annotator": MetadataValue.text(who),
        "sealed_strings_withheld": MetadataValue.int(withheld),
        "calls_made": MetadataValue.int(stats.called),
        "calls_cached": MetadataValue.int(stats.cached),
        "cost_usd_this_run": MetadataValue.float(round(stats.cost_usd, 6)),
        "serve_with": MetadataValue.text("make review"),
    }


def _never_holdout(conn: DuckDBPyConnection) -> AssetCheckResult:
    """The blocking check: no queued item is a holdout case or a sealed trace."""
    leaked = conn.execute(LEAKED_ITEMS_SQL).df()
    return AssetCheckResult(
        check_name="review_items_never_holdout",
        passed=leaked.empty,
        severity=AssetCheckSeverity.ERROR,
        metadata={
            "leaked_items": MetadataValue.int(len(leaked)),
            "examples": MetadataValue.md(markdown_table(leaked.head(10))),
        },
    )


@table_asset(
    FAILURE_MODE_DISTRIBUTION,
    group="review",
    reads=[HUMAN_LABELS, VISIBLE_TRACES, UNSEALED_POOL, CANDIDATE_OUTPUTS],
)
def failure_mode_distribution(
    context: AssetExecutionContext, warehouse: Warehouse
) -> MaterializeResult:
    """Error analysis, the root-cause table: per failure mode (renames and merges of the
    taxonomy file resolved), how many reviewed outputs fail with it, its share of the failures
    and of everything reviewed, overall and by category and app version. One label per output:
    the principal expert's if they labelled it, else the newest."""
    tax = load_taxonomy()
    with warehouse.get_connection() as conn:
        who = principal_annotator(conn, "")
        write_failure_mode_distribution(conn, tax, who)
        top = conn.execute(
            f"""SELECT failure_mode, defined, n, round(share, 3) AS share, round(share_of_reviewed, 3) AS share_of_reviewed
               FROM {FAILURE_MODE_DISTRIBUTION} WHERE category = 'all' AND app_version = 'all' ORDER BY n DESC"""
        ).df()
        context.log.info(f"taxonomy v{tax.version}: {len(top)} failure modes among the fails")
        return MaterializeResult(
            metadata={
                **table_metadata(conn, FAILURE_MODE_DISTRIBUTION),
                "overall": MetadataValue.md(markdown_table(top)),
                "taxonomy_file": MetadataValue.path(str(taxonomy_path())),
                "taxonomy_version": MetadataValue.int(tax.version),
                "undefined_modes": MetadataValue.int(
                    int((~top["defined"]).sum()) if len(top) else 0
                ),
            }
        )


class HoldoutReviewConfig(Config):
    requeue: bool = Field(
        default=False,
        description="Build the latest rotation's holdout review queue again (the same sample "
        "unless the holdout changed; labels given so far stay with their answers).",
    )


@table_asset(
    HOLDOUT_REVIEW,
    group="review",
    reads=[HOLDOUT_PANEL_EVALUATION, GOLDEN_POOLS, HUMAN_LABELS],
    check_specs=[
        AssetCheckSpec(
            "every_holdout_view_logged",
            asset=HOLDOUT_REVIEW.name,
            description="Every page view of the sealed holdout session is a holdout read in "
            "pool_events. Blocking: an unlogged read of the holdout fails the run.",
            blocking=True,
        )
    ],
)
def holdout_review(
    context: AssetExecutionContext,
    config: HoldoutReviewConfig,
    warehouse: Warehouse,
    holdout_store: HoldoutStore,
    project: ProjectResource,
) -> Iterator[MaterializeResult | AssetCheckResult]:
    """Layer 3 (seed 003): the principal expert reviews a sample of the holdout at each
    rotation. Queues the latest rotation's holdout answers (made and judged inside the seal)
    in the holdout store and the sealed review area (`make review-holdout` serves them), then
    collects the expert's labels into the store and every view into pool_events as a holdout
    read. Only counts and the judges' agreement with the expert come out."""
    area = holdout_store.review_path()
    p = project.config()
    with warehouse.get_connection() as conn, holdout_store.attached(conn) as alias:
        who = principal_annotator(conn, p.judges.principal_annotator)
        built = holdout.queue_latest_rotation(
            conn, alias, p.holdout_review.cases, who, config.requeue
        )
        if built:
            context.log.info(
                f"{built[1]} holdout answers of {built[0]} queued for {who or 'any annotator'}"
            )
        quarter, queued = holdout.export_queue(conn, alias, area, context.run_id)
        rows, got = holdout.collect(conn, alias, area, context.run_id)
        replace_table(conn, HOLDOUT_REVIEW, rows)
        yield MaterializeResult(metadata=_review_metadata(conn, who, quarter, queued, got, area))
        yield AssetCheckResult(
            check_name="every_holdout_view_logged",
            passed=got.unlogged == 0,
            severity=AssetCheckSeverity.ERROR,
            metadata={
                "views": MetadataValue.int(got.views),
                "unlogged": MetadataValue.int(got.unlogged),
            },
        )


def _review_metadata(
    conn: DuckDBPyConnection,
    who: str,
    quarter: object,
    queued: int,
    got: holdout.Collected,
    area: Path,
) -> dict[str, MetadataValue]:
    shown = conn.execute(
        f"""SELECT quarter, judge, queued, labelled, views, n, round(agreement, 3) AS agreement,
                  round(kappa, 3) AS kappa FROM {HOLDOUT_REVIEW} ORDER BY quarter DESC, judge"""
    ).df()
    return {
        **table_metadata(conn, HOLDOUT_REVIEW),
        "agreement": MetadataValue.md(markdown_table(shown)),
        "principal_annotator": MetadataValue.text(who or "(anyone: no labels yet)"),
        "queued_quarter": MetadataValue.text(str(quarter or "none yet")),
        "queued_answers": MetadataValue.int(queued),
        "labels_kept": MetadataValue.int(got.labels),
        "label_lines_quarantined": MetadataValue.int(got.quarantined),
        "views_logged_this_run": MetadataValue.int(got.new_views),
        "sealed_review_area": MetadataValue.path(str(area)),
        "serve_with": MetadataValue.text("make review-holdout"),
        FILES_STATE: MetadataValue.json(area_state(area)),  # type: ignore[arg-type]
    }
