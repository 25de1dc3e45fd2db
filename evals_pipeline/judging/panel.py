"""Judging a set of outputs with a panel: the one loop every stage uses.

Candidate outputs (judging), the labelled production outputs (calibration) and the review
queues' traces all go through `judge_outputs`: the case is redacted, each rubric's prompt is
rendered once per judge (`rubrics.judge_calls`, so the same output under the same rubric is
the same prompt and a cache hit in every stage), the calls run through `run_calls`, and each
answer comes back as a `Judgement` keyed by the caller's own subject key.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import duckdb

from evals_pipeline.judging.client import CallResult, JudgeClient, RunStats, run_calls
from evals_pipeline.judging.pii import redact, redacted_case
from evals_pipeline.judging.rubrics import Rubric, judge_calls


@dataclass(frozen=True)
class Judgement:
    """One judge's answer on one subject under one rubric."""

    subject: Any  # the caller's key (case and version, a label's subject, a queue item)
    judge: str
    rubric: Rubric
    result: CallResult

    @property
    def _parsed(self) -> dict[str, Any]:
        parsed = self.result.parsed
        return parsed if isinstance(parsed, dict) and self.result.error is None else {}

    @property
    def verdict(self) -> str | None:
        """pass / fail, or None for an error (never a pass)."""
        return self._parsed.get("verdict")

    @property
    def scores_json(self) -> str | None:
        scores = self._parsed.get("scores")
        return json.dumps(scores) if scores else None

    @property
    def critique(self) -> str | None:
        return self._parsed.get("critique")

    @property
    def error(self) -> str | None:
        return self.result.error


def judge_outputs(
    client: JudgeClient,
    conn: duckdb.DuckDBPyConnection,
    subjects: Iterable[tuple[Any, dict[str, Any], Sequence[Rubric]]],
    judges: Sequence[str],
    pii: Counter[str],
    progress: Callable[[str], None],
    run_id: str = "",
) -> tuple[list[Judgement], RunStats]:
    """Every judge's answer on every (key, row, rubrics) subject. A row has `output` and the
    case fields (`input`, `reference_good`, `reference_borderline`); what was redacted is
    counted in `pii`."""
    calls, keys = [], []
    for key, row, rubrics in subjects:
        case = redacted_case(row, pii)
        output = redact(row["output"], pii)
        for rubric in rubrics:
            calls += judge_calls(rubric, list(judges), case, output or "")
            keys += [(key, judge, rubric) for judge in judges]
    results, stats = run_calls(client, conn, calls, progress, run_id=run_id)
    return [Judgement(k, j, rb, r) for (k, j, rb), r in zip(keys, results, strict=True)], stats
