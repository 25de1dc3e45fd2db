"""The simulator is the ground truth later stages recover: deterministic, and shaped as specified."""

from __future__ import annotations

import hashlib
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from evals_pipeline.simulator.traffic import (
    DEFAULT_QUALITY,
    SimulationConfig,
    generate_feedback,
    generate_labels,
    generate_traces,
    simulate,
)
from evals_pipeline_tests.conftest import SMALL

MEDIUM = SimulationConfig(seed=3, traces_per_day=120, topics_per_category=40, n_users=2000)


@pytest.fixture(scope="module")
def medium() -> pd.DataFrame:
    frame, _ = generate_traces(MEDIUM)
    return frame


def _digest(root: Path) -> dict[str, str]:
    return {
        p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file() and p.name != "manifest.json"  # the manifest records wall-clock seconds
    }


def test_same_seed_writes_identical_files(tmp_path: Path, small_sim: Path) -> None:
    simulate(SMALL, tmp_path / "again")
    assert _digest(tmp_path / "again") == _digest(small_sim)


def test_the_default_period_is_byte_identical_run_to_run(tmp_path: Path) -> None:
    """At full size DuckDB writes partitioned files with several threads, which reordered
    lines (and so moved the planted bad rows) between runs; the small config never showed it."""
    config = SimulationConfig(end="2026-02-28")  # two months of the default: about 5 s each
    simulate(config, tmp_path / "a")
    simulate(config, tmp_path / "b")
    assert _digest(tmp_path / "a") == _digest(tmp_path / "b")


def test_other_seed_writes_other_traffic(tmp_path: Path, small_sim: Path) -> None:
    simulate(replace(SMALL, seed=SMALL.seed + 1), tmp_path / "other")
    a, b = _digest(tmp_path / "other"), _digest(small_sim)
    day = "traces/dt=2026-03-01/web.jsonl"
    assert a[day] != b[day]


def test_one_folder_per_day_in_both_formats(small_sim: Path) -> None:
    days = sorted(p.name for p in (small_sim / "traces").iterdir())
    assert days == [f"dt=2026-03-0{i}" for i in range(1, 7)]
    for d in days:
        assert {p.name for p in (small_sim / "traces" / d).iterdir()} == {
            "api.parquet",
            "web.jsonl",
        }
    assert (small_sim / "labels" / "sim_expert_a.jsonl").exists()
    assert (small_sim / "labels" / "sim_expert_b.jsonl").exists()


def test_category_mix_is_skewed_and_versions_roll_out(medium: pd.DataFrame) -> None:
    shares = medium["category"].value_counts(normalize=True)
    assert shares.max() >= 0.5
    assert shares.min() <= 0.03
    assert set(medium["app_version"]) == {"v1", "v2", "v3"}
    first_seen = medium.groupby("app_version")["day"].min()
    for v in MEDIUM.app_versions:
        assert first_seen[v.name] >= pd.Timestamp(v.released)
    # Each version ramps up: in its first week it does not yet take all traffic.
    v2_week = medium[(medium["day"] >= "2026-03-01") & (medium["day"] < "2026-03-08")]
    assert 0 < (v2_week["app_version"] == "v2").mean() < 0.6


def test_planted_regression_hidden_by_the_aggregate(medium: pd.DataFrame) -> None:
    # In the hidden truth and in the realized answers alike: v3 beats v2 overall but is
    # clearly worse on reasoning.
    q = DEFAULT_QUALITY
    assert q["v3"]["reasoning"] < q["v2"]["reasoning"] - 0.1
    good = medium.groupby(["app_version", "category"])["is_good"].mean()
    assert good[("v3", "reasoning")] < good[("v2", "reasoning")] - 0.1
    mix = medium["category"].value_counts(normalize=True)
    aggregate = {v: sum(good[(v, c)] * mix[c] for c in mix.index) for v in ("v2", "v3")}
    assert aggregate["v3"] > aggregate["v2"] + 0.02


def test_outputs_follow_hidden_quality(medium: pd.DataFrame) -> None:
    _, bank = generate_traces(replace(MEDIUM, traces_per_day=5))
    facts = dict(zip(bank["topic_id"], bank["key_fact"], strict=True))
    has_fact = np.array(
        [facts[t] in o for t, o in zip(medium["topic_id"], medium["output"], strict=True)]
    )
    factual = (medium["category"] == "factual_lookup").to_numpy()
    good = medium["is_good"].to_numpy()
    # Good factual answers state the documented fact; bad ones do not.
    assert has_fact[factual & good].mean() == 1.0
    assert has_fact[factual & ~good].mean() < 0.05
    # The newest version is the most verbose (what a length-biased judge rewards).
    length = medium["output"].str.len().groupby(medium["app_version"]).mean()
    assert length["v3"] > 2 * length["v1"]


def test_feedback_arrives_later_and_tracks_quality(medium: pd.DataFrame) -> None:
    events = generate_feedback(MEDIUM, medium)
    trace_ts = medium.set_index("trace_id")["ts"]
    delay = events["ts"].to_numpy() - trace_ts.loc[events["trace_id"]].to_numpy()
    assert (delay > np.timedelta64(0, "ms")).all()
    later_day = (
        events["day"].to_numpy()
        > medium.set_index("trace_id")["day"].loc[events["trace_id"]].to_numpy()
    )
    assert later_day.mean() > 0.01
    good = medium.set_index("trace_id")["is_good"]
    down = events[events["signal"] == "thumbs_down"]["trace_id"]
    rate_bad = down.isin(good[~good].index).sum() / (~good).sum()
    rate_good = down.isin(good[good].index).sum() / good.sum()
    assert rate_bad > 5 * rate_good


def test_labels_are_noisy_like_real_annotators(medium: pd.DataFrame) -> None:
    labels = generate_labels(replace(MEDIUM, label_count=3000), medium)
    truth = medium.set_index("trace_id")["is_good"]
    agree = {
        who: (
            (part["verdict"] == "pass").to_numpy() == truth.loc[part["trace_id"]].to_numpy()
        ).mean()
        for who, part in labels.groupby("annotator")
    }
    assert 0.90 < agree["sim_expert_a"] < 0.98
    assert 0.83 < agree["sim_expert_b"] < agree["sim_expert_a"]
    fails = labels[labels["verdict"] == "fail"]
    assert (fails["critique"].str.len() > 0).all()
    assert fails["failure_mode"].notna().all()
    # Every category is represented (floor of 12% of the labels).
    shares = (
        medium.set_index("trace_id")["category"]
        .loc[labels["trace_id"]]
        .value_counts(normalize=True)
    )
    assert shares.min() >= 0.1
