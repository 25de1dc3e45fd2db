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
