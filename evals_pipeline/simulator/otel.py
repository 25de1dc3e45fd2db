"""The simulated traffic as OpenTelemetry GenAI spans: what the Collector's file exporter would
write for the same interactions (`simulator.writes: otel`, `make demo SOURCE=otel`).

Each flat trace becomes one OTel trace: an `invoke_agent` root span (session, user, the app's
own interaction id, category and segment attributes), a `chat` LLM span with the current
GenAI message attributes, tokens and cost, a `retrieval` span with the documents, and an
`execute_tool` span per tool call. Resource attributes carry `service.version` (the app
version). Spans are written as OTLP JSON, 100 traces per line (one `TracesData` each), with
hex ids and 64-bit times as strings, as the exporter does. A planted line that is no JSON
stays as it is; a record missing fields becomes spans missing those attributes. Feedback
files are copied: a span export's feedback folder may hold our flat feedback records.

Tests build their fixtures with the OpenTelemetry SDK itself (evals_pipeline_tests); this
writer is for the demo's volume, and `test_sources` checks it reads as the SDK's output does.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

import duckdb

TRACES_PER_LINE = 100


def _hex(text: str, n: int) -> str:
    return hashlib.blake2b(text.encode(), digest_size=n).hexdigest()


def _value(v: object) -> dict[str, object]:
    if isinstance(v, bool):
        return {"boolValue": v}
    if isinstance(v, int):
        return {"intValue": str(v)}
    if isinstance(v, float):
        return {"doubleValue": v}
    if isinstance(v, list):
        return {"arrayValue": {"values": [_value(x) for x in v]}}
    return {"stringValue": v if isinstance(v, str) else json.dumps(v)}


def _attrs(d: dict[str, object]) -> list[dict[str, object]]:
    return [{"key": k, "value": _value(v)} for k, v in d.items() if v is not None]


def _ns(ts: str) -> int | None:
    try:
        moment = datetime.fromisoformat(ts.replace("Z", "+00:00"))
    except (TypeError, ValueError, AttributeError):
        return None
    return int(moment.timestamp() * 1_000_000) * 1000


def _parts(messages: object, role: str) -> list[dict[str, object]]:
    if isinstance(messages, str):
        return [{"role": role, "parts": [{"type": "text", "content": messages}]}]
    if isinstance(messages, list):
        out = []
        for m in messages:
            if isinstance(m, dict):
                content = m.get("content")
                text = content if isinstance(content, str) else json.dumps(content)
                out.append(
                    {"role": m.get("role", role), "parts": [{"type": "text", "content": text}]}
                )
        return out
    return []


def trace_spans(record: dict[str, object], key: str) -> tuple[str | None, list[dict[str, object]]]:
    """The OTel spans of one flat record (`key` makes its ids unique), and its app version."""
    trace_id = _hex(key, 16)
    root_id = _hex(key + "/root", 8)
    start = _ns(str(record.get("ts"))) if record.get("ts") is not None else None
    latency = record.get("latency_ms")
    duration = int(latency * 1_000_000) if isinstance(latency, (int, float)) and latency >= 0 else 0
    end = (start or 0) + duration
    segment = record.get("user_segment")
    plan, _, tenure = segment.partition("_") if isinstance(segment, str) else (None, "", "")
    metadata = record.get("metadata") if isinstance(record.get("metadata"), dict) else {}
    root_attrs = {
        "gen_ai.operation.name": "invoke_agent",
        "gen_ai.agent.name": "nimbus",
        "app.trace_id": record.get("trace_id"),
        "session.id": record.get("session_id"),
        "user.id": record.get("user_id"),
        "app.category": record.get("category"),
        "app.user.plan": plan or None,
        "app.user.tenure": tenure or None,
        **{f"app.{k}": v for k, v in metadata.items() if isinstance(v, str)},  # type: ignore[union-attr]
    }

    def span(
        span_id: str, parent: str, name: str, attrs: dict[str, object], kind: int = 1
    ) -> dict[str, object]:
        out: dict[str, object] = {
            "traceId": trace_id,
            "spanId": span_id,
            "name": name,
            "kind": kind,
        }
        if parent:
            out["parentSpanId"] = parent
        if start is not None:
            out["startTimeUnixNano"] = str(start)
            out["endTimeUnixNano"] = str(end)
        out["attributes"] = _attrs(attrs)
        out["status"] = {}
        return out

    spans = [span(root_id, "", "invoke_agent nimbus", root_attrs, kind=2)]
    llm: dict[str, object] = {
        "gen_ai.operation.name": "chat",
        "gen_ai.provider.name": "nimbus",
        "gen_ai.request.model": f"nimbus-{record.get('app_version')}",
        "gen_ai.usage.input_tokens": record.get("input_tokens"),
        "gen_ai.usage.output_tokens": record.get("output_tokens"),
        "gen_ai.usage.cost": record.get("cost_usd"),
    }
    if "input" in record:
        llm["gen_ai.input.messages"] = json.dumps(_parts(record["input"], "user"))
    if isinstance(record.get("output"), str):
        out_msgs = _parts(record["output"], "assistant")
        out_msgs[0]["finish_reason"] = "stop"
        llm["gen_ai.output.messages"] = json.dumps(out_msgs)
    elif "output" in record and record["output"] is not None:
        llm["gen_ai.output.messages"] = json.dumps(record["output"])
    spans.append(
        span(
            _hex(key + "/llm", 8), root_id, f"chat nimbus-{record.get('app_version')}", llm, kind=3
        )
    )
    if record.get("context") is not None:
        spans.append(
            span(_hex(key + "/retrieval", 8), root_id, "retrieval docs",
                 {"gen_ai.operation.name": "retrieval", "gen_ai.retrieval.documents": json.dumps(record["context"])})
        )  # fmt: skip
    tools = record.get("tool_calls")
    for i, call in enumerate(tools if isinstance(tools, list) else []):
        call = call if isinstance(call, dict) else {"name": str(call)}
        spans.append(
            span(_hex(f"{key}/tool{i}", 8), root_id, f"execute_tool {call.get('name')}",
                 {"gen_ai.operation.name": "execute_tool", "gen_ai.tool.name": call.get("name"),
                  "gen_ai.tool.call.arguments": json.dumps(call.get("arguments", call.get("args"))),
                  "gen_ai.tool.call.result": json.dumps(call.get("result"))})
        )  # fmt: skip
    version = record.get("app_version")
    return (version if isinstance(version, str) else None), spans


def _document(groups: dict[str | None, list[dict[str, object]]]) -> str:
    resource_spans = []
    for version, spans in groups.items():
        resource = {"service.name": "nimbus", "service.version": version}
        resource_spans.append(
            {
                "resource": {"attributes": _attrs(resource)},
                "scopeSpans": [{"scope": {"name": "nimbus.agent"}, "spans": spans}],
            }
        )
    return json.dumps({"resourceSpans": resource_spans}, separators=(",", ":"))


def _lines(path: Path) -> Iterator[str]:
    if path.suffix == ".parquet":
        conn = duckdb.connect()
        rows = conn.execute("SELECT to_json(p)::VARCHAR FROM read_parquet(?) p", [str(path)])
        for (line,) in rows.fetchall():
            yield line
        conn.close()
        return
    with open(path, encoding="utf-8", errors="surrogateescape") as f:
        for line in f:
            if line.strip():
                yield line.rstrip("\n")


def write_day(files: list[Path], out: Path) -> int:
    """One day's flat trace files as one OTLP JSON file; returns the spans written."""
    written = 0
    out.parent.mkdir(parents=True, exist_ok=True)
    with open(out, "w", encoding="utf-8", errors="surrogateescape") as f:
        pending: dict[str | None, list[dict[str, object]]] = {}
        n = 0
        for path in files:
            for row, line in enumerate(_lines(path), 1):
                try:
                    record = json.loads(line)
                except ValueError:
                    record = None
                if not isinstance(record, dict):
                    f.write(line + "\n")  # a planted bad line stays bad
                    continue
                version, spans = trace_spans(record, f"{path.parent.name}/{path.name}:{row}")
                pending.setdefault(version, []).extend(spans)
                written += len(spans)
                n += 1
                if n % TRACES_PER_LINE == 0:
                    f.write(_document(pending) + "\n")
                    pending = {}
        if pending:
            f.write(_document(pending) + "\n")
    return written


def ensure_otel_export(flat: Path, out: Path) -> int:
    """Write the flat traffic under `flat` as OTLP JSON under `out` (traces/dt=.../spans.jsonl,
    feedback copied), unless `out` already holds this traffic's export; returns spans written."""
    manifest = json.loads((flat / "manifest.json").read_text())
    marker = out / "manifest.json"
    if marker.exists():
        done = json.loads(marker.read_text())
        if done.get("fingerprint") == manifest.get("fingerprint"):
            return int(done.get("spans", 0))
    shutil.rmtree(out, ignore_errors=True)
    spans = 0
    for day in sorted((flat / "traces").iterdir()):
        spans += write_day(sorted(day.iterdir()), out / "traces" / day.name / "spans.jsonl")
    shutil.copytree(flat / "feedback", out / "feedback")
    marker.write_text(json.dumps({"fingerprint": manifest.get("fingerprint"), "spans": spans}))
    return spans
