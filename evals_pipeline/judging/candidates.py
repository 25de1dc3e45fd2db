"""Candidate outputs: each app version (a litellm model and its prompt template) answers the
active pool's inputs, PII redacted before the call."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

import pandas as pd

from evals_pipeline.judging.client import Call, CallResult
from evals_pipeline.judging.pii import redact


@dataclass(frozen=True)
class AppVersion:
    name: str
    model: str
    system_prompt: str
    api_base: str = ""


def candidate_calls(
    cases: pd.DataFrame, versions: Sequence[AppVersion], pii: Counter[str]
) -> tuple[list[Call], list[tuple[str, str, str]]]:
    """One deterministic call per version x case, and its (case_id, version, model) key."""
    calls: list[Call] = []
    keys: list[tuple[str, str, str]] = []
    for v in versions:
        params = {"temperature": 0, **({"api_base": v.api_base} if v.api_base else {})}
        for row in cases.to_dict("records"):
            messages = [
                {"role": "system", "content": v.system_prompt},
                {"role": "user", "content": redact(row["input"], pii)},
            ]
            calls.append(Call(v.model, messages, f"candidate:{v.name}", params))
            keys.append((row["case_id"], v.name, v.model))
    return calls, keys


def candidate_rows(
    keys: Sequence[tuple[str, str, str]], results: Sequence[CallResult]
) -> list[tuple[object, ...]]:
    """`candidate_outputs` rows: the answer or the error, with its cost, latency and cache key."""
    return [
        (c, n, m, r.response, r.error, r.cost_usd, r.latency_ms, r.key)
        for (c, n, m), r in zip(keys, results, strict=True)
    ]
