"""Synthetic inputs from dimension tuples: the tuple draw and its floors, de-duplication, and
the whole path on a small simulated deployment: generation through litellm, a realism filter
that admits nothing until calibration trusts it, its calibration in judge_calibration, the
admitted inputs in the active pool (never the holdout) and apart in the segment report."""

from __future__ import annotations

import json
import shutil
from datetime import date
from pathlib import Path

import duckdb
import pytest
import yaml
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.metrics.pairwise import cosine_similarity

from evals_pipeline.paths import warehouse_path
from evals_pipeline.pools.synthetic import admit_synthetic
from evals_pipeline.project import DimensionError, ProjectResource, load_dimensions
from evals_pipeline.records import (
    GOLDEN_CASES,
    GOLDEN_POOLS,
    JUDGE_CALIBRATION,
    POOL_EVENTS,
    SEGMENT_REPORT,
    SYNTHETIC_INPUTS,
)
from evals_pipeline.simulator.references import SimulatorReferences
from evals_pipeline.simulator.synthetic import label_synthetic_inputs
from evals_pipeline.synthetic.dimensions import (
    Dimensions,
    below_floor,
    coverage,
    sample_tuples,
    synthetic_id,
)
from evals_pipeline.synthetic.generation import duplicates, normalise
from evals_pipeline_tests.helpers import (
    check_results,
    lean_project_dict,
    run_calibration,
    run_daily,
    run_quarterly,
    run_reports,
    run_synthetic,
)

REPO = Path(__file__).resolve().parents[1]
DIMS = Dimensions(
    "a product",
    "intent",
    {
        "intent": ["factual_lookup", "how_to", "reasoning", "refusal_sensitive", "edge_case"],
        "persona": ["new_user", "admin", "developer", "finance", "student", "agent"],
        "difficulty": ["simple", "multi_step", "ambiguous"],
    },
)


def test_every_value_meets_its_floor_and_no_tuple_repeats() -> None:
    for n, floor in ((30, 5), (47, 3), (90, 1)):
        tuples = sample_tuples(DIMS, n, floor, seed=3)
        assert len(tuples) == n
        assert below_floor(tuples, DIMS, floor) == []
        assert len({tuple(sorted(t.items())) for t in tuples}) == n  # 90 combinations exist
        # spread as evenly as the draw allows
        for counts in coverage(tuples, DIMS).values():
            assert max(counts.values()) - min(counts.values()) <= 1
    assert sample_tuples(DIMS, 30, 5, seed=3) == sample_tuples(DIMS, 30, 5, seed=3)
    assert sample_tuples(DIMS, 30, 5, seed=3) != sample_tuples(DIMS, 30, 5, seed=4)
    # more tuples than combinations: every combination once before any repeats
    many = sample_tuples(DIMS, 100, 1, seed=3)
    assert len({tuple(sorted(t.items())) for t in many[:90]}) == 90
    with pytest.raises(DimensionError, match="floor"):
        sample_tuples(DIMS, 17, 3, seed=3)  # 6 personas x 3 > 17
    assert synthetic_id(many[0], 0) != synthetic_id(many[0], 1)
    assert synthetic_id(many[0], 0) == synthetic_id(dict(reversed(many[0].items())), 0)


def test_a_dimension_file_is_checked_against_the_taxonomy(tmp_path: Path) -> None:
    dims = load_dimensions(
        REPO / "evals.dimensions.yaml",
        ["factual_lookup", "how_to", "reasoning", "refusal_sensitive", "edge_case"],
    )
    assert dims.category == "intent" and len(dims.values) == 3
    bad = tmp_path / "d.yaml"
    bad.write_text("category: intent\ndimensions: {intent: [astrology], persona: [a]}\n")
    with pytest.raises(DimensionError, match="astrology"):
        load_dimensions(bad, ["how_to"])
    bad.write_text("dimensions: {intent: [how_to]}\n")
    with pytest.raises(DimensionError, match="category"):
        load_dimensions(bad, ["how_to"])


def test_the_project_file_refuses_a_dimension_file_it_cannot_use(tmp_path: Path) -> None:
    from evals_pipeline.project import ProjectConfig, problems

    cfg = lean_project_dict()
    cfg["synthetic"]["dimensions"] = str(tmp_path / "missing.yaml")
    assert any("no file" in p for p in problems(ProjectConfig.model_validate(cfg)))
    (tmp_path / "d.yaml").write_text("category: c\ndimensions: {c: [how_to], p: [a, b, c, d]}\n")
    cfg["synthetic"].update(dimensions=str(tmp_path / "d.yaml"), tuples=6, floor=2)
    assert any(
        "cannot give each of 4 values 2" in p for p in problems(ProjectConfig.model_validate(cfg))
    )


def test_duplicates_are_exact_after_normalising_or_near_by_tfidf_cosine() -> None:
    texts = [
        "How do I share a folder with my team?",
        "how do I share a folder with my team",
        None,
        "Hi, how do I share a folder with my whole team?",
        "Where can I download last month's invoice?",
        "Where can I download my invoices?",
    ]
    ids = [f"s{i}" for i in range(len(texts))]
    found = duplicates(texts, ids, ["where can I download last month's invoice!"], ["gc_1"], 0.6)
    assert [f[0] for f in found] == [None, "duplicate", None, "near_duplicate", "duplicate", None]
    assert found[1][2] == "s0" and found[3][2] == "s0" and found[4][2] == "gc_1"
    # the similarity is scikit-learn's cosine over the same TF-IDF vectors
    corpus = [normalise(t) for t in texts if t] + [
        normalise("where can I download last month's invoice!")
    ]
    vectors = TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True).fit_transform(corpus)
    assert found[3][1] == pytest.approx(cosine_similarity(vectors[2], vectors[0])[0, 0], abs=1e-4)
    assert cosine_similarity(vectors[4], vectors[3])[0, 0] < 0.6  # s5 is kept: not near


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory, small_sim: Path) -> dict[str, object]:
    """The small simulation ingested; synthetic inputs generated before and after the expert
    labelled them and calibration measured the filter; then a rotation and the reports."""
    data = tmp_path_factory.mktemp("synthetic")
    mp = pytest.MonkeyPatch()
    mp.setenv("EVALS_DATA_DIR", str(data))
    cfg = lean_project_dict()
    cfg["synthetic"] = {
        **cfg["synthetic"],
        "dimensions": str(REPO / "evals.dimensions.yaml"),
        "tuples": 40,
        "floor": 2,
        "variants": 3,
    }
    (data / "evals.yaml").write_text(yaml.safe_dump(cfg))
    project = ProjectResource(path=str(data / "evals.yaml"))
    out: dict[str, object] = {}
    try:
        assert run_daily(small_sim, "2026-03-01", "2026-03-06").success
        first = run_synthetic(small_sim, project=project)
        assert first.success
        out["first_checks"] = check_results(first)
        with duckdb.connect(str(warehouse_path()), read_only=True) as con:
            out["first"] = con.execute(
                f"SELECT * FROM {SYNTHETIC_INPUTS} ORDER BY synthetic_id"
            ).df()
        again = run_synthetic(small_sim, project=project)
        out["again_calls"] = _metadata(again, SYNTHETIC_INPUTS.name, "generation_calls")
        (data / "labels").mkdir()
        for f in (small_sim / "labels").glob("*.jsonl"):
            shutil.copy(f, data / "labels" / f.name)
        out["labels"] = label_synthetic_inputs(
            warehouse_path(), small_sim, data / "labels" / "sim_expert_synthetic.jsonl"
        )
        assert run_calibration(small_sim, project=project).success
        second = run_synthetic(small_sim, project=project)
        assert second.success
        out["second_checks"] = check_results(second)
        assert run_quarterly(small_sim, "2026-01-01", project=project).success
        # the admission again (as a run again of the rotation makes it): nothing enters twice
        with duckdb.connect(str(warehouse_path())) as con:
            SimulatorReferences(root=str(small_sim)).load(con)
            out["again_admitted"] = admit_synthetic(
                con, "again", date(2026, 1, 1), date(2026, 4, 1)
            )
        assert run_reports(small_sim, "2026-01-01", project=project).success
        with duckdb.connect(str(warehouse_path()), read_only=True) as con:
            for name, sql in {
                "second": f"SELECT * FROM {SYNTHETIC_INPUTS} ORDER BY synthetic_id",
                "calibration": f"SELECT * FROM {JUDGE_CALIBRATION} WHERE rubric = 'realism'",
                "pools": f"SELECT * FROM {GOLDEN_POOLS}",
                "cases": f"SELECT * FROM {GOLDEN_CASES}",
                "events": f"SELECT * FROM {POOL_EVENTS} WHERE event = 'entered_active'",
                "segments": f"SELECT * FROM {SEGMENT_REPORT} WHERE scorer = 'ensemble'",
            }.items():
                out[name] = con.execute(sql).df()
    finally:
        mp.undo()
    return out


def _metadata(result, asset: str, key: str) -> object:
    for event in result.get_asset_materialization_events():
        mat = event.event_specific_data.materialization
        if mat.asset_key.to_user_string() == asset:
            return mat.metadata[key].value
    raise AssertionError(f"no materialization of {asset}")


def test_nothing_is_admitted_before_the_filter_is_trusted(world: dict) -> None:
    first = world["first"]
    assert len(first) == 40 * 3
    assert not (first["status"] == "admitted").any()
    assert "awaiting_trusted_filter" in set(first["status"])
    assert set(first["status"]) <= {
        "awaiting_trusted_filter",
        "duplicate",
        "near_duplicate",
        "generation_error",
    }
    assert first["filter_verdict"].isna().all()
    assert first["cost_usd"].sum() > 0  # the generator's calls are costed
    assert world["first_checks"]["synthetic_coverage"] is False  # nothing admitted yet
    # run again on the same tuples: every generation comes from the cache
    assert world["again_calls"]["made"] == 0 and world["again_calls"]["cached"] == 120


def test_the_filter_is_calibrated_in_judge_calibration(world: dict) -> None:
    cal = world["calibration"]
    assert world["labels"] > 0
    test = cal[(cal["split"] == "test") & (cal["category"] == "all")]
    assert list(test["judge"]) == ["offline/realism-judge"]
    row = test.iloc[0]
    assert row["n"] >= 20 and bool(row["trusted"])
    assert row["tpr"] >= 0.8 and row["tnr"] >= 0.8


def test_admitted_inputs_meet_the_floors_and_hold_no_near_duplicates(world: dict) -> None:
    second = world["second"]
    admitted = second[second["status"] == "admitted"]
    assert len(admitted) > 0
    assert world["second_checks"] == {"synthetic_coverage": True, "synthetic_unique": True}
    dims = load_dimensions(
        REPO / "evals.dimensions.yaml",
        ["factual_lookup", "how_to", "reasoning", "refusal_sensitive", "edge_case"],
    )
    assert below_floor([json.loads(d) for d in admitted["dimensions"]], dims, 2) == []
    # one input per tuple, and no two admitted inputs near each other
    assert admitted["dimensions"].is_unique
    # (TF-IDF fitted as the run fits it: on every generated input; the active pool was empty)
    corpus = [normalise(t) for t in second["input"].dropna()]
    vec = TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True).fit(corpus)
    sims = cosine_similarity(vec.transform([normalise(t) for t in admitted["input"]]))
    sims[range(len(admitted)), range(len(admitted))] = 0
    assert sims.max() < 0.8
    # the filter turned the generator's artefacts away
    rejected = second[second["status"] == "filter_rejected"]
    assert len(rejected) and rejected["filter_verdict"].eq("fail").all()
    assert (admitted["filter_verdict"] == "pass").all()
    assert admitted["filter_judges"].eq("offline/realism-judge").all()


def test_admitted_inputs_enter_the_active_pool_as_synthetic_never_the_holdout(world: dict) -> None:
    second, pools, cases = world["second"], world["pools"], world["cases"]
    synthetic = pools[pools["why"] == "synthetic"]
    admitted = set(second.loc[second["status"] == "admitted", "synthetic_id"])
    assert set(synthetic["trace_id"]) <= admitted and len(synthetic) > 0
    assert set(synthetic["pool"]) == {"active"}
    assert not pools[pools["pool"] == "holdout"]["trace_id"].str.startswith("syn_").any()
    assert set(synthetic["user_segment"]) == {"synthetic"}
    # with the tuple: the case's source id is the synthetic input, which carries its tuple
    content = cases.set_index("case_id").loc[synthetic["case_id"]]
    assert content["reference_good"].notna().all() and content["output"].isna().all()
    inputs = second.set_index("synthetic_id")
    assert (
        content["input"].to_numpy() == inputs.loc[synthetic["trace_id"], "input"].to_numpy()
    ).all()
    # entered once, although the admission ran twice
    assert world["again_admitted"]["entered"] == 0
    events = world["events"]
    assert events[events["case_id"].isin(synthetic["case_id"])]["case_id"].is_unique


def test_the_segment_report_shows_synthetic_inputs_apart(world: dict) -> None:
    seg, pools = world["segments"], world["pools"]
    apart = seg[seg["level"] == "synthetic"]
    assert len(apart) and set(apart["user_segment"]) == {"synthetic"}
    assert apart["regressed"].isna().all()  # in no gate
    synthetic_cases = (pools["why"] == "synthetic") & (pools["pool"] == "active")
    per_version = apart[apart["category"] == "all"].set_index("app_version")["n"]
    assert (per_version <= synthetic_cases.sum()).all() and per_version.max() > 0
    # the traffic's category rows hold no synthetic case
    traffic_cases = ((pools["why"] != "synthetic") & (pools["pool"] == "active")).sum()
    category = seg[seg["level"] == "category"].groupby("app_version")["n"].sum()
    assert (category <= traffic_cases).all()
    assert "synthetic" not in set(seg[seg["level"] == "cell"]["user_segment"])
