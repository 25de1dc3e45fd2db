"""The benchmark runs end to end and checks its own sample (no timing is asserted)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from evals_pipeline.paths import REPO_ROOT

KEYS = {
    "rows",
    "seconds",
    "scan_seconds",
    "pandas_seconds",
    "ratio_vs_scan",
    "speedup_vs_pandas",
    "peak_rss_mb",
}


def test_sampling_benchmark_reports_json_last(tmp_path: Path) -> None:
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "evals_pipeline.bench",
            "sampling",
            "--rows",
            "50000",
            "--size",
            "1000",
            "--repeat",
            "1",
            "--workdir",
            str(tmp_path),
        ],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=600,
        check=True,
    )
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert set(result) >= KEYS
    assert result["rows"] == 50000
    assert result["sampled"] == 1000
    assert result["weights_ok"] and result["floors_ok"]
    assert list(tmp_path.iterdir()) == []  # the simulated Parquet file is cleaned up


JUDGING_KEYS = {
    "calls",
    "seconds",
    "ideal_seconds",
    "efficiency",
    "speedup_vs_sequential",
    "fault_rate",
    "errors_recorded",
    "silent_passes",
    "rerun_calls",
    "cpu_ms_per_call",
    "plain_litellm_efficiency",
    "raw_http_efficiency",
    "ratio_vs_raw_http",
}


def test_judging_benchmark_reports_json_last() -> None:
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "evals_pipeline.bench",
            "judging",
            "--calls",
            "96",
            "--latency",
            "0.02",
            "--sequential-calls",
            "4",
            "--timeout",
            "0.3",
        ],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=600,
        check=True,
    )
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert set(result) >= JUDGING_KEYS
    assert result["faults_injected"] > 0
    assert result["valid_verdicts"] + result["errors_recorded"] == 96
    assert (
        result["silent_passes"] == 0
        and result["rerun_calls"] == 0
        and result["rerun_provider_requests"] == 0
    )


def test_ingest_benchmark_stores_every_row_and_reports_its_floor(tmp_path: Path) -> None:
    # otel: the same traces as OTLP JSON spans, read by the span reader: one trace each
    for fmt in ("jsonl", "parquet", "otel"):
        out = subprocess.run(
            [
                sys.executable,
                "-m",
                "evals_pipeline.bench",
                "ingest",
                "--rows",
                "3000",
                "--format",
                fmt,
                "--workdir",
                str(tmp_path),
            ],
            cwd=REPO_ROOT,
            capture_output=True,
            text=True,
            timeout=600,
            check=True,
        )
        result = json.loads(out.stdout.strip().splitlines()[-1])
        assert result["rows"] == result["stored"] == 3000 and result["quarantined"] == 0
        assert result["floor_seconds"] > 0 and result["peak_rss_mb"] > 0
        # the ratio of the unrounded timings: equal to the rounded ones' within their rounding
        assert result["ratio_vs_floor"] == pytest.approx(
            result["seconds"] / result["floor_seconds"], rel=0.1
        )


def test_review_benchmark_walks_a_queue_without_touching_the_label_files(data_dir: Path) -> None:
    import argparse

    from evals_pipeline.bench import review
    from evals_pipeline.paths import analytics_path
    from evals_pipeline_tests.review_fixtures import write_review_snapshot

    write_review_snapshot(analytics_path())
    result = review.run(argparse.Namespace(cases=3, queue="weekly"))
    assert result["cases"] == 3
    for step in ("start_page", "case_page", "save_label", "case_page_after_label"):
        assert set(result[step]) == {"median_ms", "p95_ms", "ratio_vs_static"}
    assert not (data_dir / "labels").exists()  # labels went to a scratch copy
