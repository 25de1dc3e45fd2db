"""Calibration: metric functions against scikit-learn and scipy, interval coverage by
simulation, PandaLM's published annotator kappas, label validation, the test-once rule,
Rogan-Gladen, and the trust gate on the demo-like simulation."""

from __future__ import annotations

import json
import math
from pathlib import Path

import duckdb
import numpy as np
import pytest
from scipy.stats import binomtest
from sklearn.metrics import accuracy_score, balanced_accuracy_score, cohen_kappa_score, recall_score

from evals_pipeline.calibration.labels import import_pandalm, load_labels
from evals_pipeline.calibration.metrics import (
    _binary_kappa,
    binary_agreement,
    corrected_pass_rate,
    rogan_gladen,
    wilson,
)
from evals_pipeline.records import HUMAN_LABELS, QUARANTINED_LABELS
from evals_pipeline.warehouse import ensure_tables
from evals_pipeline_tests.conftest import SHARED


@pytest.mark.parametrize("seed", range(30))
def test_metrics_agree_with_scikit_learn(seed: int) -> None:
    rng = np.random.default_rng(seed)
    n = int(rng.integers(20, 400))
    h = rng.random(n) < rng.uniform(0.2, 0.8)
    j = np.where(rng.random(n) < rng.uniform(0.6, 0.95), h, ~h)
    a = binary_agreement(h, j, n_boot=50, seed=seed)
    assert a.tpr == pytest.approx(recall_score(h, j, pos_label=True))
    assert a.tnr == pytest.approx(recall_score(h, j, pos_label=False))
    assert a.accuracy == pytest.approx(accuracy_score(h, j))
    assert a.balanced_accuracy == pytest.approx(balanced_accuracy_score(h, j))
    assert a.kappa == pytest.approx(cohen_kappa_score(h, j))
    assert _binary_kappa(h, j) == pytest.approx(cohen_kappa_score(h, j))
    assert a.tp + a.fn + a.tn + a.fp == n


def test_wilson_matches_scipy() -> None:
    for k, n in ((0, 10), (3, 10), (57, 80), (999, 1000), (50, 100)):
        ci = binomtest(k, n).proportion_ci(confidence_level=0.95, method="wilson")
        assert wilson(k, n) == pytest.approx((ci.low, ci.high), abs=1e-9)
    assert all(math.isnan(x) for x in wilson(0, 0))


def test_intervals_cover_the_truth_about_95_percent_of_the_time() -> None:
    rng = np.random.default_rng(0)
    true_tpr, true_tnr, prevalence, n, runs = 0.85, 0.7, 0.6, 200, 400
    po = prevalence * true_tpr + (1 - prevalence) * true_tnr
    pj = prevalence * true_tpr + (1 - prevalence) * (1 - true_tnr)
    true_kappa = (po - (prevalence * pj + (1 - prevalence) * (1 - pj))) / (
        1 - (prevalence * pj + (1 - prevalence) * (1 - pj))
    )
    covered = {"tpr": 0, "tnr": 0, "kappa": 0}
    for i in range(runs):
        h = rng.random(n) < prevalence
        j = np.where(h, rng.random(n) < true_tpr, rng.random(n) >= true_tnr)
        a = binary_agreement(h, j, n_boot=300, seed=i)
        covered["tpr"] += a.tpr_ci[0] <= true_tpr <= a.tpr_ci[1]
        covered["tnr"] += a.tnr_ci[0] <= true_tnr <= a.tnr_ci[1]
        covered["kappa"] += a.kappa_ci[0] <= true_kappa <= a.kappa_ci[1]
    for name, hits in covered.items():
        assert 0.91 <= hits / runs <= 0.985, (name, hits / runs)


def test_rogan_gladen_recovers_a_planted_prevalence() -> None:
    assert rogan_gladen(0.5, 1.0, 1.0) == 0.5
    assert math.isnan(rogan_gladen(0.5, 0.5, 0.5))
    rng = np.random.default_rng(1)
    true_p, tpr, tnr = 0.3, 0.9, 0.75
    truth = rng.random(5000) < true_p
    judged = np.where(truth, rng.random(5000) < tpr, rng.random(5000) >= tnr)
    calib_h = rng.random(800) < 0.5
    calib_j = np.where(calib_h, rng.random(800) < tpr, rng.random(800) >= tnr)
    point, low, high, resamples, uncorrectable, note = corrected_pass_rate(
        judged, calib_h, calib_j, n_boot=400
    )
    assert judged.mean() > true_p + 0.1  # the raw rate is far off
    assert low <= true_p <= high and abs(point - true_p) < 0.05
    assert (resamples, uncorrectable, note) == (400, 0, "")


def test_a_judge_at_chance_has_no_corrected_rate_and_says_why() -> None:
    rng = np.random.default_rng(2)
    judged = rng.random(500) < 0.7
    calib_h = rng.random(300) < 0.5
    calib_j = np.ones(300, dtype=bool)  # passes everything: TPR 1, TNR 0, TPR + TNR = 1
    rate = corrected_pass_rate(judged, calib_h, calib_j, n_boot=200)
    assert all(math.isnan(v) for v in rate[:3])  # not a NaN point with a [0, 0] interval
    assert rate.uncorrectable == 200 and "at chance" in rate.note


def test_a_judge_near_chance_gets_no_interval_and_the_dropped_resamples_are_counted() -> None:
    rng = np.random.default_rng(3)
    judged = rng.random(400) < 0.5
    # TPR 0.55, TNR 0.52 on a small calibration set: many resamples fall to TPR + TNR <= 1
    calib_h = np.arange(120) % 2 == 0
    calib_j = np.where(calib_h, rng.random(120) < 0.55, rng.random(120) >= 0.52)
    tpr = (calib_j & calib_h).sum() / calib_h.sum()
    tnr = (~calib_j & ~calib_h).sum() / (~calib_h).sum()
    assert tpr + tnr > 1  # the point estimate exists...
    rate = corrected_pass_rate(judged, calib_h, calib_j, n_boot=500)
    assert not math.isnan(rate.point)
    # ...but the resamples that could not be corrected are counted, and there is no interval
    assert rate.uncorrectable > 0.05 * 500
    assert math.isnan(rate.low) and math.isnan(rate.high)
    assert f"{rate.uncorrectable} of 500" in rate.note


@pytest.mark.skipif(
    not (SHARED / "data" / "pandalm" / "testset-v1.json").exists(),
    reason="../shared/data/pandalm not present",
)
def test_pandalm_annotator_kappas_reproduce_the_published_figures(tmp_path: Path) -> None:
    import_pandalm(
        SHARED / "data" / "pandalm" / "testset-v1.json", tmp_path / "labels" / "pandalm.jsonl"
    )
    con = duckdb.connect()
    ensure_tables(con, [HUMAN_LABELS, QUARANTINED_LABELS])
    counts = load_labels(con, tmp_path / "labels")
    assert counts == {"files": 1, "rows_in": 2997, "stored": 2997, "quarantined": 0}
    wide = con.execute(
        f"PIVOT (SELECT subject_id, annotator, verdict FROM {HUMAN_LABELS}) ON annotator USING first(verdict) ORDER BY subject_id"
    ).df()
    k = {
        (a, b): round(
            cohen_kappa_score(wide[f"pandalm_annotator{a}"], wide[f"pandalm_annotator{b}"]), 2
        )
        for a, b in ((1, 2), (1, 3), (2, 3))
    }
    assert k == {(1, 2): 0.85, (1, 3): 0.88, (2, 3): 0.86}


def test_label_files_are_validated_and_the_newest_label_wins(tmp_path: Path) -> None:
    folder = tmp_path / "labels"
    folder.mkdir()
    rows = [
        {
            "trace_id": "t1",
            "annotator": "ana",
            "verdict": "fail",
            "critique": "wrong number",
            "failure_mode": "hallucinated_fact",
            "labelled_at": "2026-03-01T10:00:00Z",
        },
        {
            "trace_id": "t1",
            "annotator": "ana",
            "verdict": "pass",
            "labelled_at": "2026-03-02T10:00:00Z",
        },
        {"trace_id": "t1", "annotator": "ben", "verdict": "pass"},
        {"trace_id": "t2", "annotator": "ana", "verdict": "fail"},
        {"trace_id": "t3", "annotator": "ana", "verdict": "maybe"},
        {"annotator": "ana", "verdict": "pass"},
        {"case_id": "c1", "annotator": "ana", "verdict": "B"},
    ]
    (folder / "ana.jsonl").write_text("\n".join(json.dumps(r) for r in rows) + "\n{broken\n")
    (folder / "ben.csv").write_text(
        "trace_id,annotator,verdict,critique\nt4,ben,fail,too vague\nt5,ben,pass,\nt6,ben\n"
    )
    con = duckdb.connect()
    ensure_tables(con, [HUMAN_LABELS, QUARANTINED_LABELS])
    counts = load_labels(con, folder)
    assert counts["rows_in"] == 11 and counts["stored"] + counts["quarantined"] == 11
    assert dict(
        con.execute(
            f"SELECT source_file || ':' || source_row, reason FROM {QUARANTINED_LABELS}"
        ).fetchall()
    ) == {
        "ana.jsonl:4": "missing_critique",
        "ana.jsonl:5": "unknown_verdict",
        "ana.jsonl:6": "missing_field",
        "ana.jsonl:8": "malformed_json",
        "ben.csv:4": "malformed_json",
    }
    current = con.execute(
        f"SELECT subject_id, annotator, kind, verdict FROM {HUMAN_LABELS} WHERE current ORDER BY 1, 2"
    ).fetchall()
    assert current == [
        ("c1", "ana", "pairwise", "B"),
        ("t1", "ana", "pointwise", "pass"),
        ("t1", "ben", "pointwise", "pass"),
        ("t4", "ben", "pointwise", "fail"),
        ("t5", "ben", "pointwise", "pass"),
    ]
    splits = dict(con.execute(f"SELECT subject_id, split FROM {HUMAN_LABELS}").fetchall())
    con.execute(f"DELETE FROM {HUMAN_LABELS}")
    load_labels(con, folder)
    assert (
        dict(con.execute(f"SELECT subject_id, split FROM {HUMAN_LABELS}").fetchall()) == splits
    )  # stable


def test_splits_are_about_20_40_40() -> None:
    from evals_pipeline.calibration.labels import split_sql

    con = duckdb.connect()
    got = dict(
        con.execute(
            f"SELECT {split_sql('s')} AS split, count(*) FROM (SELECT 'id-' || i AS s FROM range(20000) t(i)) GROUP BY 1"
        ).fetchall()
    )
    assert (
        abs(got["train"] / 20000 - 0.2) < 0.015
        and abs(got["dev"] / 20000 - 0.4) < 0.015
        and abs(got["test"] / 20000 - 0.4) < 0.015
    )


def test_the_sensor_starts_a_run_when_label_files_appear_or_grow(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from dagster import DagsterInstance, RunRequest, SkipReason
    from dagster import build_sensor_context as context

    from evals_pipeline.calibration.sensors import label_files_sensor

    monkeypatch.setenv("EVALS_DATA_DIR", str(tmp_path))
    instance = DagsterInstance.ephemeral()

    def build_sensor_context(cursor: str | None = None):  # a deployment with no labels loaded yet
        return context(instance=instance, cursor=cursor)

    first = list(label_files_sensor(build_sensor_context()))
    assert isinstance(first[0], SkipReason)
    (tmp_path / "labels").mkdir()
    path = tmp_path / "labels" / "ana.jsonl"
    path.write_text('{"trace_id": "t1", "annotator": "ana", "verdict": "pass"}\n')
    ctx = build_sensor_context()
    (req,) = list(label_files_sensor(ctx))
    assert isinstance(req, RunRequest) and "ana.jsonl" in req.tags["files"]
    again = list(label_files_sensor(build_sensor_context(cursor=ctx.cursor)))
    assert isinstance(again[0], SkipReason)
    with path.open("a") as f:
        f.write('{"trace_id": "t2", "annotator": "ana", "verdict": "pass"}\n')
    (grown,) = list(label_files_sensor(build_sensor_context(cursor=ctx.cursor)))
    assert isinstance(grown, RunRequest) and grown.run_key != req.run_key


def test_a_judge_or_rubric_version_without_a_test_measurement_needs_calibration() -> None:
    import pandas as pd

    from evals_pipeline.calibration.measurement import corrected_rates

    rng = np.random.default_rng(3)
    judged = pd.DataFrame(
        {
            "judge": ["j1"] * 100 + ["j1"] * 100 + ["j2"] * 100,
            "rubric": ["pass_fail"] * 300,
            "rubric_version": ["1"] * 100 + ["2"] * 100 + ["1"] * 100,  # rubric edited to v2
            "app_version": ["v1"] * 300,
            "passed": rng.random(300) < 0.7,
        }
    )
    h = rng.random(200) < 0.6
    calib = pd.DataFrame(
        {
            "judge": "j1",
            "rubric": "pass_fail",
            "rubric_version": "1",
            "human_pass": h,
            "judge_pass": h,
        }
    )
    rows = {
        (r[0], r[2]): r for r in corrected_rates(judged, calib, {("j1", "pass_fail", "1"): True})
    }
    status, uncorrectable = 10, 11  # columns of corrected_pass_rates
    assert rows[("j1", "1")][status] == "trusted" and rows[("j1", "1")][6] == pytest.approx(
        rows[("j1", "1")][5]
    )
    assert rows[("j1", "1")][uncorrectable] == 0  # a perfect judge: every resample corrected
    assert rows[("j1", "2")][status] == "needs_calibration" and rows[("j1", "2")][6] is None
    assert rows[("j1", "2")][uncorrectable] is None
    assert rows[("j2", "1")][status] == "needs_calibration"


def test_the_test_split_is_measured_once_per_judge_rubric_version_and_window() -> None:
    from datetime import date

    import pandas as pd

    from evals_pipeline.calibration import test_split

    q1, q2 = date(2026, 1, 1), date(2026, 4, 1)

    def rows(judge: str, split: str, tpr: float, since: date | None = q1) -> dict[str, object]:
        return {
            "judge": judge,
            "rubric": "pass_fail",
            "rubric_version": "1",
            "split": split,
            "category": "all",
            "n": 100,
            "tpr": tpr,
            "test_since": since if split == "test" else None,
        }

    fresh = pd.DataFrame([rows("a", "dev", 0.9), rows("a", "test", 0.95), rows("b", "test", 0.7)])
    stored = pd.DataFrame([rows("a", "test", 0.81)])
    used = {("a", "pass_fail", "1", q1)}
    frame, looks = test_split.rows_touching_test_once(fresh, stored, used, force=False)
    got = {(r.judge, r.split): r.tpr for r in frame.itertuples()}
    # a's test measurement stays what it was; b is looked at for the first time; dev is fresh
    assert got == {("a", "dev"): 0.9, ("a", "test"): 0.81, ("b", "test"): 0.7}
    assert looks == [("b", "pass_fail", "1", q1, False, 100)]
    frame, looks = test_split.rows_touching_test_once(fresh, stored, used, force=True)
    assert {(r.judge, r.split): r.tpr for r in frame.itertuples()}[("a", "test")] == 0.95
    assert ("a", "pass_fail", "1", q1, True, 100) in looks  # a second look is recorded as forced
    # the stored measurement lost: measured again, and the look recorded as forced
    frame, looks = test_split.rows_touching_test_once(fresh, stored.iloc[0:0], used, force=False)
    assert ("a", "pass_fail", "1", q1, True, 100) in looks
    # a new quarter's labels make a fresh test split: measured, not a second look
    fresh_q2 = pd.DataFrame([rows("a", "test", 0.6, q2)])
    frame, looks = test_split.rows_touching_test_once(fresh_q2, stored, used, force=False)
    assert frame["tpr"].tolist() == [0.6] and looks == [("a", "pass_fail", "1", q2, False, 100)]


def test_the_revalidation_window_is_the_latest_quarters_holding_enough_test_items() -> None:
    from datetime import date

    import pandas as pd

    from evals_pipeline.calibration.measurement import test_window, within_window

    quarters = {date(2026, 1, 1): 150, date(2026, 4, 1): 60, date(2026, 7, 1): 50}
    measured = pd.DataFrame(
        [
            {"subject_id": f"{q}-{i}", "split": split, "labelled_quarter": q}
            for q, n in quarters.items()
            for i in range(n)
            for split in ("test",)
        ]
        + [{"subject_id": "old-dev", "split": "dev", "labelled_quarter": date(2026, 1, 1)}]
        + [{"subject_id": "no-time", "split": "test", "labelled_quarter": None}]
    )
    assert test_window(measured, 50) == date(2026, 7, 1)
    assert test_window(measured, 100) == date(2026, 4, 1)  # 50 + 60
    assert test_window(measured, 200) == date(2026, 1, 1)
    assert test_window(measured, 1000) is None  # never reached: every quarter
    kept = within_window(measured, date(2026, 4, 1))
    # older test items retired; dev untouched; items without a time are not in a window
    assert set(kept["subject_id"].str[:10]) == {"2026-04-01", "2026-07-01", "old-dev"}
    assert len(within_window(measured, None)) == len(measured)


def test_kappa_with_interval_matches_scikit_learn_and_brackets_it() -> None:
    from sklearn.metrics import cohen_kappa_score

    from evals_pipeline.calibration.metrics import kappa_with_interval

    rng = np.random.default_rng(5)
    x = rng.choice(["A", "B", "tie"], size=400)
    y = np.where(rng.random(400) < 0.8, x, rng.choice(["A", "B", "tie"], size=400))
    k, low, high = kappa_with_interval(x, y, np.random.default_rng(0))
    assert math.isclose(k, cohen_kappa_score(x, y))
    assert low < k < high and high - low < 0.2
    # the caller's generator makes it reproducible
    assert kappa_with_interval(x, y, np.random.default_rng(0)) == (k, low, high)


def test_a_first_sensor_tick_after_a_calibration_starts_nothing_until_a_file_changes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The first `make ui` after `make demo`: the sensor has no cursor yet, but the files are
    the ones the last human_labels materialization read, so no run starts."""
    from dagster import DagsterInstance, RunRequest, SkipReason, build_sensor_context, materialize

    from evals_pipeline.calibration.assets import human_label_files
    from evals_pipeline.calibration.sensors import label_files_sensor
    from evals_pipeline.project import ProjectResource
    from evals_pipeline.warehouse import Warehouse

    monkeypatch.setenv("EVALS_DATA_DIR", str(tmp_path))
    (tmp_path / "labels").mkdir()
    path = tmp_path / "labels" / "ana.jsonl"
    path.write_text('{"trace_id": "t1", "annotator": "ana", "verdict": "pass"}\n')
    with DagsterInstance.ephemeral() as instance:
        warehouse = Warehouse(database=str(tmp_path / "wh.duckdb"))
        assert materialize(
            [human_label_files],
            instance=instance,
            resources={"warehouse": warehouse, "project": ProjectResource()},
        ).success
        ctx = build_sensor_context(instance=instance)
        (skip,) = list(label_files_sensor(ctx))
        assert isinstance(skip, SkipReason) and "since the last run" in skip.skip_message
        with path.open("a") as f:
            f.write(
                '{"trace_id": "t2", "annotator": "ana", "verdict": "fail", "critique": "wrong"}\n'
            )
        (req,) = list(
            label_files_sensor(build_sensor_context(instance=instance, cursor=ctx.cursor))
        )
        assert isinstance(req, RunRequest) and req.tags["files"] == "ana.jsonl"


def test_trust_decays_to_needs_recalibration_when_the_traffic_moves_on() -> None:
    from datetime import date

    import pandas as pd

    from evals_pipeline.calibration.measurement import with_trust_status

    frame = pd.DataFrame(
        [
            {"judge": "a", "split": "test", "category": "all", "trusted": True},
            {"judge": "b", "split": "test", "category": "all", "trusted": False},
            {"judge": "a", "split": "dev", "category": "all", "trusted": None},
        ]
    )
    q2, q3 = date(2026, 4, 1), date(2026, 7, 1)
    assert with_trust_status(frame, q3, q3)["trust_status"].tolist() == [
        "trusted",
        "not_trusted",
        None,
    ]
    # the newest test items are a quarter behind the traffic: re-validate on its labels
    assert with_trust_status(frame, q2, q3)["trust_status"].tolist()[:2] == [
        "needs_recalibration",
        "not_trusted",
    ]


def test_annotators_below_kappa_06_warn_naming_the_rubric() -> None:
    import pandas as pd

    from evals_pipeline.calibration.assets import annotators_agree_check

    frame = pd.DataFrame(
        [
            {
                "kind": "pointwise",
                "segment": "all",
                "annotator_a": "a",
                "annotator_b": "b",
                "kappa": 0.52,
                "n": 80,
            },
            {
                "kind": "pointwise",
                "segment": "all",
                "annotator_a": "a",
                "annotator_b": "c",
                "kappa": 0.81,
                "n": 90,
            },
            {
                "kind": "pointwise",
                "segment": "pro",
                "annotator_a": "a",
                "annotator_b": "c",
                "kappa": 0.2,
                "n": 9,
            },
            {
                "kind": "pairwise",
                "segment": "all",
                "annotator_a": "p",
                "annotator_b": "q",
                "kappa": 0.3,
                "n": 50,
            },
        ]
    )
    check = annotators_agree_check(frame, "pass_fail")
    assert not check.passed and check.severity.value == "WARN"
    assert "rubric pass_fail is too vague" in check.description
    assert (
        "a and b (kappa 0.52 on 80 items)" in check.description
        and "a and c" not in check.description
    )
    assert annotators_agree_check(frame.iloc[1:2], "pass_fail").passed


def test_length_bias_is_found_where_planted_and_not_elsewhere() -> None:
    """Planted: the biased judge passes long outputs more often at the same human label;
    the fair judge's errors do not depend on length."""
    import pandas as pd
    from sklearn.linear_model import LogisticRegression

    from evals_pipeline.calibration.bias import judge_bias_rows, length_coefficient, model_family

    rng = np.random.default_rng(3)
    n = 800
    human = rng.random(n) < 0.6
    chars = rng.integers(40, 2000, n)
    fair = np.where(rng.random(n) < 0.9, human, ~human)
    z = (np.log1p(chars) - np.log1p(chars).mean()) / np.log1p(chars).std()
    biased = rng.random(n) < 1 / (1 + np.exp(-(-0.5 + 2.0 * human + 1.0 * z)))
    coef, low, high = length_coefficient(human, biased, chars, np.random.default_rng(0))
    direct = LogisticRegression(C=np.inf).fit(np.column_stack([human, z]), biased)
    assert math.isclose(coef, direct.coef_[0][1], rel_tol=1e-3)
    assert 0.7 < coef < 1.3 and low > 0
    coef, low, high = length_coefficient(human, fair, chars, np.random.default_rng(0))
    assert low < 0 < high
    assert length_coefficient(human[:10], fair[:10], chars[:10], rng) is None

    frame = pd.DataFrame(
        {
            "judge": ["openai/gpt-4o"] * n + ["anthropic/claude-sonnet-4-5"] * n,
            "rubric": "pass_fail",
            "rubric_version": "1",
            "human_pass": np.concatenate([human, human]),
            "judge_pass": np.concatenate([biased, fair]),
            "output_chars": np.concatenate([chars, chars]),
        }
    )
    flips = pd.DataFrame({"judge": ["openai/gpt-4o"], "n": [200], "flips": [30]})
    from evals_pipeline.records import JUDGE_BIAS

    rows = {
        r[0]: dict(zip(JUDGE_BIAS.column_names, r, strict=True))
        for r in judge_bias_rows(
            frame, flips, [("v2", "openai/gpt-4o-mini"), ("v3", "meta/llama-3")]
        )
    }
    gpt, claude = rows["openai/gpt-4o"], rows["anthropic/claude-sonnet-4-5"]
    assert gpt["length_biased"] is True and claude["length_biased"] is False
    assert (gpt["pairwise_comparisons"], gpt["position_flip_rate"]) == (200, 0.15)
    assert gpt["padded_n"] is None  # no probe ran
    # self-preference: a gpt judge judging a gpt app version
    assert (gpt["family"], gpt["same_family_versions"]) == ("openai/gpt", "v2")
    assert claude["same_family_versions"] is None
    assert model_family("offline/product-v3") == "offline/product"
    assert model_family("ollama/llama3.1") == "ollama/llama"


def test_the_length_probe_tells_a_length_rewarding_judge_from_a_noisy_fair_one() -> None:
    """Planted: padding turns 20% of one judge's fails into passes; the other judge is fair
    but noisy: each of its two judgements errs on 5% of outputs, independently. The probe's
    shift, interval and test tell them apart, and the bias check prefers the probe to the
    observational coefficient where it ran."""
    import pandas as pd

    from evals_pipeline.calibration.bias import length_flag, padding_effect

    rng = np.random.default_rng(5)
    n = 300
    truth = rng.random(n) < 0.6
    before = np.where(rng.random(n) < 0.05, ~truth, truth)
    rewarding = before | (rng.random(n) < 0.2)
    noisy = np.where(rng.random(n) < 0.05, ~truth, truth)
    probe = pd.DataFrame(
        {
            "judge": ["long"] * n + ["fair"] * n,
            "rubric_version": "1",
            "before": np.concatenate([before, before]),
            "after": np.concatenate([rewarding, noisy]),
        }
    )
    effect = padding_effect(probe)
    n_, up, down, shift, low, high, p, biased = effect[("long", "1")]
    assert (n_, down) == (n, 0) and up == int((~before & rewarding).sum())
    assert math.isclose(shift, up / n) and low > 0 and p < 1e-6 and biased
    *_, low, high, p, biased = effect[("fair", "1")]
    assert low < 0 < high and not biased
    rows = pd.DataFrame(
        {
            "padded_biased": [False, True, None],
            "length_biased": [True, False, True],
            "length_coef": [0.5, 0.1, 0.4],
        }
    )
    # probed: the probe decides; not probed: the coefficient does
    assert length_flag(rows).tolist() == [False, True, True]
