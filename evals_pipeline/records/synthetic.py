"""Synthetic inputs: generated from dimension tuples, de-duplicated, filtered for realism."""

from __future__ import annotations

from evals_pipeline.records.schema import Column, Table

# Why a golden case was added when it is an admitted synthetic input (never in the holdout).
SYNTHETIC_WHY = "synthetic"
# The user segment of a synthetic case: it has no user, and is reported apart.
SYNTHETIC_SEGMENT = "synthetic"

SYNTHETIC_STATUSES: tuple[str, ...] = (
    "admitted",
    "filter_rejected",
    "duplicate",
    "near_duplicate",
    "generation_error",
    "filter_error",
    "awaiting_trusted_filter",
    "awaiting_references",
    "spare",
)

SYNTHETIC_INPUTS = Table(
    "synthetic_inputs",
    "Inputs generated from dimension tuples (seed 001 step 1), de-duplicated and filtered for realism by a trusted judge; the admitted ones enter the active pool (never the holdout) at the next rotation run.",
    (
        Column(
            "synthetic_id",
            "VARCHAR",
            "syn_ + a hash of the tuple and variant: the id its golden case and labels use.",
        ),
        Column("dimensions", "JSON", "The tuple: dimension -> value."),
        Column("category", "VARCHAR", "Task category (the dimension file's category dimension)."),
        Column("variant", "INTEGER", "Which of the tuple's generations (0, 1, ...)."),
        Column("input", "VARCHAR", "The generated user input (null on a generation error)."),
        Column("generator", "VARCHAR", "litellm model string that wrote it."),
        Column("generation_error", "VARCHAR", "Why the generation call failed (null: it did not)."),
        Column("cost_usd", "DOUBLE", "Cost of the generation call (0 when cached)."),
        Column(
            "duplicate_of",
            "VARCHAR",
            "The earlier input (synthetic id or golden case id) it duplicates.",
        ),
        Column(
            "similarity",
            "DOUBLE",
            "TF-IDF cosine similarity to that input (1 for a normalised exact copy).",
        ),
        Column(
            "filter_verdict",
            "VARCHAR",
            "The trusted filter judges' majority: pass (realistic and on-topic), fail, or null.",
        ),
        Column(
            "filter_judges",
            "VARCHAR",
            "The realism judges that voted (trusted for synthetic.filter_rubric).",
        ),
        Column(
            "status", "VARCHAR", "admitted, or why not: " + ", ".join(SYNTHETIC_STATUSES[1:]) + "."
        ),
    ),
    primary_key=("synthetic_id",),
)
