"""The online gates (seed 003): the canary and the shadow period, against planted effects in
the simulated world over fixed seeds, their statistics against known answers, the gate rules,
and the daily schedule that evaluates them during their windows."""

from __future__ import annotations

from datetime import UTC, date, datetime

import duckdb
import numpy as np
import pandas as pd
import pytest
from dagster import build_schedule_context
from scipy.stats import norm

from evals_pipeline.project import CanarySpec, OnlineGatesSpec, ShadowSpec
from evals_pipeline.reports.gates import online_gate
from evals_pipeline.reports.online_gates import (
    _arm_rates,
    canary_frame,
    evaluation_days,
    holm,
    judged_drops,
    shadow_frame,
)
from evals_pipeline.simulator.online import CANARY_START, canary_traffic, shadow_pairs
from evals_pipeline.warehouse import registered

CANARY = CanarySpec(start=date.fromisoformat(CANARY_START))  # 5% of users, 2 points, 7 days
LAST_DAY = date(2026, 6, 21)
SEEDS = range(20)


def _canary(
    traces: pd.DataFrame, feedback: pd.DataFrame, last_day: date = LAST_DAY
) -> pd.DataFrame:
    con = duckdb.connect()
    with registered(con, traces=traces, trace_feedback=feedback):
        return canary_frame(con, CANARY, "v3", "v2", last_day, 0.05)


def test_a_planted_canary_regression_fails_19_of_20_runs_and_a_null_passes_19() -> None:
    """A 3-point regression of every signal for one user segment's canary users (free_novice);
    the null: the same traffic with no effect (the candidate as good as the control)."""
    caught, null_passed, overall = 0, 0, []
    for seed in SEEDS:
        traces, (planted_fb, null_fb) = canary_traffic(seed, {"free_novice": 0.03}, {})
        planted, null = _canary(traces, planted_fb), _canary(traces, null_fb)
        fails = planted[planted["status"] == "fail"]
        caught += "free_novice" in set(fails["segment"])
        # no user segment without the planted users fails (a category holds some of them)
        assert set(fails.loc[fails["level"] == "user_segment", "segment"]) <= {"free_novice"}
        null_passed += not (null["status"] == "fail").any()
        overall.append(null[null["level"] == "all"].set_index("signal")["delta"])
        # the canary is 5% of the users, sticky per user
        users = planted[(planted["level"] == "all") & (planted["signal"] == "escalation")].iloc[0]
        assert (
            0.03 < users["canary_users"] / (users["canary_users"] + users["control_users"]) < 0.07
        )
    assert caught >= 19 and null_passed >= 19, (caught, null_passed)
    # under the null the differences centre on 0 over the runs
    assert (pd.concat(overall, axis=1).mean(axis=1).abs() < 0.005).all()


def test_the_canary_window_is_cut_at_the_traffic_so_far() -> None:
    traces, (feedback,) = canary_traffic(0, {}, traces_per_day=2000)
    third, whole = _canary(traces, feedback, date(2026, 6, 17)), _canary(traces, feedback)
    assert set(third["days_observed"]) == {3} and set(whole["days_observed"]) == {7}

    def n(frame: pd.DataFrame) -> int:
        rows = frame[(frame["level"] == "all") & (frame["signal"] == "escalation")]
        return int(rows["canary_n"].sum() + rows["control_n"].sum())

    days = traces["ts"].dt.date
    assert n(third) == (days <= date(2026, 6, 17)).sum()
    assert n(whole) == len(traces)


def test_the_shadow_gate_catches_a_planted_offline_regression_on_live_inputs() -> None:
    spec = ShadowSpec(start=date(2026, 6, 13))
    caught = null_passed = 0
    for seed in SEEDS:
        planted = shadow_frame(shadow_pairs(seed, regression={"reasoning": 0.10}), spec, 0.05)
        fails = planted[planted["status"] == "fail"]
        caught += "reasoning" in set(fails["category"])
        assert set(fails["category"]) <= {"reasoning", "all"}
        null = shadow_frame(shadow_pairs(seed), spec, 0.05)
        null_passed += not (null["status"] == "fail").any()
    assert caught >= 19 and null_passed >= 19


def test_the_shadow_comparison_is_paired_on_decided_inputs() -> None:
    pairs = pd.DataFrame(
        {
            "subject_id": list("abcdef"),
            "category": ["x"] * 6,
            "control": [1.0, 1.0, 1.0, 0.0, 1.0, np.nan],
            "candidate": [0.0, 0.0, 1.0, 0.0, 1.0, 1.0],
        }
    )
    row = shadow_frame(pairs, ShadowSpec(start=date(2026, 1, 1)), 0.05).iloc[0]
    d = np.array([-1, -1, 0, 0, 0.0])
    assert row["n"] == 5 and row["undecided"] == 1
    assert row["delta"] == pytest.approx(d.mean())
    assert row["se"] == pytest.approx(d.std(ddof=1) / np.sqrt(5))
    assert row["p_value"] == pytest.approx(norm.sf(-d.mean() / row["se"]))


def test_holm_rejects_as_the_step_down_procedure_does() -> None:
    # sorted: 0.005 <= 0.05/4, 0.01 <= 0.05/3, then 0.03 > 0.05/2 stops
    assert holm([0.01, 0.04, 0.03, 0.005], 0.05).tolist() == [True, False, False, True]
    assert holm([0.001, 0.02, 0.04], 0.05).tolist() == [True, True, True]
    assert holm([np.nan, 0.001], 0.05).tolist() == [False, True]


def test_with_one_trace_per_user_the_cluster_variance_is_the_binomial_one() -> None:
    y = np.array([1] * 30 + [0] * 70)
    counts = pd.DataFrame(
        {"users": [100], "n": [100], "y": [y.sum()], "nn": [100], "yy": [y.sum()], "ny": [y.sum()]}
    )
    rates = _arm_rates(counts)
    assert rates["rate"].iloc[0] == pytest.approx(0.3)
    assert rates["var"].iloc[0] == pytest.approx(np.var(y, ddof=1) / 100)


def test_a_drop_fails_only_when_significant_and_larger_than_the_tolerance() -> None:
    frame = pd.DataFrame({"harm": [0.05, 0.015, 0.05, -0.03], "se": [0.005, 0.001, 0.04, 0.005]})
    judged = judged_drops(frame, 0.02, 0.05)
    # material and significant; significant but within 2 points; material but noise; better
    assert judged["status"].tolist() == ["fail", "pass", "pass", "pass"]
    assert judged["significant"].tolist() == [True, True, False, False]


def _rows(status: str, level: str = "all", detectable: float = 0.01) -> pd.DataFrame:
    return pd.DataFrame(
        [
            {
                "label": "all users escalation",
                "level": level,
                "delta": 0.03,
                "ci_low": 0.02,
                "ci_high": 0.04,
                "harm": 0.03,
                "detectable": detectable,
                "status": status,
            }
        ]
    )


def test_the_gate_rules() -> None:
    assert online_gate("canary", None, 0.02)[1] == "not_evaluated"
    assert online_gate("canary", _rows("no_data"), 0.02)[1] == "not_evaluated"
    failed = online_gate("canary", _rows("fail"), 0.02, "monitoring day 3 of 7")
    assert failed[1] == "fail" and "all users escalation: +0.030" in failed[2]
    assert online_gate("canary", _rows("pass"), 0.02, "monitoring day 3 of 7")[1] == "not_evaluated"
    assert online_gate("canary", _rows("pass"), 0.02)[1] == "pass"
    blind = online_gate("canary", _rows("pass", detectable=0.05), 0.02)
    assert blind[1] == "warn" and "too few" in blind[2]


def test_the_daily_schedule_runs_only_during_the_windows() -> None:
    gates = OnlineGatesSpec(
        shadow=ShadowSpec(start=date(2026, 6, 13)), canary=CanarySpec(start=date(2026, 6, 15))
    )
    assert evaluation_days(gates) == (date(2026, 6, 13), date(2026, 6, 23))
    assert evaluation_days(OnlineGatesSpec()) is None

    from evals_pipeline.definitions import build_definitions
    from evals_pipeline.project import ProjectResource

    schedule = build_definitions(ProjectResource()).resolve_schedule_def("online_gates_daily")
    for day, runs in (
        ("2026-06-12", False),
        ("2026-06-13", True),
        ("2026-06-23", True),
        ("2026-06-24", False),
    ):
        when = datetime.fromisoformat(day).replace(hour=6, tzinfo=UTC)
        result = schedule.evaluate_tick(build_schedule_context(scheduled_execution_time=when))
        assert bool(result.run_requests) is runs, day


def test_the_project_file_needs_both_roles_for_an_online_gate() -> None:
    from evals_pipeline.project import ProjectConfig, problems
    from evals_pipeline_tests.helpers import lean_project_dict

    cfg = lean_project_dict()
    for v in cfg["app_versions"]:
        v["role"] = "retired"
    found = problems(ProjectConfig.model_validate(cfg))
    assert any(p.startswith("online_gates.shadow:") for p in found)
    assert any(p.startswith("online_gates.canary:") for p in found)
    cfg = lean_project_dict()
    cfg["online_gates"]["canary"]["signals"] = ["applause"]
    with pytest.raises(ValueError, match="applause"):
        ProjectConfig.model_validate(cfg)


def test_a_gate_whose_window_is_still_open_is_not_evaluated_until_it_fails() -> None:
    """The rows of release_gates from the gate tables: a canary at day 3 of 7 and a shadow
    period whose traffic is not complete yet say so; once complete they pass."""
    from evals_pipeline.records import CANARY_GATE, SHADOW_GATE, TRACES
    from evals_pipeline.reports.evidence import online_gates

    gates = OnlineGatesSpec(
        shadow=ShadowSpec(start=date(2026, 6, 13)), canary=CanarySpec(start=date(2026, 6, 15))
    )
    shadow = shadow_frame(shadow_pairs(0), gates.shadow, 0.05).assign(
        candidate="v3", control="v2", judges="j"
    )
    traces, (feedback,) = canary_traffic(0, {}, traces_per_day=2000)
    con = duckdb.connect()
    with registered(con, traces=traces, trace_feedback=feedback):
        canary = canary_frame(con, gates.canary, "v3", "v2", date(2026, 6, 17), 0.05)
    canary = canary.assign(candidate="v3", control="v2")
    con = duckdb.connect()
    for last, expected in (("2026-06-14 12:00", "not_evaluated"), ("2026-06-21 23:00", "pass")):
        with registered(
            con,
            **{
                SHADOW_GATE.name: shadow[SHADOW_GATE.column_names],
                CANARY_GATE.name: canary[CANARY_GATE.column_names],
                TRACES.name: pd.DataFrame({"ts": [pd.Timestamp(last)]}),
            },
        ):
            found = {g: (status, why) for g, status, why in online_gates(con, gates, "v3", "v2")}
        assert found["shadow"][0] == expected, found
        assert found["canary"][0] == "not_evaluated" and "day 3 of 7" in found["canary"][1]
