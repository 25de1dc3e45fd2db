"""`make demo`: the main job on the embedded default, end to end, no network, no keys.

Simulates the default period, runs the pipeline over all of it as single runs recorded in
the Dagster instance under data/dagster_home (so `make ui` shows them), and prints what was
made, where, and how to look at it. Six steps, each with a progress bar and an estimate
(from the last demo on this machine, else from typical figures); Dagster's own log lines go
to data/demo.log, whose tail is printed if a step fails.
"""

from __future__ import annotations

import json
import os
import sys
import threading
import time
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from evals_pipeline.paths import analytics_path, data_dir, traffic_dir, warehouse_path
from evals_pipeline.records import TRACES

# Typical seconds per step on a 2-core machine (used until a demo has run here).
TYPICAL_SECONDS = {
    "simulate": 25,
    "daily": 35,
    "synthetic": 5,
    "quarterly": 45,
    "calibration": 25,
    "admit": 30,
    "reports": 20,
    "review": 10,
}
BAR = 24


def _say(msg: str) -> None:
    print(msg, flush=True)


def log_path() -> Path:
    return data_dir() / "demo.log"


def timings_path() -> Path:
    return data_dir() / "demo_timings.json"


def estimates() -> dict[str, float]:
    """Seconds per step: the last demo's on this machine where recorded, else typical ones."""
    try:
        recorded = json.loads(timings_path().read_text())
    except (OSError, ValueError):
        recorded = {}
    return {k: float(recorded.get(k, v)) for k, v in TYPICAL_SECONDS.items()}


def progress_bar(done: float, total: float, width: int = BAR) -> str:
    """`[#####-----]` for the share `done / total` (clamped to 0..1)."""
    share = min(max(done / total, 0.0), 1.0) if total > 0 else 1.0
    filled = round(share * width)
    return "[" + "#" * filled + "-" * (width - filled) + "]"


@contextmanager
def dagster_output_to(log: Path) -> Iterator[None]:
    """Everything written to stderr (Dagster's log lines, warnings) goes to `log` meanwhile;
    stdout (the progress) stays on the terminal."""
    sys.stderr.flush()
    saved = os.dup(2)
    with open(log, "a", encoding="utf-8") as f:
        os.dup2(f.fileno(), 2)
        try:
            yield
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)


class Steps:
    """The demo's steps as progress lines: `[3/6] [#########-------] title (about 40 s, ~1 min
    left)` when a step starts, its time when it ends, a live elapsed counter on a terminal."""

    def __init__(self, order: list[str]) -> None:
        self.order = order
        self.estimate = estimates()
        self.took: dict[str, float] = {}
        self.live = sys.stdout.isatty()

    def _left(self, key: str) -> float:
        rest = self.order[self.order.index(key) :]
        return sum(self.estimate[k] for k in rest)

    @contextmanager
    def step(self, key: str, title: str) -> Iterator[None]:
        n, total = self.order.index(key) + 1, sum(self.estimate.values())
        done = sum(self.took.get(k, self.estimate[k]) for k in self.order[: n - 1])
        head = f"[{n}/{len(self.order)}] {progress_bar(done, total)} {title}"
        _say(f"{head} (about {self.estimate[key]:.0f} s; ~{self._left(key) / 60:.1f} min left)")
        t0 = time.perf_counter()
        stop = threading.Event()
        ticker = threading.Thread(target=self._tick, args=(t0, stop), daemon=True)
        if self.live:
            ticker.start()
        try:
            yield
        finally:
            stop.set()
            if self.live:
                ticker.join()
                print("\r" + " " * 40 + "\r", end="", flush=True)
        self.took[key] = time.perf_counter() - t0
        _say(f"      done in {self.took[key]:.0f} s")

    def _tick(self, t0: float, stop: threading.Event) -> None:
        while not stop.wait(1.0):
            print(f"\r      {time.perf_counter() - t0:.0f} s ...", end="", flush=True)

    def save(self) -> None:
        timings_path().write_text(json.dumps({k: round(v, 1) for k, v in self.took.items()}))


def run_job(job_name: str, start: str, end: str | None = None) -> list[str]:
    """One run of `job_name` for partition `start`, or over the range [start, end] as one
    run, recorded in the persistent instance (so `make ui` shows it). Returns the warnings
    (asset checks that did not pass but do not fail the run)."""
    from dagster import AssetCheckSeverity, DagsterInstance

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
            raise_on_error=False,
        )
    if not result.success:
        raise DemoFailed(
            f"{job_name} failed (run {result.run_id}); see it in the Dagster UI (make ui)"
        )
    evaluations = [
        e.asset_check_evaluation_data
        for e in result.all_events
        if e.event_type_value == "ASSET_CHECK_EVALUATION"
    ]
    failed = [
        e.check_name for e in evaluations if not e.passed and e.severity == AssetCheckSeverity.ERROR
    ]
    if failed:
        raise DemoFailed(f"{job_name}: asset checks failed: {', '.join(failed)}")
    return [
        f"      warning: asset check {e.check_name} did not pass (see its metadata in the UI)"
        for e in evaluations
        if not e.passed  # findings to report, not failures of the run
    ]


class DemoFailed(RuntimeError):
    pass


def prepare_dagster_home() -> Path:
    """DAGSTER_HOME (default data/dagster_home) with telemetry off: no network at run time."""
    home = Path(os.environ.setdefault("DAGSTER_HOME", str(data_dir() / "dagster_home")))
    home.mkdir(parents=True, exist_ok=True)
    config = home / "dagster.yaml"
    if not config.exists():
        config.write_text("telemetry:\n  enabled: false\n")
    return home


STEP_ORDER = [
    "simulate",
    "daily",
    "synthetic",
    "quarterly",
    "calibration",
    "admit",
    "reports",
    "review",
]


def main() -> None:
    warnings.filterwarnings("ignore", category=Warning, module="dagster")
    t0 = time.perf_counter()
    prepare_dagster_home()
    os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
    log = log_path()
    log.parent.mkdir(parents=True, exist_ok=True)
    log.write_text("")
    _say(f"make demo: {len(STEP_ORDER)} steps; Dagster's log goes to {log}")
    try:
        with dagster_output_to(log):
            steps = run_demo(Steps(STEP_ORDER))
    except (DemoFailed, Exception) as exc:
        tail = log.read_text(encoding="utf-8", errors="replace").splitlines()[-40:]
        _say("\n".join(["", f"FAILED: {exc}", f"last lines of {log}:", *tail]))
        raise SystemExit(1) from exc
    steps.save()
    report(time.perf_counter() - t0, steps.took)


def run_demo(steps: Steps) -> Steps:
    """The steps: simulate, then the daily, synthetic, quarterly, calibration, admission,
    reports and review jobs."""
    from evals_pipeline.definitions import defs
    from evals_pipeline.simulator.source import SimulatedTraceSource
    from evals_pipeline.simulator.traffic import ensure_simulated

    source = defs.resources["trace_source"]
    if not isinstance(source, SimulatedTraceSource):
        raise DemoFailed(
            "make demo runs the embedded simulated product: the project file in use "
            f"({os.environ.get('EVALS_CONFIG') or 'evals.yaml'}) has another source. Unset "
            "EVALS_CONFIG, or run your own jobs with `make ui`."
        )
    cfg = source.config()
    quarters = quarters_within(cfg.start, cfg.end)
    week = last_full_week(cfg.end)
    notes: list[str] = []
    with steps.step(
        "simulate", f"simulating production traffic {cfg.start} .. {cfg.end} into {traffic_dir()}"
    ):
        summary = ensure_simulated(cfg, source.flat_dir(), lambda m: print(m, file=sys.stderr))
        if source.span_format == "otel":
            from evals_pipeline.simulator.otel import ensure_otel_export

            written = ensure_otel_export(source.flat_dir(), source.root_dir())
            _say(
                f"      written as OpenTelemetry GenAI spans (OTLP JSON): {written:,} spans in {source.root_dir()}"
            )
    _say(
        f"      {summary['traces']:,} traces, {summary['feedback_events']:,} feedback events, "
        f"{summary['labels']:,} expert labels, {summary['planted_bad_rows']:,} deliberately bad rows"
    )
    runs: list[tuple[str, str, Callable[[], list[str]]]] = [
        ("daily", f"job evals_daily over {cfg.start} .. {cfg.end} as one run",
         lambda: run_job("evals_daily", cfg.start, cfg.end)),
        ("synthetic", "job evals_synthetic (inputs from evals.dimensions.yaml's tuples; the realism "
         "filter is not calibrated yet, so none is admitted), then the expert labels them",
         lambda: generate_synthetic(source.flat_dir())),
        ("quarterly", f"job evals_quarterly (rotation, holdout evaluation, export, judging) for {', '.join(quarters)}",
         lambda: [w for q in quarters for w in run_job("evals_quarterly", q)]),
        ("calibration", f"job evals_calibration on the label files in {data_dir() / 'labels'}, then "
         f"evals_holdout_panel for {quarters[-1]}: its holdout judged by the now-trusted judges",
         lambda: calibrate(source.flat_dir(), quarters[-1])),
        ("admit", f"job evals_synthetic again (the filter is now trusted: it admits), then "
         f"evals_quarterly for {quarters[-1]} again (the admitted inputs enter the active pool, and are judged)",
         lambda: run_job("evals_synthetic", "") + run_job("evals_quarterly", quarters[-1])),
        ("reports", f"job evals_reports for {', '.join(quarters)}, then evals_online_gates (the "
         "shadow period and the canary, then the release gates and the HTML report again)",
         lambda: [w for q in quarters for w in run_job("evals_reports", q)] + run_job("evals_online_gates", "")),
        ("review", f"job evals_review for the week from {week} (Friday batch, review queues)",
         lambda: run_job("evals_review", week)),
    ]  # fmt: skip
    for key, title, run in runs:
        with steps.step(key, title):
            notes = run()
        for note in notes:
            _say(note)
    return steps


def generate_synthetic(traffic_root: Path) -> list[str]:
    """The synthetic job generates inputs; the simulated expert labels them for realism (the
    labels the filter is calibrated against in the calibration step)."""
    from evals_pipeline.simulator.synthetic import label_synthetic_inputs

    notes = run_job("evals_synthetic", "")
    n = label_synthetic_inputs(
        warehouse_path(), traffic_root, data_dir() / "labels" / "sim_expert_synthetic.jsonl"
    )
    return [*notes, f"      the expert labelled {n} synthetic inputs for realism"]


def calibrate(traffic_root: Path, latest_quarter: str) -> list[str]:
    """The experts' label files arrive, then the calibration job runs on them. With judges
    now trusted, the latest rotation's holdout is judged by them, inside the seal."""
    deliver_labels(traffic_root)
    notes = run_job("evals_calibration", "")
    return notes + run_job("evals_holdout_panel", latest_quarter)


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


def report(seconds: float, took: dict[str, float] | None = None) -> None:
    """The summary of the snapshot, where things are, how to look at them, and what each
    step took."""
    from evals_pipeline.demo_summary import summary
    from evals_pipeline.warehouse import connect

    con = connect(analytics_path(), read_only=True)
    try:
        steps = ", ".join(f"{k} {v:.0f} s" for k, v in (took or {}).items())
        _say(f"\nDone in {seconds:.0f} s" + (f" ({steps})." if steps else "."))
        for line in summary(con):
            _say(line)
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
  Dagster's log of this demo  {log_path()}
How to look:
  make ui                     Dagster UI at http://127.0.0.1:3000 (lineage, runs, checks, metadata)
  make review                 the review app at http://127.0.0.1:8765 (label the queues by keyboard)
  HTML report                 {data_dir() / "reports" / "latest.html"}
  {py} -c "import duckdb; print(duckdb.connect('{analytics_path()}', read_only=True).sql('SELECT category, count(*) FROM {TRACES} GROUP BY 1'))"
"""
    )


if __name__ == "__main__":
    main()
