"""The project file: one file points the whole pipeline at a product, with no code changes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import UTC, date, datetime
from pathlib import Path

import duckdb
import pytest
import yaml
from dagster import build_schedule_context

from evals_pipeline.cli import main as evals
from evals_pipeline.definitions import build_definitions, defs, resources
from evals_pipeline.paths import REPO_ROOT, warehouse_path
from evals_pipeline.project import ProjectError, ProjectResource, load_project
from evals_pipeline.records import (
    CALIBRATION_VERDICTS,
    CATEGORIZER_ACCURACY,
    CORRECTED_PASS_RATES,
    DEFAULT_CATEGORIES,
    HUMAN_LABELS,
    JUDGE_CACHE,
    JUDGE_CALIBRATION,
    JUDGE_ENSEMBLE,
    JUDGE_VERDICTS,
    QUARANTINED_TRACES,
    RELEASE_GATES,
    TRACES,
)
from evals_pipeline.simulator.mock_server import MockConfig, MockServer
from evals_pipeline.simulator.traffic import SimulationConfig, simulate

EXPORT = SimulationConfig(
    seed=31,
    start="2026-03-01",
    end="2026-03-06",
    traces_per_day=250,
    topics_per_category=30,
    n_users=400,
    label_count=150,
    malformed_rate=0.01,
)
APP_VERSIONS = {"v1": "openai/app-v1", "v2": "openai/app-v2"}


def write_project(
    path: Path, export: Path, api_base: str, panel: list[str], **extra: object
) -> Path:
    body = {
        "source": {
            "kind": "files",
            "path": str(export / "export"),
            "references": str(export / "reviewed"),
        },
        "app_versions": [
            {
                "name": "v1",
                "model": APP_VERSIONS["v1"],
                "role": "baseline",
                "system_prompt": "Be brief.",
            },
            {
                "name": "v2",
                "model": APP_VERSIONS["v2"],
                "role": "candidate",
                "system_prompt": "prompt.txt",
            },
        ],
        "judges": {
            "panel": panel,
            "dimensional_rubric": "",
            "pairwise": [],
            "classifier": False,
            "suggester": panel[0],
        },
        "providers": {
            "openai": {
                "api_base": api_base,
                "api_key_env": "EVALS_TEST_KEY",
                "max_concurrency": 8,
                "max_retries": 1,
                "timeout_s": 10,
            }
        },
        **extra,
    }
    (path.parent / "prompt.txt").write_text("You are the candidate. Answer fully.\n")
    path.write_text(yaml.safe_dump(body, sort_keys=False))
    return path


@pytest.fixture(scope="module")
def export(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A simulated product's export, laid out as a team's nightly export would be: day
    folders of traces and feedback, a file of reviewed references, label files. No
    simulator truth is beside it."""
    sim = tmp_path_factory.mktemp("sim")
    simulate(EXPORT, sim)
    root = tmp_path_factory.mktemp("product")
    for stream in ("traces", "feedback"):
        (root / "export" / stream).mkdir(parents=True)
        for day in (sim / stream).iterdir():
            target = root / "export" / stream / day.name
            target.mkdir()
            for f in day.iterdir():
                (target / f.name).write_bytes(f.read_bytes())
    refs = (
        duckdb.connect()
        .execute(
            f"""SELECT t.trace_id, t.topic_id AS case_key, k.reference_good, k.reference_borderline
            FROM read_parquet('{sim}/truth/trace_truth.parquet') t
            JOIN read_parquet('{sim}/truth/topics.parquet') k USING (topic_id)"""
        )
        .fetchall()
    )
    (root / "reviewed").mkdir()
    with (root / "reviewed" / "reviewed.jsonl").open("w") as f:
        # a team has reviewed references for some traces only (two in three here)
        for i, (trace_id, key, good, border) in enumerate(refs):
            if i % 3 == 0:
                continue
            f.write(
                json.dumps(
                    {
                        "trace_id": trace_id,
                        "case_key": key,
                        "reference_good": good,
                        "reference_borderline": border,
                    }
                )
                + "\n"
            )
    (root / "labels").mkdir()
    for f in (sim / "labels").glob("*.jsonl"):
        (root / "labels" / f.name).write_bytes(f.read_bytes())
    return root


def _run(job: str, project: ProjectResource, **kwargs: object):
    # The code location as it loads with this project file (its assets may differ).
    built = build_definitions(project)
    return built.resolve_job_def(job).execute_in_process(resources=resources(project), **kwargs)


def test_a_files_project_at_a_loopback_provider_runs_every_job_and_the_panel_follows_the_file(
    export: Path, data_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("EVALS_TEST_KEY", "sk-test-not-a-secret")
    _copy_labels(export, data_dir)
    panel = ["openai/judge-a", "openai/judge-b", "openai/judge-c"]
    with MockServer(MockConfig(latency_s=0.0)) as server:
        path = write_project(data_dir / "evals.yaml", export, server.api_base, panel)
        project = ProjectResource(path=str(path))
        daily = _run(
            "evals_daily",
            project,
            tags={
                "dagster/asset_partition_range_start": EXPORT.start,
                "dagster/asset_partition_range_end": EXPORT.end,
            },
        )
        assert daily.success
        # the quarterly run as its schedule starts it
        schedule = defs.resolve_schedule_def("evals_quarterly_schedule")
        request = schedule.evaluate_tick(
            build_schedule_context(scheduled_execution_time=datetime(2026, 4, 1, 0, 5))
        ).run_requests[0]
        assert request.partition_key == "2026-01-01"
        assert _run("evals_quarterly", project, partition_key=request.partition_key).success
        calibration = _run("evals_calibration", project)
        assert calibration.success
        # labels on traces without references are counted, not a crash
        skipped = next(
            e.step_materialization_data.materialization.metadata["labels_skipped"].value
            for e in calibration.get_asset_materialization_events()
            if e.asset_key.path[-1] == CALIBRATION_VERDICTS.name
        )
        assert skipped["on a trace without references (add them to the reviewed files)"] > 10
        # metadata tells the truth: the row count is the table's, not the previewed slice's
        reported = next(
            e.step_materialization_data.materialization.metadata["dagster/row_count"].value
            for e in calibration.get_asset_materialization_events()
            if e.asset_key.path[-1] == JUDGE_CALIBRATION.name
        )
        assert _run("evals_reports", project, partition_key="2026-01-01").success
        models = {b["model"] for b in server.stats.bodies}
        # every candidate and judge call went to the configured provider, under its name
        assert models == {"app-v1", "app-v2", "judge-a", "judge-b", "judge-c"}
        system_prompts = {
            b["messages"][0]["content"] for b in server.stats.bodies if b["model"] == "app-v2"
        }
        assert system_prompts == {"You are the candidate. Answer fully."}  # read from its file
        con = duckdb.connect(str(warehouse_path()), read_only=True)
        calibrated = {
            r[0] for r in con.execute(f"SELECT DISTINCT judge FROM {JUDGE_CALIBRATION}").fetchall()
        }
        gates = dict(con.execute(f"SELECT gate, evidence FROM {RELEASE_GATES}").fetchall())
        rows = con.execute(f"SELECT count(*) FROM {JUDGE_CALIBRATION}").fetchall()[0][0]
        con.close()
        assert calibrated == set(panel)
        assert reported == rows > len(panel)
        assert gates["decision"].startswith("v2 vs v1")  # the file's roles

        # a new panel in the file replaces the panel in every stage on the next runs
        new_panel = ["openai/judge-a", "openai/judge-d"]
        write_project(path, export, server.api_base, new_panel)
        assert _run("evals_quarterly", project, partition_key="2026-01-01").success
        assert _run("evals_calibration", project).success
        assert _run("evals_reports", project, partition_key="2026-01-01").success
    con = duckdb.connect(str(warehouse_path()), read_only=True)
    try:
        for table in (
            JUDGE_VERDICTS.name,
            CALIBRATION_VERDICTS.name,
            JUDGE_CALIBRATION.name,
            CORRECTED_PASS_RATES.name,
        ):
            judges = {r[0] for r in con.execute(f"SELECT DISTINCT judge FROM {table}").fetchall()}
            assert judges == set(new_panel), table
        # the ensemble is of the new panel's judges: those trusted vote, the others are
        # reported beside the verdict
        for voting, beside in con.execute(
            f"SELECT DISTINCT n_judges, untrusted_votes FROM {JUDGE_ENSEMBLE}"
        ).fetchall():
            named = [v.split(": ")[0] for v in (beside or "").split(", ") if v]
            assert voting + len(named) == 2 and set(named) <= set(new_panel)
        # the old judges stay as history, keyed by judge
        history = {
            r[0] for r in con.execute(f"SELECT DISTINCT model FROM {JUDGE_CACHE}").fetchall()
        }
        assert set(panel) | set(new_panel) <= history
    finally:
        con.close()


def test_a_run_over_budget_stops_before_its_first_paid_call(
    export: Path, data_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("EVALS_TEST_KEY", "sk-test-not-a-secret")
    with MockServer(MockConfig(latency_s=0.0)) as server:
        path = write_project(
            data_dir / "evals.yaml",
            export,
            server.api_base,
            ["openai/gpt-4o"],
            budget={"max_usd_per_run": 0.01},
        )
        body = yaml.safe_load(path.read_text())
        for v in body["app_versions"]:  # priced models, so the estimate means something
            v["model"] = "openai/gpt-4o"
        path.write_text(yaml.safe_dump(body))
        project = ProjectResource(path=str(path))
        tags = {
            "dagster/asset_partition_range_start": EXPORT.start,
            "dagster/asset_partition_range_end": EXPORT.end,
        }
        assert _run("evals_daily", project, tags=tags).success
        result = _run("evals_quarterly", project, partition_key="2026-01-01", raise_on_error=False)
        assert not result.success
        assert server.stats.requests == 0  # nothing was spent
    failure = next(e for e in result.all_events if e.event_type_value == "STEP_FAILURE")
    message = str(failure.event_specific_data.error)
    assert "over budget.max_usd_per_run $0.01" in message and "Nothing was called" in message


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (
            lambda b: b.update(budgets={"max_usd_per_run": 5}),
            "evals.yaml: budgets: unknown key (did you mean 'budget'?)",
        ),
        (
            lambda b: b["providers"]["openai"].update(rmp=10),
            "evals.yaml: providers.openai.rmp: unknown key (did you mean 'rpm'?)",
        ),
        (
            lambda b: b["providers"]["openai"].update(max_concurrency="many"),
            "evals.yaml: providers.openai.max_concurrency: Input should be a valid integer",
        ),
        (
            lambda b: b["judges"]["panel"].append("antropic/claude"),
            "evals.yaml: judges.panel[3]: provider 'antropic' is not under providers (known: openai)",
        ),
        (
            lambda b: b["providers"]["openai"].update(api_key_env="EVALS_UNSET_KEY"),
            "evals.yaml: providers.openai.api_key_env: the environment variable EVALS_UNSET_KEY is not set",
        ),
    ],
)
def test_an_invalid_project_file_gives_one_clear_line_in_validate_and_at_load(
    export: Path,
    tmp_path: Path,
    change,
    expected: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("EVALS_TEST_KEY", "sk-test-not-a-secret")
    monkeypatch.delenv("EVALS_UNSET_KEY", raising=False)
    path = write_project(
        tmp_path / "evals.yaml",
        export,
        "http://127.0.0.1:9/v1",
        ["openai/a", "openai/b", "openai/c"],
    )
    body = yaml.safe_load(path.read_text())
    change(body)
    path.write_text(yaml.safe_dump(body))
    with pytest.raises(ProjectError) as exc:
        load_project(path)
    assert len(str(exc.value).splitlines()) == 1 and str(exc.value).startswith(expected)
    assert evals(["validate", str(path)]) == 1
    assert capsys.readouterr().err.startswith(expected)
    # the code location refuses to load with the same line
    env = {**os.environ, "EVALS_CONFIG": str(path)}
    loaded = subprocess.run(
        [sys.executable, "-c", "import evals_pipeline.definitions"],
        env=env,
        capture_output=True,
        text=True,
        cwd=REPO_ROOT,
        timeout=120,
    )
    assert loaded.returncode != 0 and expected in loaded.stderr


def test_init_writes_a_starter_that_validates_once_its_keys_and_prompts_exist(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "evals.yaml"
    assert evals(["init", str(path)]) == 0
    assert evals(["init", str(path)]) == 2  # never overwrites by accident
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    assert evals(["validate", str(path)]) == 1
    err = capsys.readouterr().err
    assert "providers.openai.api_key_env: the environment variable OPENAI_API_KEY is not set" in err
    monkeypatch.setenv("OPENAI_API_KEY", "sk-x")
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-y")
    (tmp_path / "prompts").mkdir()
    for v in ("v2", "v3"):
        (tmp_path / "prompts" / f"{v}.txt").write_text("Answer well.")
    assert evals(["validate", str(path)]) == 0
    assert "panel of 3" in capsys.readouterr().out


def test_reports_follow_a_successful_quarterly_or_calibration_run() -> None:
    from evals_pipeline.partitions import quarterly_partitions
    from evals_pipeline.reports.definitions import reports_request

    sensor = defs.resolve_sensor_def("reports_after_evaluation")
    assert sensor.job_name == "evals_reports"
    after_quarterly = reports_request("r1", "2026-04-01")
    assert (
        after_quarterly.partition_key == "2026-04-01"
        and after_quarterly.run_key == "reports-after-r1"
    )
    after_calibration = reports_request("r2", None)
    assert after_calibration.partition_key == quarterly_partitions.get_partition_keys()[-1]


def test_an_otel_project_runs_every_job_from_the_project_file_alone(
    export: Path, data_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The same product's traffic as OpenTelemetry GenAI spans in one flat folder (OTLP JSON,
    as the Collector writes it): `source.kind: otel` and the attribute paths in the file are
    all it takes for daily, quarterly, calibration and reports."""
    from evals_pipeline.simulator.otel import write_day

    monkeypatch.setenv("EVALS_TEST_KEY", "sk-test-not-a-secret")
    spans_dir = data_dir / "otel_export"
    for day in sorted((export / "export" / "traces").iterdir()):
        out = write_day(sorted(day.iterdir()), spans_dir / f"spans-{day.name[3:]}.jsonl")
        assert out > 0
    _hide_every_third_category(spans_dir)
    _run_every_job_on_a_span_source(
        export,
        data_dir,
        {"kind": "otel", "path": str(spans_dir), "trace_id_from": ["app.trace_id"]},
        {
            "category_from": "app.category",
            "segment_from": {"plan": "app.user.plan", "tenure": "app.user.tenure"},
            "categorizer": {"kind": "classifier", "min_confidence": 0.4},
        },
    )
    con = duckdb.connect(str(warehouse_path()), read_only=True)
    try:
        sources = dict(
            con.execute(f"SELECT category_source, count(*) FROM {TRACES} GROUP BY 1").fetchall()
        )
        flat = duckdb.connect()
        flat_rows = flat.execute(
            f"SELECT count(*) FROM read_json_auto('{export}/export/traces/*/*.jsonl', ignore_errors=true)"
        ).fetchall()[0][0]
        flat_rows += flat.execute(
            f"SELECT count(*) FROM read_parquet('{export}/export/traces/*/*.parquet')"
        ).fetchall()[0][0]
        judged = con.execute(f"SELECT count(DISTINCT judge) FROM {JUDGE_CALIBRATION}").fetchall()
        accuracy = dict(
            con.execute(f"SELECT category, accuracy FROM {CATEGORIZER_ACCURACY}").fetchall()
        )
        gates = dict(con.execute(f"SELECT gate, evidence FROM {RELEASE_GATES}").fetchall())
        # the app's own ids: the label files (keyed by them) reached calibration
        labelled = con.execute(
            f"SELECT count(*) FROM {HUMAN_LABELS} l JOIN {TRACES} t ON t.trace_id = l.subject_id"
        ).fetchall()[0][0]
    finally:
        con.close()
    # two in three categories derived from attributes, the rest assigned by the classifier
    assert 0.6 * flat_rows < sources["attribute"] < 0.7 * flat_rows
    by_classifier = sum(n for s, n in sources.items() if s.startswith("classifier:"))
    assert by_classifier > 0.8 * (flat_rows - sources["attribute"] - sources.get("none", 0) - 20)
    assert accuracy["all"] > 0.8 and set(accuracy) == {"all", *DEFAULT_CATEGORIES}
    assert judged == [(2,)] and gates["decision"].startswith("v2 vs v1")
    assert labelled > 50


def _hide_every_third_category(folder: Path) -> None:
    """Drop the category attribute from every third root span, as an export from a product
    that tags only some requests would have it."""
    n = 0
    for path in sorted(folder.iterdir()):
        lines = []
        for line in path.read_text().splitlines():
            try:
                doc = json.loads(line)
            except ValueError:
                lines.append(line)
                continue
            for rs in doc.get("resourceSpans", []) if isinstance(doc, dict) else []:
                for ss in rs["scopeSpans"]:
                    for span in ss["spans"]:
                        if span["name"].startswith("invoke_agent"):
                            n += 1
                            if n % 3 == 0:
                                span["attributes"] = [
                                    a for a in span["attributes"] if a["key"] != "app.category"
                                ]
            lines.append(json.dumps(doc))
        path.write_text("\n".join(lines) + "\n")


def _interactions(export: Path) -> list:
    """The export's valid flat traces as interactions for the SDK-made fixtures."""
    from evals_pipeline_tests.span_exports import Interaction

    con = duckdb.connect()
    rows = con.execute(
        f"""SELECT trace_id, ts, session_id, user_id, app_version, category, user_segment,
                  input::VARCHAR, output, input_tokens, output_tokens, cost_usd, latency_ms
        FROM read_json('{export}/export/traces/*/*.jsonl', ignore_errors = true,
                       columns = {{trace_id: 'VARCHAR', ts: 'TIMESTAMPTZ', session_id: 'VARCHAR',
                       user_id: 'VARCHAR', app_version: 'VARCHAR', category: 'VARCHAR',
                       user_segment: 'VARCHAR', input: 'JSON', output: 'VARCHAR',
                       input_tokens: 'BIGINT', output_tokens: 'BIGINT', cost_usd: 'DOUBLE',
                       latency_ms: 'DOUBLE'}})
        WHERE trace_id IS NOT NULL AND ts IS NOT NULL AND output IS NOT NULL AND input IS NOT NULL
        ORDER BY trace_id"""
    ).fetchall()
    out = []
    for (
        key,
        ts,
        session,
        user,
        version,
        category,
        segment,
        text,
        answer,
        tin,
        tout,
        cost,
        lat,
    ) in rows:
        messages = json.loads(text)
        turns = (
            [(m["role"], m["content"]) for m in messages]
            if isinstance(messages, list)
            else [("user", str(messages))]
        )
        plan, _, tenure = (segment or "").partition("_")
        out.append(
            Interaction(
                key, ts, turns, answer, app_version=version, session=session, user=user,
                category=category, plan=plan or None, tenure=tenure or None,
                input_tokens=tin or 0, output_tokens=tout or 0, cost_usd=cost or 0.0,
                latency_ms=lat or 0.0,
            )
        )  # fmt: skip
    return out


@pytest.mark.parametrize("kind", ["openinference", "langfuse"])
def test_an_openinference_or_langfuse_project_runs_every_job_from_the_project_file_alone(
    kind: str, export: Path, data_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The product's traffic as OpenInference spans (SDK + conventions, OTLP JSON) or as a
    Langfuse export: daily, quarterly, calibration and reports from the project file."""
    from evals_pipeline_tests.span_exports import (
        langfuse_records,
        openinference_spans,
        otlp_json_lines,
        write_lines,
    )

    monkeypatch.setenv("EVALS_TEST_KEY", "sk-test-not-a-secret")
    interactions = _interactions(export)
    folder = data_dir / f"{kind}_export"
    if kind == "openinference":
        write_lines(folder / "traces.jsonl", otlp_json_lines(openinference_spans(interactions)))
    else:
        write_lines(
            folder / "export.jsonl",
            [json.dumps(r, default=str) for r in langfuse_records(interactions)],
        )
    source: dict[str, object] = {
        "kind": kind,
        "path": str(folder),
        "trace_id_from": ["metadata.id"],
    }
    if kind == "openinference":
        source["app_version_from"] = ["service.version"]
    _run_every_job_on_a_span_source(
        export,
        data_dir,
        source,
        {
            "category_from": "metadata.intent",
            "segment_from": {"plan": "metadata.plan", "tenure": "metadata.tenure"},
        },
    )
    con = duckdb.connect(str(warehouse_path()), read_only=True)
    try:
        stored, attributed, versions = con.execute(
            f"""SELECT count(*), count(*) FILTER (WHERE category_source = 'attribute'),
                      list(DISTINCT app_version ORDER BY app_version) FROM {TRACES}"""
        ).fetchall()[0]
        gates = dict(con.execute(f"SELECT gate, evidence FROM {RELEASE_GATES}").fetchall())
        labelled = con.execute(
            f"SELECT count(*) FROM {HUMAN_LABELS} l JOIN {TRACES} t ON t.trace_id = l.subject_id"
        ).fetchall()[0][0]
        quarantined = dict(
            con.execute(f"SELECT reason, count(*) FROM {QUARANTINED_TRACES} GROUP BY 1").fetchall()
        )
    finally:
        con.close()
    # every interaction of the run's days is stored or quarantined: a flat export folder is
    # partitioned by start time, so a planted trace from another day belongs to that day
    first, last = date.fromisoformat(EXPORT.start), date.fromisoformat(EXPORT.end)
    in_days = [i for i in interactions if first <= i.ts.astimezone(UTC).date() <= last]
    assert stored + sum(quarantined.values()) == len(in_days)
    assert set(quarantined) <= {"duplicate_trace_id"}
    assert attributed >= stored - 2  # the planted unknown category is uncategorized, not lost
    assert versions == ["v1", "v2"] and gates["decision"].startswith("v2 vs v1")
    assert labelled > 50


def _copy_labels(export: Path, data_dir: Path) -> None:
    labels = data_dir / "labels"
    labels.mkdir()
    for f in (export / "labels").iterdir():
        (labels / f.name).write_bytes(f.read_bytes())


def _run_every_job_on_a_span_source(
    export: Path, data_dir: Path, source: dict[str, object], taxonomy: dict[str, object]
) -> None:
    """The project file with this source and taxonomy (two judges at the loopback mock) runs
    daily over the export's days, then quarterly, calibration and reports."""
    _copy_labels(export, data_dir)
    with MockServer(MockConfig(latency_s=0.0)) as server:
        path = write_project(
            data_dir / "evals.yaml",
            export,
            server.api_base,
            ["openai/judge-a", "openai/judge-b"],
            taxonomy=taxonomy,
        )
        body = yaml.safe_load(path.read_text())
        body["source"] |= source
        path.write_text(yaml.safe_dump(body, sort_keys=False))
        project = ProjectResource(path=str(path))
        tags = {
            "dagster/asset_partition_range_start": EXPORT.start,
            "dagster/asset_partition_range_end": EXPORT.end,
        }
        assert _run("evals_daily", project, tags=tags).success
        assert _run("evals_quarterly", project, partition_key="2026-01-01").success
        assert _run("evals_calibration", project).success
        assert _run("evals_reports", project, partition_key="2026-01-01").success


def test_a_project_file_can_extend_another_and_say_only_how_it_differs(tmp_path: Path) -> None:
    spark = load_project(REPO_ROOT / "evals.spark.yaml")
    base = load_project(REPO_ROOT / "evals.yaml")
    assert spark.engine == "spark" and base.engine == "duckdb"
    assert spark.judges == base.judges and spark.app_versions == base.app_versions
    child = tmp_path / "child.yaml"
    # A mapping merges key by key; a list, a value or an empty mapping replaces.
    child.write_text(
        f"extends: {REPO_ROOT / 'evals.yaml'}\n"
        "judges: {panel: [offline/reference-judge], failure_modes: {}}\n"
    )
    cfg = load_project(child)
    assert cfg.judges.panel == ["offline/reference-judge"]
    assert cfg.judges.failure_modes == {}
    assert cfg.judges.few_shot == base.judges.few_shot  # kept from the base file
    # a relative path of the base file resolves against the base file's folder
    assert cfg.path(cfg.synthetic.dimensions) == REPO_ROOT / "evals.dimensions.yaml"
    loop = tmp_path / "loop.yaml"
    loop.write_text("extends: loop2.yaml\n")
    (tmp_path / "loop2.yaml").write_text("extends: loop.yaml\n")
    with pytest.raises(ProjectError, match="a cycle"):
        load_project(loop)
    (tmp_path / "orphan.yaml").write_text("extends: nowhere.yaml\n")
    with pytest.raises(ProjectError, match="extends: no project file"):
        load_project(tmp_path / "orphan.yaml")
