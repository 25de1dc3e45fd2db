"""`make demo` on the default simulation publishes the recorded results.

The fixtures hold the content digest of the snapshot the demo builds (per table and column,
leaving out the run-time columns: when things ran, how fast the calls were) and the summary it
prints. A refactoring must leave both unchanged; a change that is meant to alter results
updates them on purpose: `EVALS_UPDATE_FIXTURES=1 make test` (then review the diff).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from evals_pipeline.analytics.snapshot import content_digest
from evals_pipeline.demo_summary import summary
from evals_pipeline.paths import REPO_ROOT
from evals_pipeline.warehouse import connect

FIXTURES = Path(__file__).parent / "fixtures"
DIGEST = FIXTURES / "demo_snapshot_digest.json"
SUMMARY = FIXTURES / "demo_summary.txt"


def _differences(expected: dict, found: dict) -> list[str]:
    out = []
    for table in sorted(set(expected) | set(found)):
        e, f = expected.get(table), found.get(table)
        if e is None or f is None:
            out.append(f"{table}: {'new' if e is None else 'missing'}")
            continue
        if e["rows"] != f["rows"]:
            out.append(f"{table}: {e['rows']} rows recorded, {f['rows']} now")
        changed = sorted(
            c
            for c in set(e["columns"]) | set(f["columns"])
            if e["columns"].get(c) != f["columns"].get(c)
        )
        if changed:
            out.append(f"{table}: columns changed: {', '.join(changed)}")
    return out


def test_the_demo_publishes_the_recorded_snapshot_and_summary(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    env = {
        **os.environ,
        "EVALS_DATA_DIR": str(tmp_path),
        "DAGSTER_HOME": str(tmp_path / "dagster_home"),
        "EVALS_CONFIG": str(REPO_ROOT / "evals.yaml"),
    }
    run = subprocess.run(
        [sys.executable, "-m", "evals_pipeline.demo"],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
    )
    assert run.returncode == 0, run.stdout[-4000:] + run.stderr[-2000:]
    # Dagster's log went to the log file, not the terminal; the steps were shown.
    assert " - dagster - " not in run.stdout
    assert (tmp_path / "demo.log").stat().st_size > 0
    assert all(f"[{n}/8]" in run.stdout for n in range(1, 9))
    monkeypatch.setenv("EVALS_DATA_DIR", str(tmp_path))  # the summary names the snapshot's path
    con = connect(tmp_path / "analytics.duckdb", read_only=True)
    try:
        digest = content_digest(con)
        lines = [line.replace(str(tmp_path), "<data>") for line in summary(con)]
    finally:
        con.close()
    text = "\n".join(lines) + "\n"
    if os.environ.get("EVALS_UPDATE_FIXTURES"):
        FIXTURES.mkdir(exist_ok=True)
        DIGEST.write_text(json.dumps(digest, indent=1, sort_keys=True) + "\n")
        SUMMARY.write_text(text)
    assert not _differences(json.loads(DIGEST.read_text()), digest)
    assert text == SUMMARY.read_text()
    # What the recorded summary shows, in words: the shadow period catches the planted
    # reasoning regression on live inputs; the 5% canary is too small to vouch for 2 points;
    # the realism filter, once calibrated, admits synthetic inputs that are then judged.
    gate = {ln.split()[0]: ln for ln in lines if ln.startswith("  ") and len(ln.split()) > 1}
    assert gate["shadow"].split()[1] == "fail" and "reasoning" in gate["shadow"]
    assert gate["canary"].split()[1] == "warn"
    assert any(ln.startswith("  admitted ") for ln in lines)
    assert any("realism filter" in ln and "trusted True" in ln for ln in lines)
