"""Pairwise judgements in both presentation orders, reconciled into one outcome.

A judge sees (a, b) as (A, B) and again as (B, A). Its two answers, mapped back to the
versions, agree (the outcome is that winner) or disagree (position bias: the outcome is a
tie and the pair counts as position-inconsistent). An error in either order leaves the pair
without an outcome, with the error recorded.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from functools import partial
from itertools import combinations

import pandas as pd

from evals_pipeline.judging.client import Call, CallResult
from evals_pipeline.judging.pii import redact, redacted_case
from evals_pipeline.judging.rubrics import JSON_MODE, Rubric, parse_response, render_messages

# The answer's winner in each presentation order, as the version it names.
_AS_SHOWN = {"ab": {"A": "a", "B": "b", "tie": "tie"}, "ba": {"A": "b", "B": "a", "tie": "tie"}}


@dataclass(frozen=True)
class Reconciled:
    winner_ab: str | None
    winner_ba: str | None
    outcome: str | None  # a / b / tie
    position_consistent: bool | None
    error: str | None


def reconcile(
    winner_ab: str | None, winner_ba: str | None, errors: dict[str, str | None]
) -> Reconciled:
    """One pair's outcome from the winners ('A' / 'B' / 'tie') the judge gave in the (a, b)
    and (b, a) orders; `errors` per order ('ab', 'ba'), None where the call succeeded."""
    failed = "; ".join(f"{o}: {e}" for o, e in errors.items() if e)
    ab = _AS_SHOWN["ab"][winner_ab] if not errors.get("ab") and winner_ab else None
    ba = _AS_SHOWN["ba"][winner_ba] if not errors.get("ba") and winner_ba else None
    if failed:
        return Reconciled(ab, ba, None, None, failed)
    consistent = ab == ba
    return Reconciled(ab, ba, ab if consistent else "tie", consistent, None)


PairKey = tuple[str, str, str, str]  # case_id, version a, version b, judge


def pairwise_calls(
    outputs: pd.DataFrame,
    versions: Sequence[str],
    judges: Sequence[str],
    rubric: Rubric,
    pii: Counter[str],
) -> tuple[list[Call], list[tuple[str, str, str, str, str]]]:
    """Every pair of versions on every case, for every judge, in both presentation orders.
    `outputs`: one row per case x version (case fields, app_version, output). PII redacted."""
    calls: list[Call] = []
    keys: list[tuple[str, str, str, str, str]] = []
    for case_id, g in sorted(outputs.groupby("case_id")):
        g = g.set_index("app_version")
        case = redacted_case(g.iloc[0].to_dict(), pii)
        for a, b in combinations(versions, 2):
            if a not in g.index or b not in g.index:
                continue
            out_a, out_b = redact(g.at[a, "output"], pii), redact(g.at[b, "output"], pii)
            for judge in judges:
                for order, (x, y) in (("ab", (out_a, out_b)), ("ba", (out_b, out_a))):
                    calls.append(
                        Call(
                            judge,
                            render_messages(rubric, case, x, y),
                            f"pairwise:{rubric.key}",
                            JSON_MODE,
                            partial(parse_response, rubric),
                        )
                    )
                    keys.append((str(case_id), a, b, judge, order))
    return calls, keys


def pairwise_rows(
    keys: Sequence[tuple[str, str, str, str, str]],
    results: Sequence[CallResult],
    rubric_version: str,
) -> list[tuple[object, ...]]:
    """The two orders' answers of each pair reconciled, as `pairwise_verdicts` rows."""
    found: dict[PairKey, dict[str, CallResult]] = {}
    for (case_id, a, b, judge, order), r in zip(keys, results, strict=True):
        found.setdefault((case_id, a, b, judge), {})[order] = r
    rows = []
    for (case_id, a, b, judge), pair in sorted(found.items()):
        winners = {
            o: (r.parsed or {}).get("winner") if not r.error else None for o, r in pair.items()
        }
        p = reconcile(winners["ab"], winners["ba"], {o: r.error for o, r in pair.items()})
        rows.append(
            (
                case_id,
                a,
                b,
                judge,
                rubric_version,
                p.winner_ab,
                p.winner_ba,
                p.outcome,
                p.position_consistent,
                p.error,
            )
        )
    return rows
