"""The release gates as plain rules: each takes the evidence and returns (gate, status,
evidence text). `release_gates` (the asset) only gathers the evidence and writes the rows.

Statuses: pass, fail, warn (to look at, does not block), not_evaluated.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import pandas as pd

from evals_pipeline.judging.trust import MIN_KAPPA

Gate = tuple[str, str, str]


def layer1_gate(failed: Sequence[tuple[str, int, int]]) -> Gate:
    """Every Layer-1 assertion passes on the candidate's outputs. `failed`: (assertion,
    failed, checked) for assertions with failures."""
    evidence = "; ".join(f"{a}: {f} of {n} failed" for a, f, n in failed)
    return ("layer1", "fail" if failed else "pass", evidence or "every assertion passed")


def segment_gates(
    cells: Sequence[tuple[str, str, str, float, float, float, bool, bool]],
    max_regression: float,
    flag_se: float,
) -> list[Gate]:
    """No segment significantly worse by more than `max_regression`; large changes flagged.
    `cells`: (level, category, user_segment, delta, ci_low, ci_high, regressed, flagged),
    most negative delta first. No cell at all (no ensemble verdict: too few trusted judges)
    is no evidence either way: not_evaluated, never a pass."""
    if not cells:
        why = "no ensemble scores for the candidate (too few trusted judges, or nothing judged)"
        return [
            ("segment_regression", "not_evaluated", why),
            ("large_changes", "not_evaluated", why),
        ]
    regressed = [c for c in cells if c[6]]
    flagged = [c for c in cells if c[7]]
    return [
        (
            "segment_regression",
            "fail" if regressed else "pass",
            "; ".join(
                f"{lvl} {c}/{u}: {d:+.3f} [{lo:+.3f}, {hi:+.3f}]"
                for lvl, c, u, d, lo, hi, _, _ in regressed
            )
            or f"no segment worse than {max_regression:.0%} beyond chance",
        ),
        (
            "large_changes",
            "warn" if flagged else "pass",
            "; ".join(f"{lvl} {c}/{u}: {d:+.3f}" for lvl, c, u, d, *_ in flagged[:12])
            or f"no change beyond {flag_se} SE",
        ),
    ]


def pooled_gap(
    rows: Sequence[tuple[int, float, float | None, int, float, float | None]],
) -> tuple[float, float]:
    """Active minus holdout over all categories of one rotation, and its 95% half-width.
    `rows`: per category (active_n, active_score, active_se, holdout_n, holdout_score,
    holdout_se). The pools' category mixes differ (the active pool is sampled with floors,
    the holdout mirrors the reservoir's traffic), so each category's own gap is weighted by
    its cases in both pools together: a difference of mix alone is no gap. A category missing
    from either pool is left out."""
    both = [r for r in rows if r[0] and r[3]]
    if not both:
        return math.nan, math.nan
    total = sum(r[0] + r[3] for r in both)
    weights = [(r[0] + r[3]) / total for r in both]
    gap = sum(w * (r[1] - r[4]) for w, r in zip(weights, both, strict=True))
    var = sum(
        w * w * ((r[2] or 0.0) ** 2 + (r[5] or 0.0) ** 2)
        for w, r in zip(weights, both, strict=True)
    )
    return gap, 1.96 * math.sqrt(var)


def holdout_gate(
    quarter: object | None,
    rows: Sequence[tuple[int, float, float | None, int, float, float | None]],
    max_regression: float,
    candidate: str = "",
    sanity: tuple[float, float] | None = None,
) -> Gate:
    """At the latest rotation the candidate may not look significantly better on the active
    pool than on the sealed holdout by more than `max_regression` (eval-set overfitting), as
    the same trusted judges see its answers to both. `rows`: per category (active_n,
    active pass rate, SE, holdout_n, holdout pass rate, SE); `sanity`: the production
    outputs' token-F1 gap and half-width, reported, never decisive."""
    note = (
        f"; sanity: reference_token_f1 on production outputs {sanity[0]:+.3f} (+/-{sanity[1]:.3f})"
        if sanity
        else ""
    )
    if quarter is None or not any(r[0] and r[3] for r in rows):
        return (
            "holdout",
            "not_evaluated",
            "no rotation has judged the candidate's answers to the holdout yet (it needs trusted "
            "judges at the rotation)" + note,
        )
    gap, half = pooled_gap(rows)
    return (
        "holdout",
        "fail" if gap - half > max_regression else "pass",
        f"rotation {quarter}: {candidate} active - holdout pass rate = {gap:+.3f} (+/-{half:.3f}; "
        f"trusted judges, {sum(r[0] for r in rows)} active and {sum(r[3] for r in rows)} holdout "
        f"cases){note}",
    )


def judge_trust_gate(
    trust: dict[str, bool | None],
    kappas: dict[str, float | None],
    biases: dict[str, str] | None = None,
) -> Gate:
    """The ensemble stands on trusted judges: enough of them for its quorum (test-split TPR
    and TNR above the bar), each with Cohen's kappa against the expert of at least MIN_KAPPA
    (seed 002: below 0.5, do not deploy). Untrusted judges do not vote and do not fail it:
    the evidence names them as reported beside the ensemble. `biases`: judge -> what
    judge_bias flags (length bias, self-preference risk), named for the voting judges
    without changing the status."""
    judges = {j: t for j, t in trust.items() if j != "ensemble"}
    voting = sorted(j for j, t in judges.items() if t)
    beside = sorted(j for j, t in judges.items() if not t)
    flagged = [f"{j} {biases[j]}" for j in voting if biases and j in biases]
    reported = (
        f"; reported, not voting (not trusted or not calibrated): {', '.join(beside)}"
        if beside
        else ""
    ) + (f"; bias: {'; '.join(flagged)}" if flagged else "")
    low = [j for j in voting if kappas.get(j) is None or kappas[j] < MIN_KAPPA]
    if not trust.get("ensemble"):
        return (
            "judge_trusted",
            "fail",
            f"too few trusted judges for the ensemble's quorum: {', '.join(voting) or 'none'} "
            f"trusted{reported}",
        )
    if low:
        return (
            "judge_trusted",
            "fail",
            f"kappa against the expert below {MIN_KAPPA} (do not deploy): "
            + ", ".join(f"{j} ({_kappa(kappas.get(j))})" for j in low)
            + reported,
        )
    return (
        "judge_trusted",
        "pass",
        "voting: " + ", ".join(f"{j} (kappa {_kappa(kappas.get(j))})" for j in voting) + reported,
    )


def _kappa(value: float | None) -> str:
    return "not measured" if value is None else f"{value:.2f}"


def quorum_gate(
    missing: int, total: int, max_no_verdict: float, candidate: str, baseline: str
) -> Gate:
    """Outputs without an ensemble verdict are left out of every rate: many of them mean the
    rates stand on a partial set."""
    status = "fail" if total and missing / total > max_no_verdict else "warn" if missing else "pass"
    return (
        "ensemble_quorum",
        status,
        f"{missing} of {total} judged outputs of {candidate} and {baseline} have no ensemble verdict "
        "(no quorum of judges, or a tied vote): left out of every rate and gate above"
        + (f"; more than {max_no_verdict:.0%} fails the gate" if missing else ""),
    )


def decision(gates: Sequence[Gate], candidate: str, baseline: str) -> Gate:
    """Release only when no gate fails (warnings do not block)."""
    return (
        "decision",
        "fail" if any(s == "fail" for _, s, _ in gates) else "pass",
        f"{candidate} vs {baseline}: " + ", ".join(f"{g}={s}" for g, s, _ in gates),
    )


def _intervals(frame: pd.DataFrame) -> str:
    return "; ".join(
        f"{r.label}: {r.delta:+.3f} [{r.ci_low:+.3f}, {r.ci_high:+.3f}]"
        for r in frame.head(8).itertuples()
    )


def online_gate(
    gate: str, frame: pd.DataFrame | None, max_drop: float, incomplete: str = ""
) -> Gate:
    """The shadow or canary gate from its table's rows (`label`, `level`, `delta`, `ci_low`,
    `ci_high`, `harm`, `detectable`, `status`; None: not configured). fail: a row significantly worse
    by more than `max_drop`; not_evaluated: not configured, no evidence yet, or the window
    (shadow or canary) still open (`incomplete` says how far) without a failure; warn: no failure, but even over
    all inputs or users a drop of `max_drop` could not have been seen (too small); else pass."""
    if frame is None:
        return (gate, "not_evaluated", f"no {gate} in the project file (online_gates.{gate})")
    measured = frame[frame["status"] != "no_data"]
    if measured.empty:
        return (
            gate,
            "not_evaluated",
            f"no {gate} evidence yet (no traffic in its window, or no trusted judge)",
        )
    failed = measured[measured["status"] == "fail"].sort_values("harm", ascending=False)
    if len(failed):
        return (
            gate,
            "fail",
            f"worse by more than {max_drop:.0%}, significantly: {_intervals(failed)}",
        )
    if incomplete:
        return (
            gate,
            "not_evaluated",
            f"{incomplete}: no significant drop beyond {max_drop:.0%} so far",
        )
    blind = measured[(measured["level"] == "all") & ~(measured["detectable"] <= max_drop)]
    if len(blind):
        return (
            gate,
            "warn",
            f"no significant drop, but too few to see one of {max_drop:.0%} over all "
            f"{'users' if gate == 'canary' else 'inputs'}: detectable "
            + ", ".join(f"{r.label} {r.detectable:.3f}" for r in blind.itertuples()),
        )
    return (
        gate,
        "pass",
        f"nothing worse by more than {max_drop:.0%} beyond chance ({len(measured)} comparisons); "
        f"the largest drop: {_intervals(measured.sort_values('harm', ascending=False).head(1))}",
    )
