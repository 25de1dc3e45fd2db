"""What a trace and a feedback event are (the field specs ingest validates against) and
the tables ingest writes."""

from __future__ import annotations

from evals_pipeline.records.schema import Column, FieldSpec, Table

DEFAULT_CATEGORIES: tuple[str, ...] = (
    "factual_lookup",
    "how_to",
    "reasoning",
    "refusal_sensitive",
    "edge_case",
)

# The stratum of traces whose category no attribute gave and no categorizer assigned
# (derived categories, issue 15): sampled with a floor like any category, never quarantined
# unless the project file says `taxonomy.strict`.
UNCATEGORIZED = "uncategorized"

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

# Signals whose rise is good news (the rest are bad news when they rise): the direction the
# online gates judge a change in, and the way a planted canary effect moves them.
GOOD_SIGNALS: tuple[str, ...] = ("session_continued", "task_completed", "thumbs_up")

# Signals that mark a trace as a candidate for the flashlight stratum (a user was unhappy).
NEGATIVE_SIGNALS: tuple[str, ...] = ("thumbs_down", "regenerate", "escalation")

TRACE_FIELDS: tuple[FieldSpec, ...] = (
    FieldSpec("trace_id", "string", True),
    FieldSpec("ts", "timestamp", True),
    FieldSpec("session_id", "string", True),
    FieldSpec("user_id", "string", True),
    FieldSpec("app_version", "string", True),
    FieldSpec("category", "string", True),
    FieldSpec("user_segment", "string", True),
    FieldSpec("input", "text_or_messages", True, text=True),
    FieldSpec("output", "text_or_messages", True, text=True, speaker="assistant"),
    FieldSpec("context", "json", False, text=True),
    FieldSpec("tool_calls", "json", False, text=True),
    FieldSpec("latency_ms", "number", False, minimum=0),
    FieldSpec("cost_usd", "number", False, minimum=0),
    FieldSpec("input_tokens", "integer", False, minimum=0),
    FieldSpec("output_tokens", "integer", False, minimum=0),
    FieldSpec("metadata", "json", False, text=True),
    FieldSpec("category_source", "string", False),
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
    "malformed_span",
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
    Column(
        "output",
        "VARCHAR",
        "The model's answer as text (the last assistant message of a message list).",
    ),
    Column("context", "JSON", "Retrieved documents, if any."),
    Column("tool_calls", "JSON", "Tool calls made, if any."),
    Column("latency_ms", "DOUBLE", "End-to-end latency in milliseconds."),
    Column("cost_usd", "DOUBLE", "Cost of the interaction in US dollars."),
    Column("input_tokens", "BIGINT", "Prompt tokens."),
    Column("output_tokens", "BIGINT", "Completion tokens."),
    Column("metadata", "JSON", "Free-form metadata from the source."),
    Column(
        "category_source",
        "VARCHAR",
        "How the category was set: source (a field of the record), attribute (taxonomy.category_from), "
        "llm:<model> or classifier:<version> (the categorizer), none (uncategorized).",
    ),
    Column(
        "output_messages",
        "JSON",
        "The answer as a message list when the source delivered one (span exports), else null.",
    ),
    Column("source_file", "VARCHAR", "File the row came from."),
    Column("source_row", "BIGINT", "Line (JSONL) or row (Parquet) number in that file, from 1."),
)

# Text a holdout-reservoir trace keeps only in the holdout store (DESIGN: sealing starts at the door).
SEALED_TEXT_COLUMNS: tuple[str, ...] = (
    "input",
    "input_messages",
    "output",
    "output_messages",
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
