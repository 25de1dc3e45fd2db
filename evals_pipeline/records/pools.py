"""The golden pools, the sealed holdout store, and their evaluation at each rotation."""

from __future__ import annotations

from evals_pipeline.records.calibration import HUMAN_LABELS, QUARANTINED_LABELS
from evals_pipeline.records.ingest import TRACE_COLUMNS
from evals_pipeline.records.review import REVIEW_ITEMS
from evals_pipeline.records.schema import Column, Table

WHY_VALUES: tuple[str, ...] = ("real_traffic", "known_failure_mode", "edge_case")
POOLS: tuple[str, ...] = ("active", "holdout", "retired")

GOLDEN_POOLS = Table(
    "golden_pools",
    "Every golden case's pool (active / holdout / retired) and dates. No content: holdout text lives only in the holdout store.",
    (
        Column("case_id", "VARCHAR", "Golden case id."),
        Column("trace_id", "VARCHAR", "The production trace the case came from."),
        Column("category", "VARCHAR", "Task category."),
        Column("user_segment", "VARCHAR", "User segment of the source trace."),
        Column("app_version", "VARCHAR", "App version that produced the source trace's output."),
        Column("pool", "VARCHAR", "active, holdout or retired."),
        Column(
            "why",
            "VARCHAR",
            "Why the case was added: " + ", ".join(WHY_VALUES) + ", or synthetic (active only).",
        ),
        Column("entered_at", "DATE", "Rotation date the case entered the golden set."),
        Column(
            "entered_quarter", "DATE", "First day of the quarter whose traffic the case came from."
        ),
        Column("pool_since", "DATE", "Rotation date the case entered its current pool."),
        Column(
            "sealed_until",
            "DATE",
            "Holdout cases: earliest rotation date at which the case may graduate.",
        ),
        Column("version", "INTEGER", "Content version of the case (references revised = +1)."),
        Column(
            "case_key_hash",
            "VARCHAR",
            "Hash of the de-duplication key (same question = same key); never the key itself.",
        ),
    ),
)

GOLDEN_CASES = Table(
    "golden_cases",
    "Content of the golden cases analysts may see: active and retired cases only (never holdout).",
    (
        Column("case_id", "VARCHAR", "Golden case id."),
        Column("trace_id", "VARCHAR", "The production trace the case came from."),
        Column("category", "VARCHAR", "Task category."),
        Column("user_segment", "VARCHAR", "User segment of the source trace."),
        Column("input", "VARCHAR", "The user input."),
        Column("output", "VARCHAR", "The production output of the source trace."),
        Column("reference_good", "VARCHAR", "A high-quality reference answer."),
        Column("reference_borderline", "VARCHAR", "A borderline-acceptable reference answer."),
        Column("why", "VARCHAR", "Why the case was added."),
        Column("version", "INTEGER", "Content version."),
    ),
)

HOLDOUT_CASES = Table(
    "holdout_cases",
    "Content of cases that entered the holdout pool. Lives only in the holdout store.",
    GOLDEN_CASES.columns,
)

RESERVOIR_TRACES = Table(
    "reservoir_traces",
    "Full text of traces diverted at ingest into the holdout reservoir. Lives only in the holdout store.",
    TRACE_COLUMNS,
)

SEALED_FINGERPRINTS = Table(
    "sealed_fingerprints",
    "SHA-256 and length of every text of the cases now in the holdout pool (input, output, references), "
    "refreshed at each rotation. Lets every job check and withhold holdout text without reading the "
    "holdout store. Warehouse only: never copied into the analysts' snapshot.",
    (
        Column("fingerprint", "VARCHAR", "sha256 of the exact string (hex)."),
        Column(
            "length", "BIGINT", "strlen of the string: only strings of a sealed length are hashed."
        ),
    ),
)

POOL_EVENTS = Table(
    "pool_events",
    "Append-only audit log: every pool move and every read of holdout content, with run id, quarter and reason.",
    (
        Column(
            "event_at", "TIMESTAMP", "Wall-clock time the event was written (UTC).", run_time=True
        ),
        Column(
            "run_id",
            "VARCHAR",
            "Dagster run id (or the caller's id outside Dagster).",
            run_time=True,
        ),
        Column("quarter", "DATE", "First day of the quarter the event belongs to."),
        Column(
            "event",
            "VARCHAR",
            "entered_active, entered_holdout, graduated, retired, holdout_read, rotation_complete, synthetic_admitted.",
        ),
        Column("case_id", "VARCHAR", "The case moved, or null for reads and markers."),
        Column("from_pool", "VARCHAR", "Pool before the move."),
        Column("to_pool", "VARCHAR", "Pool after the move."),
        Column(
            "reason",
            "VARCHAR",
            "Why: the rule that moved the case, or who read holdout content for what.",
        ),
        Column("n_cases", "INTEGER", "Cases involved (reads: how many holdout cases were read)."),
    ),
)

POOL_SIZES = Table(
    "pool_sizes",
    "Cases per pool and category after each quarterly rotation.",
    (
        Column("quarter", "DATE", "First day of the rotated quarter."),
        Column("rotated_at", "DATE", "Rotation date (the day after the quarter ends)."),
        Column("category", "VARCHAR", "Task category."),
        Column("pool", "VARCHAR", "active, holdout or retired."),
        Column("cases", "INTEGER", "Cases in the pool after the rotation."),
    ),
)

HOLDOUT_EVALUATION = Table(
    "holdout_evaluation",
    "Scores of the holdout pool, computed once per rotation through the guarded holdout read; aggregates only.",
    (
        Column("quarter", "DATE", "The rotation's quarter."),
        Column("evaluator", "VARCHAR", "What produced the score."),
        Column("category", "VARCHAR", "Task category."),
        Column("n", "INTEGER", "Cases scored."),
        Column("mean_score", "DOUBLE", "Mean score."),
        Column("std_error", "DOUBLE", "Standard error of the mean."),
    ),
)

ACTIVE_EVALUATION = Table(
    "active_evaluation",
    "The active pool scored at each rotation by the same evaluator as the holdout (per category).",
    HOLDOUT_EVALUATION.columns,
)

HOLDOUT_PANEL_OUTPUTS = Table(
    "holdout_panel_outputs",
    "The candidate's and the baseline's answers to the holdout cases, generated at a rotation "
    "inside the seal. Lives only in the holdout store.",
    (
        Column("quarter", "DATE", "The rotation's quarter."),
        Column("case_id", "VARCHAR", "Holdout case."),
        Column("app_version", "VARCHAR", "App version that answered."),
        Column("model", "VARCHAR", "litellm model string of the version."),
        Column("output", "VARCHAR", "The answer; null on error."),
        Column("error", "VARCHAR", "Null, or why there is no answer."),
        Column("cost_usd", "DOUBLE", "Cost of the call (0 when cached)."),
    ),
)

HOLDOUT_PANEL_VERDICTS = Table(
    "holdout_panel_verdicts",
    "The trusted judges' verdicts on the holdout answers, with the active pool's rubric. Lives "
    "only in the holdout store.",
    (
        Column("quarter", "DATE", "The rotation's quarter."),
        Column("case_id", "VARCHAR", "Holdout case."),
        Column("app_version", "VARCHAR", "App version judged."),
        Column("judge", "VARCHAR", "litellm model string of the judge."),
        Column("rubric", "VARCHAR", "Rubric name."),
        Column("rubric_version", "VARCHAR", "Rubric version."),
        Column("verdict", "VARCHAR", "pass / fail; null on error (never a pass)."),
        Column("error", "VARCHAR", "Null, or why there is no verdict."),
    ),
)

HOLDOUT_PANEL_EVALUATION = Table(
    "holdout_panel_evaluation",
    "At each rotation, the candidate and baseline judged by the same trusted judges with the same "
    "rubric on the active pool and (inside the seal) on the holdout pool: pass rates per side, "
    "version and category. Aggregates only.",
    (
        Column("quarter", "DATE", "The rotation's quarter."),
        Column("side", "VARCHAR", "active or holdout."),
        Column("app_version", "VARCHAR", "App version judged."),
        Column("category", "VARCHAR", "Task category."),
        Column("rubric", "VARCHAR", "Binary rubric."),
        Column("rubric_version", "VARCHAR", "Rubric version."),
        Column("judges", "VARCHAR", "The trusted judges whose majority is the verdict."),
        Column("n", "INTEGER", "Cases with a verdict."),
        Column(
            "no_verdict",
            "INTEGER",
            "Cases without one (no answer, judge errors, or a split vote): counted, not scored.",
        ),
        Column("pass_rate", "DOUBLE", "Share of cases the judges' majority passed."),
        Column("std_error", "DOUBLE", "Standard error of the pass rate."),
    ),
)

HOLDOUT_REVIEW_ITEMS = Table(
    "holdout_review_items",
    "Layer 3 of seed 003: the sample of holdout answers (candidate and baseline) queued at a "
    "rotation for the principal expert, with the trusted judges' verdicts. Lives only in the "
    "holdout store; the latest rotation's queue is exported to the sealed review area for the "
    "review app's sealed session (app version blinded there).",
    (
        Column("quarter", "DATE", "The rotation's quarter."),
        *REVIEW_ITEMS.columns,
        Column(
            "principal",
            "VARCHAR",
            "The expert the queue is for (judges.principal_annotator, else the annotator with "
            "most labels); the sealed session admits only them.",
        ),
    ),
)

HOLDOUT_REVIEW_LABELS = Table(
    "holdout_review_labels",
    "The principal expert's labels of holdout answers, loaded from the sealed review area's "
    "label files at each collection. Lives only in the holdout store.",
    HUMAN_LABELS.columns,
)

HOLDOUT_REVIEW_QUARANTINE = Table(
    "holdout_review_quarantine",
    "Lines of the sealed label files that are not a valid label of a queued holdout answer, "
    "with the reason. Lives only in the holdout store (a raw line may quote holdout text).",
    QUARANTINED_LABELS.columns,
)

HOLDOUT_REVIEW = Table(
    "holdout_review",
    "Layer 3 of seed 003 in aggregate: per rotation and judge (and `panel`, the trusted "
    "judges' majority), how many holdout answers were queued, viewed and labelled by the "
    "expert in the sealed session, and how well the judge agrees with the expert. Counts and "
    "agreement only: no holdout text, no item ids, no verdict of any one case.",
    (
        Column("quarter", "DATE", "The rotation's quarter."),
        Column("judge", "VARCHAR", "A trusted judge, or `panel` for their majority verdict."),
        Column("queued", "INTEGER", "Holdout answers queued for the expert."),
        Column("viewed", "INTEGER", "Distinct queued answers opened in the sealed session."),
        Column("views", "INTEGER", "Page views (each one a holdout read in pool_events)."),
        Column("labelled", "INTEGER", "Queued answers with a current label by the principal."),
        Column("quarantined", "INTEGER", "Sealed label lines quarantined (all quarters)."),
        Column("n", "INTEGER", "Labelled answers the judge also gave a verdict on."),
        Column("both_pass", "INTEGER", "Expert pass, judge pass."),
        Column("both_fail", "INTEGER", "Expert fail, judge fail."),
        Column("judge_only_pass", "INTEGER", "Expert fail, judge pass (the judge too lenient)."),
        Column("expert_only_pass", "INTEGER", "Expert pass, judge fail (the judge too strict)."),
        Column("agreement", "DOUBLE", "Share of the n where judge and expert agree."),
        Column(
            "kappa",
            "DOUBLE",
            "Cohen's kappa of judge vs expert (scikit-learn); null when undefined.",
        ),
    ),
)

HOLDOUT_STORE_TABLES: tuple[Table, ...] = (
    RESERVOIR_TRACES,
    HOLDOUT_CASES,
    HOLDOUT_PANEL_OUTPUTS,
    HOLDOUT_PANEL_VERDICTS,
    HOLDOUT_REVIEW_ITEMS,
    HOLDOUT_REVIEW_LABELS,
    HOLDOUT_REVIEW_QUARANTINE,
)
