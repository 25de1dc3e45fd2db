"""Dagster wiring of judging: candidate outputs, Layer-1 assertions, the judge ensemble with
its review queue, pairwise verdicts and Bradley-Terry ratings.

All of it reads the active pool only and has no holdout_store resource.
"""

from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass

import pandas as pd
from dagster import (
    AssetExecutionContext,
    Config,
    MaterializeResult,
    MetadataValue,
    multi_asset,
)
from duckdb import DuckDBPyConnection
from pydantic import Field

from evals_pipeline.judging.assertions import REGISTRY, write_assertion_results
from evals_pipeline.judging.bradley_terry import bt_ratings as fit_bt_ratings
from evals_pipeline.judging.candidates import AppVersion, candidate_calls, candidate_rows
from evals_pipeline.judging.client import JudgeClient, RunStats, run_calls
from evals_pipeline.judging.ensemble import panel_quorum, write_ensemble
from evals_pipeline.judging.few_shot import project_rubric
from evals_pipeline.judging.pairwise import pairwise_calls, pairwise_rows
from evals_pipeline.judging.panel import Judgement, judge_outputs, mode_verdict_rows
from evals_pipeline.judging.rubrics import (
    Rubric,
    load_rubric,
)
from evals_pipeline.judging.trust import trusted_judges
from evals_pipeline.metadata import markdown_table, table_metadata
from evals_pipeline.project import JudgesSpec, ProjectResource
from evals_pipeline.records import (
    ACTIVE_CASES,
    ASSERTION_RESULTS,
    BT_RATINGS,
    CANDIDATE_OUTPUTS,
    FAILURE_MODE_JUDGES,
    FAILURE_MODE_VERDICTS,
    GOLDEN_CASES,
    GOLDEN_POOLS,
    JUDGE_CALIBRATION,
    JUDGE_ENSEMBLE,
    JUDGE_VERDICTS,
    PAIRWISE_VERDICTS,
    REVIEW_QUEUE,
    TRACE_SAMPLE,
    VISIBLE_TRACES,
)
from evals_pipeline.specs import table_asset, table_spec
from evals_pipeline.warehouse import Warehouse, replace_table

ACTIVE_CASES_SQL = f"""
SELECT c.case_id, c.category, c.input, c.reference_good, c.reference_borderline
FROM {ACTIVE_CASES} c ORDER BY c.case_id
"""


class AppVersionSpec(Config):
    name: str = Field(description="App version name (as in traces.app_version).")
    model: str = Field(
        description="litellm model string, e.g. openai/gpt-4o-mini or offline/product-v3."
    )
    system_prompt: str = Field(description="The version's system prompt (its prompt template).")
    api_base: str = Field(
        default="", description="Optional endpoint for this model (self-hosted, proxies)."
    )


class CandidateConfig(Config):
    app_versions: list[AppVersionSpec] = Field(
        default=[],
        description="One-off override: app versions to generate outputs with; empty = the "
        "project file's app_versions (those with generate: true).",
    )


# Op config of the judging assets overrides the project file for one run; an empty value
# (the default) means "as the project file says".
class JudgeConfig(Config):
    judges: list[str] = Field(
        default=[],
        description="Override: litellm model strings of the ensemble; empty = judges.panel.",
    )
    rubric: str = Field(
        default="",
        description="Override: binary rubric (judging/rubrics/<name>.yaml); empty = judges.rubric.",
    )
    dimensional_rubric: str | None = Field(
        default=None,
        description="Override: dimensional rubric, '' to skip; unset = judges.dimensional_rubric.",
    )
    dimensional_categories: list[str] | None = Field(
        default=None, description="Override: categories the dimensional rubric applies to."
    )
    quorum: int | None = Field(
        default=None,
        description="Override: valid judge answers an ensemble verdict needs (0 = a majority of "
        "the panel). Below it a case has no verdict (no_quorum), is left out of rates and gates, "
        "and is queued.",
    )


# The active pool's candidate outputs, each with its case: what every judging asset judges.
# A fixed order, so a run's calls and rows come out the same every time.
ACTIVE_OUTPUTS_SQL = f"""SELECT a.*, o.app_version, o.output FROM ({ACTIVE_CASES_SQL}) a
JOIN {CANDIDATE_OUTPUTS} o USING (case_id) WHERE o.error IS NULL ORDER BY a.case_id, o.app_version"""


@dataclass(frozen=True)
class Panel:
    """The judging set-up of a run: the project file's, with any op-config override."""

    judges: list[str]
    rubric: str
    dimensional_rubric: str
    dimensional_categories: list[str]
    quorum: int
    spec: JudgesSpec

    def rubrics(self, conn: DuckDBPyConnection) -> list[Rubric]:
        """The binary rubric as the judges use it (with its pinned few-shot examples when the
        project uses them), then the dimensional and the graded ones."""
        return (
            [project_rubric(conn, self.spec, self.rubric)]
            + ([load_rubric(self.dimensional_rubric)] if self.dimensional_rubric else [])
            + ([load_rubric(self.spec.graded_rubric)] if self.spec.graded_rubric else [])
        )

    def rubrics_for(self, category: str, rubrics: list[Rubric]) -> list[Rubric]:
        """The binary and graded rubrics always; the dimensional one only in its categories."""
        return [
            r for r in rubrics if r.kind != "dimensional" or category in self.dimensional_categories
        ]


def judge_panel(config: JudgeConfig, project: ProjectResource) -> Panel:
    j = project.config().judges
    return Panel(
        judges=list(config.judges or j.panel),
        rubric=config.rubric or j.rubric,
        dimensional_rubric=j.dimensional_rubric
        if config.dimensional_rubric is None
        else config.dimensional_rubric,
        dimensional_categories=list(
            j.dimensional_categories
            if config.dimensional_categories is None
            else config.dimensional_categories
        ),
        quorum=j.quorum if config.quorum is None else config.quorum,
        spec=j,
    )


class PairwiseConfig(Config):
    judges: list[str] = Field(
        default=[], description="Override: pairwise judges; empty = judges.pairwise (or the panel)."
    )
    rubric: str = Field(default="pairwise", description="Pairwise rubric file.")
    app_versions: list[str] = Field(
        default=[], description="Versions to compare pairwise; empty = all with outputs."
    )


class RatingsConfig(Config):
    bootstrap: int = Field(
        default=200, description="Bootstrap resamples (over cases) for the 95% intervals."
    )
    seed: int = Field(default=0, description="Bootstrap seed.")


def _stats_metadata(stats: RunStats, pii: Counter[str]) -> dict[str, MetadataValue]:
    return {
        "calls_total": MetadataValue.int(stats.total),
        "calls_cached": MetadataValue.int(stats.cached),
        "calls_made": MetadataValue.int(stats.called),
        "provider_requests": MetadataValue.int(stats.provider_calls),
        "errors": MetadataValue.int(stats.errors),
        "errors_by_kind": MetadataValue.json(stats.by_error),
        "cost_usd_this_run": MetadataValue.float(round(stats.cost_usd, 6)),
        "seconds": MetadataValue.float(round(stats.seconds, 2)),
        "pii_redacted": MetadataValue.json(dict(pii)),
        "pii_redacted_at_send": MetadataValue.json(stats.redacted),
    }


def _app_versions(config: CandidateConfig, project: ProjectResource) -> list[AppVersion]:
    if config.app_versions:
        return [AppVersion(**v.model_dump()) for v in config.app_versions]
    p = project.config()
    return [AppVersion(v.name, v.model, p.system_prompt(v)) for v in p.app_versions if v.generate]


@table_asset(CANDIDATE_OUTPUTS, group="judging", reads=[ACTIVE_CASES], kinds=("duckdb", "litellm"))
def candidate_outputs(
    context: AssetExecutionContext,
    config: CandidateConfig,
    warehouse: Warehouse,
    judge_client: JudgeClient,
    project: ProjectResource,
) -> MaterializeResult:
    """Each configured app version (litellm model + prompt template) answers the active
    pool's inputs, PII redacted before the call. Cached: unchanged cases cost nothing."""
    pii: Counter[str] = Counter()
    with warehouse.get_connection() as conn:
        cases = conn.execute(ACTIVE_CASES_SQL).df()
        calls, keys = candidate_calls(cases, _app_versions(config, project), pii)
        results, stats = run_calls(
            judge_client, conn, calls, context.log.info, run_id=context.run_id
        )
        frame = pd.DataFrame(candidate_rows(keys, results), columns=CANDIDATE_OUTPUTS.column_names)
        replace_table(conn, CANDIDATE_OUTPUTS, frame)
        summary = conn.execute(
            f"""SELECT app_version, count(*) AS cases, count(error) AS errors, round(sum(cost_usd), 5) AS cost_usd,
                      round(avg(latency_ms), 1) AS mean_latency_ms FROM {CANDIDATE_OUTPUTS} GROUP BY 1 ORDER BY 1"""
        ).df()
        return MaterializeResult(
            metadata={
                **table_metadata(
                    conn,
                    CANDIDATE_OUTPUTS,
                    preview_columns=["case_id", "app_version", "output", "error"],
                ),
                **_stats_metadata(stats, pii),
                "by_version": MetadataValue.md(markdown_table(summary)),
            }
        )


SUBJECTS_SQL = {
    "trace": f"""SELECT 'trace' AS subject, t.trace_id AS subject_id, NULL AS case_id, t.app_version, t.category,
                       t.output, t.input, t.tool_calls
                FROM {VISIBLE_TRACES} t WHERE t.trace_id IN (SELECT trace_id FROM {TRACE_SAMPLE})""",
    "candidate": f"""SELECT 'candidate' AS subject, o.case_id || '|' || o.app_version AS subject_id, o.case_id, o.app_version,
                           g.category, o.output, g.input, NULL::JSON AS tool_calls
                    FROM {CANDIDATE_OUTPUTS} o JOIN {GOLDEN_CASES} g USING (case_id) WHERE o.error IS NULL""",
}


@table_asset(
    ASSERTION_RESULTS,
    group="judging",
    reads=[TRACE_SAMPLE, VISIBLE_TRACES, CANDIDATE_OUTPUTS, GOLDEN_CASES],
)
def assertion_results(context: AssetExecutionContext, warehouse: Warehouse) -> MaterializeResult:
    """Layer 1: deterministic checks (non-empty, JSON validity, refusal where sensitive, no
    over-refusal, ISO dates, tool-call correctness, calculator use, no PII in the output) on
    every sampled trace and every candidate output, before any judge."""
    with warehouse.get_connection() as conn:
        for subject, sql in SUBJECTS_SQL.items():
            n = write_assertion_results(conn, sql, subject)
            context.log.info(f"{n:,} assertion results on {subject}s")
        rates = conn.execute(
            f"""SELECT subject, assertion, count(*) AS checked, round(avg(passed::INT), 4) AS pass_rate
               FROM {ASSERTION_RESULTS} GROUP BY ALL ORDER BY 1, 2"""
        ).df()
        return MaterializeResult(
            metadata={
                **table_metadata(conn, ASSERTION_RESULTS),
                "pass_rates": MetadataValue.md(markdown_table(rates)),
                "registry": MetadataValue.md(
                    markdown_table(
                        pd.DataFrame(
                            [(a.name, ", ".join(a.categories), a.description) for a in REGISTRY],
                            columns=["assertion", "categories", "what"],
                        )
                    )
                ),
            }
        )


def _verdict_row(j: Judgement) -> tuple:
    (case_id, version), r = j.subject, j.result
    return (
        case_id,
        version,
        j.judge,
        j.rubric.name,
        j.rubric.version,
        j.verdict,
        j.scores_json,
        j.critique,
        r.response,
        r.cost_usd,
        r.latency_ms,
        r.key,
        r.error,
    )


@table_asset(
    JUDGE_VERDICTS,
    group="judging",
    reads=[CANDIDATE_OUTPUTS, ACTIVE_CASES],
    kinds=("duckdb", "litellm"),
)
def judge_verdicts(
    context: AssetExecutionContext,
    config: JudgeConfig,
    warehouse: Warehouse,
    judge_client: JudgeClient,
    project: ProjectResource,
) -> MaterializeResult:
    """Every judge's verdict on every candidate output: the binary rubric on all cases, the
    dimensional rubric where configured. Untrusted text sits between markers, PII is
    redacted, responses are parsed and validated; a failed call is an error, never a pass."""
    panel = judge_panel(config, project)
    pii: Counter[str] = Counter()
    with warehouse.get_connection() as conn:
        rubrics = panel.rubrics(conn)
        rows = conn.execute(ACTIVE_OUTPUTS_SQL).df()
        subjects = [
            ((row["case_id"], row["app_version"]), row, panel.rubrics_for(row["category"], rubrics))
            for row in rows.to_dict("records")
        ]
        judged, stats = judge_outputs(
            judge_client, conn, subjects, panel.judges, pii, context.log.info, context.run_id
        )
        frame = pd.DataFrame([_verdict_row(j) for j in judged], columns=JUDGE_VERDICTS.column_names)
        replace_table(conn, JUDGE_VERDICTS, frame, casts={"scores": "JSON"})
        by_judge = conn.execute(
            f"""SELECT judge, rubric, app_version, count(*) AS n, round(avg((verdict = 'pass')::INT), 3) AS pass_rate,
                      count(error) AS errors FROM {JUDGE_VERDICTS} GROUP BY ALL ORDER BY ALL"""
        ).df()
        return MaterializeResult(
            metadata={
                **table_metadata(
                    conn,
                    JUDGE_VERDICTS,
                    preview_columns=["case_id", "app_version", "judge", "verdict", "critique"],
                ),
                **_stats_metadata(stats, pii),
                "pass_rate_by_judge": MetadataValue.md(markdown_table(by_judge)),
            }
        )


@table_asset(
    FAILURE_MODE_VERDICTS,
    group="judging",
    reads=[CANDIDATE_OUTPUTS, ACTIVE_CASES, FAILURE_MODE_JUDGES, JUDGE_CALIBRATION],
    kinds=("duckdb", "litellm"),
)
def failure_mode_verdicts(
    context: AssetExecutionContext,
    config: JudgeConfig,
    warehouse: Warehouse,
    judge_client: JudgeClient,
    project: ProjectResource,
) -> MaterializeResult:
    """The per-failure-mode judges on every candidate output of the active pool: for each
    mode enabled at the last calibration, the panel judges trusted for its rubric say whether
    the output shows it. A mode without a trusted judge is logged and left out."""
    panel = judge_panel(config, project)
    pii: Counter[str] = Counter()
    with warehouse.get_connection() as conn:
        rows = conn.execute(ACTIVE_OUTPUTS_SQL).df()
        out, untrusted, stats = mode_verdict_rows(
            conn, judge_client, rows, panel.judges, pii, context.log.info, context.run_id
        )
        if untrusted:
            context.log.warning(f"no trusted judge yet for: {', '.join(untrusted)}")
        frame = pd.DataFrame(out, columns=FAILURE_MODE_VERDICTS.column_names)
        replace_table(conn, FAILURE_MODE_VERDICTS, frame)
        rates = conn.execute(
            f"""SELECT failure_mode, judge, app_version, count(*) AS n,
                      round(avg((verdict = 'fail')::INT), 3) AS shows_mode, count(error) AS errors
               FROM {FAILURE_MODE_VERDICTS} GROUP BY ALL ORDER BY ALL"""
        ).df()
        return MaterializeResult(
            metadata={
                **table_metadata(conn, FAILURE_MODE_VERDICTS),
                **_stats_metadata(stats, pii),
                "modes_without_trusted_judge": MetadataValue.json(untrusted),
                "rate_by_mode": MetadataValue.md(markdown_table(rates)),
            }
        )


@multi_asset(
    name="judge_ensemble_and_review_queue",
    specs=[
        table_spec(
            JUDGE_ENSEMBLE, group="judging", reads=[JUDGE_VERDICTS, GOLDEN_POOLS, JUDGE_CALIBRATION]
        ),
        table_spec(REVIEW_QUEUE, group="judging", reads=[JUDGE_VERDICTS, JUDGE_CALIBRATION]),
    ],
)
def judge_ensemble_and_review_queue(
    context: AssetExecutionContext,
    config: JudgeConfig,
    warehouse: Warehouse,
    project: ProjectResource,
) -> Iterator[MaterializeResult]:
    """Combine the trusted judges and queue what they disagree on. Untrusted and uncalibrated
    judges are reported beside the verdict, never counted; with fewer trusted judges than the
    quorum there is no ensemble until a calibration run trusts enough (that run rebuilds it)."""
    panel = judge_panel(config, project)
    with warehouse.get_connection() as conn:
        rubrics = panel.rubrics(conn)
        quorum = panel_quorum(len(panel.judges), panel.quorum)
        trusted = trusted_judges(conn, panel.judges, rubrics[0])
        if len(trusted) < quorum:
            context.log.warning(
                f"{len(trusted)} trusted judges ({', '.join(trusted) or 'none'}) for a quorum of "
                f"{quorum}: no ensemble verdicts until evals_calibration trusts more"
            )
        write_ensemble(conn, rubrics, quorum, trusted)
        yield from _ensemble_results(context, conn, panel.judges, quorum, trusted)


def _ensemble_results(
    context: AssetExecutionContext,
    conn: DuckDBPyConnection,
    judges: list[str],
    quorum: int,
    trusted: list[str],
) -> Iterator[MaterializeResult]:
    """The ensemble's and the review queue's materializations, with what the UI shows."""
    no_quorum = conn.execute(
        f"SELECT count(*) FROM {JUDGE_ENSEMBLE} WHERE status = 'no_quorum'"
    ).fetchall()[0][0]
    if no_quorum:
        context.log.warning(
            f"{no_quorum} case x version x rubric rows have fewer than {quorum} valid trusted "
            "judge answers: no verdict, excluded from rates and gates, queued for review"
        )
    reasons = conn.execute(
        f"SELECT split_part(reason, ':', 1) AS reason, count(*) AS cases FROM {REVIEW_QUEUE} GROUP BY 1 ORDER BY 2 DESC"
    ).df()
    rates = conn.execute(
        f"""SELECT app_version, rubric, count(*) AS cases, round(avg((verdict = 'pass')::INT), 3) AS pass_rate,
                  round(avg(unanimous::INT), 3) AS unanimous FROM {JUDGE_ENSEMBLE} GROUP BY ALL ORDER BY ALL"""
    ).df()
    yield MaterializeResult(
        asset_key=JUDGE_ENSEMBLE.name,
        metadata={
            **table_metadata(conn, JUDGE_ENSEMBLE),
            "quorum": MetadataValue.int(quorum),
            "trusted_judges_voting": MetadataValue.json(trusted),
            "untrusted_judges_reported": MetadataValue.json(
                [j for j in judges if j not in trusted]
            ),
            "no_quorum": MetadataValue.int(no_quorum),
            "by_version": MetadataValue.md(markdown_table(rates)),
        },
    )
    yield MaterializeResult(
        asset_key=REVIEW_QUEUE.name,
        metadata={
            **table_metadata(conn, REVIEW_QUEUE),
            "by_reason": MetadataValue.md(markdown_table(reasons)),
        },
    )


@table_asset(
    PAIRWISE_VERDICTS,
    group="judging",
    reads=[CANDIDATE_OUTPUTS, ACTIVE_CASES],
    kinds=("duckdb", "litellm"),
)
def pairwise_verdicts(
    context: AssetExecutionContext,
    config: PairwiseConfig,
    warehouse: Warehouse,
    judge_client: JudgeClient,
    project: ProjectResource,
) -> MaterializeResult:
    """Two app versions on the same case, judged in both orders; an order-inconsistent result
    counts as a tie and as a position inconsistency."""
    rubric = load_rubric(config.rubric)
    pii: Counter[str] = Counter()
    with warehouse.get_connection() as conn:
        outputs = conn.execute(ACTIVE_OUTPUTS_SQL).df()
        versions = sorted(config.app_versions or outputs["app_version"].unique())
        judges = config.judges or project.config().judges.pairwise_judges
        calls, keys = pairwise_calls(outputs, versions, judges, rubric, pii)
        results, stats = run_calls(
            judge_client, conn, calls, context.log.info, run_id=context.run_id
        )
        rows = pairwise_rows(keys, results, rubric.version)
        frame = pd.DataFrame(rows, columns=PAIRWISE_VERDICTS.column_names)
        replace_table(conn, PAIRWISE_VERDICTS, frame)
        consistency = conn.execute(
            f"""SELECT judge, count(*) AS pairs, round(avg(position_consistent::INT), 3) AS position_consistency,
                      count(error) AS errors FROM {PAIRWISE_VERDICTS} GROUP BY 1 ORDER BY 1"""
        ).df()
        return MaterializeResult(
            metadata={
                **table_metadata(conn, PAIRWISE_VERDICTS),
                **_stats_metadata(stats, pii),
                "position_consistency": MetadataValue.md(markdown_table(consistency)),
            }
        )


@table_asset(BT_RATINGS, group="judging", reads=[PAIRWISE_VERDICTS])
def bt_ratings(
    context: AssetExecutionContext, config: RatingsConfig, warehouse: Warehouse
) -> MaterializeResult:
    """Bradley-Terry ratings of the app versions per judge (ties count half), with bootstrap
    95% intervals over cases."""
    with warehouse.get_connection() as conn:
        outcomes = conn.execute(
            f"SELECT judge, case_id, version_a AS a, version_b AS b, outcome FROM {PAIRWISE_VERDICTS} WHERE outcome IS NOT NULL"
        ).df()
        frames = []
        for judge, g in outcomes.groupby("judge"):
            ratings = fit_bt_ratings(g, n_boot=config.bootstrap, seed=config.seed)
            ratings.insert(0, "judge", judge)
            frames.append(ratings)
        frame = pd.concat(frames) if frames else pd.DataFrame(columns=BT_RATINGS.column_names)
        replace_table(conn, BT_RATINGS, frame[BT_RATINGS.column_names])
        return MaterializeResult(
            metadata={
                **table_metadata(conn, BT_RATINGS),
                "ratings": MetadataValue.md(markdown_table(frame.round(3))),
            }
        )
