"""Span exports as trace sources (OTel GenAI, OpenInference/Phoenix, Langfuse): fixtures made by
the real SDKs (span_exports.py), read into our records with nothing lost."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime
from pathlib import Path

import duckdb
import pytest

from evals_pipeline.ingest.spans import Derivation
from evals_pipeline.ingest.validation import (
    FEEDBACK_STREAM,
    TRACE_STREAM,
    IngestRules,
    SpanReading,
    ingest_days,
)
from evals_pipeline.records import (
    DEFAULT_CATEGORIES,
    QUARANTINED_TRACES,
    TRACE_FEEDBACK,
    TRACES,
    UNCATEGORIZED,
)
from evals_pipeline.simulator.otel import trace_spans
from evals_pipeline.warehouse import set_up
from evals_pipeline_tests.span_exports import (
    Interaction,
    langfuse_records,
    openinference_spans,
    otel_spans,
    otlp_json_lines,
    phoenix_rows,
    write_lines,
)

DAY = date(2026, 3, 2)
T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)

INTERACTIONS = [
    Interaction(  # a multi-turn chat, liked
        "int-a",
        T0,
        [
            ("system", "Be brief."),
            ("user", "How do I export?"),
            ("assistant", "Which format?"),
            ("user", "CSV please"),
        ],
        "Settings > Export > CSV.",
        feedback=[("user_feedback", 1.0, None)],
    ),
    Interaction(  # a tool call, disliked by label
        "int-b",
        T0.replace(hour=10),
        [("user", "Weather in Paris?")],
        "It is 18°C in Paris.",
        category="reasoning",
        tool=("get_weather", {"city": "Paris"}, {"temp_c": 18}),
        feedback=[("thumbs", None, "down")],
    ),
    Interaction("int-c", T0.replace(hour=11), [("user", "Summarize my doc")], None),  # error span
    Interaction(  # a streamed answer: recorded whole when the stream ended
        "int-f",
        T0.replace(hour=14),
        [("user", "Write a haiku about exports")],
        "Rows flow out at night\nquarantine keeps what is bad\nnothing gets lost here",
        streamed=True,
    ),
    Interaction(  # attributes missing: no category, session, user or segment
        "int-d",
        T0.replace(hour=12),
        [("user", "hello")],
        "Hi! How can I help?",
        session=None,
        user=None,
        category=None,
        plan=None,
        tenure=None,
    ),
    Interaction(  # a category outside the taxonomy
        "int-e", T0.replace(hour=13), [("user", "Refund?")], "See billing.", category="billing"
    ),
]

OTEL = Derivation(
    category_from=("app.intent",),
    segment_from=(("plan", "app.user.plan"), ("tenure", "app.user.tenure")),
    trace_id_from=("app.interaction_id",),
    categories=DEFAULT_CATEGORIES,
)
METADATA = Derivation(
    category_from=("metadata.intent",),
    segment_from=(("plan", "metadata.plan"), ("tenure", "metadata.tenure")),
    trace_id_from=("metadata.id",),
    categories=DEFAULT_CATEGORIES,
)
BAD_LINES = ["this is not json", '{"resourceSpans": "nope"}']


def _otlp_with_planted(spans: list, folder: Path) -> Path:
    lines = otlp_json_lines(spans)
    doc = json.loads(lines[0])
    broken = dict(doc["resourceSpans"][0]["scopeSpans"][0]["spans"][0])
    broken.pop("traceId")
    broken["spanId"] = "00000000000000ff"
    doc["resourceSpans"][0]["scopeSpans"][0]["spans"].append(broken)  # a span without a trace id
    lines[0] = json.dumps(doc)
    return write_lines(folder / "traces" / f"dt={DAY}" / "spans.jsonl", [*lines, *BAD_LINES])


def _export(fmt: str, form: str, root: Path) -> Path:
    if fmt == "otel":
        return _otlp_with_planted(otel_spans(INTERACTIONS, form), root)
    if fmt == "openinference" and form == "otlp":
        return _otlp_with_planted(openinference_spans(INTERACTIONS), root)
    if fmt == "openinference":  # Phoenix's span table, flat folder (partitioned by start time)
        rows = phoenix_rows(openinference_spans(INTERACTIONS))
        return write_lines(
            root / "traces" / "spans.jsonl", [json.dumps(r) for r in rows] + ["{bad"]
        )
    records = langfuse_records(INTERACTIONS)
    return write_lines(root / "export.jsonl", [json.dumps(r) for r in records] + ["[1, 2]"])


CASES = [
    ("otel", "current", OTEL, {"missing_field": 1, "malformed_json": 2, "malformed_span": 1}),
    ("otel", "events", OTEL, {"missing_field": 1, "malformed_json": 2, "malformed_span": 1}),
    ("otel", "indexed", OTEL, {"missing_field": 1, "malformed_json": 2, "malformed_span": 1}),
    (
        "openinference",
        "otlp",
        METADATA,
        {"missing_field": 1, "malformed_json": 2, "malformed_span": 1},
    ),
    ("openinference", "phoenix", METADATA, {"missing_field": 1, "malformed_json": 1}),
    ("langfuse", "export", METADATA, {"missing_field": 1, "malformed_json": 1}),
]


@pytest.mark.parametrize(
    ("fmt", "form", "derive", "reasons"), CASES, ids=[f"{c[0]}-{c[1]}" for c in CASES]
)
def test_a_span_export_becomes_one_record_per_interaction_with_nothing_lost(
    tmp_path: Path, fmt: str, form: str, derive: Derivation, reasons: dict[str, int]
) -> None:
    path = _export(fmt, form, tmp_path)
    conn = duckdb.connect()
    set_up(conn)
    rules = IngestRules(categories=(*DEFAULT_CATEGORIES, UNCATEGORIZED))
    counts = ingest_days(
        conn, TRACE_STREAM, {DAY: [path]}, rules, tmp_path, span_reading=SpanReading(fmt, derive)
    )
    assert counts.balanced
    assert counts.by_reason == reasons
    assert counts.stored == 5
    rows = {
        r[0]: r[1:]
        for r in conn.execute(
            f"""SELECT trace_id, category, category_source, user_segment, session_id, user_id,
                      app_version, input, json_array_length(input_messages), output,
                      input_tokens, output_tokens, cost_usd, tool_calls->>'$[0].name', latency_ms,
                      ts, output_messages->>'$[0].role'
               FROM {TRACES}"""
        ).fetchall()
    }
    assert set(rows) == {"int-a", "int-b", "int-d", "int-e", "int-f"}  # the app's own ids
    assert rows["int-f"][8] == INTERACTIONS[3].output  # the whole streamed answer
    a = rows["int-a"]
    assert a[:6] == ("how_to", "attribute", "pro_expert", "s1", "u1", "v1")
    assert a[6] == "CSV please" and a[7] == 4  # the last user turn; the whole conversation kept
    assert a[8] == "Settings > Export > CSV."
    assert a[15] == (
        "assistant" if fmt == "otel" else None
    )  # the answer's messages, when spans have them
    assert a[9:12] == (20, 10, pytest.approx(0.0005))
    assert a[13] == pytest.approx(800, abs=1) and a[14] == T0.replace(tzinfo=None)
    assert rows["int-b"][0] == "reasoning" and rows["int-b"][12] == "get_weather"
    d = rows["int-d"]
    assert d[:5] == (UNCATEGORIZED, "none", "unknown", d[3], "anonymous")
    assert rows["int-e"][:2] == (UNCATEGORIZED, "none")
    quarantined = conn.execute(
        f"SELECT reason, detail, raw IS NOT NULL FROM {QUARANTINED_TRACES} ORDER BY ALL"
    ).fetchall()
    assert ("missing_field", "output", True) in quarantined  # the failed call: kept, with why


@pytest.mark.parametrize("fmt", ["otel", "langfuse"])
def test_ecosystem_feedback_maps_onto_our_signals(tmp_path: Path, fmt: str) -> None:
    path = _export(fmt, "current", tmp_path)
    feedback = write_lines(
        tmp_path / "feedback" / "extra.jsonl",
        [
            json.dumps(
                {
                    "trace_id": "int-a",
                    "ts": "2026-03-02T09:30:00Z",
                    "signal": "escalation",
                    "value": 1,
                }
            ),
            json.dumps(
                {
                    "trace_id": "int-a",
                    "ts": "2026-03-02T09:31:00Z",
                    "signal": "applause",
                    "value": 1,
                }
            ),
        ],
    )
    conn = duckdb.connect()
    set_up(conn)
    derive = OTEL if fmt == "otel" else METADATA
    counts = ingest_days(
        conn,
        FEEDBACK_STREAM,
        {DAY: [feedback, path]},
        IngestRules(),
        tmp_path,
        span_reading=SpanReading(fmt, derive, frozenset([path])),
    )
    assert counts.balanced
    stored = sorted(conn.execute(f"SELECT trace_id, signal FROM {TRACE_FEEDBACK}").fetchall())
    assert stored == [("int-a", "escalation"), ("int-a", "thumbs_up"), ("int-b", "thumbs_down")]
    # an unknown name is quarantined as for a flat source; the trace file's bad lines are the
    # traces stream's to quarantine, not counted twice here
    assert counts.by_reason == {"unknown_signal": 1}


def test_the_simulators_otel_writer_reads_like_the_sdks_output(tmp_path: Path) -> None:
    """The demo's OTLP writer (simulator wing) and the SDK give the same record for the same
    interaction, so `make demo SOURCE=otel` exercises what teams' exports exercise."""
    it = INTERACTIONS[0]
    flat = {
        "trace_id": it.key,
        "ts": it.ts.isoformat().replace("+00:00", "Z"),
        "session_id": it.session,
        "user_id": it.user,
        "app_version": it.app_version,
        "category": it.category,
        "user_segment": f"{it.plan}_{it.tenure}",
        "input": [{"role": r, "content": t} for r, t in it.turns],
        "output": it.output,
        "latency_ms": it.latency_ms,
        "cost_usd": it.cost_usd,
        "input_tokens": it.input_tokens,
        "output_tokens": it.output_tokens,
    }
    version, spans = trace_spans(flat, "k")
    doc = {
        "resourceSpans": [
            {
                "resource": {
                    "attributes": [{"key": "service.version", "value": {"stringValue": version}}]
                },
                "scopeSpans": [{"spans": spans}],
            }
        ]
    }
    ours = write_lines(tmp_path / "a" / "spans.jsonl", [json.dumps(doc)])
    sdk = write_lines(tmp_path / "b" / "spans.jsonl", otlp_json_lines(otel_spans([it])))
    sim = Derivation(
        category_from=("app.category", "app.intent"),
        segment_from=(("plan", "app.user.plan"), ("tenure", "app.user.tenure")),
        trace_id_from=("app.trace_id", "app.interaction_id"),
        categories=DEFAULT_CATEGORIES,
    )
    cols = "trace_id, ts, session_id, user_id, app_version, category, user_segment, input, input_messages, output, input_tokens, output_tokens, cost_usd"
    got = []
    for path in (ours, sdk):
        conn = duckdb.connect()
        set_up(conn)
        ingest_days(
            conn,
            TRACE_STREAM,
            {DAY: [path]},
            IngestRules(),
            tmp_path,
            span_reading=SpanReading("otel", sim),
        )
        got.append(conn.execute(f"SELECT {cols} FROM {TRACES}").fetchall())
    assert got[0] == got[1] and len(got[0]) == 1
