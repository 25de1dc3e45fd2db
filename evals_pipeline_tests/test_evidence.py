"""Bring your own evidence: label, verdict and online metric files through the assets, checked
against independent computations (scikit-learn, scipy) and published figures (PandaLM)."""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd
import pytest
import yaml
from dagster import DagsterInstance, RunRequest, build_sensor_context, materialize
from scipy import stats
from scipy.optimize import minimize
from scipy.special import log_expit
from sklearn.metrics import cohen_kappa_score

from evals_pipeline.calibration.assets import (
    annotator_agreement,
    calibration_verdicts,
    corrected_pass_rates,
    external_verdict_files,
    human_label_files,
    judge_calibration,
    pairwise_calibration,
)
from evals_pipeline.calibration.evidence import LABELS, check_file, verdicts_format
from evals_pipeline.calibration.labels import import_pandalm
from evals_pipeline.calibration.sensors import verdict_files_sensor
from evals_pipeline.judging.bradley_terry import ELO
from evals_pipeline.project import ProjectResource
from evals_pipeline.records import (
    ANNOTATOR_AGREEMENT,
    EVIDENCE_CORRELATION,
    EXTERNAL_VERDICTS,
    GOLD_LABELS,
    HUMAN_LABELS,
    JUDGE_CALIBRATION,
    ONLINE_METRICS,
    PAIRWISE_CALIBRATION,
    PREFERENCE_RATINGS,
    QUARANTINED_LABELS,
    QUARANTINED_ONLINE_METRICS,
    QUARANTINED_VERDICTS,
)
from evals_pipeline.reports.assets import (
    evidence_correlation,
    online_metric_files,
    preference_ratings,
)
from evals_pipeline.reports.definitions import online_metrics_sensor
from evals_pipeline.reports.online_metrics import online_metrics_format
from evals_pipeline.warehouse import Warehouse, connect
from evals_pipeline_tests.helpers import _resources, lean_project_dict

REPO = Path(__file__).resolve().parents[1]
PANDALM = REPO.parent / "shared" / "data" / "pandalm" / "testset-v1.json"


def project_with(tmp_path: Path, **evidence: object) -> ProjectResource:
    """The repository's project file with an `evidence:` block of its own."""
    cfg = lean_project_dict()
    cfg["evidence"] = {**cfg.get("evidence", {}), **evidence}
    path = tmp_path / "evals.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return ProjectResource(path=str(path))


def run(assets: list, project: ProjectResource, data: Path, **extra: object) -> dict[str, bool]:
    """Materialize `assets` on the warehouse under `data`; the asset checks' outcomes."""
    result = materialize(
        assets,
        resources={
            "warehouse": Warehouse(database=str(data / "warehouse.duckdb")),
            "project": project,
            **extra,
        },
    )
    assert result.success
    return {e.check_name: e.passed for e in result.get_asset_check_evaluations()}


def query(data: Path, sql: str) -> pd.DataFrame:
    with connect(data / "warehouse.duckdb", read_only=True) as conn:
        return conn.execute(sql).df()


def write_jsonl(path: Path, rows: list[dict[str, object]]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def write_csv(path: Path, rows: list[dict[str, object]], bom: bool = True) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="", encoding="utf-8-sig" if bom else "utf-8") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    return path


# --- PandaLM: published figures and independent fits ----------------------------------------


@pytest.fixture(scope="module")
def pandalm(tmp_path_factory: pytest.TempPathFactory) -> Path:
    if not PANDALM.exists():
        pytest.skip("../shared/data/pandalm not present")
    data = tmp_path_factory.mktemp("pandalm")
    mp = pytest.MonkeyPatch()
    mp.setenv("EVALS_DATA_DIR", str(data))
    try:
        import_pandalm(PANDALM, data / "labels" / "pandalm.jsonl")
        # segments of 40+ items get their own ratings (5 of the 50 apps): enough to test, quick to fit
        project = project_with(data, segment_by="motivation_app", min_segment_items=40)
        run([human_label_files, annotator_agreement, preference_ratings], project, data)
    finally:
        mp.undo()
    return data


def test_pandalm_annotators_reproduce_the_published_kappas(pandalm: Path) -> None:
    k = query(
        pandalm,
        f"SELECT annotator_a, annotator_b, n, kappa, kappa_low, kappa_high FROM {ANNOTATOR_AGREEMENT} "
        "WHERE segment = 'all' ORDER BY ALL",
    )
    assert k["n"].tolist() == [999, 999, 999]
    assert k["kappa"].round(2).tolist() == [0.85, 0.88, 0.86]
    # the asset's kappa is scikit-learn's, and its interval brackets it
    labels = query(
        pandalm,
        f"PIVOT (SELECT subject_id, annotator, verdict FROM {HUMAN_LABELS}) ON annotator USING first(verdict)",
    )
    assert k["kappa"][0] == pytest.approx(
        cohen_kappa_score(labels["pandalm_annotator1"], labels["pandalm_annotator2"])
    )
    assert (k["kappa_low"] < k["kappa"]).all() and (k["kappa"] < k["kappa_high"]).all()


def test_pandalm_majority_gold_labels_match_the_published_counts(pandalm: Path) -> None:
    gold = query(
        pandalm,
        f"SELECT verdict, count(*) AS n, min(annotators) AS annotators FROM {GOLD_LABELS} GROUP BY 1 ORDER BY 1",
    )
    assert dict(zip(gold["verdict"], gold["n"], strict=True)) == {"A": 422, "B": 472, "tie": 105}
    assert set(gold["annotators"]) == {3}
    # per-item agreement: the share of annotators who gave the gold label, as counted from the source
    items = {f"pandalm-{i['idx']}": i for i in json.loads(PANDALM.read_text())}
    got = query(pandalm, f"SELECT subject_id, verdict, item_agreement FROM {GOLD_LABELS}")
    code = {"tie": 0, "A": 1, "B": 2}
    for sid, verdict, agreement in got.itertuples(index=False):
        votes = [items[sid][f"annotator{k}"] for k in (1, 2, 3)]
        assert agreement == pytest.approx(votes.count(code[verdict]) / 3)


def test_pandalm_agreement_is_reported_per_motivation_app(pandalm: Path) -> None:
    per_app = query(
        pandalm,
        f"SELECT segment, annotator_a, annotator_b, n, agreement, kappa FROM {ANNOTATOR_AGREEMENT} WHERE segment <> 'all'",
    )
    source = pd.DataFrame(json.loads(PANDALM.read_text()))
    sizes = source.groupby("motivation_app").size()
    assert set(per_app["segment"]) == set(sizes[sizes >= 10].index)
    grammarly = source[source["motivation_app"] == "Grammarly"]
    row = per_app[
        (per_app["segment"] == "Grammarly")
        & (per_app["annotator_a"] == "pandalm_annotator1")
        & (per_app["annotator_b"] == "pandalm_annotator2")
    ].iloc[0]
    assert row["n"] == len(grammarly)
    assert row["agreement"] == pytest.approx(
        (grammarly["annotator1"] == grammarly["annotator2"]).mean()
    )
    assert row["kappa"] == pytest.approx(
        cohen_kappa_score(grammarly["annotator1"], grammarly["annotator2"])
    )


def _independent_bt(gold: pd.DataFrame) -> pd.Series:
    """Bradley-Terry by maximum likelihood with scipy (a tie is half a win for each side),
    centred and on the Elo scale."""
    players = sorted(set(gold["system_a"]) | set(gold["system_b"]))
    ix = {p: i for i, p in enumerate(players)}
    a = gold["system_a"].map(ix).to_numpy()
    b = gold["system_b"].map(ix).to_numpy()
    win = gold["verdict"].map({"A": 1.0, "B": 0.0, "tie": 0.5}).to_numpy()

    def nll(s: np.ndarray) -> float:
        d = s[a] - s[b]
        return -float((win * log_expit(d) + (1 - win) * log_expit(-d)).sum())

    s = minimize(nll, np.zeros(len(players)), method="BFGS", options={"gtol": 1e-10}).x
    return pd.Series((s - s.mean()) * ELO, index=players)


def test_pandalm_bradley_terry_matches_an_independent_likelihood_fit(pandalm: Path) -> None:
    gold = query(
        pandalm,
        f"SELECT system_a, system_b, verdict, segment FROM {GOLD_LABELS} WHERE verdict IS NOT NULL",
    )
    ratings = query(pandalm, f"SELECT * FROM {PREFERENCE_RATINGS} WHERE evidence = 'human'")
    overall = ratings[ratings["segment"] == "all"].set_index("system")
    expected = _independent_bt(gold)
    assert len(expected) >= 4
    # the asset fits with a tiny L2 penalty (C = 1e4): equal to a hundredth of an Elo point
    assert overall["rating"].sort_index().to_numpy() == pytest.approx(
        expected.sort_index().to_numpy(), abs=0.01
    )
    assert (overall["ci_low"] <= overall["rating"]).all() and (
        overall["rating"] <= overall["ci_high"]
    ).all()
    assert overall["rank"].sort_values().tolist() == list(range(1, len(overall) + 1))
    # a segment's ratings are fitted on its items alone
    segment = ratings[ratings["segment"] != "all"]["segment"].iloc[0]
    seg = ratings[ratings["segment"] == segment].set_index("system")["rating"]
    part = _independent_bt(gold[gold["segment"] == segment])
    assert seg.sort_index().to_numpy() == pytest.approx(part.sort_index().to_numpy(), abs=0.1)


# --- pairwise calibration of an imported judge ----------------------------------------------


def _position_biased_judge(n: int, seed: int) -> tuple[list[dict], list[dict], pd.DataFrame]:
    """Gold labels of `n` items (two annotators agreeing, plus a third sometimes not) and an
    imported judge that sees each item in both orders and prefers the first output shown
    now and then; returns (label rows, verdict rows, the verdicts in system terms)."""
    rng = np.random.default_rng(seed)
    systems = ["alpha", "beta", "gamma"]
    labels, verdicts, truth = [], [], []
    for i in range(n):
        sa, sb = rng.choice(systems, size=2, replace=False)
        gold = rng.choice(["A", "B", "tie"], p=[0.45, 0.4, 0.15])
        sid = f"item-{i}"
        for who in ("ann", "bob"):
            labels.append(
                {
                    "subject_id": sid,
                    "annotator": who,
                    "verdict": gold,
                    "system_a": sa,
                    "system_b": sb,
                    "topic": f"t{i % 2}",
                }
            )
        if rng.random() < 0.3:
            labels.append(
                {
                    "subject_id": sid,
                    "annotator": "cy",
                    "verdict": rng.choice(["A", "B", "tie"]),
                    "system_a": sa,
                    "system_b": sb,
                    "topic": f"t{i % 2}",
                }
            )
        right = {"A": "a", "B": "b", "tie": "tie"}[gold]
        for order in ("ab", "ba"):
            roll = rng.random()
            # in system terms: right 65%, the system shown first 25%, a tie 10%
            judged = (
                right if roll < 0.65 else ("a" if order == "ab" else "b") if roll < 0.9 else "tie"
            )
            shown = {
                "a": "A" if order == "ab" else "B",
                "b": "B" if order == "ab" else "A",
                "tie": "tie",
            }[judged]
            verdicts.append(
                {
                    "subject_id": sid,
                    "system_a": sa,
                    "system_b": sb,
                    "order": order,
                    "winner": shown,
                    "topic": f"t{i % 2}",
                }
            )
            truth.append((sid, order, judged, right))
    return (
        labels,
        verdicts,
        pd.DataFrame(truth, columns=["subject_id", "presentation", "judged", "gold"]),
    )


def test_pairwise_calibration_of_an_imported_judge_equals_an_independent_computation(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("EVALS_DATA_DIR", str(tmp_path))
    labels, verdicts, truth = _position_biased_judge(400, seed=7)
    write_jsonl(tmp_path / "labels" / "panel.jsonl", labels)
    # half the verdicts as a BOM'd CSV: the two files are one judge (judge named in the rows)
    for v in verdicts:
        v["judge"] = "vendor-judge"
    write_jsonl(
        tmp_path / "verdicts" / "vendor_ab.jsonl", [v for v in verdicts if v["order"] == "ab"]
    )
    write_csv(tmp_path / "verdicts" / "vendor_ba.csv", [v for v in verdicts if v["order"] == "ba"])
    project = project_with(tmp_path, segment_by="topic", min_segment_items=50)
    checks = run(
        [human_label_files, external_verdict_files, pairwise_calibration], project, tmp_path
    )

    got = query(
        tmp_path, f"SELECT * FROM {PAIRWISE_CALIBRATION} WHERE judge = 'external/vendor-judge'"
    )
    gold = query(tmp_path, f"SELECT subject_id, split, verdict FROM {GOLD_LABELS}")
    # items where the third annotator disagreed still have a 2-of-3 majority: every item has gold
    assert gold["verdict"].notna().all() and len(gold) == 400
    t = truth.merge(gold[["subject_id", "split"]], on="subject_id")
    for split in ("all", "train", "dev", "test"):
        part = t if split == "all" else t[t["split"] == split]
        row = got[(got["split"] == split) & (got["segment"] == "all")].iloc[0]
        correct = part["judged"] == part["gold"]
        acc_ab = correct[part["presentation"] == "ab"].mean()
        acc_ba = correct[part["presentation"] == "ba"].mean()
        wide = part.pivot(index="subject_id", columns="presentation", values="judged")
        assert row["items"] == part["subject_id"].nunique()
        assert row["verdicts"] == len(part)
        assert row["accuracy_ab"] == pytest.approx(acc_ab)
        assert row["accuracy_ba"] == pytest.approx(acc_ba)
        assert row["accuracy"] == pytest.approx((acc_ab + acc_ba) / 2)
        assert row["positional_agreement"] == pytest.approx((wide["ab"] == wide["ba"]).mean())
        assert row["kappa"] == pytest.approx(cohen_kappa_score(part["gold"], part["judged"]))
        assert row["kappa_low"] < row["kappa"] < row["kappa_high"]
        assert row["judge_tie_rate"] == pytest.approx((part["judged"] == "tie").mean())
    # per segment (the `topic` attribute), on the segment's items only
    t0 = t[t["subject_id"].isin([f"item-{i}" for i in range(0, 400, 2)])]
    row = got[(got["split"] == "all") & (got["segment"] == "t0")].iloc[0]
    assert row["kappa"] == pytest.approx(cohen_kappa_score(t0["gold"], t0["judged"]))
    # the trust gate: 65% right (plus the lucky first-shown picks) is below the 0.85 bar
    test = got[(got["split"] == "test") & (got["segment"] == "all")].iloc[0]
    assert not bool(test["trusted"])
    assert checks["pairwise_judges_trusted"] is False
    assert query(tmp_path, f"SELECT count(*) AS n FROM {QUARANTINED_VERDICTS}")["n"][0] == 0


def test_a_judge_right_in_both_orders_is_trusted(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("EVALS_DATA_DIR", str(tmp_path))
    labels, _, _ = _position_biased_judge(200, seed=3)
    write_jsonl(tmp_path / "labels" / "panel.jsonl", labels)
    gold = {r["subject_id"]: r for r in labels if r["annotator"] == "ann"}
    rows = []
    for sid, r in gold.items():
        winner = {"A": r["system_a"], "B": r["system_b"], "tie": "tie"}[r["verdict"]]
        for order in ("ab", "ba"):  # the winner given by name: no letter to map
            rows.append(
                {
                    "subject_id": sid,
                    "system_a": r["system_a"],
                    "system_b": r["system_b"],
                    "presentation": order,
                    "verdict": winner,
                }
            )
    write_jsonl(tmp_path / "verdicts" / "oracle.jsonl", rows)
    checks = run(
        [human_label_files, external_verdict_files, pairwise_calibration],
        project_with(tmp_path),
        tmp_path,
    )
    got = query(
        tmp_path, f"SELECT * FROM {PAIRWISE_CALIBRATION} WHERE segment = 'all' AND split = 'test'"
    ).iloc[0]
    assert got["judge"] == "external/oracle"
    assert got["accuracy_ab"] == got["accuracy_ba"] == got["positional_agreement"] == 1.0
    assert bool(got["trusted"]) and checks["pairwise_judges_trusted"]


# --- imported pointwise verdicts go through judge_calibration -------------------------------


def test_imported_pointwise_verdicts_are_calibrated_beside_the_litellm_judges(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, small_sim: Path
) -> None:
    monkeypatch.setenv("EVALS_DATA_DIR", str(tmp_path))
    rng = np.random.default_rng(1)
    human = rng.random(300) < 0.6
    judge = np.where(human, rng.random(300) < 0.9, rng.random(300) < 0.3)
    write_jsonl(
        tmp_path / "labels" / "expert.jsonl",
        [
            {
                "subject_id": f"ext-{i}",
                "annotator": "expert",
                "verdict": "pass" if h else "fail",
                "critique": None if h else "wrong",
            }
            for i, h in enumerate(human)
        ],
    )
    write_csv(
        tmp_path / "verdicts" / "legacy_judge.csv",
        [
            {"trace_id": f"ext-{i}", "verdict": "PASS" if j else "fail", "rubric": "helpfulness"}
            for i, j in enumerate(judge)
        ],
    )
    resources = _resources(small_sim)
    resources.pop("warehouse")
    resources.pop("project")
    config = {
        "ops": {
            n: {"config": {"classifier_judge": False}}
            for n in ("calibration_verdicts", "judge_calibration", "corrected_pass_rates")
        }
    }
    result = materialize(
        [
            human_label_files,
            external_verdict_files,
            calibration_verdicts,
            judge_calibration,
            corrected_pass_rates,
        ],
        resources={
            "warehouse": Warehouse(database=str(tmp_path / "warehouse.duckdb")),
            "project": project_with(tmp_path),
            **resources,
        },
        run_config=config,
    )
    assert result.success
    split = query(
        tmp_path, f"SELECT subject_id, split FROM {GOLD_LABELS} WHERE kind = 'pointwise'"
    ).set_index("subject_id")["split"]
    got = query(
        tmp_path,
        f"SELECT * FROM {JUDGE_CALIBRATION} WHERE judge = 'external/legacy_judge' AND category = 'all'",
    )
    assert set(got["rubric"]) == {"helpfulness"}
    for row in got.itertuples():
        mask = np.array([split[f"ext-{i}"] == row.split for i in range(300)])
        h, j = human[mask], judge[mask]
        assert row.n == mask.sum()
        assert row.tpr == pytest.approx((j & h).sum() / h.sum())
        assert row.tnr == pytest.approx((~j & ~h).sum() / (~h).sum())
        assert row.kappa == pytest.approx(cohen_kappa_score(h, j))


# --- online metrics and the correlation alarm -----------------------------------------------


def _systems_table(shuffle: bool) -> list[dict[str, object]]:
    rng = np.random.default_rng(11)
    offline = np.round(np.linspace(0.55, 0.92, 10) + rng.normal(0, 0.01, 10), 3)
    online = np.round(0.2 + 0.5 * offline + rng.normal(0, 0.02, 10), 3)
    if shuffle:
        online = online[[7, 2, 9, 0, 5, 3, 8, 1, 6, 4]]
    return [
        {
            "date": "2026-11-30",
            "system": f"model-{i}",
            "offline:judge_score": x,
            "thumbs_up_rate": y,
            "n": 500,
        }
        for i, (x, y) in enumerate(zip(offline, online, strict=True))
    ]


@pytest.mark.parametrize("shuffle", [False, True])
def test_imported_scores_correlate_as_scipy_says_and_a_shuffled_metric_raises_the_alarm(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, shuffle: bool
) -> None:
    monkeypatch.setenv("EVALS_DATA_DIR", str(tmp_path))
    rows = _systems_table(shuffle)
    write_csv(tmp_path / "online_metrics" / "systems.csv", rows)
    checks = run([online_metric_files, evidence_correlation], project_with(tmp_path), tmp_path)
    got = query(tmp_path, f"SELECT * FROM {EVIDENCE_CORRELATION}").iloc[0]
    x = [r["offline:judge_score"] for r in rows]
    y = [r["thumbs_up_rate"] for r in rows]
    assert (got["offline"], got["online_metric"], got["level"], got["n"]) == (
        "imported:judge_score",
        "thumbs_up_rate",
        "system",
        10,
    )
    assert got["spearman"] == pytest.approx(stats.spearmanr(x, y).statistic)
    assert got["pearson"] == pytest.approx(stats.pearsonr(x, y).statistic)
    assert got["spearman_low"] <= got["spearman"] <= got["spearman_high"]
    assert bool(got["alarm"]) is shuffle
    assert checks["offline_scores_predict_online"] is (not shuffle)
    if shuffle:
        assert stats.spearmanr(x, y).statistic < 0.6  # the planted break is real


def test_a_lower_is_better_metric_is_expected_to_fall(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("EVALS_DATA_DIR", str(tmp_path))
    rows = [{**r, "escalation_rate": 1 - float(r["thumbs_up_rate"])} for r in _systems_table(False)]
    write_jsonl(tmp_path / "online_metrics" / "systems.jsonl", rows)
    run(
        [online_metric_files, evidence_correlation],
        project_with(tmp_path, lower_is_better=["escalation_rate"]),
        tmp_path,
    )
    got = query(
        tmp_path, f"SELECT online_metric, spearman, alarm FROM {EVIDENCE_CORRELATION}"
    ).set_index("online_metric")
    assert got.loc["escalation_rate", "spearman"] < -0.6
    assert not got["alarm"].any()


def test_bradley_terry_ratings_are_correlated_with_an_online_metric(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("EVALS_DATA_DIR", str(tmp_path))
    labels, _, _ = _position_biased_judge(300, seed=5)
    write_jsonl(tmp_path / "labels" / "panel.jsonl", labels)
    write_jsonl(
        tmp_path / "online_metrics" / "by_model.jsonl",
        [
            {"date": "2026-11-01", "system": s, "metric": "retention", "value": v}
            for s, v in (("alpha", 0.3), ("beta", 0.4), ("gamma", 0.5))
        ],
    )
    run(
        [human_label_files, preference_ratings, online_metric_files, evidence_correlation],
        project_with(tmp_path),
        tmp_path,
    )
    ratings = query(
        tmp_path,
        f"SELECT system, rating FROM {PREFERENCE_RATINGS} WHERE evidence = 'human' AND segment = 'all'",
    )
    corr = query(tmp_path, f"SELECT * FROM {EVIDENCE_CORRELATION} WHERE offline = 'bt:human'").iloc[
        0
    ]
    m = ratings.merge(pd.DataFrame({"system": ["alpha", "beta", "gamma"], "v": [0.3, 0.4, 0.5]}))
    assert corr["n"] == 3
    assert corr["spearman"] == pytest.approx(stats.spearmanr(m["rating"], m["v"]).statistic)


# --- formats: quarantine with reasons, rows in = stored + quarantined, BOM CSV ---------------


def test_bad_rows_are_quarantined_with_their_reason_in_every_format(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("EVALS_DATA_DIR", str(tmp_path))
    write_csv(
        tmp_path / "labels" / "mixed.csv",
        [
            {
                "subject_id": "s1",
                "annotator": "ann",
                "verdict": "A",
                "system_a": "x",
                "system_b": "y",
            },
            {
                "subject_id": "",
                "annotator": "ann",
                "verdict": "y",
                "system_a": "x",
                "system_b": "y",
            },  # arena row: file#row
            {
                "subject_id": "s3",
                "annotator": "ann",
                "verdict": "A",
                "system_a": "x",
                "system_b": "",
            },
            {
                "subject_id": "s4",
                "annotator": "ann",
                "verdict": "maybe",
                "system_a": "",
                "system_b": "",
            },
            {
                "subject_id": "s5",
                "annotator": "",
                "verdict": "pass",
                "system_a": "",
                "system_b": "",
            },
        ],
    )
    (tmp_path / "verdicts").mkdir()
    (tmp_path / "verdicts" / "j.jsonl").write_text(
        '{"subject_id": "s1", "verdict": "A", "presentation": "ba"}\n'
        '{"subject_id": "s1", "verdict": "A", "presentation": "sideways"}\n'
        '{"verdict": "pass"}\n'
        "[1, 2]\n"
    )
    write_csv(
        tmp_path / "online_metrics" / "m.csv",
        [
            {"date": "2026-11-01", "system": "x", "metric": "thumbs", "value": "0.5"},
            {"date": "yesterday", "system": "x", "metric": "thumbs", "value": "0.5"},
            {"date": "2026-11-01", "system": "x", "metric": "thumbs", "value": "high"},
        ],
    )
    run(
        [human_label_files, external_verdict_files, online_metric_files],
        project_with(tmp_path),
        tmp_path,
    )
    for table, quarantine, rows_in, reasons in (
        (HUMAN_LABELS, QUARANTINED_LABELS, 5, {"missing_field": 2, "unknown_verdict": 1}),
        (
            EXTERNAL_VERDICTS,
            QUARANTINED_VERDICTS,
            4,
            {"wrong_type": 1, "missing_field": 1, "malformed_json": 1},
        ),
        (ONLINE_METRICS, QUARANTINED_ONLINE_METRICS, 3, {"wrong_type": 2}),
    ):
        stored = query(
            tmp_path, f"SELECT count(DISTINCT (source_file, source_row)) AS n FROM {table}"
        )["n"][0]
        q = query(tmp_path, f"SELECT reason, count(*) AS n FROM {quarantine} GROUP BY 1")
        assert dict(zip(q["reason"], q["n"], strict=True)) == reasons, table.name
        assert stored + q["n"].sum() == rows_in, table.name
    arena = query(
        tmp_path, f"SELECT subject_id, verdict, kind FROM {HUMAN_LABELS} WHERE source_row = 3"
    )
    assert arena.values.tolist() == [["mixed.csv#3", "B", "pairwise"]]
    ext = query(tmp_path, f"SELECT judge, verdict, presentation, winner FROM {EXTERNAL_VERDICTS}")
    assert ext.values.tolist() == [["external/j", "A", "ba", "b"]]  # A shown first in ba = system b


def test_check_file_reports_what_an_import_would_store(tmp_path: Path) -> None:
    path = write_jsonl(
        tmp_path / "x.jsonl",
        [
            {"trace_id": "t1", "annotator": "a", "verdict": "pass"},
            {"trace_id": "t2", "annotator": "a", "verdict": "fail"},
        ],
    )
    with duckdb.connect() as conn:
        report = check_file(conn, LABELS, path)
        assert report["rows"] == 2 and report["ok"] == 1
        assert report["quarantined"] == {"missing_critique": 1}
        verdicts = check_file(conn, verdicts_format("segment"), path)
        assert verdicts["ok"] == 2
        metrics = check_file(conn, online_metrics_format("segment"), path)
        assert metrics["ok"] == 0 and metrics["quarantined"] == {"missing_field": 2}


# --- sensors ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("sensor", "asset", "folder", "row"),
    [
        (
            verdict_files_sensor,
            external_verdict_files,
            "verdicts",
            {"subject_id": "s", "verdict": "pass"},
        ),
        (
            online_metrics_sensor,
            online_metric_files,
            "online_metrics",
            {"date": "2026-11-01", "system": "x", "metric": "m", "value": 1},
        ),
    ],
)
def test_drop_folder_sensors_start_a_run_only_when_files_change(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, sensor, asset, folder: str, row: dict
) -> None:
    monkeypatch.setenv("EVALS_DATA_DIR", str(tmp_path))
    path = write_jsonl(tmp_path / folder / "a.jsonl", [row])
    with DagsterInstance.ephemeral() as instance:
        result = materialize(
            [asset],
            instance=instance,
            resources={
                "warehouse": Warehouse(database=str(tmp_path / "wh.duckdb")),
                "project": project_with(tmp_path),
            },
        )
        assert result.success
        ctx = build_sensor_context(instance=instance)
        (skip,) = list(sensor(ctx))
        assert not isinstance(skip, RunRequest)
        write_jsonl(tmp_path / folder / "b.jsonl", [row])
        (req,) = list(sensor(build_sensor_context(instance=instance, cursor=ctx.cursor)))
        assert isinstance(req, RunRequest) and req.tags["files"] == "b.jsonl"
        assert path.exists()


def test_a_resample_never_turns_an_undefined_correlation_into_a_pass() -> None:
    from evals_pipeline.reports.correlation import below_alarm

    assert below_alarm(math.nan) and below_alarm(0.59) and not below_alarm(0.6)
    assert below_alarm(0.9, lower_is_better=True) and not below_alarm(-0.9, lower_is_better=True)


def test_evals_import_checks_a_file_then_drops_it_in_its_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from evals_pipeline.cli import main

    monkeypatch.setenv("EVALS_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("EVALS_CONFIG", str(REPO / "evals.yaml"))
    pointwise = write_csv(
        tmp_path / "expert.csv",
        [
            {"trace_id": "t1", "annotator": "ana", "verdict": "pass", "critique": ""},
            {"trace_id": "t2", "annotator": "ana", "verdict": "fail", "critique": ""},
        ],
    )
    # a pointwise file is not a pairwise import: refused, nothing copied
    assert main(["import", "pairwise", str(pointwise)]) == 1
    assert not (tmp_path / "data" / "labels").exists()
    # as labels: copied, and the bad row is announced with its reason
    assert main(["import", "labels", str(pointwise)]) == 0
    out = capsys.readouterr().out
    assert "2 rows, 1 ok, 1 to be quarantined (1 missing_critique)" in out
    assert "row 3: missing_critique" in out
    assert (tmp_path / "data" / "labels" / "expert.csv").read_bytes() == pointwise.read_bytes()
    # the same file again is fine; a different file of the same name needs --force
    assert main(["import", "labels", str(pointwise)]) == 0
    pointwise.write_text("trace_id,annotator,verdict\nt3,ana,pass\n")
    assert main(["import", "labels", str(pointwise)]) == 2
    assert main(["import", "labels", str(pointwise), "--force"]) == 0
    # a file where no row would be stored is not copied
    metrics = write_jsonl(tmp_path / "m.jsonl", [{"system": "v1", "metric": "m", "value": 1}])
    assert main(["import", "online-metrics", str(metrics)]) == 1
    assert not (tmp_path / "data" / "online_metrics" / "m.jsonl").exists()
    verdicts = write_jsonl(tmp_path / "vendor.jsonl", [{"trace_id": "t1", "verdict": "pass"}])
    assert main(["import", "verdicts", str(verdicts)]) == 0
    assert (tmp_path / "data" / "verdicts" / "vendor.jsonl").exists()
