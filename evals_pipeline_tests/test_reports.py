"""Reports: planted effects in simulated data are found, and absent effects are not."""

from __future__ import annotations

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
