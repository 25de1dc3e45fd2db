"""The review app end to end in headless Chromium (Debian's /usr/bin/chromium driven by
Playwright; `make test` installs the browser when it can). Skipped, with the reason, only
where no browser can be started."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from evals_pipeline.paths import analytics_path, warehouse_path
from evals_pipeline.records import HUMAN_LABELS
from evals_pipeline.review.app import AppSettings
from evals_pipeline.review.browser import CHROMIUM_ARGS, chromium_path, serving
from evals_pipeline.warehouse import Warehouse, connect
from evals_pipeline_tests.review_fixtures import INJECTION, JUDGE_SECRET, write_review_snapshot


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    executable = chromium_path()
    if executable is None:
        pytest.skip(
            "no Chromium on this machine and `make browser` could not install it (needs root + apt)"
        )
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        pytest.skip(
            "playwright is not installed (it is in the dev extras: `make test` installs it)"
        )
    with sync_playwright() as p:
        try:
            b = p.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS)
        except Exception as exc:  # a browser that cannot start is a skip, with the reason
            pytest.skip(f"Chromium at {executable} did not start: {exc}")
        yield b
        b.close()


@pytest.fixture
def server(data_dir: Path) -> Iterator[str]:
    write_review_snapshot(analytics_path())
    with serving(AppSettings()) as url:
        yield url


@pytest.fixture
def page(browser: object, server: str) -> Iterator[object]:
    context = browser.new_context(viewport={"width": 1280, "height": 1000})  # type: ignore[attr-defined]
    pg = context.new_page()
    errors: list[str] = []
    pg.on("pageerror", lambda exc: errors.append(str(exc)))
    pg.goto(f"{server}/")
    pg.fill("#annotator", "e2e expert")
    pg.keyboard.press("Enter")
    pg.wait_for_selector("table.queues")
    # the keyboard handlers come with the deferred review.js: wait for it before pressing keys
    # (a loaded machine may serve it after the table is parsed)
    pg.wait_for_load_state("load")
    yield pg
    context.close()
    assert errors == [], f"script errors in the page: {errors}"


def test_label_a_case_by_keyboard_alone_and_the_sensor_loads_it(
    page: object, server: str, data_dir: Path
) -> None:
    pg = page
    pg.keyboard.press("2")  # the second queue on the home page: the Friday review
    pg.wait_for_url("**/case/weekly/tr_a")
    assert pg.inner_text("#why").startswith("Friday review")
    assert pg.inner_text("#progress") == "0 done · 3 left"
    # the judges' verdicts are not on the page before the decision, and v does not show them
    assert JUDGE_SECRET not in pg.content()
    pg.keyboard.press("v")
    assert "Decide first" in pg.inner_text("#error")
    assert JUDGE_SECRET not in pg.content()

    pg.keyboard.press("f")
    assert pg.evaluate("document.activeElement.id") == "critique"
    pg.keyboard.type("Sends the user to a menu that does not exist.")
    pg.keyboard.press("Escape")
    pg.keyboard.press("m")
    pg.keyboard.type("wrong steps")
    pg.keyboard.press("Enter")
    pg.wait_for_selector("#status.saved")
    assert pg.inner_text("#progress") == "1 done · 2 left"

    pg.keyboard.press("v")
    assert pg.is_visible("#judges")
    assert JUDGE_SECRET in pg.inner_text("#judge-table")
    assert "error: timeout: no answer" in pg.inner_text("#judge-table")

    pg.keyboard.press("n")
    pg.wait_for_url("**/case/weekly/tr_inject")
    pg.keyboard.press("p")
    pg.wait_for_selector("#status.saved")
    pg.keyboard.press("b")
    pg.wait_for_url("**/case/weekly/tr_a")
    assert "Your label: fail (wrong_steps)" in pg.inner_text("#status")

    label_file = data_dir / "labels" / "review-e2e-expert.jsonl"
    lines = [json.loads(x) for x in label_file.read_text().splitlines()]
    assert [(x["subject_id"], x["verdict"], x["failure_mode"]) for x in lines] == [
        ("tr_a", "fail", "wrong_steps"),
        ("tr_inject", "pass", None),
    ]
    assert lines[0]["critique"] == "Sends the user to a menu that does not exist."
    assert lines[0]["annotator"] == "e2e-expert"  # the canonical id of the name typed

    # the calibration pipeline's sensor sees the new file and its job's label asset loads it
    from dagster import DagsterInstance, build_sensor_context, materialize

    from evals_pipeline.calibration.assets import human_label_files
    from evals_pipeline.calibration.sensors import label_files_sensor

    requests = list(label_files_sensor(build_sensor_context(instance=DagsterInstance.ephemeral())))
    assert [type(r).__name__ for r in requests] == ["RunRequest"]
    assert "review-e2e-expert.jsonl" in requests[0].tags["files"]
    from evals_pipeline.project import ProjectResource

    result = materialize(
        [human_label_files],
        resources={
            "warehouse": Warehouse(database=str(warehouse_path())),
            "project": ProjectResource(),
        },
    )
    assert result.success
    conn = connect(warehouse_path(), read_only=True)
    try:
        stored = conn.execute(
            f"SELECT subject_id, verdict, critique, failure_mode, current FROM {HUMAN_LABELS} WHERE annotator = 'e2e-expert' ORDER BY subject_id"
        ).fetchall()
    finally:
        conn.close()
    assert stored == [
        ("tr_a", "fail", "Sends the user to a menu that does not exist.", "wrong_steps", True),
        ("tr_inject", "pass", "", None, True),
    ]


def test_a_script_injection_trace_displays_as_text(page: object, server: str) -> None:
    pg = page
    pg.goto(f"{server}/case/weekly/tr_inject")
    assert pg.inner_text("#field-output pre") == INJECTION
    assert pg.inner_text("#field-input pre") == "<i>not italic</i> & friends"
    assert pg.evaluate("window.__pwned") is None
    assert pg.query_selector("#field-output script") is None
    assert pg.query_selector("#field-output img") is None
    assert pg.query_selector("#field-input i") is None


def test_a_fail_without_critique_is_refused_in_the_page(
    page: object, server: str, data_dir: Path
) -> None:
    pg = page
    pg.goto(f"{server}/case/weekly/tr_big")
    assert "shown: first 20000 of 50000 characters" in pg.inner_text("#field-output")
    pg.keyboard.press("f")
    pg.keyboard.press("Control+Enter")
    assert "needs a critique" in pg.inner_text("#error")
    assert not (data_dir / "labels" / "review-e2e-expert.jsonl").exists()
    # a holdout case behind a queue row is refused with a clear message
    pg.goto(f"{server}/case/disagreement/gc_holdout_1%7Cv3")
    assert "sealed holdout" in pg.inner_text("main")


@pytest.mark.parametrize("status", ["fail", "pass"])
def test_the_report_leads_with_the_decision(browser: object, tmp_path: Path, status: str) -> None:
    """The HTML report in Chromium: the first thing on the page is the verdict for the
    candidate, coloured, naming the failing gates; numbers read as people write them."""
    import duckdb

    from evals_pipeline.records import QUALITY_COST_LATENCY, RELEASE_GATES
    from evals_pipeline.reports.html import render_report
    from evals_pipeline.warehouse import set_up

    conn = duckdb.connect()
    set_up(conn)
    gates = [
        ("layer1", "pass", "every assertion passed"),
        ("segment_regression", status, "category how_to: -0.080 [-0.120, -0.040]"),
        ("holdout", "not_evaluated", "no rotation has judged the candidate's answers"),
        ("decision", status, "v3 vs v2"),
    ]
    conn.executemany(
        f"INSERT INTO {RELEASE_GATES} (gate, candidate, baseline, status, evidence) VALUES (?, 'v3', 'v2', ?, ?)",
        gates,
    )
    conn.execute(
        f"""INSERT INTO {QUALITY_COST_LATENCY} (app_version, pass_rate, candidate_cost_usd_per_case,
            production_cost_usd_per_trace, production_traces, pareto_optimal)
            VALUES ('v2', 0.81, 0.000042, 0.0031, NULL, true), ('v3', 0.84, 0.00051, 0.0062, 1200, NULL)"""
    )
    path, decision, _ = render_report(conn, tmp_path, "run-1")
    context = browser.new_context(viewport={"width": 1280, "height": 900})  # type: ignore[attr-defined]
    pg = context.new_page()
    try:
        pg.goto(path.as_uri())
        first = pg.evaluate(
            "() => { const t = [...document.body.querySelectorAll('*')]"
            ".filter(e => e.getClientRects().length && e.innerText && e.innerText.trim()"
            " && e.children.length === 0);"
            " t.sort((a, b) => a.getBoundingClientRect().top - b.getBoundingClientRect().top);"
            " return t[0].id; }"
        )
        assert first == "decision"
        headline = pg.inner_text("#decision")
        colour = pg.evaluate(
            "() => getComputedStyle(document.getElementById('decision')).backgroundColor"
        )
        pg.screenshot(path=str(tmp_path / "report.png"))
        assert (tmp_path / "report.png").stat().st_size > 0
    finally:
        context.close()
    if status == "fail":
        assert headline == decision == "Do not ship v3: segment_regression failed against v2"
        assert colour == "rgb(198, 40, 40)"
    else:
        assert headline == "Ship v3: it passes every gate against v2"
        assert colour == "rgb(26, 127, 55)"
    page = path.read_text()
    assert "To look at: holdout." in page
    # costs in dollars with significant digits; no pandas spellings
    assert "$0.000042" in page and "$0.0062" in page and "0.000</td>" not in page
    assert "&lt;NA&gt;" not in page and "<NA>" not in page and "True" not in page
    assert ">yes<" in page and "1,200" in page


def test_the_sealed_holdout_session_logs_every_view_and_keeps_labels_sealed(
    browser: object, data_dir: Path
) -> None:
    """`make review-holdout`: only the principal expert gets in; the page says it is sealed
    and hides the version; each case opened is a line of the view log before it is shown; the
    label goes to the sealed area, never to the ordinary label folder."""
    from evals_pipeline.paths import holdout_review_dir
    from evals_pipeline.review.holdout import read_views
    from evals_pipeline_tests.review_fixtures import HOLDOUT_SECRET, write_sealed_queue

    area = holdout_review_dir()
    items = write_sealed_queue(area, principal="Dana Smith")
    with serving(AppSettings(sealed=area)) as url:
        context = browser.new_context(viewport={"width": 1280, "height": 1000})  # type: ignore[attr-defined]
        pg = context.new_page()
        errors: list[str] = []
        pg.on("pageerror", lambda exc: errors.append(str(exc)))
        pg.goto(f"{url}/")
        assert "sealed holdout review is for the principal expert" in pg.inner_text("main")
        pg.fill("#annotator", "lee")
        pg.keyboard.press("Enter")
        pg.wait_for_selector("text=principal expert (Dana Smith) only")
        assert HOLDOUT_SECRET not in pg.content() and read_views(area) == []
        pg.goto(f"{url}/case/holdout/{items[0]['item_id']}")
        assert HOLDOUT_SECRET not in pg.content() and read_views(area) == []

        pg.click("button:has-text('switch')")  # log out
        pg.fill("#annotator", "dana.smith")  # the same person as "Dana Smith"
        pg.keyboard.press("Enter")
        pg.wait_for_selector("table.queues")
        pg.wait_for_load_state("load")  # review.js (deferred) carries the key handlers
        assert "sealed holdout session" in pg.inner_text("header")
        assert "Failure taxonomy" not in pg.inner_text("header")
        pg.keyboard.press("1")
        pg.wait_for_url(f"**/case/holdout/{items[0]['item_id']}")
        assert HOLDOUT_SECRET in pg.content()
        assert "hidden (blind review)" in pg.content() and "v2" not in pg.inner_text("#case")
        pg.keyboard.press("p")
        pg.wait_for_selector("#status.saved")
        pg.keyboard.press("n")
        pg.wait_for_url(f"**/case/holdout/{items[1]['item_id']}")
        context.close()
    assert errors == [], f"script errors in the page: {errors}"

    views = read_views(area)
    assert [v["item_id"] for v in views] == [i["item_id"] for i in items]
    assert {v["annotator"] for v in views} == {"dana-smith"}
    label = json.loads((area / "labels" / "review-dana-smith.jsonl").read_text())
    assert (label["subject_id"], label["verdict"], label["queue"]) == (
        items[0]["item_id"],
        "pass",
        "holdout",
    )
    assert not (data_dir / "labels").exists()
