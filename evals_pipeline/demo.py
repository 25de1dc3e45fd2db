"""`make demo`: the main job on the embedded default, end to end, no network, no keys.

Simulates the default period, runs the pipeline over all of it as single runs recorded in
the Dagster instance under data/dagster_home (so `make ui` shows them), and prints what was
made, where, and how to look at it.
"""

from __future__ import annotations

import os
import sys
import time
import warnings
from pathlib import Path

from evals_pipeline.paths import analytics_path, data_dir, traffic_dir, warehouse_path
from evals_pipeline.records import (
    ANNOTATOR_AGREEMENT,
    BT_RATINGS,
    CORRECTED_PASS_RATES,
    FAILURE_MODE_DISTRIBUTION,
    HOLDOUT_EVALUATION,
    JUDGE_CALIBRATION,
    JUDGE_ENSEMBLE,
    JUDGE_VERDICTS,
    POOL_EVENTS,
    POOL_SIZES,
    QUARANTINED_FEEDBACK,
    QUARANTINED_TRACES,
    RELEASE_GATES,
    REVIEW_ITEMS,
    REVIEW_QUEUE,
    SEGMENT_REPORT,
    TRACE_SAMPLE,
    TRACES,
)


def _say(msg: str) -> None:
    print(msg, flush=True)


def run_job(job_name: str, start: str, end: str | None = None) -> None:
    """One run of `job_name` for partition `start`, or over the range [start, end] as one
    run, recorded in the persistent instance (so `make ui` shows it)."""
    from dagster import DagsterInstance

    from evals_pipeline.definitions import defs

    job = defs.resolve_job_def(job_name)
    tags = (
        {"dagster/asset_partition_range_start": start, "dagster/asset_partition_range_end": end}
        if end
        else {}
    )
    with DagsterInstance.get() as instance:
        result = job.execute_in_process(
            instance=instance,
            partition_key=None if end else (start or None),
            run_config={"loggers": {"console": {"config": {"log_level": "INFO"}}}},
            tags=tags,
        )
    if not result.success:
        raise SystemExit(f"{job_name} failed; see the run in the Dagster UI (make ui)")
    from dagster import AssetCheckSeverity

    evaluations = [
        e.asset_check_evaluation_data
        for e in result.all_events
        if e.event_type_value == "ASSET_CHECK_EVALUATION"
    ]
    failed = [
        e.check_name for e in evaluations if not e.passed and e.severity == AssetCheckSeverity.ERROR
    ]
    if failed:
        raise SystemExit(f"{job_name}: asset checks failed: {', '.join(failed)}")
    for e in evaluations:
        if not e.passed:  # warnings are findings to report, not failures of the run
            _say(
                f"    warning: asset check {e.check_name} did not pass (see its metadata in the UI)"
            )


def prepare_dagster_home() -> Path:
    """DAGSTER_HOME (default data/dagster_home) with telemetry off: no network at run time."""
    home = Path(os.environ.setdefault("DAGSTER_HOME", str(data_dir() / "dagster_home")))
    home.mkdir(parents=True, exist_ok=True)
    config = home / "dagster.yaml"
    if not config.exists():
        config.write_text("telemetry:\n  enabled: false\n")
    return home


def main() -> None:
    warnings.filterwarnings("ignore", category=Warning, module="dagster")
    t0 = time.perf_counter()
    prepare_dagster_home()
    os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")

    from evals_pipeline.definitions import defs
    from evals_pipeline.simulator.source import SimulatedTraceSource
    from evals_pipeline.simulator.traffic import ensure_simulated

    source = defs.resources["trace_source"]
    if not isinstance(source, SimulatedTraceSource):
        raise SystemExit(
            "make demo runs the embedded simulated product: the project file in use "
            f"({os.environ.get('EVALS_CONFIG') or 'evals.yaml'}) has another source. Unset "
            "EVALS_CONFIG, or run your own jobs with `make ui`."
        )
    cfg = source.config()
    _say(f"1/6 simulating production traffic {cfg.start} .. {cfg.end} into {traffic_dir()}")
    summary = ensure_simulated(cfg, source.root_dir(), _say)
    _say(
        f"    {summary['traces']:,} traces, {summary['feedback_events']:,} feedback events, "
        f"{summary['labels']:,} expert labels, {summary['planted_bad_rows']:,} deliberately bad rows"
    )
    _say(f"2/6 running job evals_daily over {cfg.start} .. {cfg.end} as one run")
    run_job("evals_daily", cfg.start, cfg.end)
    quarters = quarters_within(cfg.start, cfg.end)
    _say(
        f"3/6 running job evals_quarterly (pool rotation, holdout evaluation, export) for {', '.join(quarters)}"
    )
    for quarter in quarters:
        run_job("evals_quarterly", quarter)
    labels = deliver_labels(source.root_dir())
    _say(f"4/6 running job evals_calibration on {labels} label files in {data_dir() / 'labels'}")
    run_job("evals_calibration", "")
    _say(f"5/6 running job evals_reports for {', '.join(quarters)}")
    for quarter in quarters:
        run_job("evals_reports", quarter)
    week = last_full_week(cfg.end)
    _say(f"6/6 running job evals_review for the week from {week} (Friday batch, review queues)")
    run_job("evals_review", week)
    report(time.perf_counter() - t0)


def deliver_labels(traffic_root: Path) -> int:
    """The simulated experts deliver their label files; PandaLM's come in through the importer
    when ../shared is beside the project (third-party pairwise labels, three annotators)."""
    import shutil

    from evals_pipeline.calibration.labels import import_pandalm
    from evals_pipeline.paths import REPO_ROOT

    dest = data_dir() / "labels"
    dest.mkdir(parents=True, exist_ok=True)
    files = sorted((traffic_root / "labels").glob("*.jsonl"))
    for f in files:
        shutil.copy(f, dest / f.name)
    pandalm = REPO_ROOT.parent / "shared" / "data" / "pandalm" / "testset-v1.json"
    if pandalm.exists():
        import_pandalm(pandalm, dest / "pandalm_testset_v1.jsonl")
        return len(files) + 1
    return len(files)


def last_full_week(end: str) -> str:
    """The last weekly partition (Friday to Thursday) that ends within the simulated period."""
    from datetime import date, timedelta

    from evals_pipeline.partitions import weekly_partitions

    last = date.fromisoformat(end) + timedelta(days=1)
    return [
        k
        for k in weekly_partitions.get_partition_keys()
        if weekly_partitions.time_window_for_partition_key(k).end.date() <= last
    ][-1]


def quarters_within(start: str, end: str) -> list[str]:
    """Quarter partition keys whose whole quarter lies within [start, end]."""
    from datetime import date, timedelta

    from evals_pipeline.partitions import quarterly_partitions

    last = date.fromisoformat(end) + timedelta(days=1)
    keys = []
    for key in quarterly_partitions.get_partition_keys():
        window = quarterly_partitions.time_window_for_partition_key(key)
        if window.start.date() >= date.fromisoformat(start) and window.end.date() <= last:
            keys.append(key)
    return keys


def report(seconds: float) -> None:
    from evals_pipeline.warehouse import connect

    con = connect(analytics_path(), read_only=True)
    try:
        tables = con.execute(
            "SELECT table_name, estimated_size, comment FROM duckdb_tables() ORDER BY table_name"
        ).fetchall()
        _say(f"\nDone in {seconds:.0f} s. The analysts' snapshot {analytics_path()} holds:")
        for name, _, comment in tables:
            n = con.execute(f"SELECT count(*) FROM {name}").fetchall()[0][0]
            _say(f"  {name:<22} {n:>10,}  {comment}")
        _say("\nQuarantined rows by reason:")
        for stream, reason, n in con.execute(
            f"""SELECT 'traces', reason, count(*) FROM {QUARANTINED_TRACES} GROUP BY ALL
               UNION ALL SELECT 'feedback', reason, count(*) FROM {QUARANTINED_FEEDBACK} GROUP BY ALL
               ORDER BY 1 DESC, 3 DESC"""
        ).fetchall():
            _say(f"  {stream:<9} {reason:<22} {n:>6,}")
        _say("\nSample vs traffic share per category (traffic stratum, all days):")
        for cat, sampled, s_share, t_share in con.execute(
            f"""SELECT category, count(*), round(100 * count(*) / sum(count(*)) OVER (), 1),
                      round(100 * sum(weight) / sum(sum(weight)) OVER (), 1)
               FROM {TRACE_SAMPLE} WHERE stratum = 'traffic' GROUP BY 1 ORDER BY 4 DESC"""
        ).fetchall():
            _say(
                f"  {cat:<18} {sampled:>6,} sampled  {s_share:>5}% of sample  {t_share:>5}% of traffic"
            )
        _say("\nGolden pools after each quarterly rotation:")
        for quarter, rotated, active, holdout, retired in con.execute(
            f"""SELECT quarter, any_value(rotated_at),
                      coalesce(sum(cases) FILTER (WHERE pool = 'active'), 0),
                      coalesce(sum(cases) FILTER (WHERE pool = 'holdout'), 0),
                      coalesce(sum(cases) FILTER (WHERE pool = 'retired'), 0)
               FROM {POOL_SIZES} GROUP BY 1 ORDER BY 1"""
        ).fetchall():
            _say(
                f"  quarter {quarter} (rotated {rotated}): {active:>4} active {holdout:>4} holdout {retired:>4} retired"
            )
        moves = con.execute(
            f"SELECT event, count(*) FROM {POOL_EVENTS} GROUP BY 1 ORDER BY 1"
        ).fetchall()
        _say("  pool_events: " + ", ".join(f"{e} {n}" for e, n in moves))
        sealed, total = con.execute(
            f"SELECT count(*) FILTER (WHERE sealed), count(*) FROM {TRACES}"
        ).fetchall()[0]
        _say(
            f"  {sealed:,} of {total:,} traces are sealed in the holdout reservoir: analysts see their ids,"
            " categories, segments and feedback, never their text"
        )
        _say("\nHoldout evaluation at each rotation (reference_token_f1, mean over categories):")
        for quarter, n, score in con.execute(
            f"SELECT quarter, sum(n), round(sum(n * mean_score) / sum(n), 3) FROM {HOLDOUT_EVALUATION} GROUP BY 1 ORDER BY 1"
        ).fetchall():
            _say(f"  quarter {quarter}: {n} holdout cases, mean {score}")
        _say(
            "\nJudging the active pool (ensemble of 3 judges, pass_fail rubric): pass rate per app version"
        )
        for version, n, rate, queued in con.execute(
            f"""SELECT e.app_version, count(*), round(avg((e.verdict = 'pass')::INT), 3),
                      (SELECT count(*) FROM {REVIEW_QUEUE} q WHERE q.app_version = e.app_version)
               FROM {JUDGE_ENSEMBLE} e WHERE e.rubric = 'pass_fail' GROUP BY 1 ORDER BY 1"""
        ).fetchall():
            _say(f"  {version}: {n} cases, pass rate {rate}, {queued} queued for review")
        status = con.execute(
            f"""SELECT DISTINCT v.judge, c.trusted FROM {JUDGE_VERDICTS} v LEFT JOIN {JUDGE_CALIBRATION} c
               ON c.judge = v.judge AND c.rubric = v.rubric AND c.rubric_version = v.rubric_version
                  AND c.split = 'test' AND c.category = 'all'
               WHERE v.rubric = 'pass_fail' ORDER BY 1"""
        ).fetchall()
        _say(
            "  judges: "
            + ", ".join(
                f"{j} ({'trusted' if t else 'NOT trusted' if t is not None else 'not calibrated'})"
                for j, t in status
            )
        )
        _say("  Bradley-Terry ratings (pairwise, both orders; 95% bootstrap interval):")
        for judge, version, rating, lo, hi in con.execute(
            f"SELECT judge, app_version, round(rating), round(ci_low), round(ci_high) FROM {BT_RATINGS} ORDER BY 1, 2"
        ).fetchall():
            _say(f"    {judge:<26} {version}: {rating:>6} [{lo}, {hi}]")
        _say(
            "\nJudge calibration on the test split (vs the principal expert; trusted = TPR and TNR >= 0.8):"
        )
        for judge, n, tpr, tlo, thi, tnr, nlo, nhi, kap, trusted in con.execute(
            f"""SELECT judge, n, round(tpr, 3), round(tpr_low, 3), round(tpr_high, 3), round(tnr, 3), round(tnr_low, 3),
                      round(tnr_high, 3), round(kappa, 3), trusted
               FROM {JUDGE_CALIBRATION} WHERE split = 'test' AND category = 'all' ORDER BY judge"""
        ).fetchall():
            _say(
                f"  {judge:<26} n={n}  TPR {tpr} [{tlo}, {thi}]  TNR {tnr} [{nlo}, {nhi}]  kappa {kap}  "
                + ("TRUSTED" if trusted else "not trusted")
            )
        _say("  Human annotators (Cohen's kappa, 95% bootstrap interval):")
        for a, b, n, k, lo, hi in con.execute(
            f"""SELECT annotator_a, annotator_b, n, round(kappa, 2), round(kappa_low, 2), round(kappa_high, 2)
               FROM {ANNOTATOR_AGREEMENT} ORDER BY 1, 2"""
        ).fetchall():
            _say(f"    {a} vs {b}: {k} [{lo}, {hi}] on {n} items")
        _say(
            "  Pass rates corrected for judge error (Rogan-Gladen, 95% interval), reference judge:"
        )
        for version, obs, cor, lo, hi, status in con.execute(
            f"""SELECT app_version, round(observed_pass_rate, 3), round(corrected_pass_rate, 3), round(ci_low, 3),
                      round(ci_high, 3), calibration_status
               FROM {CORRECTED_PASS_RATES} WHERE judge = 'offline/reference-judge' ORDER BY 1"""
        ).fetchall():
            _say(f"    {version}: observed {obs} -> corrected {cor} [{lo}, {hi}] ({status})")
        _say("\nRelease gates (candidate vs baseline):")
        for gate, status, evidence in con.execute(
            f"SELECT gate, status, evidence FROM {RELEASE_GATES}"
        ).fetchall():
            _say(f"  {gate:<19} {status:<14} {evidence[:110]}")
        for version, level, cat, score, delta, lo, hi in con.execute(
            f"""SELECT app_version, level, category, round(score, 3), round(delta_vs_baseline, 3), round(delta_ci_low, 3),
                      round(delta_ci_high, 3)
               FROM {SEGMENT_REPORT} WHERE scorer = 'ensemble' AND (level = 'overall' OR category = 'reasoning')
                 AND level <> 'cell' ORDER BY 1, 2 DESC"""
        ).fetchall():
            _say(
                f"  {version} {level:<8} {cat:<10} pass rate {score}  delta vs baseline {delta:+} [{lo:+}, {hi:+}]"
            )
        _say(
            "\nFailure modes among the experts' fails (failure_mode_distribution; by category in the HTML report):"
        )
        for mode, n, share in con.execute(
            f"""SELECT failure_mode, n, round(100 * share, 1) FROM {FAILURE_MODE_DISTRIBUTION}
               WHERE category = 'all' AND app_version = 'all' ORDER BY n DESC, 1"""
        ).fetchall():
            _say(f"  {mode:<20} {n:>5} fails  {share:>5}% of fails")
        _say("\nReview queues for the domain expert (make review):")
        for queue, n, reason in con.execute(
            f"""SELECT queue, count(*), arg_min(reason, position) FROM {REVIEW_ITEMS} GROUP BY 1
               ORDER BY array_position(['disagreement', 'weekly', 'calibration_gap'], queue)"""
        ).fetchall():
            _say(f"  {queue:<16} {n:>4} cases, e.g. {reason[:90]}")
    finally:
        con.close()
    py = (
        Path(sys.executable).relative_to(Path.cwd())
        if Path(sys.executable).is_relative_to(Path.cwd())
        else sys.executable
    )
    _say(
        f"""
Where things are:
  warehouse (the pipeline's)  {warehouse_path()}
  snapshot (open read-only)   {analytics_path()}
  simulated traffic files     {traffic_dir()}
  holdout store (sealed)      {data_dir() / "holdout.duckdb"}
  golden set export           {data_dir() / "golden"} (active.jsonl, CHANGELOG.md)
How to look:
  make ui                     Dagster UI at http://127.0.0.1:3000 (lineage, runs, checks, metadata)
  make review                 the review app at http://127.0.0.1:8765 (label the queues by keyboard)
  HTML report                 {data_dir() / "reports" / "latest.html"}
  {py} -c "import duckdb; print(duckdb.connect('{analytics_path()}', read_only=True).sql('SELECT category, count(*) FROM {TRACES} GROUP BY 1'))"
"""
    )


if __name__ == "__main__":
    main()
