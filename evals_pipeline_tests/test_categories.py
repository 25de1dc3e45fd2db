"""The categorizer: uncategorized traces get a category (classifier or an LLM through litellm),
each records how, the categorizer is measured on held-out labelled traces, and the sample's
floors hold for derived categories including `uncategorized`."""

from __future__ import annotations

from datetime import date, timedelta
from pathlib import Path

import duckdb
import pytest

from evals_pipeline.ingest.categories import categorize_days, measure
from evals_pipeline.ingest.validation import TRACE_STREAM, IngestRules, ingest_days
from evals_pipeline.judging.client import LiteLLMJudgeClient
from evals_pipeline.project import CategorizerSpec
from evals_pipeline.records import (
    DEFAULT_CATEGORIES,
    JUDGE_CACHE,
    TRACE_SAMPLE,
    TRACES,
    UNCATEGORIZED,
)
from evals_pipeline.sampling.stratified import SampleSettings, write_trace_sample
from evals_pipeline.warehouse import set_up
from evals_pipeline_tests.conftest import SMALL

DAYS = [date.fromisoformat(SMALL.start) + timedelta(days=i) for i in range(6)]
DESCRIPTIONS = {
    "factual_lookup": "what is the limit price plan region number of a setting",
    "how_to": "how do I configure set up enable change steps settings",
    "reasoning": "why compare which should choose better explain decide",
    "refusal_sensitive": "password hack bypass someone else private account access",
    "edge_case": "weird unusual empty garbled mixed language",
}


def _warehouse(small_sim: Path, hidden_every: int) -> duckdb.DuckDBPyConnection:
    """The simulated traffic ingested, then every `hidden_every`-th trace's category hidden
    as a span export without the attribute would leave it (its truth kept aside)."""
    conn = duckdb.connect()
    set_up(conn)
    files = {d: sorted((small_sim / "traces" / f"dt={d}").iterdir()) for d in DAYS}
    ingest_days(conn, TRACE_STREAM, files, IngestRules(), small_sim)
    conn.execute(f"UPDATE {TRACES} SET category_source = 'attribute'")
    conn.execute(
        f"""CREATE TABLE truth AS SELECT trace_id, category FROM {TRACES}
        WHERE hash(trace_id) % {hidden_every} = 0"""
    )
    conn.execute(
        f"""UPDATE {TRACES} SET category = '{UNCATEGORIZED}', category_source = 'none'
        WHERE trace_id IN (SELECT trace_id FROM truth)"""
    )
    return conn


def test_the_classifier_assigns_hidden_categories_and_is_measured_on_held_out_traces(
    small_sim: Path,
) -> None:
    conn = _warehouse(small_sim, hidden_every=4)
    hidden = conn.execute("SELECT count(*) FROM truth").fetchall()[0][0]
    spec = CategorizerSpec(kind="classifier", min_confidence=0.4)
    done = categorize_days(conn, [str(d) for d in DAYS], spec, DEFAULT_CATEGORIES)
    assert done is not None and done.name.startswith("classifier:")
    assert done.asked == hidden and done.assigned > 0.8 * hidden
    right, assigned = conn.execute(
        f"""SELECT count(*) FILTER (WHERE t.category = h.category), count(*)
        FROM {TRACES} t JOIN truth h USING (trace_id) WHERE t.category_source = ?""",
        [done.name],
    ).fetchall()[0]
    assert assigned == done.assigned and right / assigned > 0.85  # the planted categories recovered
    # measured like a judge: held-out labelled traces, per category and overall
    name, frame = measure(conn, spec, DEFAULT_CATEGORIES)
    assert name == done.name  # the same training data, the same classifier version
    overall = frame[frame["category"] == "all"].iloc[0]
    per = frame[frame["category"] != "all"]
    assert set(per["category"]) == set(DEFAULT_CATEGORIES)
    assert per["n"].sum() == overall["n"] and per["correct"].sum() == overall["correct"]
    assert overall["accuracy"] == pytest.approx(overall["correct"] / overall["n"])
    assert overall["accuracy"] > 0.85 and overall["kappa"] > 0.75
    # a re-run assigns nothing new: only uncategorized traces are asked about
    again = categorize_days(conn, [str(d) for d in DAYS], spec, DEFAULT_CATEGORIES)
    assert again is not None and again.asked == hidden - done.assigned


def test_too_few_labelled_traces_build_no_classifier(small_sim: Path) -> None:
    conn = _warehouse(small_sim, hidden_every=1)  # nothing labelled
    spec = CategorizerSpec(kind="classifier")
    assert categorize_days(conn, [str(d) for d in DAYS], spec, DEFAULT_CATEGORIES) is None
    assert conn.execute(f"SELECT count(DISTINCT category) FROM {TRACES}").fetchall() == [(1,)]


def test_the_llm_categorizer_goes_through_litellm_cached_and_records_how(
    small_sim: Path,
) -> None:
    conn = _warehouse(small_sim, hidden_every=10)
    hidden = conn.execute("SELECT count(*) FROM truth").fetchall()[0][0]
    spec = CategorizerSpec(kind="llm", model="offline/categorizer", descriptions=DESCRIPTIONS)
    client = LiteLLMJudgeClient()
    done = categorize_days(conn, [str(d) for d in DAYS], spec, DEFAULT_CATEGORIES, client)
    assert done is not None and done.name == "llm:offline/categorizer"
    assert done.asked == hidden and done.errors == 0 and done.assigned > 0
    sources = dict(
        conn.execute(f"SELECT category_source, count(*) FROM {TRACES} GROUP BY 1").fetchall()
    )
    assert sources[done.name] == done.assigned
    assert sources.get("none", 0) == hidden - done.assigned  # "none fits" stays uncategorized
    cached = conn.execute(
        f"SELECT count(*) FROM {JUDGE_CACHE} WHERE model = 'offline/categorizer'"
    ).fetchall()[0][0]
    assert cached > 0
    name, frame = measure(conn, spec, DEFAULT_CATEGORIES, client)
    overall = frame[frame["category"] == "all"].iloc[0]
    assert name == done.name and 0 < overall["n"] <= 300
    # the measurement's calls were cached too: a second measurement pays nothing
    before = conn.execute(f"SELECT count(*) FROM {JUDGE_CACHE}").fetchall()[0][0]
    measure(conn, spec, DEFAULT_CATEGORIES, client)
    assert conn.execute(f"SELECT count(*) FROM {JUDGE_CACHE}").fetchall()[0][0] == before


def test_the_sample_floor_holds_for_the_uncategorized_stratum(small_sim: Path) -> None:
    conn = _warehouse(small_sim, hidden_every=40)  # about 2.5% of traffic uncategorized
    settings = SampleSettings(size=40, floor=0.1)
    write_trace_sample(conn, DAYS, settings)
    per_day = conn.execute(
        f"""SELECT partition_date, count(*) FILTER (WHERE category = '{UNCATEGORIZED}'),
                  count(*) FILTER (WHERE stratum = 'traffic')
        FROM {TRACE_SAMPLE} WHERE stratum = 'traffic' GROUP BY 1"""
    ).fetchall()
    traffic = dict(
        conn.execute(
            f"SELECT partition_date, count(*) FROM {TRACES} WHERE category = '{UNCATEGORIZED}' GROUP BY 1"
        ).fetchall()
    )
    for day, uncategorized, total in per_day:
        # its floor (4 of 40), or all of its traces when it has fewer
        assert uncategorized >= min(traffic.get(day, 0), 4), (day, uncategorized, total)
