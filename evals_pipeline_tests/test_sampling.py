"""Sampling: floors, proportional rest, determinism, exact inclusion probabilities."""

from __future__ import annotations

from datetime import date

import duckdb
import numpy as np
import pytest

from evals_pipeline.records import TRACE_FEEDBACK, TRACE_SAMPLE, TRACES
from evals_pipeline.sampling import stratified
from evals_pipeline.sampling.allocation import allocate
from evals_pipeline.sampling.stratified import (
    SampleSettings,
    draw_sample,
    sample_key_sql,
    write_trace_sample,
)
from evals_pipeline.warehouse import set_up


def test_allocation_floor_then_proportional() -> None:
    counts = {"big": 5200, "mid": 2400, "small": 1300, "tiny": 850, "rare": 250}
    alloc = allocate(counts, 1000, 0.15)
    # 150 each first, the remaining 250 by traffic share: 130, 60, 32.5, 21.25, 6.25.
    assert alloc == {"big": 280, "mid": 210, "small": 183, "tiny": 171, "rare": 156}


def test_a_category_smaller_than_its_floor_gives_all_its_rows() -> None:
    alloc = allocate({"big": 9000, "rare": 40}, 1000, 0.15)
    assert alloc == {"big": 960, "rare": 40}


def test_whole_population_when_it_is_smaller_than_the_sample() -> None:
    assert allocate({"a": 3, "b": 2}, 10, 0.15) == {"a": 3, "b": 2}


@pytest.mark.parametrize("seed", range(200))
def test_allocation_properties_on_random_inputs(seed: int) -> None:
    rng = np.random.default_rng(seed)
    k = int(rng.integers(1, 12))
    counts = {f"c{i}": int(rng.integers(1, 5000) ** rng.uniform(0.3, 1.0)) for i in range(k)}
    n = int(rng.integers(1, 3000))
    floor = float(rng.uniform(0, 0.3))
    alloc = allocate(counts, n, floor)
    assert sum(alloc.values()) == min(n, sum(counts.values()))
    assert all(0 <= alloc[c] <= counts[c] for c in counts)
    if floor * k <= 1 and sum(min(v, int(floor * n)) for v in counts.values()) <= n:
        assert all(alloc[c] >= min(counts[c], int(floor * n)) for c in counts)


@pytest.fixture
def traffic() -> duckdb.DuckDBPyConnection:
    """Two days of traces with a skewed category mix and a category smaller than its floor."""
    con = duckdb.connect()
    set_up(con)
    rng = np.random.default_rng(0)
    rows = []
    for day, n in ((date(2026, 3, 1), 4000), (date(2026, 3, 2), 3000)):
        cats = rng.choice(["big", "mid", "small"], size=n, p=[0.7, 0.28, 0.02])
        cats[:5] = "rare"  # 5 rows: fewer than the floor
        rows += [(f"{day}-{i}", day, c) for i, c in enumerate(cats)]
    con.execute("CREATE TEMP TABLE src (trace_id VARCHAR, partition_date DATE, category VARCHAR)")
    con.executemany("INSERT INTO src VALUES (?, ?, ?)", rows)
    return con


SRC = "SELECT partition_date, trace_id, category FROM src"


def _sample(con: duckdb.DuckDBPyConnection, seed: int, size: int = 200) -> list[tuple]:
    draw_sample(con, SRC, size, 0.15, seed, "s")
    return con.execute(
        "SELECT partition_date, trace_id, category, inclusion_prob FROM s ORDER BY 1, 2"
    ).fetchall()


def test_weights_sum_to_traffic_and_floors_hold(traffic: duckdb.DuckDBPyConnection) -> None:
    _sample(traffic, seed=1)
    got = traffic.execute(
        """SELECT s.partition_date, s.category, count(*), sum(1 / inclusion_prob), t.n
           FROM s JOIN (SELECT partition_date, category, count(*) AS n FROM src GROUP BY ALL) t
           USING (partition_date, category) GROUP BY ALL ORDER BY 1, 2"""
    ).fetchall()
    for day, cat, n_sampled, weight_sum, n_traffic in got:
        assert weight_sum == pytest.approx(n_traffic, rel=1e-12), (day, cat)
        assert n_sampled >= min(n_traffic, 30), (day, cat)  # floor: 15% of 200
    rare = [r for r in got if r[1] == "rare"]
    assert [(r[2], r[4]) for r in rare] == [(5, 5), (5, 5)]
    per_day = traffic.execute("SELECT partition_date, count(*) FROM s GROUP BY 1").fetchall()
    assert sorted(n for _, n in per_day) == [200, 200]


def test_same_seed_same_sample_other_seed_other_sample(traffic: duckdb.DuckDBPyConnection) -> None:
    first, again, other = _sample(traffic, 1), _sample(traffic, 1), _sample(traffic, 2)
    assert first == again
    assert len({r[1] for r in first} & {r[1] for r in other}) < 0.6 * len(first)


def test_sample_equals_the_brute_force_bottom_k(traffic: duckdb.DuckDBPyConnection) -> None:
    """The threshold prefilter is an optimisation only: same rows as ranking everything."""
    fast = {r[1] for r in _sample(traffic, 5)}
    brute = traffic.execute(
        f"""WITH k AS (SELECT *, {sample_key_sql("trace_id", 5)} AS h FROM src)
            SELECT trace_id FROM k
            QUALIFY row_number() OVER (PARTITION BY partition_date, category ORDER BY h, trace_id)
                <= (SELECT count(*) FROM s WHERE s.partition_date = k.partition_date AND s.category = k.category)"""
    ).fetchall()
    assert fast == {r[0] for r in brute}


def test_a_short_stratum_is_redone_in_full(
    traffic: duckdb.DuckDBPyConnection, monkeypatch: pytest.MonkeyPatch
) -> None:
    expected = _sample(traffic, 9)
    # A threshold far too tight makes every stratum fall short: the fallback must recover.
    monkeypatch.setattr(stratified, "threshold_for", lambda n, t: 1e-4 if n else 0.0)
    assert _sample(traffic, 9) == expected


def test_every_row_is_equally_likely_within_its_stratum() -> None:
    """Known answer: drawing 10 of 40 over many seeds includes each row with p = 0.25."""
    con = duckdb.connect()
    con.execute(
        "CREATE TEMP TABLE src AS SELECT DATE '2026-03-01' AS partition_date, 'r' || i AS trace_id, 'c' AS category FROM range(40) t(i)"
    )
    hits: dict[str, int] = {}
    seeds = 2000
    for seed in range(seeds):
        draw_sample(con, SRC, 10, 0.15, seed, "s")
        for (tid,) in con.execute("SELECT trace_id FROM s").fetchall():
            hits[tid] = hits.get(tid, 0) + 1
    assert len(hits) == 40
    expected, sd = seeds * 0.25, (seeds * 0.25 * 0.75) ** 0.5
    assert max(abs(h - expected) for h in hits.values()) < 4.5 * sd
    probs = con.execute("SELECT DISTINCT inclusion_prob FROM s").fetchall()
    assert probs == [(0.25,)]


def test_flashlight_stratum_holds_only_traces_with_negative_feedback() -> None:
    con = duckdb.connect()
    set_up(con)
    day = date(2026, 3, 1)
    con.executemany(
        f"INSERT INTO {TRACES} (trace_id, ts, partition_date, category) VALUES (?, ?, ?, ?)",
        [
            [f"t{i}", "2026-03-01 10:00:00", day, "how_to" if i % 4 else "reasoning"]
            for i in range(400)
        ],
    )
    unhappy = [f"t{i}" for i in range(0, 400, 7)]
    con.executemany(
        f"INSERT INTO {TRACE_FEEDBACK} (trace_id, ts, partition_date, signal, value) VALUES (?, ?, ?, 'thumbs_down', 1)",
        [[t, "2026-03-01 11:00:00", day] for t in unhappy],
    )
    con.executemany(
        f"INSERT INTO {TRACE_FEEDBACK} (trace_id, ts, partition_date, signal, value) VALUES (?, ?, ?, 'thumbs_up', 1)",
        [[f"t{i}", "2026-03-01 11:00:00", day] for i in range(1, 400, 7)],
    )
    write_trace_sample(con, [day], SampleSettings(size=50, floor=0.15, seed=3, flashlight_size=12))
    flash = con.execute(
        f"SELECT trace_id, inclusion_prob, category_traffic FROM {TRACE_SAMPLE} WHERE stratum = 'flashlight'"
    ).fetchall()
    assert len(flash) == 12
    assert {t for t, _, _ in flash} <= set(unhappy)
    # Its probabilities are relative to the flagged traces of the category.
    assert sum(1 / p for _, p, _ in flash) == pytest.approx(len(unhappy))
    assert (
        con.execute(f"SELECT count(*) FROM {TRACE_SAMPLE} WHERE stratum = 'traffic'").fetchall()[0][
            0
        ]
        == 50
    )
    assert con.execute(f"SELECT DISTINCT duckdb_version FROM {TRACE_SAMPLE}").fetchall() == [
        (duckdb.__version__,)
    ]


def test_a_day_sampled_alone_equals_the_day_sampled_in_a_range(
    traffic: duckdb.DuckDBPyConnection,
) -> None:
    """Single-day runs count by category alone; ranges count by (day, category): same sample."""
    in_range = [r for r in _sample(traffic, 4) if r[0] == date(2026, 3, 1)]
    draw_sample(traffic, SRC + " WHERE partition_date = DATE '2026-03-01'", 200, 0.15, 4, "s")
    alone = traffic.execute(
        "SELECT partition_date, trace_id, category, inclusion_prob FROM s ORDER BY 1, 2"
    ).fetchall()
    assert alone == in_range


# --- drift alarms ------------------------------------------------------------------------


def _traffic(con: duckdb.DuckDBPyConnection, days: int, mix_by_day, per_day: int = 400) -> date:
    """Synthetic traffic: `per_day` traces a day for `days` days from 2026-01-01, the category
    of each drawn from `mix_by_day(i)` (a dict of shares, in SQL from a hash); returns the
    last day."""
    from datetime import timedelta

    start = date(2026, 1, 1)
    mixes = [(i, c, share) for i in range(days) for c, share in mix_by_day(i).items()]
    con.execute("CREATE TEMP TABLE _mix (day INTEGER, category VARCHAR, share DOUBLE)")
    con.executemany("INSERT INTO _mix VALUES (?, ?, ?)", mixes)
    con.execute(
        f"""INSERT INTO {TRACES} (trace_id, partition_date, category)
        WITH c AS (
            SELECT day, category, sum(share) OVER (PARTITION BY day ORDER BY category) AS upto
            FROM _mix
        ), t AS (
            SELECT d.day, k, (hash(d.day, k, 3) % 1000000) / 1e6 AS u
            FROM range({days}) d(day), range({per_day}) r(k)
        )
        SELECT 't' || t.day || '-' || t.k, DATE '{start}' + t.day::INTEGER,
               arg_min(c.category, c.upto)
        FROM t JOIN c ON c.day = t.day AND t.u < c.upto GROUP BY t.day, t.k"""
    )
    return start + timedelta(days=days - 1)


def test_the_category_mix_alarm_fires_on_a_planted_shift_and_not_on_noise() -> None:
    from evals_pipeline.sampling.drift import category_mix_drift

    steady = {"billing": 0.5, "how_to": 0.3, "refusal": 0.2}
    shifted = {"billing": 0.5, "how_to": 0.44, "refusal": 0.06}  # refusal falls to 30% of itself
    for planted in (False, True):
        con = duckdb.connect()
        set_up(con)
        day = _traffic(con, 120, lambda i, p=planted: shifted if p and i >= 92 else steady)
        mix, note = category_mix_drift(con, day, 28, 90, 0.5, floor=0.1, sample_size=300)
        moved = mix[mix["share_moved"]]["category"].tolist()
        assert note == ""
        assert moved == (["refusal"] if planted else [])
        # refusal's 80 a day filled its floor of 30; planted, 24 a day cannot
        unmet = mix[mix["floor_unmet"]]["category"].tolist()
        assert unmet == (["refusal"] if planted else [])
        if planted:
            r = mix.set_index("category").loc["refusal"]
            assert r["baseline_share"] == pytest.approx(0.2, abs=0.01)
            assert r["change"] < -0.5


def test_the_category_mix_alarm_waits_for_history() -> None:
    from evals_pipeline.sampling.drift import category_mix_drift

    con = duckdb.connect()
    set_up(con)
    day = _traffic(con, 20, lambda i: {"a": 0.9, "b": 0.1} if i < 10 else {"a": 0.1, "b": 0.9})
    mix, note = category_mix_drift(con, day, 28, 90, 0.5, floor=0.1, sample_size=300)
    assert "too little history" in note and not mix["share_moved"].any()


def test_the_stale_golden_set_alarm() -> None:
    from evals_pipeline.records import GOLDEN_POOLS
    from evals_pipeline.sampling.drift import golden_staleness

    con = duckdb.connect()
    set_up(con)
    assert golden_staleness(con, date(2026, 6, 30), 60)[0]  # no golden set yet: quiet
    con.execute(
        f"INSERT INTO {GOLDEN_POOLS} (case_id, pool, entered_at) VALUES ('c1', 'active', '2026-04-01')"
    )
    assert golden_staleness(con, date(2026, 5, 31), 60)[0]  # 60 days: still fresh
    quiet, why = golden_staleness(con, date(2026, 6, 15), 60)  # rotations stopped
    assert not quiet and "75 days" in why
