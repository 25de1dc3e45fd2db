"""Dagster wiring of calibration: human labels (picked up by a sensor), judges on the labelled
outputs, per-judge calibration with the test-once rule and the trust gate, annotator
agreement, and pass rates corrected for judge error."""

from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import pandas as pd
from dagster import (
    AssetCheckResult,
    AssetCheckSeverity,
    AssetCheckSpec,
    AssetExecutionContext,
    Config,
    MaterializeResult,
    MetadataValue,
    multi_asset,
)
from duckdb import DuckDBPyConnection
from pydantic import Field

from evals_pipeline.calibration.bias import (
    FLIPS_SQL,
    LENGTH_SQL,
    VERDICT_COLUMNS,
    judge_bias_rows,
    length_flag,
    length_probe,
    with_output_chars,
)
from evals_pipeline.calibration.classifier import CLASSIFIER_JUDGE, classifier_verdicts
from evals_pipeline.calibration.evidence import (
    evidence_dir,
    files_state,
    load_evidence,
    segment_sql,
    verdicts_format,
)
from evals_pipeline.calibration.failure_modes import (
    failure_mode_judges as failure_mode_judges_frame,
)
from evals_pipeline.calibration.few_shot import (
    EXAMPLES_OUTSIDE_TRAIN_SQL,
    calibrated_prompts,
    example_candidates,
    informative_first,
    measured_effect,
    pin_examples,
    redacted_examples,
    with_prompts,
)
from evals_pipeline.calibration.gold import build_gold_labels, gold_summary
from evals_pipeline.calibration.labels import label_splits, load_labels
from evals_pipeline.calibration.measurement import (
    EXTERNAL_SUBJECTS_SQL,
    MEASURED_SQL,
    SUBJECTS_SQL,
    calibrated_now,
    corrected_rates,
    measured_in_windows,
    position_consistency,
    principal_annotator,
    quarters_in_view,
    record_test_looks,
    skipped_labels,
    test_items_measured,
    test_split_status,
    test_split_used,
    with_position_consistency,
    with_trust_status,
)
from evals_pipeline.calibration.metrics import annotator_pairs
from evals_pipeline.calibration.pairwise import PAIRWISE_MEASURED_SQL, pairwise_calibration_rows
from evals_pipeline.calibration.sensors import labels_dir
from evals_pipeline.calibration.test_split import rows_touching_test_once
from evals_pipeline.ingest.categories import empty_accuracy, measure
from evals_pipeline.judging.client import JudgeClient, RunStats
from evals_pipeline.judging.few_shot import pinned_for, project_rubric, with_examples
from evals_pipeline.judging.panel import judge_outputs, subject_verdicts
from evals_pipeline.judging.rubrics import load_rubric
from evals_pipeline.judging.trust import enabled_failure_modes, trusted_judges
from evals_pipeline.metadata import (
    evidence_results,
    markdown_table,
    replaced_with,
    table_metadata,
)
from evals_pipeline.pools.references import REFERENCES_TABLE, ReferenceSource
from evals_pipeline.project import ProjectResource
from evals_pipeline.records import (
    ANNOTATOR_AGREEMENT,
    CALIBRATION_TEST_USES,
    CALIBRATION_VERDICTS,
    CANDIDATE_OUTPUTS,
    CATEGORIZER_ACCURACY,
    CORRECTED_PASS_RATES,
    EXTERNAL_VERDICTS,
    FAILURE_MODE_JUDGES,
    FEW_SHOT_EFFECT,
    FEW_SHOT_EXAMPLES,
    GOLD_LABELS,
    GOLDEN_CASES,
    HUMAN_LABELS,
    JUDGE_BIAS,
    JUDGE_CALIBRATION,
    JUDGE_VERDICTS,
    PAIRWISE_CALIBRATION,
    PAIRWISE_VERDICTS,
    QUARANTINED_LABELS,
    QUARANTINED_VERDICTS,
    TRACES,
    UNSEALED_POOL,
    VISIBLE_TRACES,
)
from evals_pipeline.specs import table_asset, table_spec
from evals_pipeline.synthetic.admission import realism_calibration
from evals_pipeline.warehouse import Warehouse, replace_table


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
    min_test_labels: int = 100
    # The realism filter of synthetic inputs: its judges, and its rubric (measured apart).
    filter_judges: tuple[str, ...] = ()
    apart: tuple[str, ...] = ()

    @property
    def calibrated(self) -> list[str]:
        return (
            self.judges
            + ([CLASSIFIER_JUDGE] if self.classifier_judge else [])
            + [j for j in self.filter_judges if j not in self.judges]
        )


def calibration_settings(
    config: CalibrationConfig, project: ProjectResource
) -> CalibrationSettings:
    j, synthetic = project.config().judges, project.config().synthetic
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
        min_test_labels=j.min_test_labels,
        filter_judges=tuple(synthetic.filter_judges) if synthetic else (),
        apart=(synthetic.filter_rubric,) if synthetic else (),
    )


@multi_asset(
    name="human_label_files",
    specs=[
        table_spec(
            HUMAN_LABELS,
            group="calibration",
            how="Rebuilt from every label file (JSONL or CSV) in data/labels/.",
        ),
        table_spec(QUARANTINED_LABELS, group="calibration"),
        table_spec(
            GOLD_LABELS,
            group="calibration",
            how="One label per item: the annotators' majority or the principal's label "
            "(evidence.gold in the project file).",
        ),
    ],
)
def human_label_files(
    context: AssetExecutionContext, warehouse: Warehouse, project: ProjectResource
) -> Iterator[MaterializeResult]:
    """Rebuild human_labels from every label file (JSONL or CSV) in data/labels/ (bad rows
    quarantined with their reason), and gold_labels from them: the label each item's judges
    are measured against, with its per-item agreement."""
    evidence = project.config().evidence
    # What was read, recorded with the materialization: the sensor compares against it.
    state = files_state(labels_dir())
    with warehouse.get_connection() as conn:
        counts = load_labels(conn, labels_dir())
        context.log.info(f"labels: {counts}")
        who = principal_annotator(conn, project.config().judges.principal_annotator)
        modes = list(project.config().judges.failure_modes)
        gold = build_gold_labels(conn, evidence.gold, who, evidence.segment_by, modes)
        context.log.info(f"gold labels: {gold}")
        yield from evidence_results(
            conn, HUMAN_LABELS, QUARANTINED_LABELS, counts, state, {"splits": label_splits(conn)}
        )
        yield MaterializeResult(
            asset_key=GOLD_LABELS.name,
            metadata={
                **table_metadata(conn, GOLD_LABELS),
                **{k: MetadataValue.int(v) for k, v in gold.items()},
                "principal_annotator": MetadataValue.text(who),
                "gold": MetadataValue.md(markdown_table(gold_summary(conn))),
            },
        )


@multi_asset(
    name="external_verdict_files",
    specs=[
        table_spec(
            EXTERNAL_VERDICTS,
            group="calibration",
            how="Rebuilt from every verdict file (JSONL or CSV) in data/verdicts/.",
        ),
        table_spec(QUARANTINED_VERDICTS, group="calibration"),
    ],
)
def external_verdict_files(
    context: AssetExecutionContext, warehouse: Warehouse, project: ProjectResource
) -> Iterator[MaterializeResult]:
    """Rebuild external_verdicts from every verdict file in data/verdicts/: verdicts another
    tool or an earlier run gave, pointwise or pairwise (with the order the outputs were
    shown in), stored as judge `external/<name>` and calibrated like the litellm judges."""
    fmt = verdicts_format(project.config().evidence.segment_by)
    folder = evidence_dir("verdicts")
    state = files_state(folder)
    with warehouse.get_connection() as conn:
        counts = load_evidence(conn, fmt, folder)
        context.log.info(f"external verdicts: {counts}")
        judges = conn.execute(
            f"""SELECT judge, kind, rubric, rubric_version, count(*) AS verdicts,
                      count(DISTINCT subject_id) AS subjects
               FROM {EXTERNAL_VERDICTS} WHERE current GROUP BY ALL ORDER BY ALL"""
        ).df()
        yield from evidence_results(
            conn, EXTERNAL_VERDICTS, QUARANTINED_VERDICTS, counts, state, {"judges": judges}
        )


def _calls_metadata(stats: RunStats, pii: Counter[str]) -> dict[str, MetadataValue]:
    return {
        "calls_made": MetadataValue.int(stats.called),
        "calls_cached": MetadataValue.int(stats.cached),
        "errors": MetadataValue.int(stats.errors),
        "cost_usd_this_run": MetadataValue.float(round(stats.cost_usd, 6)),
        "pii_redacted": MetadataValue.json(dict(pii)),
    }


def _subjects(conn: DuckDBPyConnection, reference_source: ReferenceSource) -> pd.DataFrame:
    reference_source.load(conn)
    return conn.execute(SUBJECTS_SQL.replace("{refs}", REFERENCES_TABLE)).df()


def _labelled_outputs(
    context: AssetExecutionContext, conn: DuckDBPyConnection, reference_source: ReferenceSource
) -> tuple[pd.DataFrame, pd.DataFrame, dict[str, int]]:
    """(gold-labelled outputs with references, imported verdicts on gold-labelled subjects,
    the gold labels measuring no judge by reason), logged."""
    subjects = _subjects(conn, reference_source)
    external = conn.execute(EXTERNAL_SUBJECTS_SQL).df()
    context.log.info(
        f"{len(subjects):,} gold-labelled outputs with references; "
        f"{len(external):,} imported verdicts on gold-labelled subjects"
    )
    skipped = skipped_labels(conn, subjects, external)
    if skipped:
        context.log.info(
            "gold labels not used for calibration: "
            + "; ".join(f"{n:,} {why}" for why, n in sorted(skipped.items()))
        )
    return subjects, external, skipped


@table_asset(FAILURE_MODE_JUDGES, group="calibration", reads=[GOLD_LABELS])
def failure_mode_judges(warehouse: Warehouse, project: ProjectResource) -> MaterializeResult:
    """The per-failure-mode judges of the project file (judges.failure_modes) and whether each
    is enabled: a mode's judge is calibrated, and judges candidate outputs, once the mode has
    judges.failure_mode_min_labels gold fails; until then it waits, with its count shown."""
    judges = project.config().judges
    with warehouse.get_connection() as conn:
        frame = failure_mode_judges_frame(
            conn, judges.failure_modes, judges.failure_mode_min_labels
        )
        replace_table(conn, FAILURE_MODE_JUDGES, frame)
        enabled = frame["enabled"].astype(bool)
        return MaterializeResult(
            metadata={
                **table_metadata(conn, FAILURE_MODE_JUDGES),
                "enabled": MetadataValue.json(frame[enabled]["failure_mode"].tolist()),
                "waiting": MetadataValue.json(
                    {r.failure_mode: int(r.labelled) for r in frame[~enabled].itertuples()}
                ),
            }
        )


@table_asset(
    FEW_SHOT_EXAMPLES,
    group="calibration",
    reads=[GOLD_LABELS, HUMAN_LABELS, VISIBLE_TRACES, GOLDEN_CASES, UNSEALED_POOL],
    check_specs=[
        AssetCheckSpec(
            "examples_from_train_only",
            asset=FEW_SHOT_EXAMPLES.name,
            blocking=True,
            description="No pinned example is a dev or test item (they measure the judges).",
        )
    ],
)
def few_shot_examples(
    context: AssetExecutionContext,
    config: CalibrationConfig,
    warehouse: Warehouse,
    judge_client: JudgeClient,
    reference_source: ReferenceSource,
    project: ProjectResource,
) -> Iterator[MaterializeResult | AssetCheckResult]:
    """Pins judges.few_shot examples to the rubric version, once: from the calibration train
    split, balanced pass/fail across categories, each fail with the expert's critique (PII
    redacted), the ones the panel gets wrong zero-shot first (the same calls the calibration
    makes next, so cache hits there). Later runs keep them; a new rubric version or k pins
    afresh."""
    c = calibration_settings(config, project)
    k = project.config().judges.few_shot
    with warehouse.get_connection() as conn:
        rubric = load_rubric(c.rubric)
        candidates = example_candidates(
            conn,
            _subjects(conn, reference_source),
            principal_annotator(conn, c.principal_annotator),
        )

        def rank(frame: pd.DataFrame) -> pd.DataFrame:
            return informative_first(
                frame,
                subject_verdicts(
                    judge_client, conn, frame, rubric, c.judges, context.log.info, context.run_id
                ),
            )

        pinned, new = pin_examples(conn, rubric, k, redacted_examples(candidates), rank)
        context.log.info(
            f"{len(pinned)} examples {'pinned now' if new else 'pinned earlier'} for "
            f"{rubric.key} (judges.few_shot = {k}; {len(candidates)} train candidates)"
            if k
            else "judges.few_shot is 0: no examples"
        )
        yield MaterializeResult(
            metadata={
                **table_metadata(conn, FEW_SHOT_EXAMPLES),
                "pinned_now": MetadataValue.bool(new),
                "train_candidates": MetadataValue.int(len(candidates)),
            }
        )
        yield examples_check(conn)


@table_asset(
    CALIBRATION_VERDICTS,
    group="calibration",
    reads=[
        GOLD_LABELS,
        EXTERNAL_VERDICTS,
        VISIBLE_TRACES,
        GOLDEN_CASES,
        UNSEALED_POOL,
        CANDIDATE_OUTPUTS,
        FEW_SHOT_EXAMPLES,
        FAILURE_MODE_JUDGES,
    ],
    kinds=("duckdb", "litellm", "sklearn"),
)
def calibration_verdicts(
    context: AssetExecutionContext,
    config: CalibrationConfig,
    warehouse: Warehouse,
    judge_client: JudgeClient,
    reference_source: ReferenceSource,
    project: ProjectResource,
) -> MaterializeResult:
    """The judges' verdicts on the gold-labelled outputs (sealed traces and holdout cases
    excluded) with the rubric as deployed, and on the dev outputs also with the other prompt
    (with or without the pinned few-shot examples) to measure what examples change; the
    imported pointwise verdicts of external judges; the scikit-learn classifier judge; and the
    realism filter's verdicts on the expert-labelled synthetic inputs."""
    c = calibration_settings(config, project)
    pii: Counter[str] = Counter()
    with warehouse.get_connection() as conn:
        deployed, other = calibrated_prompts(conn, load_rubric(c.rubric), project.config().judges)
        subjects, external, skipped = _labelled_outputs(context, conn, reference_source)
        judged, stats = judge_outputs(
            judge_client,
            conn,
            with_prompts(subjects, deployed, other, enabled_failure_modes(conn)),
            c.judges,
            pii,
            context.log.info,
            context.run_id,
        )
        rows = [
            (*j.subject, j.judge, j.rubric.name, j.rubric.version, j.verdict, j.error)
            for j in judged
        ]
        if c.classifier_judge:
            rows += classifier_verdicts(subjects, deployed.name, deployed.version)
        rows += list(external[VERDICT_COLUMNS].itertuples(index=False))
        realism, judged_inputs = realism_calibration(
            conn, judge_client, project.config(), context.log.info, context.run_id
        )
        rows += list(realism[VERDICT_COLUMNS].itertuples(index=False))
        frame = with_output_chars(
            pd.DataFrame(rows, columns=VERDICT_COLUMNS), pd.concat([subjects, judged_inputs])
        )
        replace_table(conn, CALIBRATION_VERDICTS, frame)
        return MaterializeResult(
            metadata={
                **table_metadata(conn, CALIBRATION_VERDICTS),
                "deployed_rubric": MetadataValue.text(deployed.key),
                "dev_also_with": MetadataValue.text(other.key if other else "none"),
                "external_verdicts": MetadataValue.int(len(external)),
                "labels_skipped": MetadataValue.json(skipped),
                **_calls_metadata(stats, pii),
            }
        )


@table_asset(
    FEW_SHOT_EFFECT,
    group="calibration",
    reads=[CALIBRATION_VERDICTS, GOLD_LABELS, FEW_SHOT_EXAMPLES],
    kinds=("duckdb", "scipy"),
)
def few_shot_effect(
    config: CalibrationConfig, warehouse: Warehouse, project: ProjectResource
) -> MaterializeResult:
    """What the pinned few-shot examples change on the dev split: each judge's agreement,
    kappa, TPR and TNR on the same dev outputs without and with them, per category and
    overall, with an exact McNemar test (empty without examples)."""
    c = calibration_settings(config, project)
    judges = project.config().judges
    with warehouse.get_connection() as conn:
        rubric = load_rubric(c.rubric)
        shots = with_examples(rubric, pinned_for(conn, rubric, judges.few_shot))
        frame = (
            measured_effect(conn, rubric, shots.version).assign(
                rubric=rubric.name,
                rubric_version=rubric.version,
                few_shot_version=shots.version,
                in_use=judges.use_few_shot,
            )
            if shots.examples
            else pd.DataFrame(columns=FEW_SHOT_EFFECT.column_names)
        )
        replace_table(conn, FEW_SHOT_EFFECT, frame[FEW_SHOT_EFFECT.column_names])
        overall = frame[frame["category"] == "all"] if not frame.empty else frame
        return MaterializeResult(
            metadata={
                **table_metadata(conn, FEW_SHOT_EFFECT),
                "overall": MetadataValue.md(markdown_table(overall.round(3))),
            }
        )


def examples_check(conn: DuckDBPyConnection) -> AssetCheckResult:
    """Fails when a pinned example is a dev or test item."""
    outside = conn.execute(EXAMPLES_OUTSIDE_TRAIN_SQL).df()
    return AssetCheckResult(
        check_name="examples_from_train_only",
        asset_key=FEW_SHOT_EXAMPLES.name,
        passed=outside.empty,
        description=f"{len(outside)} pinned examples outside the train split",
        metadata={"outside_train": MetadataValue.md(markdown_table(outside.head(10)))},
    )


def _trust_check(status: pd.DataFrame) -> AssetCheckResult:
    untrusted = (
        status[~status["trusted"].astype(bool)]["judge"].tolist() if not status.empty else []
    )
    stale = (
        status[status["trust_status"] == "needs_recalibration"]["judge"].tolist()
        if not status.empty
        else []
    )
    return AssetCheckResult(
        check_name="judges_trusted",
        asset_key=JUDGE_CALIBRATION.name,
        passed=not status.empty and not untrusted and not stale,
        severity=AssetCheckSeverity.WARN,
        description="untrusted: " + (", ".join(untrusted) or "none") + "; needs re-validation "
        "on the latest quarter's labels: " + (", ".join(stale) or "none"),
        metadata={
            "untrusted": MetadataValue.json(untrusted),
            "needs_recalibration": MetadataValue.json(stale),
            "test_split": MetadataValue.md(markdown_table(status)),
        },
    )


# Below this Cohen's kappa between annotators the rubric is too vague to label consistently
# (seed 002): fix the rubric before measuring judges against it.
MIN_ANNOTATOR_KAPPA = 0.6


def annotators_agree_check(frame: pd.DataFrame, rubric: str) -> AssetCheckResult:
    """Warns, naming the rubric, when two annotators agree at kappa below 0.6 on pass/fail."""
    pointwise = frame[(frame["kind"] == "pointwise") & (frame["segment"] == "all")]
    low = pointwise[pointwise["kappa"] < MIN_ANNOTATOR_KAPPA]
    pairs = [
        f"{r.annotator_a} and {r.annotator_b} (kappa {r.kappa:.2f} on {r.n} items)"
        for r in low.itertuples()
    ]
    return AssetCheckResult(
        check_name="annotators_agree",
        asset_key=ANNOTATOR_AGREEMENT.name,
        passed=not pairs,
        severity=AssetCheckSeverity.WARN,
        description=(
            f"the rubric {rubric} is too vague: annotators disagree, " + "; ".join(pairs)
            if pairs
            else f"annotators agree on the rubric {rubric} (kappa >= {MIN_ANNOTATOR_KAPPA})"
        ),
        metadata={"pairs_below": MetadataValue.int(len(pairs))},
    )


@multi_asset(
    name="judge_calibration",
    specs=[
        table_spec(
            JUDGE_CALIBRATION,
            group="calibration",
            reads=[CALIBRATION_VERDICTS, GOLD_LABELS, PAIRWISE_VERDICTS],
        ),
        table_spec(
            CALIBRATION_TEST_USES, group="calibration", reads=[CALIBRATION_VERDICTS, GOLD_LABELS]
        ),
    ],
    check_specs=[
        AssetCheckSpec(
            "judges_trusted",
            asset=JUDGE_CALIBRATION.name,
            description="Every calibrated judge reaches the trust threshold on its latest "
            "re-validation (the test items of the latest labelled quarters), and none is trusted "
            "only on items older than the traffic's latest quarter (warns otherwise).",
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
    rubric version x split (and per category), with the confusion counts. Trust is
    re-validated on each quarter's fresh test items (the latest quarters holding
    judges.min_test_labels of them); each window is measured once per judge + rubric version:
    later runs keep that measurement unless force_test_look is set, and every look is
    recorded in calibration_test_uses."""
    c = calibration_settings(config, project)
    gold = project.config().evidence.gold
    with warehouse.get_connection() as conn:
        who = principal_annotator(conn, c.principal_annotator)
        # ORDER BY: the bootstrap resamples rows by position, so the rows' order must not
        # depend on how DuckDB's threads scanned the table (same data, same intervals).
        measured = calibrated_now(conn.execute(MEASURED_SQL + " ORDER BY ALL").df(), c.calibrated)
        fresh = measured_in_windows(measured, c.min_test_labels, c.trust_threshold, c.apart)
        stored = conn.execute(f"SELECT * FROM {JUDGE_CALIBRATION} WHERE split = 'test'").df()
        frame, looks = rows_touching_test_once(
            fresh, stored, test_split_used(conn), config.force_test_look
        )
        frame = with_position_consistency(frame, position_consistency(conn))
        frame = with_trust_status(frame, *quarters_in_view(conn))
        replace_table(conn, JUDGE_CALIBRATION, frame[JUDGE_CALIBRATION.column_names])
        record_test_looks(conn, looks, context.run_id, context.log.info)
        status = test_split_status(conn)
        yield MaterializeResult(
            asset_key=CALIBRATION_TEST_USES.name,
            metadata={
                **table_metadata(conn, CALIBRATION_TEST_USES),
                "looks_this_run": MetadataValue.int(len(looks)),
            },
        )
        yield MaterializeResult(
            asset_key=JUDGE_CALIBRATION.name,
            metadata={
                **table_metadata(
                    conn, JUDGE_CALIBRATION, preview_where="split = 'test' AND category = 'all'"
                ),
                "principal_annotator": MetadataValue.text(who),
                "gold_labels": MetadataValue.text(
                    f"pointwise: {gold.pointwise}, pairwise: {gold.pairwise}"
                ),
                "test_split": MetadataValue.md(markdown_table(status)),
                "test_looks_this_run": MetadataValue.int(len(looks)),
            },
        )
    yield _trust_check(status)


@table_asset(
    JUDGE_BIAS,
    group="calibration",
    reads=[CALIBRATION_VERDICTS, GOLD_LABELS, PAIRWISE_VERDICTS],
    kinds=("duckdb", "litellm", "sklearn"),
    check_specs=[
        AssetCheckSpec(
            "trusted_judges_unbiased",
            asset=JUDGE_BIAS.name,
            description="No trusted judge passes longer outputs more often (the length probe; "
            "without it, the length coefficient's interval above 0) or shares a model family with "
            "an app version it judges (self-preference). Warns, naming them.",
        )
    ],
)
def judge_bias(
    context: AssetExecutionContext,
    config: CalibrationConfig,
    warehouse: Warehouse,
    judge_client: JudgeClient,
    reference_source: ReferenceSource,
    project: ProjectResource,
) -> Iterator[MaterializeResult | AssetCheckResult]:
    """Length bias (logistic coefficient of the judge's pass on output length at the same
    human label, bootstrap interval, on train and dev; and the length probe: the same outputs
    padded with a content-free sentence, judged again), position bias (pairwise flip rate with
    a Wilson interval) and self-preference (same model family as an app version) per judge."""
    c = calibration_settings(config, project)
    versions = [(v.name, v.model) for v in project.config().app_versions]
    with warehouse.get_connection() as conn:
        deployed = project_rubric(conn, project.config().judges)
        probe = length_probe(
            conn,
            judge_client,
            _subjects(conn, reference_source),
            deployed,
            c.judges,
            project.config().judges.length_probe,
            context.log.info,
            context.run_id,
        )
        lengths, flips = conn.execute(LENGTH_SQL).df(), conn.execute(FLIPS_SQL).df()
        frame = pd.DataFrame(
            judge_bias_rows(lengths, flips, versions, probe), columns=JUDGE_BIAS.column_names
        )
        yield replaced_with(conn, JUDGE_BIAS, frame, "biases")
        trusted = set(trusted_judges(conn, frame["judge"].tolist(), deployed))
    # the deployed prompt's rows (and pairwise-only ones): not a prompt measured beside it
    yield bias_check(frame[frame["rubric_version"].isin([deployed.version, None])], trusted)


def bias_check(frame: pd.DataFrame, trusted: set[str]) -> AssetCheckResult:
    """The warning: trusted judges with a length bias or a self-preference risk."""
    mine = frame[frame["judge"].isin(trusted)]
    long = mine[length_flag(mine)]
    same = mine[mine["same_family_versions"].notna()]
    found = [f"{j}: passes longer outputs more often" for j in long["judge"]] + [
        f"{r.judge}: same family as {r.same_family_versions}" for r in same.itertuples()
    ]
    return AssetCheckResult(
        check_name="trusted_judges_unbiased",
        asset_key=JUDGE_BIAS.name,
        passed=not found,
        severity=AssetCheckSeverity.WARN,
        description="; ".join(found)
        or "no trusted judge shows a length bias or self-preference risk",
        metadata={"flagged": MetadataValue.json(found)},
    )


@table_asset(
    ANNOTATOR_AGREEMENT,
    group="calibration",
    reads=[HUMAN_LABELS],
    check_specs=[
        AssetCheckSpec(
            "annotators_agree",
            asset=ANNOTATOR_AGREEMENT.name,
            description=f"Every pair of annotators agrees on pass/fail at Cohen's kappa >= "
            f"{MIN_ANNOTATOR_KAPPA}; below it the rubric is too vague (seed 002): warns, naming "
            "the rubric.",
        )
    ],
)
def annotator_agreement(
    context: AssetExecutionContext, warehouse: Warehouse, project: ProjectResource
) -> Iterator[MaterializeResult | AssetCheckResult]:
    """Cohen's kappa for each pair of human annotators, on the subjects both labelled: over
    all subjects and per segment (the labels' evidence.segment_by attribute)."""
    segment_by = project.config().evidence.segment_by
    with warehouse.get_connection() as conn:
        labels = conn.execute(
            f"""SELECT subject_id, kind, annotator, verdict, source_file,
                      {segment_sql("attributes", segment_by)} AS segment
               FROM {HUMAN_LABELS} WHERE current ORDER BY ALL"""
        ).df()
        rows = annotator_pairs(labels, np.random.default_rng(0))
        frame = pd.DataFrame(rows, columns=ANNOTATOR_AGREEMENT.column_names)
        yield replaced_with(
            conn, ANNOTATOR_AGREEMENT, frame, "kappas", shown=frame[frame["segment"] == "all"]
        )
    yield annotators_agree_check(frame, project.config().judges.rubric)


def _pairwise_trust_check(frame: pd.DataFrame) -> AssetCheckResult:
    test = frame[(frame["split"] == "test") & (frame["segment"] == "all")]
    untrusted = test[~test["trusted"].astype(bool)]["judge"].tolist()
    return AssetCheckResult(
        check_name="pairwise_judges_trusted",
        asset_key=PAIRWISE_CALIBRATION.name,
        passed=test.empty or not untrusted,
        severity=AssetCheckSeverity.WARN,
        metadata={
            "untrusted": MetadataValue.json(untrusted),
            "judges_measured": MetadataValue.int(len(test)),
        },
    )


@table_asset(
    PAIRWISE_CALIBRATION,
    group="calibration",
    reads=[EXTERNAL_VERDICTS, PAIRWISE_VERDICTS, GOLD_LABELS],
    check_specs=[
        AssetCheckSpec(
            "pairwise_judges_trusted",
            asset=PAIRWISE_CALIBRATION.name,
            description="Every pairwise judge measured on the test split reaches the trust "
            "threshold in both presentation orders (warns otherwise).",
        )
    ],
)
def pairwise_calibration(
    context: AssetExecutionContext,
    config: CalibrationConfig,
    warehouse: Warehouse,
    project: ProjectResource,
) -> Iterator[MaterializeResult | AssetCheckResult]:
    """Pairwise judges (imported and our own) against the gold preference, per judge, split
    and segment: accuracy with system_a's output shown first and second and their mean,
    positional agreement (same winner in both orders), Cohen's kappa over a / b / tie with a
    bootstrap interval, and the trust gate (test split, accuracy in each order)."""
    c = calibration_settings(config, project)
    evidence = project.config().evidence
    with warehouse.get_connection() as conn:
        measured = conn.execute(PAIRWISE_MEASURED_SQL).df()
        frame = pairwise_calibration_rows(measured, c.trust_threshold, evidence.min_segment_items)
        unmatched = int(measured["judged"].isna().sum())
        if unmatched:
            context.log.warning(
                f"{unmatched:,} pairwise verdicts compare another pair of systems than the gold "
                "label of their item: not measured"
            )
        result = replaced_with(
            conn,
            PAIRWISE_CALIBRATION,
            frame,
            "judges",
            shown=frame[frame["segment"] == "all"],
            extra={"verdicts_other_pair": MetadataValue.int(unmatched)},
        )
    yield result
    yield _pairwise_trust_check(frame)


@table_asset(
    CORRECTED_PASS_RATES,
    group="calibration",
    reads=[JUDGE_VERDICTS, JUDGE_CALIBRATION, CALIBRATION_VERDICTS, GOLD_LABELS],
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
        judged = conn.execute(
            f"SELECT judge, rubric, rubric_version, app_version, verdict = 'pass' AS passed FROM {JUDGE_VERDICTS} WHERE verdict IS NOT NULL ORDER BY ALL"
        ).df()
        calib = conn.execute(MEASURED_SQL + " AND l.split = 'test' ORDER BY ALL").df()
        rows = conn.execute(
            f"SELECT judge, rubric, rubric_version, trusted, test_since FROM {JUDGE_CALIBRATION} WHERE split = 'test' AND category = 'all'"
        ).fetchall()
        trust = {(r[0], r[1], r[2]): r[3] for r in rows}
        # each judge's error rates as its latest re-validation measured them
        calib = test_items_measured(calib, {(r[0], r[1], r[2]): r[4] for r in rows})
        frame = pd.DataFrame(
            corrected_rates(judged, calib, trust), columns=CORRECTED_PASS_RATES.column_names
        )
        return replaced_with(conn, CORRECTED_PASS_RATES, frame, "rates", decimals=3)


@table_asset(CATEGORIZER_ACCURACY, group="calibration", reads=[TRACES])
def categorizer_accuracy(
    context: AssetExecutionContext,
    warehouse: Warehouse,
    judge_client: JudgeClient,
    project: ProjectResource,
) -> MaterializeResult:
    """The project file's categorizer measured on held-out labelled traces (a hash share of
    the traces an attribute categorized, never trained on): accuracy and precision per
    category, overall accuracy and Cohen's kappa. Empty when the project file has no
    `taxonomy.categorizer`."""
    cfg = project.config()
    spec = cfg.taxonomy.categorizer
    with warehouse.get_connection() as conn:
        if spec is None:
            context.log.info("no taxonomy.categorizer in the project file: nothing to measure")
            return replaced_with(conn, CATEGORIZER_ACCURACY, empty_accuracy(), "accuracy")
        name, frame = measure(conn, spec, tuple(cfg.taxonomy.categories), judge_client)
        if frame.empty:
            context.log.warning(
                f"{name}: no held-out labelled traces to measure on (or too few to train); "
                "the table is empty"
            )
        return replaced_with(conn, CATEGORIZER_ACCURACY, frame, "accuracy", decimals=3)
