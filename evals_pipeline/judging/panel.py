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
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import duckdb
import numpy as np
import pandas as pd

from evals_pipeline.judging.client import CallResult, JudgeClient, RunStats, run_calls
from evals_pipeline.judging.pii import redact, redacted_case
from evals_pipeline.judging.rubrics import Rubric, judge_calls
from evals_pipeline.judging.trust import enabled_failure_modes, trusted_judges


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
    judges: Sequence[str] | Mapping[str, Sequence[str]],
    pii: Counter[str],
    progress: Callable[[str], None],
    run_id: str = "",
) -> tuple[list[Judgement], RunStats]:
    """Every judge's answer on every (key, row, rubrics) subject. A row has `output` and the
    case fields (`input`, `reference_good`, `reference_borderline`); what was redacted is
    counted in `pii`. `judges` is one list for every rubric, or a list per rubric name."""
    calls, keys = [], []
    for key, row, rubrics in subjects:
        case = redacted_case(row, pii)
        output = redact(row["output"], pii)
        for rubric in rubrics:
            who = list(judges[rubric.name] if isinstance(judges, Mapping) else judges)
            calls += judge_calls(rubric, who, case, output or "")
            keys += [(key, judge, rubric) for judge in who]
    results, stats = run_calls(client, conn, calls, progress, run_id=run_id)
    return [Judgement(k, j, rb, r) for (k, j, rb), r in zip(keys, results, strict=True)], stats


def mode_verdict_rows(
    conn: duckdb.DuckDBPyConnection,
    client: JudgeClient,
    outputs: pd.DataFrame,
    panel: Sequence[str],
    pii: Counter[str],
    progress: Callable[[str], None],
    run_id: str = "",
) -> tuple[list[tuple], list[str], RunStats]:
    """failure_mode_verdicts rows: each enabled mode's rubric on every output, by the panel
    judges trusted for it. Returns (rows, modes without a trusted judge, call stats)."""
    modes = enabled_failure_modes(conn)
    judges = {r.name: trusted_judges(conn, panel, r) for _, r in modes}
    rubrics = [r for _, r in modes if judges[r.name]]
    subjects = [
        ((row["case_id"], row["app_version"], row["category"]), row, rubrics)
        for row in outputs.to_dict("records")
    ]
    judged, stats = judge_outputs(
        client, conn, subjects if rubrics else [], judges, pii, progress, run_id
    )
    mode_of = {r.name: m for m, r in modes}
    rows = [
        (
            *j.subject,
            mode_of[j.rubric.name],
            j.judge,
            j.rubric.name,
            j.rubric.version,
            j.verdict,
            j.critique,
            j.error,
        )
        for j in judged
    ]
    return rows, [m for m, r in modes if not judges[r.name]], stats


def subject_verdicts(
    client: JudgeClient,
    conn: duckdb.DuckDBPyConnection,
    frame: pd.DataFrame,
    rubric: Rubric,
    judges: Sequence[str],
    progress: Callable[[str], None],
    run_id: str = "",
) -> pd.DataFrame:
    """subject_id, judge, verdict (None on error): each judge's verdict under `rubric` on
    every row of `frame` (subject_id, output and the case fields)."""
    judged, _ = judge_outputs(
        client,
        conn,
        [((r["subject_id"],), r, [rubric]) for r in frame.to_dict("records")],
        judges,
        Counter(),
        progress,
        run_id,
    )
    return pd.DataFrame(
        [(j.subject[0], j.judge, j.verdict) for j in judged],
        columns=["subject_id", "judge", "verdict"],
    )


def majority(verdicts: pd.DataFrame, keys: list[str]) -> pd.DataFrame:
    """`keys` -> passed: the majority of the valid verdicts (`verdict` pass / fail; None is an
    error and does not vote) as 1.0 pass, 0.0 fail, NaN on a tie. Keys without any valid
    verdict are absent."""
    valid = verdicts.dropna(subset=["verdict"]).assign(
        vote=lambda f: np.where(f["verdict"] == "pass", 1, -1)
    )
    tally = valid.groupby(keys, as_index=False)["vote"].sum()
    tally["passed"] = np.where(tally["vote"] > 0, 1.0, np.where(tally["vote"] < 0, 0.0, np.nan))
    return tally[[*keys, "passed"]]
