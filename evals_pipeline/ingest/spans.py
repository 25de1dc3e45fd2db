"""The traces teams already have, read as our records: OpenTelemetry GenAI spans, OpenInference
(Arize Phoenix) spans and Langfuse exports become one flat trace record per interaction, which
then goes through the same validation, quarantine, sealing and dedupe as a flat source.

The work is SQL in DuckDB, in three steps, on the ingest's reader connection:
1. `_spans`: every span of the ingest's files in one shape (`SPAN_COLUMNS`), whatever the
   ecosystem: OTLP JSON lines are unnested (`resourceSpans[].scopeSpans[].spans[]`, attributes
   as a map, resource attributes under the span's), a Phoenix span table's `attributes.*`
   columns become the same map, Langfuse traces and observations become a root span and its
   children. The ecosystem's attribute names are read into the same columns (input, output,
   model, tokens, cost, session, user, tool call, ...), both in the current and older forms.
   A line or span that cannot be read goes to `_span_problems` with its reason.
2. Spans are grouped by trace id into one flat record (`TRACE_FIELDS`) as JSON text: the root
   (or outermost span with one) gives input and output, LLM spans model, tokens and cost,
   tool spans `tool_calls`; category and segment are derived from attributes (`Derivation`).
3. The records and the problems are handed on as staging rows: a record is validated like a
   line of a flat file; a problem is quarantined with its reason and raw line.

A row of such a source is therefore a trace (the spans sharing an id), or a line or span that
could not be read: rows in = traces + unreadable lines and spans = stored + quarantined.
Feedback comes from span events, Phoenix annotations and Langfuse scores (`feedback_sql`).
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path

import duckdb
import pyarrow as pa

from evals_pipeline.records import FEEDBACK_SIGNALS, UNCATEGORIZED, sql_literal
from evals_pipeline.warehouse import over_arrow

SPAN_FORMATS: tuple[str, ...] = ("otel", "openinference", "langfuse")

# Names of ecosystem feedback that mean one of our signals without configuration. A name not
# here and not in `source.feedback_names` keeps its own name and is quarantined as
# unknown_signal (docs/sources.md has the table).
THUMBS_NAMES: tuple[str, ...] = (
    "thumbs",
    "feedback",
    "user_feedback",
    "user-feedback",
    "helpful",
    "helpfulness",
    "user_rating",
    "rating",
)
POSITIVE_LABELS: tuple[str, ...] = (
    "up",
    "thumbs_up",
    "thumbs-up",
    "positive",
    "good",
    "helpful",
    "yes",
    "true",
    "correct",
    "like",
    "1",
)
NEGATIVE_LABELS: tuple[str, ...] = (
    "down",
    "thumbs_down",
    "thumbs-down",
    "negative",
    "bad",
    "unhelpful",
    "no",
    "false",
    "incorrect",
    "dislike",
    "0",
)


@dataclass(frozen=True)
class Derivation:
    """How the fields a span export does not name are derived (project file keys).

    Paths are attribute keys (`app.intent`, `service.version`), or a key and a path into its
    JSON value (`metadata.intent` reads `intent` of the `metadata` attribute or object)."""

    category_from: tuple[str, ...] = ()
    segment_from: tuple[tuple[str, str], ...] = ()
    app_version_from: tuple[str, ...] = ()
    # Attribute paths holding the application's own id of the interaction (labels and
    # references may use it); none found = the span trace id.
    trace_id_from: tuple[str, ...] = ()
    categories: tuple[str, ...] = ()
    strict: bool = False
    feedback_names: Mapping[str, str] = field(default_factory=dict)


DEFAULT_APP_VERSION_FROM: dict[str, tuple[str, ...]] = {
    "otel": ("service.version", "app.version"),
    "openinference": ("service.version", "metadata.app_version", "app.version"),
    "langfuse": ("release", "version"),
}


# ---------------------------------------------------------------------------------------------
# SQL building blocks (temporary macros on the reader connection)

MACROS = r"""
-- Lambda variables here end in _m: a macro's lambda must not shadow its caller's.
CREATE OR REPLACE TEMP MACRO _otlp_scalar(v) AS coalesce(
    v->'stringValue', TRY_CAST(v->>'intValue' AS BIGINT)::JSON, v->'doubleValue', v->'boolValue');
CREATE OR REPLACE TEMP MACRO _otlp_value(v) AS CASE
    WHEN json_exists(v, '$.arrayValue') THEN to_json(list_transform(
        coalesce(TRY_CAST(v->'arrayValue'->'values' AS JSON[]), []), lambda _x_m: _otlp_scalar(_x_m)))
    WHEN json_exists(v, '$.kvlistValue') THEN to_json(map_from_entries(list_transform(
        coalesce(TRY_CAST(v->'kvlistValue'->'values' AS JSON[]), []),
        lambda _x_m: {'key': _x_m->>'key', 'value': _otlp_scalar(_x_m->'value')})))
    ELSE _otlp_scalar(v) END;
-- An OTLP AnyValue parsed to its typed struct (OTLP_SHAPE), as JSON.
CREATE OR REPLACE TEMP MACRO _any_json(v) AS CASE
    WHEN v.stringValue IS NOT NULL THEN to_json(v.stringValue)
    WHEN v.intValue IS NOT NULL THEN to_json(TRY_CAST(v.intValue AS BIGINT))
    WHEN v.doubleValue IS NOT NULL THEN to_json(v.doubleValue)
    WHEN v.boolValue IS NOT NULL THEN to_json(v.boolValue)
    WHEN v.arrayValue IS NOT NULL THEN _otlp_value(json_object('arrayValue', v.arrayValue))
    WHEN v.kvlistValue IS NOT NULL THEN _otlp_value(json_object('kvlistValue', v.kvlistValue)) END;
-- Typed key-values as a map; a repeated key keeps its first value (only a list that has one
-- pays for finding it: CASE evaluates a branch for its rows only).
CREATE OR REPLACE TEMP MACRO _kv_map(kv) AS map_from_entries(CASE
    WHEN len(list_distinct(list_transform(coalesce(kv, []), lambda _kv_m: _kv_m.key))) = len(coalesce(kv, []))
        THEN list_transform(coalesce(kv, []), lambda _kv_m: {'key': _kv_m.key, 'value': _any_json(_kv_m.value)})
    ELSE list_filter(
        list_transform(coalesce(kv, []), lambda _kv_m: {'key': _kv_m.key, 'value': _any_json(_kv_m.value)}),
        lambda _e_m, _i_m: _e_m.key IS NOT NULL AND list_position(
            list_transform(coalesce(kv, []), lambda _kv_m: _kv_m.key), _e_m.key) = _i_m) END);
-- Nanoseconds since the epoch (a string or a number in OTLP JSON) as a UTC timestamp.
CREATE OR REPLACE TEMP MACRO _ns_ts(x) AS
    make_timestamp(TRY_CAST(TRY_CAST(x AS HUGEINT) // 1000 AS BIGINT));
-- An id in hex (the OTLP JSON encoding) or base64 (protobuf's canonical JSON), as lower hex.
CREATE OR REPLACE TEMP MACRO _otlp_id(x) AS CASE
    WHEN x IS NULL OR x = '' THEN NULL
    WHEN regexp_full_match(x, '[0-9a-fA-F]+') THEN lower(x)
    ELSE lower(hex(TRY(from_base64(x)))) END;
-- A JSON value whose string may itself hold JSON (message lists, metadata), parsed.
CREATE OR REPLACE TEMP MACRO _parsed(j) AS CASE
    WHEN json_type(j) = 'VARCHAR' AND json_valid(j->>'$') THEN (j->>'$')::JSON ELSE j END;
CREATE OR REPLACE TEMP MACRO _text(j) AS CASE
    WHEN j IS NULL OR json_type(j) = 'NULL' THEN NULL
    WHEN json_type(j) = 'VARCHAR' THEN j->>'$' ELSE j::VARCHAR END;
-- The text of a message: a string content, or its text parts joined (GenAI `parts`, OpenAI
-- content parts, Langfuse/OpenInference `text`).
CREATE OR REPLACE TEMP MACRO _message_text(m) AS CASE
    WHEN m IS NULL OR json_type(m) = 'NULL' THEN NULL
    WHEN json_type(m) = 'VARCHAR' THEN m->>'$'
    WHEN json_type(m, '$.content') = 'VARCHAR' THEN m->>'content'
    ELSE coalesce(array_to_string(list_transform(list_filter(
        coalesce(TRY_CAST(coalesce(m->'parts', m->'content') AS JSON[]), []),
        lambda _p_m: coalesce(_p_m->>'type', 'text') = 'text'), lambda _p_m: coalesce(_p_m->>'content', _p_m->>'text')),
        chr(10)), '') END;
-- A message list in any of the ecosystem's forms as [{role, content}] (content as text).
CREATE OR REPLACE TEMP MACRO _messages(j, default_role) AS CASE
    WHEN json_type(_parsed(j)) = 'ARRAY' AND json_array_length(_parsed(j)) > 0 THEN to_json(list_transform(
        TRY_CAST(_parsed(j) AS JSON[]),
        lambda _m_m: {'role': coalesce(_m_m->>'role', _m_m->>'message.role', default_role),
              'content': coalesce(_m_m->>'message.content', _message_text(_m_m))})) END;
-- Tool calls named in GenAI `parts` of a message list ([{name, arguments}]).
CREATE OR REPLACE TEMP MACRO _part_tool_calls(j) AS list_transform(list_filter(flatten(
    list_transform(coalesce(TRY_CAST(_parsed(j) AS JSON[]), []),
        lambda _m_m: coalesce(TRY_CAST(_m_m->'parts' AS JSON[]), []))), lambda _p_m: _p_m->>'type' = 'tool_call'),
    lambda _p_m: {'name': _p_m->>'name', 'arguments': _parsed(_p_m->'arguments'), 'result': NULL::JSON});
-- Input or output as our records take it: a text, or a message list; a JSON object that is
-- neither (a chain's {"query": ...}) keeps its JSON text.
CREATE OR REPLACE TEMP MACRO _text_or_messages(j, default_role) AS CASE
    WHEN j IS NULL OR json_type(j) = 'NULL' THEN NULL
    WHEN json_type(_parsed(j)) = 'ARRAY' THEN _messages(j, default_role)
    WHEN json_type(_parsed(j)) = 'OBJECT' AND json_type(_parsed(j), '$.messages') = 'ARRAY'
        THEN _messages(_parsed(j)->'messages', default_role)
    WHEN json_type(_parsed(j)) = 'OBJECT' AND json_type(_parsed(j), '$.content') = 'VARCHAR'
        THEN to_json(_parsed(j)->>'content')
    WHEN json_type(j) = 'VARCHAR' THEN j
    ELSE to_json(j::VARCHAR) END;
"""


def _attr(key: str, attrs: str = "attrs") -> str:
    """SQL: the attribute's JSON value (NULL when absent): the span's, else its resource's
    (kept apart: merging the maps per span costs more than reading both)."""
    return f"coalesce({attrs}[{sql_literal(key)}], resource[{sql_literal(key)}])"


def _attr_text(key: str, attrs: str = "attrs") -> str:
    return f"_text({_attr(key, attrs)})"


def _first_text(keys: Sequence[str], attrs: str = "attrs") -> str:
    return f"coalesce({', '.join(_attr_text(k, attrs) for k in keys)})"


def _path_text(path: str, attrs: str = "attrs") -> str:
    """SQL: the text at an attribute path: the key itself, or a key and a path into its JSON
    value, trying every split (`metadata.user.plan` = key `metadata`, path `user.plan`, or key
    `metadata.user`, path `plan`, or the key `metadata.user.plan`)."""
    parts = path.split(".")
    options = [_attr_text(path, attrs)]
    for i in range(len(parts) - 1, 0, -1):
        key, rest = ".".join(parts[:i]), ".".join(f'"{p}"' for p in parts[i:])
        options.append(
            f"json_extract_string(_parsed({_attr(key, attrs)}), {sql_literal('$.' + rest)})"
        )
    return f"coalesce({', '.join(options)})"


def _indexed_messages(prefix: str, role_suffix: str, content_suffix: str, role: str) -> str:
    """SQL: messages spread over indexed attributes (`llm.input_messages.0.message.role`,
    `gen_ai.prompt.0.content`, ...) as a [{role, content}] JSON list, or NULL."""
    pattern = "^" + re.escape(prefix) + r"\.(\d+)\."
    indices = (
        f"list_sort(list_distinct(list_transform(list_filter(map_keys(attrs), "
        f"lambda k: regexp_matches(k, {sql_literal(pattern)})), "
        f"lambda k: regexp_extract(k, {sql_literal(pattern)}, 1)::INTEGER)))"
    )
    base = sql_literal(prefix + ".")
    message = (
        f"{{'role': coalesce(_text(attrs[{base} || i || {sql_literal('.' + role_suffix)}]), {sql_literal(role)}), "
        f"'content': coalesce(_text(attrs[{base} || i || {sql_literal('.' + content_suffix)}]), '')}}"
    )
    return f"CASE WHEN len({indices}) > 0 THEN to_json(list_transform({indices}, lambda i: {message})) END"


def _indexed_tool_calls(prefix: str) -> str:
    """SQL: tool calls spread over OpenInference message attributes
    (`llm.output_messages.0.message.tool_calls.0.tool_call.function.name|arguments`)."""
    pattern = (
        "^" + re.escape(prefix) + r"\.(\d+)\.message\.tool_calls\.(\d+)\.tool_call\.function\.name$"
    )
    keys = f"list_sort(list_filter(map_keys(attrs), lambda k: regexp_matches(k, {sql_literal(pattern)})))"
    return (
        f"list_transform({keys}, lambda k: {{'name': _text(attrs[k]), "
        f"'arguments': _parsed(attrs[replace(k, '.function.name', '.function.arguments')]), "
        "'result': NULL::JSON})"
    )


def _indexed_documents() -> str:
    """SQL: OpenInference retrieval documents (`retrieval.documents.N.document.content`, or a
    Phoenix table's `retrieval.documents` list) as a JSON list of texts, or NULL."""
    pattern = r"^retrieval\.documents\.(\d+)\.document\.content$"
    keys = f"list_sort(list_filter(map_keys(attrs), lambda k: regexp_matches(k, {sql_literal(pattern)})))"
    listed = f"TRY_CAST(_parsed({_attr('retrieval.documents')}) AS JSON[])"
    return f"""CASE
        WHEN len({keys}) > 0 THEN to_json(list_transform({keys}, lambda k: _text(attrs[k])))
        WHEN len({listed}) > 0 THEN to_json(list_transform({listed},
            lambda d: coalesce(d->>'document.content', d->'document'->>'content', _text(d))))
        END"""


def _event_messages(names_roles: Mapping[str, str]) -> str:
    """SQL: messages carried by the older GenAI span events (`gen_ai.user.message`,
    `gen_ai.choice`, ...), in event order, as [{role, content}] or NULL."""
    cases = " ".join(f"WHEN {sql_literal(n)} THEN {sql_literal(r)}" for n, r in names_roles.items())
    names = ", ".join(sql_literal(n) for n in names_roles)
    body = "_parsed(e.attrs['gen_ai.event.content'])"
    content = (
        f"coalesce(_text(e.attrs['content']), _message_text(_parsed(e.attrs['message'])), "
        f"{body}->>'content', _message_text({body}->'message'), '')"
    )
    role = f"coalesce(_text(e.attrs['role']), CASE e.name {cases} END)"
    filtered = f"list_filter(events, lambda e: e.name IN ({names}))"
    return (
        f"CASE WHEN len({filtered}) > 0 THEN to_json(list_transform({filtered}, "
        f"lambda e: {{'role': {role}, 'content': {content}}})) END"
    )


INPUT_EVENTS = {
    "gen_ai.system.message": "system",
    "gen_ai.user.message": "user",
    "gen_ai.assistant.message": "assistant",
    "gen_ai.tool.message": "tool",
}
OUTPUT_EVENTS = {"gen_ai.choice": "assistant"}


def _otel_semantics() -> dict[str, str]:
    """Our columns from GenAI semantic-convention attributes, current form first, then the
    older event and indexed-attribute forms."""
    op = _attr_text("gen_ai.operation.name")
    return {
        "role": f"""CASE
            WHEN {op} = 'execute_tool' THEN 'tool'
            WHEN {op} IN ('invoke_agent', 'create_agent') THEN 'agent'
            WHEN {op} IN ('chat', 'text_completion', 'generate_content', 'completion', 'embeddings')
                 OR {_attr("gen_ai.request.model")} IS NOT NULL OR {_attr("gen_ai.system")} IS NOT NULL
                 OR {_attr("gen_ai.provider.name")} IS NOT NULL THEN 'llm'
            ELSE 'other' END""",
        "input": f"""coalesce(
            _messages({_attr("gen_ai.input.messages")}, 'user'),
            {_event_messages(INPUT_EVENTS)},
            {_indexed_messages("gen_ai.prompt", "role", "content", "user")},
            _messages(list_filter(events, lambda e: e.name = 'gen_ai.content.prompt')[1].attrs['gen_ai.prompt'], 'user'),
            _text_or_messages({_attr("input.value")}, 'user'))""",
        "output": f"""coalesce(
            _messages({_attr("gen_ai.output.messages")}, 'assistant'),
            {_event_messages(OUTPUT_EVENTS)},
            {_indexed_messages("gen_ai.completion", "role", "content", "assistant")},
            _messages(list_filter(events, lambda e: e.name = 'gen_ai.content.completion')[1].attrs['gen_ai.completion'], 'assistant'),
            _text_or_messages({_attr("output.value")}, 'assistant'))""",
        "model": _first_text(["gen_ai.response.model", "gen_ai.request.model"]),
        "input_tokens": f"TRY_CAST({_first_text(['gen_ai.usage.input_tokens', 'gen_ai.usage.prompt_tokens'])} AS BIGINT)",
        "output_tokens": f"TRY_CAST({_first_text(['gen_ai.usage.output_tokens', 'gen_ai.usage.completion_tokens'])} AS BIGINT)",
        "cost_usd": f"TRY_CAST({_first_text(['gen_ai.usage.cost', 'gen_ai.usage.cost_usd'])} AS DOUBLE)",
        "session_id": _first_text(["session.id", "gen_ai.conversation.id"]),
        "user_id": _first_text(["user.id", "enduser.id"]),
        "tool_name": _attr_text("gen_ai.tool.name"),
        "tool_arguments": f"_parsed({_attr('gen_ai.tool.call.arguments')})",
        "tool_result": f"_parsed({_attr('gen_ai.tool.call.result')})",
        "part_tool_calls": f"_part_tool_calls({_attr('gen_ai.output.messages')})",
        "tags": "NULL::JSON",
        # No GenAI convention yet: documents as a JSON list on a retrieval span (docs/sources.md).
        "context": f"_parsed({_attr('gen_ai.retrieval.documents')})",
    }


def _openinference_semantics() -> dict[str, str]:
    kind = f"upper({_attr_text('openinference.span.kind')})"
    msgs = {
        side: f"""coalesce(
            _messages({_attr(f"llm.{side}_messages")}, '{role}'),
            {_indexed_messages(f"llm.{side}_messages", "message.role", "message.content", role)})"""
        for side, role in (("input", "user"), ("output", "assistant"))
    }
    return {
        "role": f"""CASE {kind} WHEN 'LLM' THEN 'llm' WHEN 'TOOL' THEN 'tool' WHEN 'AGENT' THEN 'agent'
            WHEN 'CHAIN' THEN 'chain' ELSE 'other' END""",
        "input": f"coalesce({msgs['input']}, _text_or_messages({_attr('input.value')}, 'user'))",
        "output": f"coalesce({msgs['output']}, _text_or_messages({_attr('output.value')}, 'assistant'))",
        "model": _attr_text("llm.model_name"),
        "input_tokens": f"TRY_CAST({_attr_text('llm.token_count.prompt')} AS BIGINT)",
        "output_tokens": f"TRY_CAST({_attr_text('llm.token_count.completion')} AS BIGINT)",
        "cost_usd": f"TRY_CAST({_attr_text('llm.cost.total')} AS DOUBLE)",
        "session_id": _attr_text("session.id"),
        "user_id": _attr_text("user.id"),
        "tool_name": _attr_text("tool.name"),
        "tool_arguments": f"coalesce(_parsed({_attr('tool.parameters')}), _parsed({_attr('input.value')}))",
        "tool_result": f"_parsed({_attr('output.value')})",
        "part_tool_calls": _indexed_tool_calls("llm.output_messages"),
        "tags": f"_parsed({_attr('tag.tags')})",
        "context": _indexed_documents(),
    }


# The one shape every ecosystem's spans take (`_spans`).
SPAN_COLUMNS = """source_file VARCHAR, source_row BIGINT, seq BIGINT, folder_day DATE,
    trace_id VARCHAR, span_id VARCHAR, parent_id VARCHAR, name VARCHAR, role VARCHAR,
    start_ts TIMESTAMP, end_ts TIMESTAMP, is_error BOOLEAN, error_message VARCHAR,
    input JSON, output JSON, model VARCHAR, input_tokens BIGINT, output_tokens BIGINT,
    cost_usd DOUBLE, session_id VARCHAR, user_id VARCHAR, tool_name VARCHAR,
    tool_arguments JSON, tool_result JSON, part_tool_calls JSON, tags JSON, context JSON,
    c_raw VARCHAR, seg VARCHAR, app_v VARCHAR, own_id VARCHAR, feedback JSON,
    problem VARCHAR, span_text VARCHAR"""

# Problems: a line or span that could not be read (reason|detail, as quarantine rows take it).
PROBLEM_COLUMNS = """source_file VARCHAR, source_row BIGINT, folder_day DATE, line VARCHAR,
    why VARCHAR, trace_id VARCHAR, ts TIMESTAMP"""


def _derived_columns(derive: Derivation, fmt: str) -> str:
    """SQL: the span's values at the project file's attribute paths (category, segment, app
    version, own id), read while its attributes are at hand: the spans table keeps these,
    not the attribute maps (which repeat the message text)."""
    categories = derive.category_from
    if derive.segment_from:
        parts = [f"coalesce({_path_text(p)}, 'unknown')" for _, p in derive.segment_from]
        any_part = " OR ".join(f"{_path_text(p)} IS NOT NULL" for _, p in derive.segment_from)
        segment = f"CASE WHEN {any_part} THEN concat_ws('_', {', '.join(parts)}) END"
    else:
        segment = "NULL"
    app_version = _derived(derive.app_version_from or DEFAULT_APP_VERSION_FROM[fmt])
    return (
        f"{_derived(categories)} AS c_raw, {segment} AS seg, {app_version} AS app_v, "
        f"{_derived(derive.trace_id_from)} AS own_id"
    )


def _span_insert(semantics: Mapping[str, str], source: str, derive: Derivation, fmt: str) -> str:
    """INSERT into `_spans` from `source`, a relation of raw spans (`trace_id`, `span_id`,
    `parent_id`, `name`, `start_ts`, `end_ts`, `is_error`, `error_message`, `attrs`,
    `resource`, `events` and the row's place), reading our columns with the ecosystem's
    `semantics` and the project file's paths."""
    cols = ", ".join(f"{expr} AS {name}" for name, expr in semantics.items())
    return f"""INSERT INTO _spans BY NAME
        SELECT source_file, source_row, seq, folder_day, trace_id, span_id, parent_id, name,
               start_ts, end_ts, is_error, error_message, {cols},
               {_derived_columns(derive, fmt)}, {_event_feedback()} AS feedback
        FROM {source}"""


def _event_feedback() -> str:
    """SQL: feedback carried as span events: `gen_ai.evaluation.result` (name, score, label)
    or an event named after a signal or a thumbs-like name; [{name, value, label, ts}]."""
    names = ", ".join(sql_literal(n) for n in (*FEEDBACK_SIGNALS, *THUMBS_NAMES))
    keep = f"list_filter(events, lambda e: e.name = 'gen_ai.evaluation.result' OR lower(e.name) IN ({names}))"
    item = (
        "{'name': CASE WHEN e.name = 'gen_ai.evaluation.result' THEN _text(e.attrs['gen_ai.evaluation.name']) ELSE e.name END, "
        "'value': TRY_CAST(coalesce(_text(e.attrs['gen_ai.evaluation.score.value']), _text(e.attrs['value']), _text(e.attrs['score'])) AS DOUBLE), "
        "'label': coalesce(_text(e.attrs['gen_ai.evaluation.score.label']), _text(e.attrs['label'])), "
        "'ts': e.ts}"
    )
    return f"CASE WHEN len({keep}) > 0 THEN to_json(list_transform({keep}, lambda e: {item})) END"


OTLP_PROBLEM = """CASE
    WHEN NOT utf8_ok THEN 'invalid_utf8|line is not valid UTF-8'
    WHEN NOT json_valid(line) THEN 'malformed_json|not valid JSON'
    WHEN json_type(line) <> 'OBJECT' OR coalesce(json_type(line, '$.resourceSpans'), '') <> 'ARRAY'
        THEN 'malformed_json|not an OTLP TracesData document (no resourceSpans array)' END"""


# OTLP JSON's shape, for one typed parse of each line (DuckDB's json_transform: a field of
# another type becomes NULL rather than an error). Extracting fields one `->` at a time would
# parse a span's text once per field.
_ANY_VALUE = (
    '{"stringValue": "VARCHAR", "intValue": "VARCHAR", "doubleValue": "DOUBLE", '
    '"boolValue": "BOOLEAN", "arrayValue": "JSON", "kvlistValue": "JSON"}'
)
_KEY_VALUES = f'[{{"key": "VARCHAR", "value": {_ANY_VALUE}}}]'
_SPAN = (
    '{"traceId": "VARCHAR", "spanId": "VARCHAR", "parentSpanId": "VARCHAR", "name": "VARCHAR", '
    '"startTimeUnixNano": "VARCHAR", "endTimeUnixNano": "VARCHAR", '
    f'"attributes": {_KEY_VALUES}, '
    f'"events": [{{"timeUnixNano": "VARCHAR", "name": "VARCHAR", "attributes": {_KEY_VALUES}}}], '
    '"status": {"code": "VARCHAR", "message": "VARCHAR"}}'
)
OTLP_SHAPE = (
    f'{{"resourceSpans": [{{"resource": {{"attributes": {_KEY_VALUES}}}, '
    f'"scopeSpans": [{{"spans": [{_SPAN}]}}], "instrumentationLibrarySpans": [{{"spans": [{_SPAN}]}}]}}]}}'
)


def _otlp_raw_spans() -> str:
    """SQL over `_lines`: the spans of the well-formed OTLP JSON lines, with the line's place;
    `span` (the span's JSON text) only where the span is malformed (for its quarantine row)."""
    bad = (
        "_otlp_id(span.traceId) IS NULL OR _otlp_id(span.spanId) IS NULL "
        "OR _ns_ts(span.startTimeUnixNano) IS NULL"
    )
    return f"""(
    WITH good AS (SELECT * FROM _lines WHERE ({OTLP_PROBLEM}) IS NULL),
    doc AS (SELECT source_file, source_row, folder_day,
                   json_transform(line, {sql_literal(OTLP_SHAPE)}) AS d FROM good),
    rs AS (SELECT source_file, source_row, folder_day, unnest(d.resourceSpans) AS r FROM doc),
    ss AS (SELECT source_file, source_row, folder_day, _kv_map(r.resource.attributes) AS resource_attrs,
                  unnest(coalesce(r.scopeSpans, r.instrumentationLibrarySpans)) AS s FROM rs),
    sp AS (SELECT source_file, source_row, folder_day, resource_attrs, unnest(s.spans) AS span FROM ss)
    SELECT source_file, source_row, folder_day,
        CASE WHEN {bad} THEN to_json(span)::VARCHAR END AS span,
        _otlp_id(span.traceId) AS trace_id, _otlp_id(span.spanId) AS span_id,
        _otlp_id(span.parentSpanId) AS parent_id, span.name AS name,
        _ns_ts(span.startTimeUnixNano) AS start_ts, _ns_ts(span.endTimeUnixNano) AS end_ts,
        coalesce(span.status.code, '') IN ('2', 'STATUS_CODE_ERROR') AS is_error,
        span.status.message AS error_message,
        _kv_map(span.attributes) AS attrs, resource_attrs AS resource,
        list_transform(coalesce(span.events, []),
            lambda e: {{'name': e.name, 'ts': _ns_ts(e.timeUnixNano), 'attrs': _kv_map(e.attributes)}}) AS events
    FROM sp)"""


SPAN_PROBLEM = """CASE
    WHEN trace_id IS NULL THEN 'malformed_span|span without a traceId'
    WHEN span_id IS NULL THEN 'malformed_span|span without a spanId'
    WHEN start_ts IS NULL THEN 'malformed_span|startTimeUnixNano is not a time' END"""


def _phoenix_raw_spans() -> str:
    """SQL over `_lines`: rows of Phoenix's span table (`context.trace_id`, `span_kind`,
    `attributes.*` columns or an `attributes` object) as raw spans."""
    flat = "TRY_CAST(line::JSON AS MAP(VARCHAR, JSON))"
    attrs = f"""map_concat(
        map_from_entries(list_transform(list_filter(map_entries({flat}), lambda e: starts_with(e.key, 'attributes.')),
            lambda e: {{'key': substr(e.key, 12), 'value': e.value}})),
        coalesce(TRY_CAST(line->'attributes' AS MAP(VARCHAR, JSON)), MAP {{}}::MAP(VARCHAR, JSON)))"""
    ts = "TRY_CAST(TRY_CAST(line->>'{0}' AS TIMESTAMPTZ) AT TIME ZONE 'UTC' AS TIMESTAMP)"
    return f"""(
    SELECT source_file, source_row, folder_day, line AS span,
        coalesce(line->>'context.trace_id', line->'context'->>'trace_id', line->>'trace_id') AS trace_id,
        coalesce(line->>'context.span_id', line->'context'->>'span_id', line->>'span_id') AS span_id,
        nullif(line->>'parent_id', '') AS parent_id, line->>'name' AS name,
        {ts.format("start_time")} AS start_ts, {ts.format("end_time")} AS end_ts,
        upper(coalesce(line->>'status_code', '')) = 'ERROR' AS is_error,
        nullif(line->>'status_message', '') AS error_message,
        map_concat({attrs}, CASE WHEN line->>'span_kind' IS NOT NULL
            THEN MAP {{'openinference.span.kind': to_json(line->>'span_kind')}} ELSE MAP {{}}::MAP(VARCHAR, JSON) END) AS attrs,
        NULL::MAP(VARCHAR, JSON) AS resource,
        list_transform(coalesce(TRY_CAST(_parsed(line->'events') AS JSON[]), []),
            lambda e: {{'name': e->>'name', 'ts': TRY_CAST(TRY_CAST(e->>'timestamp' AS TIMESTAMPTZ) AT TIME ZONE 'UTC' AS TIMESTAMP),
                   'attrs': TRY_CAST(e->'attributes' AS MAP(VARCHAR, JSON))}}) AS events
    FROM _lines
    WHERE CASE WHEN utf8_ok AND json_valid(line)
               THEN json_type(line) = 'OBJECT' AND json_type(line, '$.resourceSpans') IS NULL ELSE false END)"""


# Langfuse: a record is a trace, an observation or a score, told apart by its fields.
LANGFUSE_KIND = """CASE
    WHEN NOT utf8_ok THEN NULL
    WHEN NOT json_valid(line) THEN NULL
    WHEN json_type(line) <> 'OBJECT' THEN NULL
    WHEN line->>'traceId' IS NOT NULL AND (line->>'type' IS NOT NULL OR line->>'startTime' IS NOT NULL) THEN 'observation'
    WHEN line->>'traceId' IS NOT NULL AND (json_exists(line, '$.value') OR json_exists(line, '$.dataType')) THEN 'score'
    WHEN line->>'id' IS NOT NULL AND line->>'timestamp' IS NOT NULL THEN 'trace' END"""


def _langfuse_records() -> str:
    """SQL over `_lines`: every Langfuse record with its kind; traces' embedded observations
    and scores (the single-trace API shape) become records of their own."""
    return f"""(
    WITH top AS (SELECT source_file, source_row, folder_day, line AS rec, {LANGFUSE_KIND} AS kind FROM _lines),
    nested AS (
        SELECT source_file, source_row, folder_day, unnest(list_filter(coalesce(TRY_CAST(rec->'observations' AS JSON[]), []),
               lambda o: json_type(o) = 'OBJECT')) AS rec, 'observation' AS kind FROM top WHERE kind = 'trace'
        UNION ALL
        SELECT source_file, source_row, folder_day, unnest(list_filter(coalesce(TRY_CAST(rec->'scores' AS JSON[]), []),
               lambda o: json_type(o) = 'OBJECT')) AS rec, 'score' AS kind FROM top WHERE kind = 'trace')
    SELECT * FROM top WHERE kind IS NOT NULL UNION ALL SELECT * FROM nested)"""


def _langfuse_spans(derive: Derivation) -> str:
    ts = "TRY_CAST(TRY_CAST(rec->>'{0}' AS TIMESTAMPTZ) AT TIME ZONE 'UTC' AS TIMESTAMP)"
    usage_in = "coalesce(rec->'usageDetails'->>'input', rec->'usage'->>'input', rec->'usage'->>'promptTokens', rec->>'promptTokens')"
    usage_out = "coalesce(rec->'usageDetails'->>'output', rec->'usage'->>'output', rec->'usage'->>'completionTokens', rec->>'completionTokens')"
    cost = "coalesce(rec->>'calculatedTotalCost', rec->'costDetails'->>'total', rec->>'totalCost')"
    trace_attrs = """map_from_entries(list_filter([
            {'key': 'metadata', 'value': rec->'metadata'}, {'key': 'tags', 'value': rec->'tags'},
            {'key': 'release', 'value': rec->'release'}, {'key': 'version', 'value': rec->'version'},
            {'key': 'environment', 'value': rec->'environment'}, {'key': 'name', 'value': rec->'name'}],
            lambda e: e.value IS NOT NULL AND json_type(e.value) <> 'NULL'))"""
    obs_attrs = """map_from_entries(list_filter([
            {'key': 'metadata', 'value': rec->'metadata'}, {'key': 'version', 'value': rec->'version'}],
            lambda e: e.value IS NOT NULL AND json_type(e.value) <> 'NULL'))"""
    return f"""INSERT INTO _spans BY NAME
    SELECT source_file, source_row, row_number() OVER () + (SELECT coalesce(max(seq), 0) FROM _spans) AS seq,
        folder_day, trace_id, span_id, parent_id, name, role, start_ts, end_ts, is_error, error_message,
        input, output, model, input_tokens, output_tokens, cost_usd, session_id, user_id,
        tool_name, tool_arguments, tool_result, NULL::JSON AS part_tool_calls, tags, context,
        {_derived_columns(derive, "langfuse")}, NULL::JSON AS feedback
    FROM (SELECT *, NULL::MAP(VARCHAR, JSON) AS resource FROM (
        SELECT *, rec->>'id' AS trace_id, rec->>'id' AS span_id, NULL AS parent_id, rec->>'name' AS name,
            'chain' AS role, {ts.format("timestamp")} AS start_ts,
            {ts.format("timestamp")} + to_microseconds(TRY_CAST(TRY_CAST(rec->>'latency' AS DOUBLE) * 1e6 AS BIGINT)) AS end_ts,
            false AS is_error, NULL AS error_message,
            _text_or_messages(rec->'input', 'user') AS input, _text_or_messages(rec->'output', 'assistant') AS output,
            NULL AS model, NULL::BIGINT AS input_tokens, NULL::BIGINT AS output_tokens, NULL::DOUBLE AS cost_usd,
            rec->>'sessionId' AS session_id, rec->>'userId' AS user_id,
            NULL AS tool_name, NULL::JSON AS tool_arguments, NULL::JSON AS tool_result,
            rec->'tags' AS tags, NULL::JSON AS context, {trace_attrs} AS attrs
        FROM _lf_records WHERE kind = 'trace'
        UNION ALL BY NAME
        SELECT *, rec->>'traceId' AS trace_id, rec->>'id' AS span_id,
            coalesce(rec->>'parentObservationId', rec->>'traceId') AS parent_id, rec->>'name' AS name,
            CASE upper(rec->>'type') WHEN 'GENERATION' THEN 'llm' WHEN 'TOOL' THEN 'tool'
                 WHEN 'AGENT' THEN 'agent' WHEN 'CHAIN' THEN 'chain' ELSE 'other' END AS role,
            {ts.format("startTime")} AS start_ts, {ts.format("endTime")} AS end_ts,
            upper(coalesce(rec->>'level', '')) = 'ERROR' AS is_error, rec->>'statusMessage' AS error_message,
            CASE WHEN upper(rec->>'type') <> 'TOOL' THEN _text_or_messages(rec->'input', 'user') END AS input,
            CASE WHEN upper(rec->>'type') <> 'TOOL' THEN _text_or_messages(rec->'output', 'assistant') END AS output,
            rec->>'model' AS model, TRY_CAST({usage_in} AS BIGINT) AS input_tokens,
            TRY_CAST({usage_out} AS BIGINT) AS output_tokens, TRY_CAST({cost} AS DOUBLE) AS cost_usd,
            NULL AS session_id, NULL AS user_id,
            CASE WHEN upper(rec->>'type') = 'TOOL' THEN rec->>'name' END AS tool_name,
            CASE WHEN upper(rec->>'type') = 'TOOL' THEN _parsed(rec->'input') END AS tool_arguments,
            CASE WHEN upper(rec->>'type') = 'TOOL' THEN _parsed(rec->'output') END AS tool_result,
            NULL::JSON AS tags,
            CASE WHEN upper(rec->>'type') = 'RETRIEVER' THEN _parsed(rec->'output') END AS context,
            {obs_attrs} AS attrs
        FROM _lf_records WHERE kind = 'observation'))"""


# ---------------------------------------------------------------------------------------------
# Reading files into `_spans`


def folder_day(path: Path) -> date | None:
    """The day of a `dt=YYYY-MM-DD` folder a file is in, or None for a flat export folder."""
    name = path.parent.name
    if name.startswith("dt="):
        try:
            return date.fromisoformat(name[3:])
        except ValueError:
            return None
    return None


def create_work_tables(conn: duckdb.DuckDBPyConnection) -> None:
    conn.execute(MACROS)
    conn.execute(f"CREATE OR REPLACE TEMP TABLE _spans ({SPAN_COLUMNS})")
    conn.execute(f"CREATE OR REPLACE TEMP TABLE _span_problems ({PROBLEM_COLUMNS})")
    conn.execute(
        "CREATE OR REPLACE TEMP TABLE _own_feedback (source_file VARCHAR, source_row BIGINT, "
        "folder_day DATE, ts TIMESTAMP, line VARCHAR)"
    )
    conn.execute(
        "CREATE OR REPLACE TEMP TABLE _feedback_rows (source_file VARCHAR, source_row BIGINT, "
        "folder_day DATE, trace_id VARCHAR, name VARCHAR, value DOUBLE, label VARCHAR, ts TIMESTAMP)"
    )


def add_problem(conn: duckdb.DuckDBPyConnection, shown: str, day: date, why: str) -> None:
    """A whole file that cannot be read: one problem row (its day: its folder's, or the
    ingest's first)."""
    conn.execute(
        "INSERT INTO _span_problems VALUES (?, 0, ?, NULL, ?, NULL, NULL)", [shown, day, why]
    )


def drop_work_tables(conn: duckdb.DuckDBPyConnection) -> None:
    for t in (
        "_spans",
        "_span_problems",
        "_feedback_rows",
        "_own_feedback",
        "_lines",
        "_all_lines",
        "_lf_records",
    ):
        conn.execute(f"DROP TABLE IF EXISTS {t}")


# A line of a feedback file rather than a span: our feedback record (`signal`) or a Phoenix
# span annotation (`name` with `result.label` / `result.score`, flattened or nested).
# CASE, not AND: DuckDB evaluates both sides of an AND, and json_type of no JSON raises.
# coalesce: a NULL here would drop the line from both sides of the split.
def _object_with(condition: str) -> str:
    return f"""coalesce(CASE WHEN utf8_ok AND json_valid(line) THEN json_type(line) = 'OBJECT'
    AND json_type(line, '$.resourceSpans') IS NULL AND ({condition}) ELSE false END, false)"""


_ANNOTATION = """(json_exists(line, '$."result.label"') OR json_exists(line, '$."result.score"')
    OR coalesce(json_type(line, '$.result') = 'OBJECT', false))"""
# Our own feedback record (a `signal`, or a `trace_id` on a line that is no annotation): passed
# on as it is and validated like a flat source's, so a record missing its signal is
# `missing_field`, as there.
OWN_FEEDBACK_LINE = _object_with(
    f"json_exists(line, '$.signal') OR (json_exists(line, '$.trace_id') AND NOT {_ANNOTATION})"
)
# A Phoenix span annotation (`name` with `result.label` / `result.score`, flat or nested).
ANNOTATION_LINE = _object_with(f"NOT json_exists(line, '$.signal') AND {_ANNOTATION}")
FEEDBACK_LINE = f"({OWN_FEEDBACK_LINE} OR {ANNOTATION_LINE})"


def add_lines(
    conn: duckdb.DuckDBPyConnection,
    fmt: str,
    lines: pa.Table,
    feedback: bool,
    derive: Derivation,
) -> None:
    """Read one piece of a file (`source_file`, `source_row`, `folder_day`, `line`, `utf8_ok`)
    into `_spans`, `_feedback_rows` and `_span_problems`. With `feedback`, lines of feedback
    files (ours, Phoenix annotations) are read as feedback, not as spans."""
    over_arrow(
        conn, "_piece", lines, "CREATE OR REPLACE TEMP TABLE _all_lines AS SELECT * FROM _piece"
    )
    if feedback:
        ts = "coalesce(line->>'ts', line->>'timestamp', line->>'created_at', line->>'updated_at')"
        conn.execute(
            f"""INSERT INTO _own_feedback SELECT source_file, source_row, folder_day,
                TRY_CAST(TRY_CAST(line->>'ts' AS TIMESTAMPTZ) AT TIME ZONE 'UTC' AS TIMESTAMP), line
            FROM _all_lines WHERE {OWN_FEEDBACK_LINE}"""
        )
        conn.execute(
            f"""INSERT INTO _feedback_rows SELECT source_file, source_row, folder_day,
                coalesce(line->>'trace_id', line->>'context.trace_id', line->'context'->>'trace_id', line->>'traceId'),
                line->>'name',
                TRY_CAST(coalesce(line->>'value', line->>'result.score', line->'result'->>'score', line->>'score') AS DOUBLE),
                coalesce(line->>'result.label', line->'result'->>'label', line->>'label'),
                TRY_CAST(TRY_CAST({ts} AS TIMESTAMPTZ) AT TIME ZONE 'UTC' AS TIMESTAMP)
            FROM _all_lines WHERE {ANNOTATION_LINE}"""
        )
        conn.execute(
            f"CREATE OR REPLACE TEMP TABLE _lines AS SELECT * FROM _all_lines WHERE NOT {FEEDBACK_LINE}"
        )
    else:
        conn.execute("CREATE OR REPLACE TEMP TABLE _lines AS SELECT * FROM _all_lines")
    seq = "row_number() OVER () + (SELECT coalesce(max(seq), 0) FROM _spans) AS seq"
    if fmt == "langfuse":
        conn.execute(
            f"CREATE OR REPLACE TEMP TABLE _lf_records AS SELECT * FROM {_langfuse_records()}"
        )
        conn.execute(_langfuse_spans(derive))
        conn.execute(
            """INSERT INTO _feedback_rows SELECT source_file, source_row, folder_day,
                rec->>'traceId', rec->>'name',
                TRY_CAST(rec->>'value' AS DOUBLE), coalesce(rec->>'stringValue', CASE WHEN json_type(rec, '$.value') = 'VARCHAR' THEN rec->>'value' END),
                TRY_CAST(TRY_CAST(coalesce(rec->>'timestamp', rec->>'createdAt') AS TIMESTAMPTZ) AT TIME ZONE 'UTC' AS TIMESTAMP)
            FROM _lf_records WHERE kind = 'score'"""
        )
        conn.execute(
            f"""INSERT INTO _span_problems SELECT source_file, source_row, folder_day, line,
                CASE WHEN NOT utf8_ok THEN 'invalid_utf8|line is not valid UTF-8'
                     WHEN NOT json_valid(line) THEN 'malformed_json|not valid JSON'
                     WHEN json_type(line) <> 'OBJECT' THEN 'malformed_json|not a JSON object'
                     ELSE 'malformed_span|not a Langfuse trace, observation or score (no id/timestamp, traceId/type or traceId/value)' END,
                NULL, NULL
            FROM _lines WHERE ({LANGFUSE_KIND}) IS NULL"""
        )
        return
    otlp = _otlp_raw_spans()
    raw = f"(SELECT *, {seq} FROM {otlp})"
    if fmt == "openinference":
        # Phoenix's span table (one span per row) or OTLP JSON: both in one file set.
        raw = f"(SELECT *, {seq} FROM (SELECT * FROM {otlp} UNION ALL BY NAME SELECT * FROM {_phoenix_raw_spans()}))"
        # An object without resourceSpans is a row of Phoenix's table; anything else is OTLP.
        line_problem = f"""CASE WHEN NOT utf8_ok OR NOT json_valid(line) THEN {OTLP_PROBLEM}
            WHEN json_type(line) = 'OBJECT' AND json_type(line, '$.resourceSpans') IS NULL THEN NULL
            ELSE {OTLP_PROBLEM} END"""
    else:
        line_problem = OTLP_PROBLEM
    semantics = _otel_semantics() if fmt == "otel" else _openinference_semantics()
    if feedback:
        # The feedback stream needs only the spans' ids, times, attributes (for the app's own
        # id) and events: reading messages, tokens and tools would be wasted work.
        semantics = {name: "NULL" for name in semantics}
    # One pass from the lines into `_spans` (the raw spans are never materialized); a
    # malformed span goes in with its reason and JSON, and then moves to the problems.
    semantics = {
        **semantics,
        "problem": f"({SPAN_PROBLEM})",
        "span_text": "span::VARCHAR",
    }
    conn.execute(_span_insert(semantics, raw, derive, fmt))
    conn.execute(
        f"""INSERT INTO _span_problems
            SELECT source_file, source_row, folder_day, line, {line_problem}, NULL, NULL
            FROM _lines WHERE ({line_problem}) IS NOT NULL
            UNION ALL
            SELECT source_file, source_row, folder_day, span_text, problem, trace_id, start_ts
            FROM _spans WHERE problem IS NOT NULL"""
    )
    conn.execute("DELETE FROM _spans WHERE problem IS NOT NULL")


# ---------------------------------------------------------------------------------------------
# Spans → one flat record per trace


def _derived(paths: Sequence[str]) -> str:
    return f"coalesce({', '.join(_path_text(p) for p in paths)})" if paths else "NULL"


def records_sql(derive: Derivation, fmt: str) -> str:
    """SELECT over `_spans`: one row per trace with `line` (the flat record as JSON text),
    `ts`, `folder_day` and the place of its first span."""
    categories = ", ".join(sql_literal(c) for c in derive.categories)
    if derive.strict:
        category = "c_raw"
        source = "CASE WHEN c_raw IS NOT NULL THEN 'attribute' END"
    else:
        category = f"CASE WHEN c_raw IN ({categories}) THEN c_raw ELSE '{UNCATEGORIZED}' END"
        source = f"CASE WHEN c_raw IN ({categories}) THEN 'attribute' ELSE 'none' END"
    return f"""
WITH spans AS (
    -- A span repeated in the export (same trace and span id) is read once.
    SELECT * FROM _spans QUALIFY row_number() OVER (PARTITION BY trace_id, span_id ORDER BY seq) = 1
), ids AS (
    SELECT DISTINCT trace_id, span_id FROM spans
), ranked AS (
    -- The order in which a span's value wins for its trace: the root (no parent, or one not
    -- among the spans read), then by start. A sort key, not a window: no second partitioning.
    SELECT s.*, p.span_id IS NULL AS is_root,
        [CASE WHEN p.span_id IS NULL THEN 0 ELSE 1 END, epoch_us(s.start_ts), s.seq] AS rank
    FROM spans s LEFT JOIN ids p ON p.trace_id = s.trace_id AND p.span_id = s.parent_id
), per_trace AS (
    SELECT trace_id,
        arg_min(source_file, rank) AS source_file, arg_min(source_row, rank) AS source_row,
        arg_min(folder_day, rank) AS folder_day, arg_min(name, rank) AS root_name,
        arg_min(start_ts, rank) AS ts, max(end_ts) AS end_ts, min(start_ts) AS first_start,
        -- The whole conversation where a span has it (a chain's input is often its last turn).
        arg_min(input, [CASE WHEN json_type(input) = 'ARRAY' THEN 0 ELSE 1 END] || rank) FILTER (WHERE input IS NOT NULL) AS input,
        arg_min(output, [CASE WHEN is_root THEN 0 ELSE 1 END, -epoch_us(coalesce(end_ts, start_ts))]) FILTER (WHERE output IS NOT NULL) AS output,
        arg_min(model, start_ts) FILTER (WHERE model IS NOT NULL AND role = 'llm') AS model,
        sum(input_tokens) FILTER (WHERE role = 'llm') AS input_tokens,
        sum(output_tokens) FILTER (WHERE role = 'llm') AS output_tokens,
        sum(cost_usd) AS cost_usd,
        arg_min(session_id, rank) FILTER (WHERE session_id IS NOT NULL) AS session_id,
        arg_min(user_id, rank) FILTER (WHERE user_id IS NOT NULL) AS user_id,
        arg_min(c_raw, rank) FILTER (WHERE c_raw IS NOT NULL) AS c_raw,
        arg_min(seg, rank) FILTER (WHERE seg IS NOT NULL) AS seg,
        arg_min(app_v, rank) FILTER (WHERE app_v IS NOT NULL) AS app_v,
        arg_min(tags, rank) FILTER (WHERE tags IS NOT NULL) AS tags,
        arg_min(context, rank) FILTER (WHERE context IS NOT NULL) AS context,
        arg_min(own_id, rank) FILTER (WHERE own_id IS NOT NULL) AS own_id,
        list({{'name': tool_name, 'arguments': tool_arguments, 'result': tool_result}} ORDER BY start_ts, seq)
            FILTER (WHERE role = 'tool') AS tool_spans,
        flatten(list(TRY_CAST(part_tool_calls AS STRUCT(name VARCHAR, arguments JSON, result JSON)[]) ORDER BY start_ts, seq)
            FILTER (WHERE part_tool_calls IS NOT NULL)) AS part_calls,
        count(*) AS spans, count(*) FILTER (WHERE is_error) AS error_spans,
        arg_min(error_message, rank) FILTER (WHERE is_error) AS error_message
    FROM ranked GROUP BY trace_id
)
SELECT trace_id, source_file, source_row, folder_day, ts,
    to_json({{
        'trace_id': coalesce(own_id, trace_id),
        'ts': strftime(ts, '%Y-%m-%dT%H:%M:%S.%fZ'),
        'session_id': coalesce(session_id, trace_id),
        'user_id': coalesce(user_id, 'anonymous'),
        'app_version': coalesce(app_v, model),
        'category': {category},
        'category_source': {source},
        'user_segment': coalesce(seg, 'unknown'),
        'input': input,
        'output': output,
        'context': context,
        'tool_calls': CASE WHEN len(tool_spans) > 0 THEN to_json(tool_spans)
                           WHEN len(part_calls) > 0 THEN to_json(part_calls) END,
        'latency_ms': round(epoch_us(end_ts) / 1000 - epoch_us(first_start) / 1000, 3),
        'cost_usd': cost_usd,
        'input_tokens': input_tokens,
        'output_tokens': output_tokens,
        'metadata': to_json({{'source_format': {sql_literal(fmt)}, 'span_name': root_name, 'model': model,
                             'spans': spans, 'error_spans': error_spans, 'error': error_message,
                             'tags': tags, 'category_value': c_raw}})
    }})::VARCHAR AS line
FROM per_trace"""


# Field `value` the feedback record carries: events count 1, edit_distance keeps its number.
def feedback_sql(derive: Derivation) -> str:
    """SELECT over `_feedback_rows` ∪ span events: our feedback records as JSON text, each
    ecosystem name mapped to a signal (`THUMBS_NAMES` by value or label, a signal's own name,
    `feedback_names` from the project file); other names keep theirs (unknown_signal)."""
    custom = " ".join(
        f"WHEN {sql_literal(k.lower())} THEN {sql_literal(v)}"
        for k, v in derive.feedback_names.items()
    )
    thumbs = ", ".join(sql_literal(n) for n in THUMBS_NAMES)
    pos = ", ".join(sql_literal(n) for n in POSITIVE_LABELS)
    neg = ", ".join(sql_literal(n) for n in NEGATIVE_LABELS)
    signals = ", ".join(sql_literal(s) for s in FEEDBACK_SIGNALS)
    signal = f"""CASE
        WHEN lower(name) IN ({signals}) THEN lower(name)
        {"WHEN lower(name) IN (" + ", ".join(sql_literal(k.lower()) for k in derive.feedback_names) + f") THEN CASE lower(name) {custom} END" if custom else ""}
        WHEN lower(name) IN ({thumbs}) THEN CASE
            WHEN lower(label) IN ({pos}) OR (label IS NULL AND value >= 0.5) THEN 'thumbs_up'
            WHEN lower(label) IN ({neg}) OR (label IS NULL AND value < 0.5) THEN 'thumbs_down'
            ELSE name || ':' || coalesce(label, '?') END
        ELSE name END"""
    return f"""
WITH raw_events AS (
    SELECT source_file, source_row, folder_day, trace_id, e.name, e.value, e.label, e.ts
    FROM (SELECT *, unnest(TRY_CAST(feedback AS STRUCT(name VARCHAR, value DOUBLE, label VARCHAR, ts TIMESTAMP)[])) AS e
          FROM _spans WHERE feedback IS NOT NULL)
    UNION ALL SELECT * FROM _feedback_rows
), own_ids AS (
    -- The application's own interaction id, where the project file names one.
    SELECT trace_id, arg_min(own_id, start_ts) AS own FROM _spans WHERE own_id IS NOT NULL GROUP BY 1
), events AS (
    SELECT r.source_file, r.source_row, r.folder_day, coalesce(o.own, r.trace_id) AS trace_id,
           r.name, r.value, r.label, r.ts
    FROM raw_events r LEFT JOIN own_ids o USING (trace_id)
)
SELECT trace_id, source_file, source_row, folder_day, ts, to_json({{
    'trace_id': trace_id, 'ts': strftime(ts, '%Y-%m-%dT%H:%M:%S.%fZ'), 'signal': signal,
    'value': CASE WHEN signal = 'edit_distance' THEN value ELSE 1 END}})::VARCHAR AS line
FROM (SELECT *, {signal} AS signal FROM events)"""


def staged_records(
    conn: duckdb.DuckDBPyConnection,
    select_sql: str,
    days: Sequence[date],
    batch_rows: int,
) -> Iterator[pa.Table]:
    """The records of `select_sql` and the problems, as staging rows of the partitions in
    `days`: a row's partition is its folder's day, or in a flat export folder the UTC day of
    its time (a trace's first span); a row without a time goes to the earliest day of its
    file (or of the ingest, when nothing in the file has a time)."""
    day_list = ", ".join(f"DATE '{d}'" for d in days)
    file_day = """(SELECT source_file, min(CAST(ts AS DATE)) AS first_day FROM (
            SELECT source_file, start_ts AS ts FROM _spans UNION ALL SELECT source_file, ts FROM _feedback_rows
            UNION ALL SELECT source_file, ts FROM _own_feedback) GROUP BY 1)"""
    query = f"""
WITH rows AS (
    SELECT source_file, source_row, folder_day, ts, line, NULL::VARCHAR AS file_error, 0 AS problem
    FROM ({select_sql})
    UNION ALL
    SELECT source_file, source_row, folder_day, ts, line, NULL, 0 FROM _own_feedback
    UNION ALL
    SELECT source_file, source_row, folder_day, ts, line, why, 1 FROM _span_problems
), staged AS (
    SELECT coalesce(r.folder_day, CAST(r.ts AS DATE), f.first_day, DATE '{min(days)}') AS partition_date,
           r.source_file, r.source_row, r.line, true AS utf8_ok, r.file_error, r.problem
    FROM rows r LEFT JOIN {file_day} f USING (source_file)
)
SELECT partition_date, source_file::VARCHAR AS source_file, source_row::BIGINT AS source_row,
       line::VARCHAR AS line, utf8_ok, file_error
FROM staged WHERE partition_date IN ({day_list})"""
    reader = conn.sql(query).to_arrow_reader(batch_rows)
    for batch in reader:
        yield pa.Table.from_batches([batch])
