"""Judges that stay calibrated (seed 002): each quarter's new labels re-validate every judge.

A simulated deployment labels half its traces in one quarter and half in the next. After
the first quarter's labels both reference judges are trusted. Between the quarters the
provider changes reference-judge-b under the same model string (the offline judge's
`drift:` api_base: it answers worse on every new call); the next quarter's labels are a
fresh test split, measured once, and turn it from trusted to not trusted, so it stops
voting and the `judge_trusted` gate fails. The stable judge stays trusted.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from datetime import date
from pathlib import Path

import pytest
import yaml

from evals_pipeline.paths import warehouse_path
from evals_pipeline.project import ProjectResource
from evals_pipeline.records import (
    CALIBRATION_TEST_USES,
    JUDGE_CALIBRATION,
    JUDGE_ENSEMBLE,
    RELEASE_GATES,
)
from evals_pipeline.simulator.traffic import SimulationConfig, simulate
from evals_pipeline.warehouse import connect
from evals_pipeline_tests.helpers import (
    lean_project_dict,
    run_calibration,
    run_daily,
    run_quarterly,
    run_reports,
)

REPO = Path(__file__).resolve().parents[1]
STABLE, DRIFTING = "offline/reference-judge", "offline/reference-judge-b"
Q1, Q2 = date(2026, 1, 1), date(2026, 4, 1)
LABELLED = {Q1: "2026-03-20T10:00:00Z", Q2: "2026-05-12T10:00:00Z"}
SIM = SimulationConfig(
    seed=29,
    start="2026-03-01",
    end="2026-03-06",
    traces_per_day=400,
    topics_per_category=30,
    n_users=500,
    label_count=900,
    malformed_rate=0.0,
)


def quarter_of(subject: str) -> date:
    return Q1 if hashlib.sha256(subject.encode()).digest()[0] % 2 else Q2


def deliver(root: Path, labels: Path, quarter: date) -> int:
    """The simulated experts' labels of the subjects that fall in `quarter`, dated in it."""
    labels.mkdir(exist_ok=True)
    n = 0
    for f in sorted((root / "labels").glob("*.jsonl")):
        lines = []
        for line in f.read_text().splitlines():
            row = json.loads(line)
            if quarter_of(row["trace_id"]) == quarter:
                lines.append(json.dumps({**row, "labelled_at": LABELLED[quarter]}))
        (labels / f"{f.stem}-{quarter:%Y-q%m}.jsonl").write_text("\n".join(lines) + "\n")
        n += len(lines)
    return n


def judges_on_test(con: object) -> dict[str, tuple]:
    return {
        r[0]: r[1:]
        for r in con.execute(  # type: ignore[attr-defined]
            f"""SELECT judge, test_since, n, trusted, trust_status, round(tpr, 3), round(tnr, 3)
                FROM {JUDGE_CALIBRATION} WHERE split = 'test' AND category = 'all'"""
        ).fetchall()
    }


@pytest.fixture(scope="module")
def quarters(tmp_path_factory: pytest.TempPathFactory) -> dict[str, object]:
    root = tmp_path_factory.mktemp("revalidation_traffic")
    simulate(SIM, root)
    data = tmp_path_factory.mktemp("revalidation")
    mp = pytest.MonkeyPatch()
    mp.setenv("EVALS_DATA_DIR", str(data))
    cfg = lean_project_dict()
    cfg["judges"]["min_test_labels"] = 80
    # Six days of simulated traffic hold few fails per window: the reference judges' TNR there
    # is about 0.7 (0.8 on the demo's quarters), so the bar sits below it; the drift is planted
    # far below it.
    cfg["judges"]["trust_threshold"] = 0.6
    (data / "evals.yaml").write_text(yaml.safe_dump(cfg))
    project = ProjectResource(path=str(data / "evals.yaml"))
    out: dict[str, object] = {}
    try:
        assert run_daily(root, SIM.start, SIM.end).success
        assert run_quarterly(root, "2026-01-01").success
        out["q1_labels"] = deliver(root, data / "labels", Q1)
        assert run_calibration(root, project=project).success
        assert run_reports(root, "2026-01-01", project=project).success
        with connect(warehouse_path(), read_only=True) as con:
            out["after_q1"] = judges_on_test(con)
            out["gate_q1"] = con.execute(
                f"SELECT status, evidence FROM {RELEASE_GATES} WHERE gate = 'judge_trusted'"
            ).fetchall()[0]
        # the provider changes reference-judge-b under the same name; a quarter of labels later
        drift = {"api_bases": {DRIFTING: "drift:0.45"}}
        out["q2_labels"] = deliver(root, data / "labels", Q2)
        assert run_calibration(root, project=project, **drift).success
        assert run_reports(root, "2026-01-01", project=project, **drift).success
        with connect(warehouse_path(), read_only=True) as con:
            out["after_q2"] = judges_on_test(con)
            out["gate_q2"] = con.execute(
                f"SELECT status, evidence FROM {RELEASE_GATES} WHERE gate = 'judge_trusted'"
            ).fetchall()[0]
            out["ensemble"] = con.execute(
                f"SELECT DISTINCT status FROM {JUDGE_ENSEMBLE} WHERE rubric = 'pass_fail'"
            ).fetchall()
            out["looks"] = con.execute(
                f"SELECT judge, test_since, forced FROM {CALIBRATION_TEST_USES} ORDER BY ALL"
            ).fetchall()
        # again, same labels: the quarter's test split is not looked at a second time
        assert run_calibration(root, project=project, **drift).success
        with connect(warehouse_path(), read_only=True) as con:
            out["looks_again"] = con.execute(
                f"SELECT count(*) FROM {CALIBRATION_TEST_USES}"
            ).fetchall()[0][0]
    finally:
        mp.undo()
        shutil.rmtree(root, ignore_errors=True)
    return out


def test_both_reference_judges_are_trusted_on_the_first_quarter(quarters: dict) -> None:
    after = quarters["after_q1"]
    for judge in (STABLE, DRIFTING):
        since, n, trusted, status, *_ = after[judge]
        assert since == Q1 and n >= 80 and trusted and status == "trusted", after
    assert quarters["gate_q1"][0] == "pass", quarters["gate_q1"]


def test_the_next_quarter_re_validates_and_the_drifted_judge_loses_trust(quarters: dict) -> None:
    after = quarters["after_q2"]
    since, n, trusted, status, tpr, tnr = after[DRIFTING]
    assert since == Q2 and n >= 80
    assert not trusted and status == "not_trusted" and min(tpr, tnr) < 0.6
    # the same model string was trusted a quarter ago: re-validation, not a first look
    assert quarters["after_q1"][DRIFTING][2]
    since, n, trusted, status, *_ = after[STABLE]
    assert since == Q2 and trusted and status == "trusted", after[STABLE]
    # it stops voting: two trusted judges were the quorum, one is too few
    status, evidence = quarters["gate_q2"]
    assert status == "fail" and "too few trusted judges" in evidence
    assert DRIFTING in evidence.split("reported, not voting")[1]
    assert quarters["ensemble"] == [("too_few_trusted",)]


def test_each_quarters_test_split_is_looked_at_once(quarters: dict) -> None:
    looks = quarters["looks"]
    for judge in (STABLE, DRIFTING):
        assert (judge, Q1, False) in looks and (judge, Q2, False) in looks
    assert not any(forced for *_, forced in looks)
    assert quarters["looks_again"] == len(looks)
    assert quarters["q1_labels"] > 200 and quarters["q2_labels"] > 200
