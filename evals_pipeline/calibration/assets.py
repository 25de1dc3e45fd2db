"""Dagster wiring of calibration: human labels (picked up by a sensor), judges on the labelled
outputs, per-judge calibration with the test-once rule and the trust gate, annotator
agreement, and pass rates corrected for judge error."""

import json
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from itertools import combinations
from pathlib import Path

import numpy as np
import pandas as pd
from dagster import (
    AssetCheckResult,
    AssetCheckSeverity,
    AssetCheckSpec,
    AssetExecutionContext,
    AssetKey,
    AssetSpec,
    Config,
    DagsterInstance,
    DefaultSensorStatus,
    MaterializeResult,
    MetadataValue,
    RunRequest,
    SensorEvaluationContext,
    SkipReason,
    asset,
    multi_asset,
    sensor,
)
from pydantic import Field

from evals_pipeline.calibration.classifier import CLASSIFIER_JUDGE, feature_matrix, train_classifier
from evals_pipeline.calibration.labels import LABEL_SUFFIXES, load_labels
from evals_pipeline.calibration.metrics import (
    binary_agreement,
    corrected_pass_rate,
    kappa_with_interval,
)
from evals_pipeline.calibration.test_split import rows_touching_test_once
from evals_pipeline.judging.client import JudgeClient
from evals_pipeline.judging.panel import judge_outputs
from evals_pipeline.judging.rubrics import load_rubric
from evals_pipeline.metadata import markdown_table, table_metadata
from evals_pipeline.paths import data_dir
from evals_pipeline.pools.references import REFERENCES_TABLE, ReferenceSource
from evals_pipeline.project import ProjectResource
from evals_pipeline.records import (
    ANNOTATOR_AGREEMENT,
    CALIBRATION_TEST_USES,
    CALIBRATION_VERDICTS,
    CANDIDATE_OUTPUTS,
    CORRECTED_PASS_RATES,
    GOLDEN_CASES,
    GOLDEN_POOLS,
    HUMAN_LABELS,
    JUDGE_CALIBRATION,
    JUDGE_VERDICTS,
    PAIRWISE_VERDICTS,
    QUARANTINED_LABELS,
)
from evals_pipeline.warehouse import Warehouse, ensure_tables, registered, replace_table


def labels_dir() -> Path:
    return data_dir() / "labels"


def principal_annotator(conn, configured: str) -> str:
    """The configured principal expert, else the annotator with the most pointwise labels."""
    if configured:
        return configured
    row = conn.execute(
        "SELECT annotator FROM human_labels WHERE kind = 'pointwise' AND current GROUP BY 1 ORDER BY count(*) DESC, 1 LIMIT 1"
    ).fetchall()
    return row[0][0] if row else ""


# Empty / unset values mean "as the project file says" (judges.*); set them for one run only.
class CalibrationConfig(Config):
    judges: list[str] = Field(
        default=[], description="Override: judges to calibrate; empty = judges.panel."
    )
    rubric: str = Field(default="", description="Override: binary rubric; empty = judges.rubric.")
    principal_annotator: str = Field(
        default="",
        description="Override: the principal domain expert; empty = judges.principal_annotator, "
        "else the annotator with most labels.",
    )
    classifier_judge: bool | None = Field(
        default=None, description="Override: also fit the scikit-learn classifier judge."
    )
    trust_threshold: float | None = Field(
        default=None,
        description="Override: a judge is trusted when test-split TPR and TNR both reach this.",
    )
    force_test_look: bool = Field(
        default=False, description="Measure the test split again although it was used (recorded)."
    )


@dataclass(frozen=True)
class CalibrationSettings:
    judges: list[str]
    rubric: str
    principal_annotator: str
    classifier_judge: bool
    trust_threshold: float

    @property
    def calibrated(self) -> list[str]:
        return self.judges + ([CLASSIFIER_JUDGE] if self.classifier_judge else [])


def calibration_settings(
    config: CalibrationConfig, project: ProjectResource
) -> CalibrationSettings:
    j = project.config().judges
    return CalibrationSettings(
        judges=list(config.judges or j.panel),
        rubric=config.rubric or j.rubric,
        principal_annotator=config.principal_annotator or j.principal_annotator,
        classifier_judge=j.classifier
        if config.classifier_judge is None
        else config.classifier_judge,
        trust_threshold=j.trust_threshold
        if config.trust_threshold is None
        else config.trust_threshold,
    )


@multi_asset(
    name="human_label_files",
    specs=[
        AssetSpec(
            "human_labels",
            description="Human labels from data/labels/ (append-only; newest per annotator is current), with their split.",
            group_name="calibration",
            kinds={"duckdb"},
        ),
        AssetSpec(
            "quarantined_labels",
            description="Label rows that break the format, with the reason.",
            group_name="calibration",
            kinds={"duckdb"},
        ),
    ],
)
def human_label_files(
    context: AssetExecutionContext, warehouse: Warehouse
) -> Iterator[MaterializeResult]:
    """Rebuild human_labels from every label file (JSONL or CSV) in data/labels/."""
    # What was read, recorded with the materialization: the sensor compares against it.
    files_state = _label_files_state(labels_dir())
    with warehouse.get_connection() as conn:
        ensure_tables(conn, [HUMAN_LABELS, QUARANTINED_LABELS])
        counts = load_labels(conn, labels_dir())
        context.log.info(f"labels: {counts}")
        splits = conn.execute(
            """SELECT kind, split, count(*) FILTER (WHERE verdict IN ('pass', 'A')) AS pass_or_a,
                      count(*) FILTER (WHERE verdict IN ('fail', 'B')) AS fail_or_b, count(*) AS total
               FROM human_labels WHERE current GROUP BY ALL ORDER BY ALL"""
        ).df()
        meta = {k: MetadataValue.int(v) for k, v in counts.items()}
        yield MaterializeResult(
            asset_key="human_labels",
            metadata={
                **table_metadata(conn, "human_labels"),
                **meta,
                "splits": MetadataValue.md(markdown_table(splits)),
                LABEL_FILES_STATE: MetadataValue.json(files_state),
            },
        )
        yield MaterializeResult(
            asset_key="quarantined_labels",
            metadata={**table_metadata(conn, "quarantined_labels"), **meta},
        )


SUBJECTS_SQL = """
SELECT l.subject_id, t.category, t.input, t.output, r.reference_good, r.reference_borderline, l.split,
       l.verdict = 'pass' AS human_pass
FROM human_labels l JOIN visible_traces t ON t.trace_id = l.subject_id JOIN {refs} r ON r.trace_id = l.subject_id
WHERE l.kind = 'pointwise' AND l.current AND l.annotator = $principal
UNION ALL
SELECT l.subject_id, c.category, c.input, c.output, c.reference_good, c.reference_borderline, l.split,
       l.verdict = 'pass'
FROM human_labels l JOIN golden_cases c ON c.case_id = l.subject_id JOIN unsealed_pool p USING (case_id)
WHERE l.kind = 'pointwise' AND l.current AND l.annotator = $principal
UNION ALL
-- candidate outputs labelled from the review app's disagreement queue (subject case_id|app_version)
SELECT l.subject_id, c.category, c.input, o.output, c.reference_good, c.reference_borderline, l.split,
       l.verdict = 'pass'
FROM human_labels l JOIN candidate_outputs o ON o.case_id || '|' || o.app_version = l.subject_id
JOIN golden_cases c ON c.case_id = o.case_id JOIN unsealed_pool p ON p.case_id = o.case_id
WHERE l.kind = 'pointwise' AND l.current AND l.annotator = $principal
  AND o.output IS NOT NULL
"""


@asset(
    group_name="calibration",
    kinds={"duckdb", "litellm", "sklearn"},
    deps=["human_labels", "traces", "golden_cases", "candidate_outputs"],
)
def calibration_verdicts(
    context: AssetExecutionContext,
    config: CalibrationConfig,
    warehouse: Warehouse,
    judge_client: JudgeClient,
    reference_source: ReferenceSource,
    project: ProjectResource,
) -> MaterializeResult:
    """The judges' verdicts on the outputs the principal expert labelled (sealed traces and
    holdout cases excluded), plus the scikit-learn classifier judge fitted on the train split."""
    c = calibration_settings(config, project)
    rubric = load_rubric(c.rubric)
    pii: Counter[str] = Counter()
    with warehouse.get_connection() as conn:
        ensure_tables(
            conn,
            [CALIBRATION_VERDICTS, HUMAN_LABELS, GOLDEN_CASES, GOLDEN_POOLS, CANDIDATE_OUTPUTS],
        )
        reference_source.load(conn)
        who = principal_annotator(conn, c.principal_annotator)
        subjects = conn.execute(
            SUBJECTS_SQL.replace("{refs}", REFERENCES_TABLE), {"principal": who}
        ).df()
        context.log.info(f"{len(subjects):,} outputs labelled by {who!r} with references")
        with registered(conn, _subjects=subjects[["subject_id"]]):
            skipped = dict(conn.execute(SKIPPED_LABELS_SQL, {"principal": who}).fetchall())
        if skipped:
            context.log.info(
                "labels not used for calibration: "
                + "; ".join(f"{n:,} {why}" for why, n in sorted(skipped.items()))
            )
        judged, stats = judge_outputs(
            judge_client,
            conn,
            [((r["subject_id"], r["category"]), r, [rubric]) for r in subjects.to_dict("records")],
            c.judges,
            pii,
            context.log.info,
            context.run_id,
        )
        rows = [
            (*j.subject, j.judge, rubric.name, rubric.version, j.verdict, j.error) for j in judged
        ]
        if c.classifier_judge:
            model = train_classifier(subjects[subjects["split"] == "train"])
            if model is not None and len(subjects):
                predicted = model.predict(feature_matrix(subjects))
                rows += [
                    (
                        s,
                        c,
                        CLASSIFIER_JUDGE,
                        rubric.name,
                        rubric.version,
                        "pass" if p else "fail",
                        None,
                    )
                    for s, c, p in zip(
                        subjects["subject_id"], subjects["category"], predicted, strict=True
                    )
                ]
        replace_table(
            conn,
            CALIBRATION_VERDICTS,
            pd.DataFrame(rows, columns=CALIBRATION_VERDICTS.column_names),
        )
        return MaterializeResult(
            metadata={
                **table_metadata(conn, "calibration_verdicts"),
                "principal_annotator": MetadataValue.text(who),
                "labels_skipped": MetadataValue.json(skipped),
                "calls_made": MetadataValue.int(stats.called),
                "calls_cached": MetadataValue.int(stats.cached),
                "errors": MetadataValue.int(stats.errors),
                "cost_usd_this_run": MetadataValue.float(round(stats.cost_usd, 6)),
                "pii_redacted": MetadataValue.json(dict(pii)),
            }
        )


# Why a principal's label measures no judge: every label is either used or counted here.
SKIPPED_LABELS_SQL = """
SELECT reason, count(*) FROM (
    SELECT CASE
        WHEN t.trace_id IS NOT NULL AND t.sealed THEN 'on a sealed trace (holdout reservoir)'
        WHEN t.trace_id IS NOT NULL THEN 'on a trace without references (add them to the reviewed files)'
        WHEN p.pool = 'holdout' THEN 'on a holdout case'
        ELSE 'on a subject not in the warehouse (not ingested, quarantined, or unknown)'
    END AS reason
    FROM human_labels l
    LEFT JOIN _subjects s ON s.subject_id = l.subject_id
    LEFT JOIN traces t ON t.trace_id = l.subject_id
    LEFT JOIN golden_pools p ON p.case_id = split_part(l.subject_id, '|', 1)
    WHERE l.kind = 'pointwise' AND l.current AND l.annotator = $principal AND s.subject_id IS NULL
) GROUP BY 1 ORDER BY 1
"""


MEASURED_SQL = """
SELECT v.judge, v.rubric, v.rubric_version, l.split, v.category, l.verdict = 'pass' AS human_pass, v.verdict = 'pass' AS judge_pass
FROM calibration_verdicts v JOIN human_labels l ON l.subject_id = v.subject_id
WHERE l.kind = 'pointwise' AND l.current AND l.annotator = $principal AND v.verdict IS NOT NULL
"""


def calibration_rows(measured: pd.DataFrame, threshold: float) -> pd.DataFrame:
    """One row per judge x rubric version x split x category (and 'all')."""
    out = []
    for (judge, rubric, version, split), g in measured.groupby(
        ["judge", "rubric", "rubric_version", "split"]
    ):
        for category, part in [("all", g), *sorted(g.groupby("category"))]:
            a = binary_agreement(part["human_pass"].to_numpy(), part["judge_pass"].to_numpy())
            trusted = (
                (a.tpr >= threshold and a.tnr >= threshold)
                if split == "test" and category == "all"
                else None
            )
            out.append(
                (
                    judge,
                    rubric,
                    version,
                    split,
                    category,
                    a.n,
                    a.tp,
                    a.fn,
                    a.tn,
                    a.fp,
                    a.tpr,
                    *a.tpr_ci,
                    a.tnr,
                    *a.tnr_ci,
                    a.accuracy,
                    *a.accuracy_ci,
                    a.balanced_accuracy,
                    *a.balanced_accuracy_ci,
                    a.kappa,
                    *a.kappa_ci,
                    trusted,
                    threshold,
                    None,  # position consistency: filled in from pairwise_verdicts
                )
            )
    return pd.DataFrame(out, columns=JUDGE_CALIBRATION.column_names)


@multi_asset(
    name="judge_calibration",
    specs=[
        AssetSpec(
            "judge_calibration",
            description="TPR/TNR/accuracy/balanced accuracy/kappa with 95% intervals per judge x rubric version x split x category.",
            group_name="calibration",
            kinds={"duckdb"},
            deps=["calibration_verdicts", "human_labels"],
        ),
        AssetSpec(
            "calibration_test_uses",
            description="Every look at the test split per judge + rubric version (forced second looks marked).",
            group_name="calibration",
            kinds={"duckdb"},
            deps=["calibration_verdicts", "human_labels"],
        ),
    ],
    check_specs=[
        AssetCheckSpec(
            "judges_trusted",
            asset="judge_calibration",
            description="Every calibrated judge reaches the trust threshold on the test split (warns otherwise).",
        )
    ],
)
def judge_calibration(
    context: AssetExecutionContext,
    config: CalibrationConfig,
    warehouse: Warehouse,
    project: ProjectResource,
) -> Iterator[MaterializeResult | AssetCheckResult]:
    """TPR, TNR, accuracy, balanced accuracy and Cohen's kappa with 95% intervals per judge x
    rubric version x split (and per category), with the confusion counts. The test split is
    measured once per judge + rubric version: later runs keep that measurement unless
    force_test_look is set, and every look is recorded in calibration_test_uses."""
    with warehouse.get_connection() as conn:
        ensure_tables(
            conn, [JUDGE_CALIBRATION, CALIBRATION_TEST_USES, CALIBRATION_VERDICTS, HUMAN_LABELS]
        )
        c = calibration_settings(config, project)
        who = principal_annotator(conn, c.principal_annotator)
        # ORDER BY: the bootstrap resamples rows by position, so the rows' order must not
        # depend on how DuckDB's threads scanned the table (same data, same intervals).
        measured = conn.execute(MEASURED_SQL + " ORDER BY ALL", {"principal": who}).df()
        # Only the judges of the panel (and the classifier judge) are measured: a judge that
        # left the panel keeps only its history (calibration_test_uses, the judge cache).
        measured = measured[measured["judge"].isin(c.calibrated)]
        fresh = calibration_rows(measured, c.trust_threshold)
        used = {
            tuple(r)
            for r in conn.execute(
                "SELECT DISTINCT judge, rubric, rubric_version FROM calibration_test_uses"
            ).fetchall()
        }
        stored = conn.execute("SELECT * FROM judge_calibration WHERE split = 'test'").df()
        frame, looks = rows_touching_test_once(fresh, stored, used, config.force_test_look)
        ensure_tables(conn, [PAIRWISE_VERDICTS])
        consistency = dict(
            conn.execute(
                "SELECT judge, avg(position_consistent::INT) FROM pairwise_verdicts WHERE position_consistent IS NOT NULL GROUP BY 1"
            ).fetchall()
        )
        frame = frame.assign(
            position_consistency=[
                consistency.get(j) if c == "all" else None
                for j, c in zip(frame["judge"], frame["category"], strict=True)
            ]
        )
        replace_table(conn, JUDGE_CALIBRATION, frame[JUDGE_CALIBRATION.column_names])
        now = datetime.now(UTC).replace(tzinfo=None)
        for judge, rubric, version, forced, n in looks:
            conn.execute(
                "INSERT INTO calibration_test_uses VALUES (?, ?, ?, ?, ?, ?, ?)",
                [judge, rubric, version, now, context.run_id, forced, n],
            )
            context.log.info(
                f"test split measured for {judge} ({rubric}@{version}){' (forced second look)' if forced else ''}"
            )
        status = conn.execute(
            """SELECT judge, rubric, rubric_version, n, round(tpr, 3) AS tpr, round(tnr, 3) AS tnr, round(kappa, 3) AS kappa, trusted
               FROM judge_calibration WHERE split = 'test' AND category = 'all' ORDER BY judge"""
        ).df()
        yield MaterializeResult(
            asset_key="calibration_test_uses",
            metadata={
                **table_metadata(conn, "calibration_test_uses"),
                "looks_this_run": MetadataValue.int(len(looks)),
            },
        )
        yield MaterializeResult(
            asset_key="judge_calibration",
            metadata={
                **table_metadata(
                    conn, "judge_calibration", preview_where="split = 'test' AND category = 'all'"
                ),
                "principal_annotator": MetadataValue.text(who),
                "test_split": MetadataValue.md(markdown_table(status)),
                "test_looks_this_run": MetadataValue.int(len(looks)),
            },
        )
    untrusted = (
        status[~status["trusted"].astype(bool)]["judge"].tolist() if not status.empty else []
    )
    yield AssetCheckResult(
        check_name="judges_trusted",
        asset_key="judge_calibration",
        passed=not status.empty and not untrusted,
        severity=AssetCheckSeverity.WARN,
        metadata={
            "untrusted": MetadataValue.json(untrusted),
            "test_split": MetadataValue.md(markdown_table(status)),
        },
    )


@asset(group_name="calibration", kinds={"duckdb"}, deps=["human_labels"])
def annotator_agreement(context: AssetExecutionContext, warehouse: Warehouse) -> MaterializeResult:
    """Cohen's kappa for each pair of human annotators, on the subjects both labelled."""
    with warehouse.get_connection() as conn:
        ensure_tables(conn, [ANNOTATOR_AGREEMENT, HUMAN_LABELS])
        labels = conn.execute(
            "SELECT subject_id, kind, annotator, verdict, source_file FROM human_labels WHERE current"
        ).df()
        rows = []
        rng = np.random.default_rng(0)
        for kind, g in labels.groupby("kind"):
            wide = g.pivot_table(
                index="subject_id", columns="annotator", values="verdict", aggfunc="first"
            )
            for a, b in combinations(sorted(wide.columns), 2):
                both = wide[[a, b]].dropna()
                if len(both) < 10:
                    continue
                x, y = both[a].to_numpy(), both[b].to_numpy()
                k, low, high = kappa_with_interval(x, y, rng)
                source = ", ".join(sorted(set(g[g["annotator"].isin([a, b])]["source_file"])))
                rows.append((kind, source, a, b, len(both), float((x == y).mean()), k, low, high))
        frame = pd.DataFrame(rows, columns=ANNOTATOR_AGREEMENT.column_names)
        replace_table(conn, ANNOTATOR_AGREEMENT, frame)
        return MaterializeResult(
            metadata={
                **table_metadata(conn, "annotator_agreement"),
                "kappas": MetadataValue.md(markdown_table(frame.round(3))),
            }
        )


@asset(
    group_name="calibration",
    kinds={"duckdb"},
    deps=["judge_verdicts", "judge_calibration", "calibration_verdicts"],
)
def corrected_pass_rates(
    context: AssetExecutionContext,
    config: CalibrationConfig,
    warehouse: Warehouse,
    project: ProjectResource,
) -> MaterializeResult:
    """Each judge's active-pool pass rate per app version, corrected for its test-split TPR/TNR
    (Rogan-Gladen) with a bootstrap interval that carries their uncertainty, and the judge's
    trust status; a judge or rubric version without a test measurement needs calibration."""
    with warehouse.get_connection() as conn:
        ensure_tables(
            conn, [CORRECTED_PASS_RATES, JUDGE_VERDICTS, JUDGE_CALIBRATION, CALIBRATION_VERDICTS]
        )
        c = calibration_settings(config, project)
        who = principal_annotator(conn, c.principal_annotator)
        judged = conn.execute(
            "SELECT judge, rubric, rubric_version, app_version, verdict = 'pass' AS passed FROM judge_verdicts WHERE verdict IS NOT NULL ORDER BY ALL"
        ).df()
        calib = conn.execute(
            MEASURED_SQL + " AND l.split = 'test' ORDER BY ALL", {"principal": who}
        ).df()
        trust = {
            (r[0], r[1], r[2]): r[3]
            for r in conn.execute(
                "SELECT judge, rubric, rubric_version, trusted FROM judge_calibration WHERE split = 'test' AND category = 'all'"
            ).fetchall()
        }
        rows = corrected_rates(judged, calib, trust)
        frame = pd.DataFrame(rows, columns=CORRECTED_PASS_RATES.column_names)
        replace_table(conn, CORRECTED_PASS_RATES, frame)
        return MaterializeResult(
            metadata={
                **table_metadata(conn, "corrected_pass_rates"),
                "rates": MetadataValue.md(markdown_table(frame.round(3))),
            }
        )


def corrected_rates(
    judged: pd.DataFrame, calib: pd.DataFrame, trust: dict[tuple[str, str, str], bool]
) -> list[tuple]:
    """Rows of corrected_pass_rates. `judged`: judge, rubric, rubric_version, app_version,
    passed; `calib`: the test split's judge, rubric, rubric_version, human_pass, judge_pass;
    `trust`: (judge, rubric, version) -> trusted, for the combinations measured on the test
    split. Anything else (a new judge model, an edited rubric) needs calibration."""
    rows = []
    for (judge, rubric, version, app), g in judged.groupby(
        ["judge", "rubric", "rubric_version", "app_version"]
    ):
        c = calib[
            (calib["judge"] == judge)
            & (calib["rubric"] == rubric)
            & (calib["rubric_version"] == version)
        ]
        key = (judge, rubric, version)
        if key in trust and len(c):
            point, low, high = corrected_pass_rate(
                g["passed"].to_numpy(), c["human_pass"].to_numpy(), c["judge_pass"].to_numpy()
            )
            status = "trusted" if trust[key] else "untrusted"
        else:
            point = low = high = None
            status = "needs_calibration"
        rows.append(
            (
                judge,
                rubric,
                version,
                app,
                len(g),
                float(g["passed"].mean()),
                point,
                low,
                high,
                trust.get(key),
                status,
            )
        )
    return rows


def _label_files_state(folder: Path) -> dict[str, list[int]]:
    if not folder.is_dir():
        return {}
    return {
        p.name: [p.stat().st_mtime_ns, p.stat().st_size]
        for p in sorted(folder.iterdir())
        if p.suffix.lower() in LABEL_SUFFIXES
    }


LABEL_FILES_STATE = "label_files_state"


def last_loaded_label_files(instance: DagsterInstance) -> dict[str, list[int]]:
    """The label files (name -> [mtime_ns, size]) the last human_labels materialization read."""
    event = instance.get_latest_materialization_event(AssetKey("human_labels"))
    materialization = event.asset_materialization if event else None
    value = materialization.metadata.get(LABEL_FILES_STATE) if materialization else None
    return dict(value.value) if value is not None else {}  # type: ignore[arg-type]


@sensor(
    job_name="evals_calibration",
    minimum_interval_seconds=30,
    default_status=DefaultSensorStatus.RUNNING,
)
def label_files_sensor(context: SensorEvaluationContext) -> Iterator[RunRequest | SkipReason]:
    """Starts evals_calibration when a label file appears or grows in data/labels/. On its
    first tick (no cursor yet, e.g. the first `make ui` after `make demo`) it compares with
    the files the last human_labels materialization read, so an unchanged folder starts
    nothing; a run it starts names the files that changed (tag label_files)."""
    state = _label_files_state(labels_dir())
    if context.cursor:
        previous = json.loads(context.cursor)
    else:
        previous = last_loaded_label_files(context.instance)
        if previous == state:
            context.update_cursor(json.dumps(state))
    if not state or state == previous:
        yield SkipReason(
            f"no new or changed label files in {labels_dir()} since the last calibration run"
        )
        return
    changed = sorted(k for k in state if previous.get(k) != state[k])
    context.update_cursor(json.dumps(state))
    yield RunRequest(
        run_key=json.dumps(state, sort_keys=True), tags={"label_files": ", ".join(changed)[:200]}
    )
