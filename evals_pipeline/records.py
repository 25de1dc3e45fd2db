"""The records of DESIGN.md as code: field specs that drive validation, and the warehouse DDL.

One place defines what a trace and a feedback event are. Ingest generates its validation SQL
from these specs, the warehouse creates its tables (with comments) from the same module, and
the analytics snapshot copies those comments, so a column means one thing everywhere.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

DEFAULT_CATEGORIES: tuple[str, ...] = (
    "factual_lookup",
    "how_to",
    "reasoning",
    "refusal_sensitive",
    "edge_case",
)

FEEDBACK_SIGNALS: tuple[str, ...] = (
    "thumbs_up",
    "thumbs_down",
    "regenerate",
    "follow_up",
    "escalation",
    "session_continued",
    "task_completed",
    "edit_distance",
)

# Signals that mark a trace as a candidate for the flashlight stratum (a user was unhappy).
NEGATIVE_SIGNALS: tuple[str, ...] = ("thumbs_down", "regenerate", "escalation")

FieldKind = Literal["string", "timestamp", "number", "integer", "text_or_messages", "json"]


@dataclass(frozen=True)
class FieldSpec:
    name: str
    kind: FieldKind
    required: bool
    # Text-bearing fields are checked against the oversized-field limit.
    text: bool = False
    # Numbers below this are quarantined as out_of_range (None: any finite number).
    minimum: float | None = None


TRACE_FIELDS: tuple[FieldSpec, ...] = (
    FieldSpec("trace_id", "string", True),
    FieldSpec("ts", "timestamp", True),
    FieldSpec("session_id", "string", True),
    FieldSpec("user_id", "string", True),
    FieldSpec("app_version", "string", True),
    FieldSpec("category", "string", True),
    FieldSpec("user_segment", "string", True),
    FieldSpec("input", "text_or_messages", True, text=True),
    FieldSpec("output", "string", True, text=True),
    FieldSpec("context", "json", False, text=True),
    FieldSpec("tool_calls", "json", False, text=True),
    FieldSpec("latency_ms", "number", False, minimum=0),
    FieldSpec("cost_usd", "number", False, minimum=0),
    FieldSpec("input_tokens", "integer", False, minimum=0),
    FieldSpec("output_tokens", "integer", False, minimum=0),
    FieldSpec("metadata", "json", False, text=True),
)

FEEDBACK_FIELDS: tuple[FieldSpec, ...] = (
    FieldSpec("trace_id", "string", True),
    FieldSpec("ts", "timestamp", True),
    FieldSpec("signal", "string", True),
    FieldSpec("value", "number", False),
)

# Quarantine reasons, in the order they are tested: a row carries the first that applies.
QUARANTINE_REASONS: tuple[str, ...] = (
    "unreadable_file",
    "unsupported_file",
    "invalid_utf8",
    "malformed_json",
    "missing_field",
    "wrong_type",
    "oversized_field",
    "out_of_range",
    "unknown_category",
    "unknown_signal",
    "ts_outside_partition",
    "duplicate_trace_id",
    "duplicate_event",
    "unknown_verdict",
    "missing_critique",
)


@dataclass(frozen=True)
class Column:
    name: str
    sql_type: str
    comment: str
    # When a run happened or how long a call took: differs between two runs on the same data,
    # so comparisons of results (`analytics.snapshot.content_digest`) leave it out.
    run_time: bool = False


@dataclass(frozen=True)
class Table:
    name: str
    comment: str
    columns: tuple[Column, ...]
    primary_key: tuple[str, ...] = ()

    def ddl(self, schema: str | None = None) -> str:
        cols = ",\n  ".join(f"{c.name} {c.sql_type}" for c in self.columns)
        if self.primary_key:
            cols += f",\n  PRIMARY KEY ({', '.join(self.primary_key)})"
        qualified = f"{schema}.{self.name}" if schema else self.name
        return f"CREATE TABLE IF NOT EXISTS {qualified} (\n  {cols}\n)"

    def comment_sql(self, schema: str | None = None) -> list[str]:
        qualified = f"{schema}.{self.name}" if schema else self.name
        out = [f"COMMENT ON TABLE {qualified} IS {sql_literal(self.comment)}"]
        out += [
            f"COMMENT ON COLUMN {qualified}.{c.name} IS {sql_literal(c.comment)}"
            for c in self.columns
        ]
        return out

    @property
    def column_names(self) -> list[str]:
        return [c.name for c in self.columns]

    def __str__(self) -> str:
        # SQL names a table through its record (f"FROM {TRACES}"), so a rename is one line here.
        return self.name


def sql_literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


TRACE_COLUMNS: tuple[Column, ...] = (
    Column("trace_id", "VARCHAR", "Unique id of the interaction."),
    Column("ts", "TIMESTAMP", "When the interaction happened (UTC)."),
    Column("partition_date", "DATE", "The daily partition this row was ingested into."),
    Column("session_id", "VARCHAR", "Conversation/session the trace belongs to."),
    Column("user_id", "VARCHAR", "Pseudonymous user id."),
    Column("app_version", "VARCHAR", "Deployed model + prompt configuration."),
    Column("category", "VARCHAR", "Task category (from the configured taxonomy)."),
    Column("user_segment", "VARCHAR", "User segment, e.g. pro_expert."),
    Column("input", "VARCHAR", "User input as text (last user message for chat inputs)."),
    Column(
        "input_messages",
        "JSON",
        "Full OpenAI-style message list when the source delivered one, else null.",
    ),
    Column("output", "VARCHAR", "The model's answer."),
    Column("context", "JSON", "Retrieved documents, if any."),
    Column("tool_calls", "JSON", "Tool calls made, if any."),
    Column("latency_ms", "DOUBLE", "End-to-end latency in milliseconds."),
    Column("cost_usd", "DOUBLE", "Cost of the interaction in US dollars."),
    Column("input_tokens", "BIGINT", "Prompt tokens."),
    Column("output_tokens", "BIGINT", "Completion tokens."),
    Column("metadata", "JSON", "Free-form metadata from the source."),
    Column("source_file", "VARCHAR", "File the row came from."),
    Column("source_row", "BIGINT", "Line (JSONL) or row (Parquet) number in that file, from 1."),
)

# Text a holdout-reservoir trace keeps only in the holdout store (DESIGN: sealing starts at the door).
SEALED_TEXT_COLUMNS: tuple[str, ...] = (
    "input",
    "input_messages",
    "output",
    "context",
    "tool_calls",
    "metadata",
)

TRACES = Table(
    "traces",
    "Validated production traces, one row per model interaction, partitioned by UTC day. "
    "Rows of the holdout reservoir (sealed = true) keep ids, categories and segments but no text.",
    (
        *TRACE_COLUMNS,
        Column(
            "sealed",
            "BOOLEAN",
            "True when the trace fell in the holdout reservoir: its text columns are null here and live only in the holdout store.",
        ),
    ),
)

TRACE_FEEDBACK = Table(
    "trace_feedback",
    "Online feedback events (thumbs, regenerations, escalations, ...), partitioned by the UTC day they arrived.",
    (
        Column("trace_id", "VARCHAR", "The trace the event is about (may arrive days later)."),
        Column("ts", "TIMESTAMP", "When the event happened (UTC)."),
        Column("partition_date", "DATE", "The daily partition this row was ingested into."),
        Column("signal", "VARCHAR", "One of the documented feedback signals."),
        Column(
            "value", "DOUBLE", "Signal value: 1 for events, characters edited for edit_distance."
        ),
        Column("source_file", "VARCHAR", "File the row came from."),
        Column("source_row", "BIGINT", "Line number in that file, from 1."),
    ),
)


def quarantine_table(name: str, stream: str) -> Table:
    return Table(
        name,
        f"Rows of the {stream} stream that failed validation, with the reason; never silently dropped.",
        (
            Column("partition_date", "DATE", "The daily partition being ingested."),
            Column("source_file", "VARCHAR", "File the row came from."),
            Column("source_row", "BIGINT", "Line (JSONL) or row (Parquet) number, from 1."),
            Column("reason", "VARCHAR", "First failed rule: " + ", ".join(QUARANTINE_REASONS)),
            Column("detail", "VARCHAR", "Which field or value failed, in words."),
            Column("trace_id", "VARCHAR", "The trace id if it could be read, else null."),
            Column(
                "raw",
                "VARCHAR",
                "The raw row (truncated to 2,000 characters; undecodable bytes as escapes); null when sealed.",
            ),
            Column(
                "sealed",
                "BOOLEAN",
                "True when the row's trace id is in the holdout reservoir, so its raw text is withheld.",
            ),
        ),
    )


QUARANTINED_TRACES = quarantine_table("quarantined_traces", "traces")
QUARANTINED_FEEDBACK = quarantine_table("quarantined_feedback", "feedback")

TRACE_SAMPLE = Table(
    "trace_sample",
    "Daily stratified sample of traces with per-category floors; weight = 1/inclusion_prob re-weights to traffic.",
    (
        Column("partition_date", "DATE", "The daily partition sampled."),
        Column("trace_id", "VARCHAR", "Sampled trace."),
        Column("category", "VARCHAR", "Task category (the stratum)."),
        Column(
            "stratum",
            "VARCHAR",
            "'traffic' (stratified sample of all traffic) or 'flashlight' (oversampled low online signal).",
        ),
        Column(
            "inclusion_prob",
            "DOUBLE",
            "Probability this row was drawn, within its stratum and category. Sum of 1/p over 'traffic' rows = category traffic.",
        ),
        Column("weight", "DOUBLE", "1 / inclusion_prob."),
        Column("category_traffic", "BIGINT", "Traces of this category in the partition."),
        Column(
            "sample_key",
            "DOUBLE",
            "The row's deterministic hash key in [0, 1) (smaller = drawn first).",
        ),
        Column("seed", "BIGINT", "Sampling seed."),
        Column("duckdb_version", "VARCHAR", "DuckDB version whose hash() produced sample_key."),
    ),
)

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
        Column("why", "VARCHAR", "Why the case was added: " + ", ".join(WHY_VALUES) + "."),
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
            "entered_active, entered_holdout, graduated, retired, holdout_read, rotation_complete.",
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

ASSERTION_RESULTS = Table(
    "assertion_results",
    "Layer 1: deterministic checks on sampled traces and candidate outputs, run before any judge.",
    (
        Column(
            "subject",
            "VARCHAR",
            "'trace' (a sampled production trace) or 'candidate' (a candidate output).",
        ),
        Column("subject_id", "VARCHAR", "trace_id, or case_id|app_version for a candidate."),
        Column("case_id", "VARCHAR", "Golden case (candidates only)."),
        Column("app_version", "VARCHAR", "App version that produced the output."),
        Column("category", "VARCHAR", "Task category."),
        Column("assertion", "VARCHAR", "Name of the check (see the README's registry)."),
        Column("passed", "BOOLEAN", "Whether the check passed."),
        Column("detail", "VARCHAR", "What failed, when it failed."),
    ),
)

JUDGE_CACHE = Table(
    "judge_cache",
    "Every finished model call (judges and candidate generation), keyed by a hash of model, rendered prompt, rubric version and parameters.",
    (
        Column("cache_key", "VARCHAR", "sha256 of (model, messages, rubric version, parameters)."),
        Column("model", "VARCHAR", "litellm model string."),
        Column(
            "purpose",
            "VARCHAR",
            "judge:<rubric>@<version>, pairwise:<rubric>@<version> or candidate:<app version>.",
        ),
        Column("response", "VARCHAR", "Raw response text (null on error)."),
        Column("error", "VARCHAR", "Null, or why the call ended without a valid response."),
        Column("attempts", "INTEGER", "Provider calls made, retries included."),
        Column("cost_usd", "DOUBLE", "Cost of all attempts, from litellm's price map."),
        Column("latency_ms", "DOUBLE", "Latency of the final attempt.", run_time=True),
        Column("created_at", "TIMESTAMP", "When the call finished (UTC).", run_time=True),
    ),
    primary_key=("cache_key",),
)

CANDIDATE_OUTPUTS = Table(
    "candidate_outputs",
    "Outputs of each configured app version for the active pool's inputs (PII redacted before the call).",
    (
        Column("case_id", "VARCHAR", "Golden case."),
        Column("app_version", "VARCHAR", "App version (model + prompt template)."),
        Column("model", "VARCHAR", "litellm model string of the app version."),
        Column("output", "VARCHAR", "The generated answer (null on error)."),
        Column("error", "VARCHAR", "Null, or why generation failed."),
        Column("cost_usd", "DOUBLE", "Generation cost."),
        Column("latency_ms", "DOUBLE", "Generation latency.", run_time=True),
        Column("cache_key", "VARCHAR", "Key into judge_cache."),
    ),
)

JUDGE_VERDICTS = Table(
    "judge_verdicts",
    "One judge's verdict on one candidate output under one rubric version. A failed call is an error, never a pass.",
    (
        Column("case_id", "VARCHAR", "Golden case."),
        Column("app_version", "VARCHAR", "App version whose output was judged."),
        Column("judge", "VARCHAR", "litellm model string of the judge."),
        Column("rubric", "VARCHAR", "Rubric name."),
        Column("rubric_version", "VARCHAR", "Rubric version."),
        Column(
            "verdict",
            "VARCHAR",
            "pass / fail (binary rubrics); null on error or for dimensional rubrics.",
        ),
        Column("scores", "JSON", "Per-dimension 1-4 scores (dimensional rubrics)."),
        Column("critique", "VARCHAR", "The judge's critique."),
        Column("raw", "VARCHAR", "Raw judge response."),
        Column("cost_usd", "DOUBLE", "Cost of the call(s)."),
        Column("latency_ms", "DOUBLE", "Latency of the call.", run_time=True),
        Column("cache_key", "VARCHAR", "Key into judge_cache."),
        Column("error", "VARCHAR", "Null, or the reason the verdict is missing."),
    ),
)

JUDGE_ENSEMBLE = Table(
    "judge_ensemble",
    "Ensemble per case x app version x rubric: majority vote (binary) or per-dimension median, with agreement.",
    (
        Column("case_id", "VARCHAR", "Golden case."),
        Column("app_version", "VARCHAR", "App version."),
        Column("category", "VARCHAR", "Task category."),
        Column("rubric", "VARCHAR", "Rubric name."),
        Column("rubric_version", "VARCHAR", "Rubric version."),
        Column(
            "verdict",
            "VARCHAR",
            "Majority pass/fail; null when there is no majority of valid votes or no quorum.",
        ),
        Column(
            "scores", "JSON", "Per-dimension median (dimensional rubrics); null without a quorum."
        ),
        Column(
            "status",
            "VARCHAR",
            "verdict; no_quorum (fewer valid answers than the quorum: excluded from rates and gates, "
            "queued for review); no_majority (valid votes tied).",
        ),
        Column("n_judges", "INTEGER", "Judges configured."),
        Column("n_valid", "INTEGER", "Judges that returned a valid verdict."),
        Column("n_pass", "INTEGER", "Pass votes."),
        Column(
            "unanimous",
            "BOOLEAN",
            "All valid votes agree (binary) / no two judges more than 1 point apart (dimensional).",
        ),
    ),
)

REVIEW_QUEUE = Table(
    "review_queue",
    "Cases for a domain expert: split votes, judges more than 1 point apart, or judge errors.",
    (
        Column("case_id", "VARCHAR", "Golden case."),
        Column("app_version", "VARCHAR", "App version."),
        Column("category", "VARCHAR", "Task category."),
        Column("rubric", "VARCHAR", "Rubric name."),
        Column("rubric_version", "VARCHAR", "Rubric version."),
        Column(
            "reason", "VARCHAR", "split_vote, dimension_disagreement or judge_error, with detail."
        ),
        Column("queued_at", "TIMESTAMP", "When the case was queued (UTC).", run_time=True),
    ),
)

PAIRWISE_VERDICTS = Table(
    "pairwise_verdicts",
    "Two app versions on the same case, judged in both orders; an order-inconsistent result counts as a tie.",
    (
        Column("case_id", "VARCHAR", "Golden case."),
        Column("version_a", "VARCHAR", "First app version of the pair (alphabetical)."),
        Column("version_b", "VARCHAR", "Second app version of the pair."),
        Column("judge", "VARCHAR", "litellm model string of the judge."),
        Column("rubric_version", "VARCHAR", "Pairwise rubric version."),
        Column(
            "ab_winner",
            "VARCHAR",
            "Winner with version_a shown first: a, b or tie (null on error).",
        ),
        Column(
            "ba_winner", "VARCHAR", "Winner with version_b shown first, mapped back to a/b/tie."
        ),
        Column(
            "outcome",
            "VARCHAR",
            "a, b or tie after both orders (inconsistent = tie); null on error.",
        ),
        Column("position_consistent", "BOOLEAN", "Both orders agree."),
        Column("error", "VARCHAR", "Null, or why the pair has no outcome."),
    ),
)

BT_RATINGS = Table(
    "bt_ratings",
    "Bradley-Terry ratings of app versions from pairwise outcomes (ties count half), with bootstrap 95% intervals.",
    (
        Column("judge", "VARCHAR", "Judge whose pairwise verdicts were used."),
        Column("app_version", "VARCHAR", "App version."),
        Column(
            "rating",
            "DOUBLE",
            "Log-strength (Elo-like scale: 400/ln 10 per unit, centred at 0 = mean version).",
        ),
        Column("ci_low", "DOUBLE", "Bootstrap 2.5% quantile."),
        Column("ci_high", "DOUBLE", "Bootstrap 97.5% quantile."),
        Column("comparisons", "INTEGER", "Pairwise outcomes involving this version."),
        Column("win_rate", "DOUBLE", "Wins + half ties over comparisons."),
    ),
)

HUMAN_LABELS = Table(
    "human_labels",
    "Every valid human label from data/labels/ (append-only history); current = the annotator's newest label of the subject.",
    (
        Column(
            "subject_id", "VARCHAR", "trace_id, case_id, or the item id of a pairwise comparison."
        ),
        Column("kind", "VARCHAR", "pointwise (pass/fail) or pairwise (A/B/tie)."),
        Column("annotator", "VARCHAR", "Who labelled."),
        Column("verdict", "VARCHAR", "pass / fail, or A / B / tie."),
        Column("critique", "VARCHAR", "Free text; required on fail."),
        Column("failure_mode", "VARCHAR", "Failure mode from the taxonomy (on fail)."),
        Column("labelled_at", "TIMESTAMP", "When the label was given (UTC)."),
        Column("current", "BOOLEAN", "True for the annotator's newest label of this subject."),
        Column(
            "split",
            "VARCHAR",
            "train (few-shot only) / dev / test, by a stable hash of subject_id.",
        ),
        Column("source_file", "VARCHAR", "Label file."),
        Column("source_row", "BIGINT", "Line or CSV row in that file, from 1."),
    ),
)

QUARANTINED_LABELS = quarantine_table("quarantined_labels", "human label")

CALIBRATION_VERDICTS = Table(
    "calibration_verdicts",
    "Judges' verdicts on the production outputs that humans labelled (the calibration set).",
    (
        Column("subject_id", "VARCHAR", "Labelled trace."),
        Column("category", "VARCHAR", "Task category."),
        Column(
            "judge",
            "VARCHAR",
            "Judge (litellm model string, or sklearn/... for the classifier judge).",
        ),
        Column("rubric", "VARCHAR", "Rubric name."),
        Column("rubric_version", "VARCHAR", "Rubric version."),
        Column("verdict", "VARCHAR", "pass / fail; null on error."),
        Column("error", "VARCHAR", "Null, or why there is no verdict."),
    ),
)

JUDGE_CALIBRATION = Table(
    "judge_calibration",
    "Each judge measured against the principal expert's labels, per rubric version, split and category ('all' = overall).",
    (
        Column("judge", "VARCHAR", "Judge."),
        Column("rubric", "VARCHAR", "Rubric name."),
        Column("rubric_version", "VARCHAR", "Rubric version."),
        Column("split", "VARCHAR", "train / dev / test."),
        Column("category", "VARCHAR", "Task category, or 'all'."),
        Column("n", "INTEGER", "Labelled outputs with a judge verdict."),
        Column("tp", "INTEGER", "Human pass, judge pass."),
        Column("fn", "INTEGER", "Human pass, judge fail."),
        Column("tn", "INTEGER", "Human fail, judge fail."),
        Column("fp", "INTEGER", "Human fail, judge pass."),
        Column("tpr", "DOUBLE", "True positive rate (pass recall)."),
        Column("tpr_low", "DOUBLE", "Wilson 95% lower bound."),
        Column("tpr_high", "DOUBLE", "Wilson 95% upper bound."),
        Column("tnr", "DOUBLE", "True negative rate (fail recall)."),
        Column("tnr_low", "DOUBLE", "Wilson 95% lower bound."),
        Column("tnr_high", "DOUBLE", "Wilson 95% upper bound."),
        Column("accuracy", "DOUBLE", "Share of agreement."),
        Column("accuracy_low", "DOUBLE", "Wilson 95% lower bound."),
        Column("accuracy_high", "DOUBLE", "Wilson 95% upper bound."),
        Column("balanced_accuracy", "DOUBLE", "(TPR + TNR) / 2."),
        Column("balanced_accuracy_low", "DOUBLE", "Bootstrap 95% lower bound."),
        Column("balanced_accuracy_high", "DOUBLE", "Bootstrap 95% upper bound."),
        Column("kappa", "DOUBLE", "Cohen's kappa, judge vs expert."),
        Column("kappa_low", "DOUBLE", "Bootstrap 95% lower bound."),
        Column("kappa_high", "DOUBLE", "Bootstrap 95% upper bound."),
        Column(
            "trusted",
            "BOOLEAN",
            "Test split, all categories: TPR and TNR both reach the threshold. Null elsewhere.",
        ),
        Column("threshold", "DOUBLE", "The trust threshold applied."),
        Column(
            "position_consistency",
            "DOUBLE",
            "Pairwise judges: share of active-pool comparisons whose verdict survived swapping the order ('all' rows).",
        ),
    ),
)

ANNOTATOR_AGREEMENT = Table(
    "annotator_agreement",
    "Cohen's kappa between each pair of human annotators on the subjects both labelled.",
    (
        Column("kind", "VARCHAR", "pointwise or pairwise."),
        Column("source", "VARCHAR", "Label source (file stem)."),
        Column("annotator_a", "VARCHAR", "First annotator."),
        Column("annotator_b", "VARCHAR", "Second annotator."),
        Column("n", "INTEGER", "Subjects both labelled."),
        Column("agreement", "DOUBLE", "Raw agreement."),
        Column("kappa", "DOUBLE", "Cohen's kappa."),
        Column("kappa_low", "DOUBLE", "Bootstrap 95% lower bound."),
        Column("kappa_high", "DOUBLE", "Bootstrap 95% upper bound."),
    ),
)

CALIBRATION_TEST_USES = Table(
    "calibration_test_uses",
    "Every look at the test split, per judge and rubric version; a second look needs force and says so.",
    (
        Column("judge", "VARCHAR", "Judge."),
        Column("rubric", "VARCHAR", "Rubric name."),
        Column("rubric_version", "VARCHAR", "Rubric version."),
        Column("used_at", "TIMESTAMP", "When (UTC).", run_time=True),
        Column("run_id", "VARCHAR", "Dagster run id.", run_time=True),
        Column("forced", "BOOLEAN", "True when the look was a forced second look."),
        Column("n", "INTEGER", "Test-split outputs measured."),
    ),
)

CORRECTED_PASS_RATES = Table(
    "corrected_pass_rates",
    "Active-pool pass rate per judge and app version, corrected for the judge's test-split TPR/TNR (Rogan-Gladen), with the judge's trust status.",
    (
        Column("judge", "VARCHAR", "Judge."),
        Column("rubric", "VARCHAR", "Rubric name."),
        Column("rubric_version", "VARCHAR", "Rubric version."),
        Column("app_version", "VARCHAR", "App version."),
        Column("n", "INTEGER", "Candidate outputs judged."),
        Column("observed_pass_rate", "DOUBLE", "Share the judge passed."),
        Column(
            "corrected_pass_rate",
            "DOUBLE",
            "(observed + TNR - 1) / (TPR + TNR - 1), clipped to [0, 1]; null when TPR + TNR <= 1.",
        ),
        Column(
            "ci_low",
            "DOUBLE",
            "Bootstrap 95% lower bound (resamples outputs and the calibration test set).",
        ),
        Column("ci_high", "DOUBLE", "Bootstrap 95% upper bound."),
        Column(
            "trusted",
            "BOOLEAN",
            "Whether the judge is trusted for this rubric version (null: not calibrated).",
        ),
        Column(
            "calibration_status",
            "VARCHAR",
            "trusted, untrusted, or needs_calibration (no test-split measurement for this judge + rubric version).",
        ),
    ),
)

SEGMENT_REPORT = Table(
    "segment_report",
    "Score per app version x category x user segment (and per category, and overall re-weighted to traffic), with paired deltas vs the baseline.",
    (
        Column("scorer", "VARCHAR", "'ensemble' or a single judge."),
        Column(
            "trusted",
            "BOOLEAN",
            "Whether the scorer is trusted (ensemble: all its judges); null when not calibrated.",
        ),
        Column(
            "level",
            "VARCHAR",
            "cell (category x user segment), category, or overall (post-stratified to traffic).",
        ),
        Column("app_version", "VARCHAR", "App version."),
        Column("category", "VARCHAR", "Task category ('all' for overall)."),
        Column("user_segment", "VARCHAR", "User segment ('all' above cell level)."),
        Column("baseline", "VARCHAR", "Baseline app version of the deltas."),
        Column("n", "INTEGER", "Cases scored."),
        Column("score", "DOUBLE", "Pass rate."),
        Column("std_error", "DOUBLE", "Standard error."),
        Column("ci_low", "DOUBLE", "95% interval (Wilson for pass rates)."),
        Column("ci_high", "DOUBLE", "95% interval."),
        Column(
            "delta_vs_baseline", "DOUBLE", "Paired difference vs the baseline on the same cases."
        ),
        Column("delta_ci_low", "DOUBLE", "95% interval of the delta."),
        Column("delta_ci_high", "DOUBLE", "95% interval of the delta."),
        Column("flagged", "BOOLEAN", "Change larger than 2 standard errors."),
        Column(
            "regressed",
            "BOOLEAN",
            "Worse by more than 3 points, significantly (Bonferroni over the version's segments).",
        ),
    ),
)

RELEASE_GATES = Table(
    "release_gates",
    "The upgrade decision as data: each gate for the candidate version vs the baseline, pass/fail with evidence.",
    (
        Column("candidate", "VARCHAR", "App version being considered."),
        Column("baseline", "VARCHAR", "Version it would replace."),
        Column(
            "gate",
            "VARCHAR",
            "layer1, segment_regression, large_changes, holdout, judge_trusted, or decision.",
        ),
        Column("status", "VARCHAR", "pass, fail, warn, or not_evaluated."),
        Column("evidence", "VARCHAR", "What the gate saw."),
    ),
)

QUALITY_COST_LATENCY = Table(
    "quality_cost_latency",
    "Per app version: quality (ensemble pass rate on the active pool), cost and latency, side by side.",
    (
        Column("app_version", "VARCHAR", "App version."),
        Column(
            "pass_rate",
            "DOUBLE",
            "Ensemble pass rate on the active pool (post-stratified to traffic).",
        ),
        Column("pass_rate_ci_low", "DOUBLE", "95% interval."),
        Column("pass_rate_ci_high", "DOUBLE", "95% interval."),
        Column("candidate_cost_usd_per_case", "DOUBLE", "Mean generation cost per active case."),
        Column("candidate_latency_ms", "DOUBLE", "Mean generation latency.", run_time=True),
        Column("production_cost_usd_per_trace", "DOUBLE", "Mean production cost per trace."),
        Column("production_latency_p50_ms", "DOUBLE", "Median production latency."),
        Column("production_latency_p95_ms", "DOUBLE", "95th percentile production latency."),
        Column("production_traces", "BIGINT", "Production traces of this version."),
    ),
)

ONLINE_OFFLINE_CORRELATION = Table(
    "online_offline_correlation",
    "Quarterly: offline judge scores vs online signals, per (app version x user segment) cell and per trace.",
    (
        Column("quarter", "DATE", "First day of the quarter."),
        Column("judge", "VARCHAR", "Judge whose verdicts are the offline score."),
        Column("trusted", "BOOLEAN", "Judge trust status."),
        Column("level", "VARCHAR", "cell or trace."),
        Column(
            "signal",
            "VARCHAR",
            "Online signal: thumbs_up_rate, task_completed, escalation, follow_up, session_continued.",
        ),
        Column("n", "INTEGER", "Cells or traces."),
        Column("pearson", "DOUBLE", "Pearson r."),
        Column("pearson_low", "DOUBLE", "Bootstrap 95% lower bound."),
        Column("pearson_high", "DOUBLE", "Bootstrap 95% upper bound."),
        Column("spearman", "DOUBLE", "Spearman rho."),
        Column("spearman_low", "DOUBLE", "Bootstrap 95% lower bound."),
        Column("spearman_high", "DOUBLE", "Bootstrap 95% upper bound."),
    ),
)

ACTIVE_EVALUATION = Table(
    "active_evaluation",
    "The active pool scored at each rotation by the same evaluator as the holdout (per category).",
    HOLDOUT_EVALUATION.columns,
)

HOLDOUT_GAP = Table(
    "holdout_gap",
    "Active score minus holdout score per rotation and category: the eval-set overfitting measure.",
    (
        Column("quarter", "DATE", "The rotation's quarter."),
        Column("evaluator", "VARCHAR", "Evaluator of both pools."),
        Column("category", "VARCHAR", "Task category."),
        Column("active_n", "INTEGER", "Active cases."),
        Column("active_score", "DOUBLE", "Mean active score."),
        Column("holdout_n", "INTEGER", "Holdout cases."),
        Column("holdout_score", "DOUBLE", "Mean holdout score."),
        Column("gap", "DOUBLE", "active - holdout."),
        Column("gap_ci_low", "DOUBLE", "95% interval (normal, independent samples)."),
        Column("gap_ci_high", "DOUBLE", "95% interval."),
        Column("active_std_error", "DOUBLE", "Standard error of the active score."),
        Column("holdout_std_error", "DOUBLE", "Standard error of the holdout score."),
    ),
)

REVIEW_QUEUES: tuple[str, ...] = ("disagreement", "weekly", "calibration_gap")

WEEKLY_REVIEW_SAMPLE = Table(
    "weekly_review_sample",
    "The Friday review: a fresh uniform random sample of the week's production traces (sealed traces never drawn).",
    (
        Column("week", "DATE", "First day (a Friday) of the week the traces come from."),
        Column("trace_id", "VARCHAR", "Drawn trace."),
        Column("category", "VARCHAR", "Task category."),
        Column("app_version", "VARCHAR", "App version that answered."),
        Column("sample_key", "DOUBLE", "Deterministic hash key in [0, 1); the smallest are drawn."),
        Column("prepared_at", "TIMESTAMP", "When the batch was drawn (UTC).", run_time=True),
    ),
)

REVIEW_ITEMS = Table(
    "review_items",
    "What the review app shows, one row per queue x item, self-contained (content, references, judges' verdicts). "
    "Never a holdout case or a sealed trace.",
    (
        Column(
            "queue",
            "VARCHAR",
            "disagreement (review_queue), weekly (Friday sample) or calibration_gap.",
        ),
        Column("position", "INTEGER", "Order within the queue, from 1."),
        Column(
            "item_id",
            "VARCHAR",
            "The label's subject id: a trace_id, or case_id|app_version for a candidate output.",
        ),
        Column(
            "subject",
            "VARCHAR",
            "trace (a production output) or candidate (a candidate output of a golden case).",
        ),
        Column("trace_id", "VARCHAR", "Source production trace."),
        Column("case_id", "VARCHAR", "Golden case (candidates only)."),
        Column("app_version", "VARCHAR", "App version whose output is shown."),
        Column("category", "VARCHAR", "Task category."),
        Column("user_segment", "VARCHAR", "User segment of the source trace."),
        Column("ts", "TIMESTAMP", "When the source trace happened (UTC)."),
        Column("input", "VARCHAR", "The user input."),
        Column("output", "VARCHAR", "The output to judge."),
        Column("context", "JSON", "Retrieved documents, if any."),
        Column("tool_calls", "JSON", "Tool calls made, if any."),
        Column("metadata", "JSON", "Source metadata, if any."),
        Column("reference_good", "VARCHAR", "A high-quality reference answer, when one exists."),
        Column(
            "reference_borderline",
            "VARCHAR",
            "A borderline-acceptable reference answer, when one exists.",
        ),
        Column("reason", "VARCHAR", "Why the item is in the queue, in words."),
        Column(
            "judge_verdicts",
            "JSON",
            "The judges' verdicts and critiques [{judge, verdict, critique, error}]; the app shows them only after the expert decides.",
        ),
        Column(
            "prepared_at",
            "TIMESTAMP",
            "When the queues were built (UTC): the queue version the app checks.",
            run_time=True,
        ),
    ),
)

FAILURE_MODE_DISTRIBUTION = Table(
    "failure_mode_distribution",
    "Error analysis: failing outputs per failure mode (taxonomy aliases resolved), overall and by category and app version.",
    (
        Column(
            "failure_mode",
            "VARCHAR",
            "Canonical failure mode (renamed and merged modes resolved), or 'unassigned'.",
        ),
        Column(
            "defined",
            "BOOLEAN",
            "The mode is in the taxonomy file (false: typed by an expert, not yet defined).",
        ),
        Column(
            "category",
            "VARCHAR",
            "Task category, 'all', or 'not_ingested' (a label on a trace quarantined at ingest).",
        ),
        Column("app_version", "VARCHAR", "App version, 'all', or 'not_ingested'."),
        Column("n", "INTEGER", "Failing outputs with this mode in the slice."),
        Column("share", "DOUBLE", "n / failing outputs in the slice."),
        Column("share_of_reviewed", "DOUBLE", "n / reviewed outputs (pass or fail) in the slice."),
        Column("failing", "INTEGER", "Failing outputs in the slice."),
        Column("reviewed", "INTEGER", "Reviewed outputs in the slice."),
        Column("taxonomy_version", "INTEGER", "Version of the taxonomy file used (0 = none yet)."),
    ),
)

HOLDOUT_STORE_TABLES: tuple[Table, ...] = (RESERVOIR_TRACES, HOLDOUT_CASES)


@dataclass(frozen=True)
class View:
    """A view the pools stage publishes so no later stage writes the seal's filter by hand."""

    name: str
    comment: str
    sql: str
    tables: tuple[Table, ...]

    def ddl(self) -> str:
        return f"CREATE OR REPLACE VIEW {self.name} AS {self.sql}"

    def __str__(self) -> str:
        return self.name


# The seal as views: what every stage after the pools may read.
VISIBLE_TRACES = View(
    "visible_traces",
    "Production traces outside the holdout reservoir (their text is in the warehouse).",
    f"SELECT * FROM {TRACES.name} WHERE NOT sealed",
    (TRACES,),
)
ACTIVE_POOL = View(
    "active_pool",
    "Golden cases in the active pool: the set judged, reported and iterated on.",
    f"SELECT * FROM {GOLDEN_POOLS.name} WHERE pool = 'active'",
    (GOLDEN_POOLS,),
)
UNSEALED_POOL = View(
    "unsealed_pool",
    "Golden cases outside the holdout (active and retired): what may be reviewed and labelled.",
    f"SELECT * FROM {GOLDEN_POOLS.name} WHERE pool <> 'holdout'",
    (GOLDEN_POOLS,),
)
ACTIVE_CASES = View(
    "active_cases",
    "Content of the active pool's cases.",
    f"SELECT c.* FROM {GOLDEN_CASES.name} c JOIN {GOLDEN_POOLS.name} p USING (case_id) "
    "WHERE p.pool = 'active'",
    (GOLDEN_CASES, GOLDEN_POOLS),
)
SEAL_VIEWS: tuple[View, ...] = (VISIBLE_TRACES, ACTIVE_POOL, UNSEALED_POOL, ACTIVE_CASES)

ANALYST_TABLES: tuple[Table, ...] = (
    TRACES,
    TRACE_FEEDBACK,
    QUARANTINED_TRACES,
    QUARANTINED_FEEDBACK,
    TRACE_SAMPLE,
    GOLDEN_POOLS,
    GOLDEN_CASES,
    POOL_EVENTS,
    POOL_SIZES,
    HOLDOUT_EVALUATION,
    ASSERTION_RESULTS,
    CANDIDATE_OUTPUTS,
    JUDGE_VERDICTS,
    JUDGE_ENSEMBLE,
    REVIEW_QUEUE,
    PAIRWISE_VERDICTS,
    BT_RATINGS,
    HUMAN_LABELS,
    QUARANTINED_LABELS,
    CALIBRATION_VERDICTS,
    JUDGE_CALIBRATION,
    ANNOTATOR_AGREEMENT,
    CALIBRATION_TEST_USES,
    CORRECTED_PASS_RATES,
    SEGMENT_REPORT,
    RELEASE_GATES,
    QUALITY_COST_LATENCY,
    ONLINE_OFFLINE_CORRELATION,
    ACTIVE_EVALUATION,
    HOLDOUT_GAP,
    WEEKLY_REVIEW_SAMPLE,
    REVIEW_ITEMS,
    FAILURE_MODE_DISTRIBUTION,
)

# Everything the working warehouse holds; `warehouse.set_up` creates it once per schema version.
WAREHOUSE_TABLES: tuple[Table, ...] = (*ANALYST_TABLES, SEALED_FINGERPRINTS)


def run_time_columns(tables: tuple[Table, ...] = WAREHOUSE_TABLES) -> dict[str, set[str]]:
    """Per table, the columns that record when or how fast a run went (not what it found)."""
    return {t.name: {c.name for c in t.columns if c.run_time} for t in tables}
