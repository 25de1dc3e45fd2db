"""Layer-1 assertions, candidate outputs, judges, the ensemble, pairwise comparisons."""

from __future__ import annotations

from evals_pipeline.records.schema import Column, Table

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

FAILURE_MODE_VERDICTS = Table(
    "failure_mode_verdicts",
    "The per-failure-mode judges' verdicts on the active pool's candidate outputs: for each "
    "enabled mode, each judge trusted for its rubric says whether the output shows the mode "
    "(fail) or not (pass). A failed call is an error, never a pass.",
    (
        Column("case_id", "VARCHAR", "Golden case."),
        Column("app_version", "VARCHAR", "App version whose output was judged."),
        Column("category", "VARCHAR", "The case's task category."),
        Column("failure_mode", "VARCHAR", "The mode judged."),
        Column("judge", "VARCHAR", "litellm model string of the judge."),
        Column("rubric", "VARCHAR", "failure_mode:<mode>."),
        Column("rubric_version", "VARCHAR", "Rubric version (a digest of the definition)."),
        Column("verdict", "VARCHAR", "fail = shows the mode, pass = does not; null on error."),
        Column("critique", "VARCHAR", "The judge's critique."),
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
            "verdict; no_quorum (fewer valid trusted answers than the quorum: excluded from rates "
            "and gates, queued for review); no_majority (valid votes tied); too_few_trusted (fewer "
            "trusted judges than the quorum: no ensemble until judges are calibrated).",
        ),
        Column("n_judges", "INTEGER", "Trusted judges (the ones that vote)."),
        Column("n_valid", "INTEGER", "Trusted judges that returned a valid verdict."),
        Column("n_pass", "INTEGER", "Pass votes of the trusted judges."),
        Column(
            "unanimous",
            "BOOLEAN",
            "All valid trusted votes agree (binary) / no two trusted judges more than 1 point "
            "apart (dimensional).",
        ),
        Column(
            "untrusted_votes",
            "VARCHAR",
            "What the untrusted or uncalibrated judges said (`judge: verdict`), reported beside "
            "the verdict, never counted in it.",
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
