"""Span exports made by the real SDKs, for the tests of the span sources.

- OpenTelemetry: spans are made with the OpenTelemetry SDK (a TracerProvider with fixed ids
  and times) carrying the GenAI semantic-convention attributes, in the current form
  (`gen_ai.input.messages`) or the older one (`gen_ai.prompt.N.*`, `gen_ai.*.message` events),
  and written as the Collector's file exporter does: `opentelemetry-proto`'s OTLP encoding of
  the spans, as JSON with hex ids, one `TracesData` per line.
- OpenInference: the same SDK with the attribute names of `openinference-semantic-conventions`,
  as OTLP JSON or as the span table Phoenix exports (`context.trace_id`, `attributes.*`).
- Langfuse: its documented export shape (traces, observations, scores as JSON lines); there is
  no exporter to run offline.

An `Interaction` is what every format says about one exchange with the product.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

from google.protobuf.json_format import MessageToDict
from openinference.semconv.trace import (
    MessageAttributes,
    OpenInferenceSpanKindValues,
    SpanAttributes,
    ToolCallAttributes,
)
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.sdk.trace.id_generator import IdGenerator
from opentelemetry.trace import SpanKind, Status, StatusCode, set_span_in_context


@dataclass
class Interaction:
    key: str  # the app's own id of the interaction
    ts: datetime
    turns: list[tuple[str, str]]  # (role, text) of the input, oldest first
    output: str | None  # None: the call failed before answering
    app_version: str = "v1"
    model: str = "gpt-4o-mini"
    session: str | None = "s1"
    user: str | None = "u1"
    category: str | None = "how_to"
    plan: str | None = "pro"
    tenure: str | None = "expert"
    tool: tuple[str, dict[str, object], object] | None = None  # name, arguments, result
    input_tokens: int = 20
    output_tokens: int = 10
    cost_usd: float = 0.0005
    latency_ms: float = 800.0
    feedback: list[tuple[str, float | None, str | None]] = field(default_factory=list)
    # Streamed: each ecosystem records the accumulated answer once the stream ends, with its
    # own mark (OTel time to first chunk, OpenInference invocation parameters, Langfuse
    # completionStartTime).
    streamed: bool = False


class _Ids(IdGenerator):
    """Ids in order from one counter for all providers: distinct across interactions, and
    the same fixtures on every run of a test."""

    n = 0

    def _next(self) -> int:
        _Ids.n += 1
        return _Ids.n

    def generate_span_id(self) -> int:
        return 0x1000 + self._next()

    def generate_trace_id(self) -> int:
        return (0xABC << 96) + self._next()


def _ns(moment: datetime) -> int:
    return int(moment.timestamp() * 1_000_000) * 1000


def _provider(version: str) -> tuple[TracerProvider, InMemorySpanExporter]:
    exporter = InMemorySpanExporter()
    provider = TracerProvider(
        resource=Resource.create({"service.name": "product", "service.version": version}),
        id_generator=_Ids(),
    )
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    return provider, exporter


def otlp_json_lines(spans: Sequence[ReadableSpan], per_line: int = 50) -> list[str]:
    """The spans as the Collector's file exporter writes them: OTLP protobuf (encoded by
    opentelemetry-proto) in its JSON mapping, ids as hex, one TracesData document per line."""

    def hex_ids(o: object) -> object:
        if isinstance(o, dict):
            return {
                k: base64.b64decode(v).hex()
                if k in ("traceId", "spanId", "parentSpanId") and v
                else hex_ids(v)
                for k, v in o.items()
            }
        if isinstance(o, list):
            return [hex_ids(x) for x in o]
        return o

    lines = []
    for i in range(0, len(spans), per_line):
        message = encode_spans(list(spans[i : i + per_line]))
        lines.append(json.dumps(hex_ids(MessageToDict(message, use_integers_for_enums=True))))
    return lines


def _genai_parts(turns: Sequence[tuple[str, str]]) -> str:
    return json.dumps([{"role": r, "parts": [{"type": "text", "content": t}]} for r, t in turns])


def otel_spans(interactions: Sequence[Interaction], form: str = "current") -> list[ReadableSpan]:
    """GenAI spans of the interactions: an agent root span with the app's attributes, a chat
    span, and an execute_tool span when a tool was called; events carry feedback."""
    out: list[ReadableSpan] = []
    for it in interactions:
        provider, exporter = _provider(it.app_version)
        tracer = provider.get_tracer("product.agent")
        start = _ns(it.ts)
        end = start + int(it.latency_ms * 1e6)
        root_attrs = {
            "gen_ai.operation.name": "invoke_agent",
            "app.interaction_id": it.key,
            "session.id" if form == "current" else "gen_ai.conversation.id": it.session,
            "user.id" if form == "current" else "enduser.id": it.user,
            "app.intent": it.category,
            "app.user.plan": it.plan,
            "app.user.tenure": it.tenure,
        }
        root = tracer.start_span(
            "invoke_agent product",
            kind=SpanKind.SERVER,
            start_time=start,
            attributes={k: v for k, v in root_attrs.items() if v is not None},
        )
        ctx = set_span_in_context(root)
        chat_attrs: dict[str, object] = {
            "gen_ai.operation.name": "chat",
            "gen_ai.request.model": it.model,
            "gen_ai.usage.cost": it.cost_usd,
        }
        if form == "current":
            chat_attrs |= {
                "gen_ai.input.messages": _genai_parts(it.turns),
                "gen_ai.usage.input_tokens": it.input_tokens,
                "gen_ai.usage.output_tokens": it.output_tokens,
            }
            if it.output is not None:
                answer = [{"role": "assistant", "parts": [{"type": "text", "content": it.output}]}]
                answer[0]["finish_reason"] = "stop"  # type: ignore[assignment]
                chat_attrs["gen_ai.output.messages"] = json.dumps(answer)
        else:
            chat_attrs |= {
                "gen_ai.system": "openai",
                "gen_ai.usage.prompt_tokens": it.input_tokens,
                "gen_ai.usage.completion_tokens": it.output_tokens,
            }
        chat = tracer.start_span(
            f"chat {it.model}", context=ctx, kind=SpanKind.CLIENT, start_time=start + 1000
        )
        if it.streamed:
            chat_attrs["gen_ai.request.stream"] = True
            chat_attrs["gen_ai.response.time_to_first_chunk"] = 0.12
        chat.set_attributes(chat_attrs)  # type: ignore[arg-type]
        if form == "events":
            for role, text in it.turns:
                chat.add_event(f"gen_ai.{role}.message", {"content": text}, timestamp=start + 2000)
            if it.output is not None:
                message = json.dumps({"role": "assistant", "content": it.output})
                chat.add_event("gen_ai.choice", {"index": 0, "message": message}, end - 2000)
        elif form == "indexed":
            for i, (role, text) in enumerate(it.turns):
                chat.set_attributes(
                    {f"gen_ai.prompt.{i}.role": role, f"gen_ai.prompt.{i}.content": text}
                )
            if it.output is not None:
                chat.set_attributes(
                    {
                        "gen_ai.completion.0.role": "assistant",
                        "gen_ai.completion.0.content": it.output,
                    }
                )
        if it.output is None:
            chat.set_status(Status(StatusCode.ERROR, "upstream timeout"))
        chat.end(end_time=end - 1000)
        if it.tool is not None:
            name, args, result = it.tool
            tool = tracer.start_span(
                f"execute_tool {name}",
                context=ctx,
                start_time=start + 3000,
                attributes={
                    "gen_ai.operation.name": "execute_tool",
                    "gen_ai.tool.name": name,
                    "gen_ai.tool.call.arguments": json.dumps(args),
                    "gen_ai.tool.call.result": json.dumps(result),
                },
            )
            tool.end(end_time=start + 4000)
        for name, value, label in it.feedback:
            attrs: dict[str, object] = {"gen_ai.evaluation.name": name}
            if value is not None:
                attrs["gen_ai.evaluation.score.value"] = value
            if label is not None:
                attrs["gen_ai.evaluation.score.label"] = label
            root.add_event("gen_ai.evaluation.result", attrs, timestamp=end)  # type: ignore[arg-type]
        if it.output is None:
            root.set_status(Status(StatusCode.ERROR, "upstream timeout"))
        root.end(end_time=end)
        out.extend(exporter.get_finished_spans())
    return out


def openinference_spans(interactions: Sequence[Interaction]) -> list[ReadableSpan]:
    """OpenInference spans of the interactions (attribute names from the conventions package):
    a CHAIN root with input/output values, session, user and JSON metadata, an LLM child with
    indexed messages and token counts, a TOOL child."""
    out: list[ReadableSpan] = []
    for it in interactions:
        provider, exporter = _provider(it.app_version)
        tracer = provider.get_tracer("openinference.instrumentation")
        start = _ns(it.ts)
        end = start + int(it.latency_ms * 1e6)
        metadata = {
            "intent": it.category,
            "plan": it.plan,
            "tenure": it.tenure,
            "id": it.key,
            "app_version": it.app_version,  # Phoenix's table has no resource attributes
        }
        root_attrs: dict[str, object] = {
            SpanAttributes.OPENINFERENCE_SPAN_KIND: OpenInferenceSpanKindValues.CHAIN.value,
            SpanAttributes.INPUT_VALUE: it.turns[-1][1],
            SpanAttributes.METADATA: json.dumps(
                {k: v for k, v in metadata.items() if v is not None}
            ),
            SpanAttributes.TAG_TAGS: ["prod", it.app_version],
        }
        if it.output is not None:
            root_attrs[SpanAttributes.OUTPUT_VALUE] = it.output
        if it.session:
            root_attrs[SpanAttributes.SESSION_ID] = it.session
        if it.user:
            root_attrs[SpanAttributes.USER_ID] = it.user
        root = tracer.start_span("chain", start_time=start, attributes=root_attrs)  # type: ignore[arg-type]
        ctx = set_span_in_context(root)
        llm_attrs: dict[str, object] = {
            SpanAttributes.OPENINFERENCE_SPAN_KIND: OpenInferenceSpanKindValues.LLM.value,
            SpanAttributes.LLM_MODEL_NAME: it.model,
            SpanAttributes.LLM_TOKEN_COUNT_PROMPT: it.input_tokens,
            SpanAttributes.LLM_TOKEN_COUNT_COMPLETION: it.output_tokens,
            "llm.cost.total": it.cost_usd,
        }
        for i, (role, text) in enumerate(it.turns):
            prefix = f"{SpanAttributes.LLM_INPUT_MESSAGES}.{i}."
            llm_attrs[prefix + MessageAttributes.MESSAGE_ROLE] = role
            llm_attrs[prefix + MessageAttributes.MESSAGE_CONTENT] = text
        if it.output is not None:
            prefix = f"{SpanAttributes.LLM_OUTPUT_MESSAGES}.0."
            llm_attrs[prefix + MessageAttributes.MESSAGE_ROLE] = "assistant"
            llm_attrs[prefix + MessageAttributes.MESSAGE_CONTENT] = it.output
        if it.tool is not None:
            prefix = (
                f"{SpanAttributes.LLM_OUTPUT_MESSAGES}.0.{MessageAttributes.MESSAGE_TOOL_CALLS}.0."
            )
            llm_attrs[prefix + ToolCallAttributes.TOOL_CALL_FUNCTION_NAME] = it.tool[0]
            llm_attrs[prefix + ToolCallAttributes.TOOL_CALL_FUNCTION_ARGUMENTS_JSON] = json.dumps(
                it.tool[1]
            )
        if it.streamed:
            llm_attrs[SpanAttributes.LLM_INVOCATION_PARAMETERS] = json.dumps({"stream": True})
        llm = tracer.start_span("llm", context=ctx, start_time=start + 1000, attributes=llm_attrs)  # type: ignore[arg-type]
        if it.output is None:
            llm.set_status(Status(StatusCode.ERROR, "upstream timeout"))
        llm.end(end_time=end - 1000)
        if it.tool is not None:
            tool = tracer.start_span(
                "tool",
                context=ctx,
                start_time=start + 3000,
                attributes={
                    SpanAttributes.OPENINFERENCE_SPAN_KIND: OpenInferenceSpanKindValues.TOOL.value,
                    SpanAttributes.TOOL_NAME: it.tool[0],
                    SpanAttributes.TOOL_PARAMETERS: json.dumps(it.tool[1]),
                    SpanAttributes.OUTPUT_VALUE: json.dumps(it.tool[2]),
                },
            )
            tool.end(end_time=start + 4000)
        root.end(end_time=end)
        out.extend(exporter.get_finished_spans())
    return out


def phoenix_rows(spans: Sequence[ReadableSpan]) -> list[dict[str, object]]:
    """The spans as rows of the table Phoenix exports (`px.Client().get_spans_dataframe()`):
    context and parent ids, kind, times, status, and one `attributes.<name>` column each."""
    rows = []
    for s in spans:
        attrs = dict(s.attributes or {})
        row: dict[str, object] = {
            "name": s.name,
            "span_kind": attrs.get(SpanAttributes.OPENINFERENCE_SPAN_KIND, "UNKNOWN"),
            "parent_id": format(s.parent.span_id, "016x") if s.parent else None,
            "start_time": datetime.fromtimestamp(s.start_time / 1e9, UTC).isoformat(),  # type: ignore[operator]
            "end_time": datetime.fromtimestamp(s.end_time / 1e9, UTC).isoformat(),  # type: ignore[operator]
            "status_code": s.status.status_code.name,
            "status_message": s.status.description or "",
            "context.span_id": format(s.context.span_id, "016x"),  # type: ignore[union-attr]
            "context.trace_id": format(s.context.trace_id, "032x"),  # type: ignore[union-attr]
        }
        for k, v in attrs.items():
            row[f"attributes.{k}"] = list(v) if isinstance(v, tuple) else v
        rows.append(row)
    return rows


def langfuse_records(interactions: Sequence[Interaction]) -> list[dict[str, object]]:
    """Langfuse's export shape: a trace (input, output, sessionId, userId, metadata, tags,
    release), its GENERATION observation (model, usage, cost) and TOOL observation, scores."""
    out: list[dict[str, object]] = []
    for n, it in enumerate(interactions):
        trace_id = f"lf-{n:05d}"
        end = it.ts + timedelta(milliseconds=it.latency_ms)
        trace: dict[str, object] = {
            "id": trace_id,
            "timestamp": it.ts.isoformat().replace("+00:00", "Z"),
            "name": "chat",
            "input": [{"role": r, "content": t} for r, t in it.turns],
            "output": {"role": "assistant", "content": it.output}
            if it.output is not None
            else None,
            "sessionId": it.session,
            "userId": it.user,
            "metadata": {"intent": it.category, "plan": it.plan, "tenure": it.tenure, "id": it.key},
            "tags": ["prod"],
            "release": it.app_version,
            "latency": it.latency_ms / 1000,
        }
        out.append(trace)
        out.append(
            {
                "id": f"{trace_id}-gen",
                "traceId": trace_id,
                "type": "GENERATION",
                "name": "llm",
                "startTime": it.ts.isoformat(),
                "endTime": end.isoformat(),
                "model": it.model,
                "input": [{"role": r, "content": t} for r, t in it.turns],
                "output": {"role": "assistant", "content": it.output} if it.output else None,
                "usageDetails": {"input": it.input_tokens, "output": it.output_tokens},
                "costDetails": {"total": it.cost_usd},
                "completionStartTime": (it.ts + timedelta(milliseconds=120)).isoformat()
                if it.streamed
                else None,
                "level": "DEFAULT" if it.output is not None else "ERROR",
                "statusMessage": None if it.output is not None else "upstream timeout",
            }
        )
        if it.tool is not None:
            out.append(
                {
                    "id": f"{trace_id}-tool",
                    "traceId": trace_id,
                    "type": "TOOL",
                    "name": it.tool[0],
                    "startTime": it.ts.isoformat(),
                    "endTime": it.ts.isoformat(),
                    "input": it.tool[1],
                    "output": it.tool[2],
                }
            )
        for name, value, label in it.feedback:
            out.append(
                {
                    "id": f"{trace_id}-{name}",
                    "traceId": trace_id,
                    "name": name,
                    "value": value,
                    "stringValue": label,
                    "dataType": "CATEGORICAL" if label else "NUMERIC",
                    "timestamp": end.isoformat(),
                }
            )
    return out


def write_lines(path: Path, lines: Sequence[str]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(line + "\n" for line in lines))
    return path
