"""Review-app benchmark: how long an expert waits per case, over real HTTP on localhost.

Serves the app (uvicorn, in-process thread) on the current snapshot (`make demo` first) with a
scratch copy of the label files, then times with one keep-alive HTTP client, in one run:
  - baseline: a static file (the stylesheet): the server's floor per request;
  - the start page (progress over every queue);
  - a case page (queue `--queue`, `--cases` cases in order);
  - saving a label for each of those cases, then the same case page again (the label files
    changed, so the app re-reads them).
Reported as median and p95 milliseconds, and each as a ratio to the static baseline.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import quote

from evals_pipeline.records import REVIEW_ITEMS
from evals_pipeline.review.app import AppSettings


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--cases", type=int, default=50, help="Cases to view and label.")
    parser.add_argument("--queue", default="disagreement", help="Queue to walk.")


def _timed(fn: Callable[[], Any], n: int) -> list[float]:
    out = []
    for _ in range(n):
        t0 = time.perf_counter()
        fn()
        out.append((time.perf_counter() - t0) * 1000)
    return out


def _summary(ms: list[float], base: float) -> dict[str, float]:
    ms = sorted(ms)
    median = statistics.median(ms)
    return {
        "median_ms": round(median, 2),
        "p95_ms": round(ms[max(0, int(0.95 * len(ms)) - 1)], 2),
        "ratio_vs_static": round(median / base, 1),
    }


def run(args: argparse.Namespace) -> dict[str, Any]:
    import httpx

    from evals_pipeline.review.browser import serving

    settings = AppSettings()
    if not settings.analytics.exists():
        raise SystemExit(f"no snapshot at {settings.analytics}: run `make demo` first")
    scratch = Path(tempfile.mkdtemp(prefix="review-bench-"))
    try:
        if settings.labels.is_dir():
            shutil.copytree(settings.labels, scratch / "labels")
        settings.labels = scratch / "labels"
        settings.taxonomy = scratch / "taxonomy" / "failure_modes.json"
        ids = _queue_ids(settings, args.queue)[: args.cases]
        if not ids:
            raise SystemExit(f"queue {args.queue!r} is empty in {settings.analytics}")
        with serving(settings) as url, httpx.Client(base_url=url) as http:
            http.post("/login", data={"annotator": "bench"})
            static = _timed(lambda: http.get("/static/review.css").raise_for_status(), 200)
            home = _timed(lambda: http.get("/").raise_for_status(), 20)
            pages = iter(ids)
            view = _timed(
                lambda: http.get(
                    f"/case/{args.queue}/{quote(next(pages), safe='')}"
                ).raise_for_status(),
                len(ids),
            )
            posts = iter(ids)
            save = _timed(
                lambda: http.post(
                    "/api/label",
                    json={"queue": args.queue, "item_id": next(posts), "verdict": "pass"},
                ).raise_for_status(),
                len(ids),
            )
            again = iter(ids)
            view_after = _timed(
                lambda: http.get(
                    f"/case/{args.queue}/{quote(next(again), safe='')}"
                ).raise_for_status(),
                len(ids),
            )
        base = statistics.median(static)
        labels = sum(1 for _ in (scratch / "labels").glob("*"))
        return {
            "bench": "review",
            "snapshot": str(settings.analytics),
            "queue": args.queue,
            "cases": len(ids),
            "label_files": labels,
            "static_median_ms": round(base, 2),
            "start_page": _summary(home, base),
            "case_page": _summary(view, base),
            "save_label": _summary(save, base),
            "case_page_after_label": _summary(view_after, base),
        }
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def _queue_ids(settings: AppSettings, queue: str) -> list[str]:
    from evals_pipeline.warehouse import connect

    conn = connect(settings.analytics, read_only=True)
    try:
        return [
            r[0]
            for r in conn.execute(
                f"SELECT item_id FROM {REVIEW_ITEMS} WHERE queue = ? ORDER BY position", [queue]
            ).fetchall()
        ]
    finally:
        conn.close()
