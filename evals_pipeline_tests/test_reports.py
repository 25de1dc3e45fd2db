"""Reports: planted effects in simulated data are found, and absent effects are not."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from evals_pipeline.reports.segments import paired_cells, post_stratified, segment_verdicts
from evals_pipeline.simulator.traffic import DEFAULT_CATEGORY_MIX, DEFAULT_QUALITY


def _scores(quality: dict[str, dict[str, float]], per_category: int, seed: int) -> pd.DataFrame:
    """Every version answers the same cases; a case's difficulty is shared across versions."""
    rng = np.random.default_rng(seed)
    rows = []
    for category in DEFAULT_CATEGORY_MIX:
        for i in range(per_category):
            u = rng.random()  # the case's difficulty: a version passes when u < its quality
            for version, q in quality.items():
                noise = rng.random() < 0.1  # some version-specific luck
                rows.append(
                    (
                        f"{category}-{i}",
                        version,
                        category,
                        float((rng.random() if noise else u) < q[category]),
                    )
                )
    return pd.DataFrame(rows, columns=["case_id", "app_version", "category", "score"])


def test_the_planted_regression_fails_a_segment_while_the_aggregate_improves() -> None:
    quality = {v: DEFAULT_QUALITY[v] for v in ("v2", "v3")}
    detected, overall_deltas = 0, []
    for seed in range(20):
        cells = segment_verdicts(paired_cells(_scores(quality, 80, seed), "v2", ["category"]))
        v3 = cells[cells["app_version"] == "v3"].set_index("category")
        detected += bool(v3.at["reasoning", "regressed"])
        assert not v3.drop(index="reasoning")["regressed"].any()
        overall = post_stratified(cells, DEFAULT_CATEGORY_MIX).set_index("app_version")
        overall_deltas.append(overall.at["v3", "delta_vs_baseline"])
    assert detected >= 19
    # The traffic-weighted aggregate says v3 is better (the simulator's truth: about +4 points).
    assert np.mean(overall_deltas) > 0.02 and np.mean(np.array(overall_deltas) > 0) >= 0.85


def test_no_effect_means_at_most_5_percent_false_alarms() -> None:
    same = {"v2": DEFAULT_QUALITY["v2"], "v3": DEFAULT_QUALITY["v2"]}
    alarms = sum(
        bool(
            segment_verdicts(paired_cells(_scores(same, 80, seed), "v2", ["category"]))[
                "regressed"
            ].any()
        )
        for seed in range(400)
    )
    assert alarms / 400 <= 0.05


def test_cell_statistics_agree_with_scipy() -> None:
    from scipy import stats

    frame = _scores({v: DEFAULT_QUALITY[v] for v in ("v2", "v3")}, 60, 3)
    cells = paired_cells(frame, "v2", ["category"]).set_index(["app_version", "category"])
    for category in DEFAULT_CATEGORY_MIX:
        a = (
            frame[(frame.app_version == "v3") & (frame.category == category)]
            .sort_values("case_id")["score"]
            .to_numpy()
        )
        b = (
            frame[(frame.app_version == "v2") & (frame.category == category)]
            .sort_values("case_id")["score"]
            .to_numpy()
        )
        cell = cells.loc[("v3", category)]
        assert cell["score"] == pytest.approx(a.mean())
        assert cell["std_error"] == pytest.approx(stats.sem(a))
        assert cell["delta_vs_baseline"] == pytest.approx((a - b).mean())
        if (a - b).std() > 0:
            assert cell["delta_std_error"] == pytest.approx(stats.sem(a - b))


def test_correlations_agree_with_scipy_and_cover_a_planted_truth() -> None:
    from scipy import stats

    from evals_pipeline.reports.correlation import correlate

    rng = np.random.default_rng(5)
    rho = 0.7
    cov = [[1, rho], [rho, 1]]
    xy = rng.multivariate_normal([0, 0], cov, size=400)
    c = correlate(xy[:, 0], xy[:, 1], n_boot=500)
    assert c.pearson == pytest.approx(stats.pearsonr(xy[:, 0], xy[:, 1])[0])
    assert c.spearman == pytest.approx(stats.spearmanr(xy[:, 0], xy[:, 1])[0])
    assert c.pearson_low <= rho <= c.pearson_high
    assert abs(c.pearson - rho) < 0.08
    flat = correlate(np.ones(10), np.arange(10.0), n_boot=10)
    assert np.isnan(flat.pearson)


# ---- the release gates as rules ------------------------------------------------------------


def test_the_gate_rules_on_known_evidence() -> None:
    from evals_pipeline.reports.gates import (
        decision,
        holdout_gate,
        judge_trust_gate,
        layer1_gate,
        pooled_gap,
        quorum_gate,
        segment_gates,
    )

    assert layer1_gate([]) == ("layer1", "pass", "every assertion passed")
    assert layer1_gate([("valid_json", 2, 50)])[1:] == ("fail", "valid_json: 2 of 50 failed")
    cells = [
        ("cell", "reasoning", "pro", -0.2, -0.3, -0.1, True, True),
        ("category", "how_to", "all", 0.05, -0.01, 0.11, False, True),
    ]
    regression, large = segment_gates(cells, 0.03, 2.0)
    assert (
        regression[:2] == ("segment_regression", "fail")
        and "reasoning/pro: -0.200" in regression[2]
    )
    assert large[1] == "warn" and "how_to/all: +0.050" in large[2]
    # cells with no regression pass; no cells at all (no ensemble) is no evidence
    assert segment_gates(cells[1:], 0.03, 2.0)[0][1] == "pass"
    # pooled gap: each category's gap weighted by its cases in both pools, errors combined
    rows = [(100, 0.8, 0.04, 50, 0.7, 0.06), (300, 0.6, 0.03, 100, 0.5, 0.05)]
    gap, half = pooled_gap(rows)
    w1, w2 = 150 / 550, 400 / 550
    se = math.sqrt(w1**2 * (0.04**2 + 0.06**2) + w2**2 * (0.03**2 + 0.05**2))
    assert math.isclose(gap, w1 * 0.1 + w2 * 0.1) and math.isclose(half, 1.96 * se)
    # the same scores per category in different mixes are no gap (a pooled mean would see 0.1)
    mix = [(300, 0.9, 0.01, 50, 0.9, 0.02), (100, 0.5, 0.02, 250, 0.5, 0.02)]
    assert math.isclose(pooled_gap(mix)[0], 0.0, abs_tol=1e-12)
    assert holdout_gate("2026-07-01", mix, 0.03)[1] == "pass"
    assert holdout_gate(None, [], 0.03)[1] == "not_evaluated"
    assert holdout_gate("2026-07-01", rows, 0.03)[1] == ("fail" if gap - half > 0.03 else "pass")
    assert holdout_gate("2026-07-01", [(100, 0.9, 0.01, 100, 0.5, 0.01)], 0.03)[1] == "fail"
    # untrusted judges do not vote and do not fail the gate; too few trusted ones or a
    # kappa under 0.5 (seed 002: do not deploy) do
    kappas = {"a": 0.8, "b": 0.7, "c": None}
    assert judge_trust_gate({"a": True, "b": True, "c": None, "ensemble": True}, kappas) == (
        "judge_trusted",
        "pass",
        "voting: a (kappa 0.80), b (kappa 0.70); reported, not voting (not trusted or not "
        "calibrated): c",
    )
    assert judge_trust_gate({"a": True, "c": False, "ensemble": False}, kappas)[1:] == (
        "fail",
        "too few trusted judges for the ensemble's quorum: a trusted; reported, not voting "
        "(not trusted or not calibrated): c",
    )
    noted = judge_trust_gate(
        {"a": True, "b": True, "ensemble": True}, kappas, {"a": "same model family as v3"}
    )
    assert noted[1] == "pass" and noted[2].endswith("; bias: a same model family as v3")
    low = judge_trust_gate({"a": True, "b": True, "ensemble": True}, {"a": 0.45, "b": 0.7})
    assert low[1] == "fail" and "below 0.5" in low[2] and "a (0.45)" in low[2]
    assert [g[1] for g in segment_gates([], 0.03, 2.0)] == ["not_evaluated", "not_evaluated"]
    assert quorum_gate(0, 800, 0.05, "v3", "v2")[1] == "pass"
    assert quorum_gate(10, 800, 0.05, "v3", "v2")[1] == "warn"
    assert quorum_gate(50, 800, 0.05, "v3", "v2")[1] == "fail"
    gates = [("layer1", "pass", ""), ("large_changes", "warn", "")]
    assert decision(gates, "v3", "v2")[1] == "pass"
    assert decision([*gates, ("holdout", "fail", "")], "v3", "v2")[1] == "fail"


def test_the_pareto_frontier_flags_exactly_the_dominated_versions() -> None:
    from evals_pipeline.reports.pareto import pareto_front, pareto_plot_png

    frame = pd.DataFrame(
        [
            # version, quality (higher better), cost, latency (lower better)
            ("cheap", 0.70, 0.001, 300.0),  # frontier: cheapest
            ("best", 0.90, 0.010, 900.0),  # frontier: best quality
            ("fast", 0.75, 0.004, 200.0),  # frontier: fastest
            ("worse", 0.69, 0.002, 400.0),  # dominated by cheap on all three
            ("tie_but_slower", 0.90, 0.010, 950.0),  # dominated by best (equal, equal, slower)
            ("copy", 0.70, 0.001, 300.0),  # equal to cheap: neither dominates the other
            ("new", 0.80, 0.003, None),  # no latency: cannot beat a version that has one
            ("unjudged", None, 0.0001, 10.0),  # no pass rate: on no frontier
        ],
        columns=["app_version", "quality", "cost", "latency"],
    )
    got = pareto_front(frame).set_index("app_version")
    assert got["pareto_optimal"].to_dict() == {
        "cheap": True,
        "best": True,
        "fast": True,
        "worse": False,
        "tie_but_slower": False,
        "copy": True,
        "new": True,
        "unjudged": False,
    }
    assert got.loc["worse", "dominated_by"] == "cheap, copy"
    assert got.loc["tie_but_slower", "dominated_by"] == "best"
    # brute force: a row is optimal iff no other row is >= on every known axis and > on one
    for name, row in got.iterrows():
        if pd.isna(row["quality"]):
            continue
        beaten = False
        for other, o in got.iterrows():
            if other == name or pd.isna(o["quality"]):
                continue
            known = [c for c in ("quality", "cost", "latency") if pd.notna(row[c])]
            if any(pd.isna(o[c]) for c in known):
                continue  # an unknown value never wins
            sign = {"quality": 1, "cost": -1, "latency": -1}
            pairs = [sign[c] * (o[c] - row[c]) for c in known]
            beaten |= all(p >= 0 for p in pairs) and any(p > 0 for p in pairs)
        assert row["pareto_optimal"] == (not beaten), name
    assert pareto_plot_png(got.reset_index()).startswith(b"\x89PNG")


def test_offline_scores_outrunning_flat_users_raise_the_alarm() -> None:
    from evals_pipeline.reports.correlation import offline_outruns_online

    months = pd.to_datetime(["2026-04-01", "2026-05-01", "2026-06-01", "2026-07-01"]).date

    def monthly(offline: list[float], online: list[float]) -> pd.DataFrame:
        return pd.DataFrame({"month": months, "offline": offline, "online": online})

    # planted: the judges' pass rate climbs 0.70 -> 0.80 while thumbs-up stays at 0.62
    quiet, why = offline_outruns_online(
        monthly([0.69, 0.70, 0.75, 0.80], [0.61, 0.62, 0.62, 0.625]), 3, 0.05, 0.01
    )
    assert not quiet and "rose +0.100" in why and "2026-05-01 .. 2026-07-01" in why
    # users follow the offline rise: quiet
    assert offline_outruns_online(
        monthly([0.69, 0.70, 0.75, 0.80], [0.60, 0.62, 0.65, 0.68]), 3, 0.05, 0.01
    )[0]
    # not rising every month (noise): quiet
    assert offline_outruns_online(
        monthly([0.69, 0.70, 0.69, 0.80], [0.61, 0.62, 0.62, 0.62]), 3, 0.05, 0.01
    )[0]
    # too few months: quiet, and says so
    quiet, why = offline_outruns_online(monthly([0.7] * 4, [0.6] * 4).head(2), 3, 0.05, 0.01)
    assert quiet and "needs 3" in why
