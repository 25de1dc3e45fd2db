"""Pairwise judgements in both presentation orders, reconciled into one outcome.

A judge sees (a, b) as (A, B) and again as (B, A). Its two answers, mapped back to the
versions, agree (the outcome is that winner) or disagree (position bias: the outcome is a
tie and the pair counts as position-inconsistent). An error in either order leaves the pair
without an outcome, with the error recorded.
"""

from __future__ import annotations

from dataclasses import dataclass

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
