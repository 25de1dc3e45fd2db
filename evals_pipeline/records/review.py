"""The review queues and error analysis."""

from __future__ import annotations

from evals_pipeline.records.schema import Column, Table

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
