"""Human labels and the judges measured against them."""

from __future__ import annotations

from evals_pipeline.records.ingest import quarantine_table
from evals_pipeline.records.schema import Column, Table

HUMAN_LABELS = Table(
    "human_labels",
    "Every valid human label from data/labels/ (append-only history); current = the annotator's newest label of the subject.",
    (
        Column(
            "subject_id", "VARCHAR", "trace_id, case_id, or the item id of a pairwise comparison."
        ),
        Column("kind", "VARCHAR", "pointwise (pass/fail) or pairwise (A/B/tie)."),
        Column("annotator", "VARCHAR", "Who labelled."),
        Column("verdict", "VARCHAR", "pass / fail, or A / B / tie."),
        Column("critique", "VARCHAR", "Free text; required on fail."),
        Column("failure_mode", "VARCHAR", "Failure mode from the taxonomy (on fail)."),
        Column("labelled_at", "TIMESTAMP", "When the label was given (UTC)."),
        Column("current", "BOOLEAN", "True for the annotator's newest label of this subject."),
        Column(
            "split",
            "VARCHAR",
            "train (few-shot only) / dev / test, by a stable hash of subject_id.",
        ),
        Column("source_file", "VARCHAR", "Label file."),
        Column("source_row", "BIGINT", "Line or CSV row in that file, from 1."),
    ),
)

QUARANTINED_LABELS = quarantine_table("quarantined_labels", "human label")

CALIBRATION_VERDICTS = Table(
    "calibration_verdicts",
    "Judges' verdicts on the production outputs that humans labelled (the calibration set).",
    (
        Column("subject_id", "VARCHAR", "Labelled trace."),
        Column("category", "VARCHAR", "Task category."),
        Column(
            "judge",
            "VARCHAR",
            "Judge (litellm model string, or sklearn/... for the classifier judge).",
        ),
        Column("rubric", "VARCHAR", "Rubric name."),
        Column("rubric_version", "VARCHAR", "Rubric version."),
        Column("verdict", "VARCHAR", "pass / fail; null on error."),
        Column("error", "VARCHAR", "Null, or why there is no verdict."),
    ),
)

JUDGE_CALIBRATION = Table(
    "judge_calibration",
    "Each judge measured against the principal expert's labels, per rubric version, split and category ('all' = overall).",
    (
        Column("judge", "VARCHAR", "Judge."),
        Column("rubric", "VARCHAR", "Rubric name."),
        Column("rubric_version", "VARCHAR", "Rubric version."),
        Column("split", "VARCHAR", "train / dev / test."),
        Column("category", "VARCHAR", "Task category, or 'all'."),
        Column("n", "INTEGER", "Labelled outputs with a judge verdict."),
        Column("tp", "INTEGER", "Human pass, judge pass."),
        Column("fn", "INTEGER", "Human pass, judge fail."),
        Column("tn", "INTEGER", "Human fail, judge fail."),
        Column("fp", "INTEGER", "Human fail, judge pass."),
        Column("tpr", "DOUBLE", "True positive rate (pass recall)."),
        Column("tpr_low", "DOUBLE", "Wilson 95% lower bound."),
        Column("tpr_high", "DOUBLE", "Wilson 95% upper bound."),
        Column("tnr", "DOUBLE", "True negative rate (fail recall)."),
        Column("tnr_low", "DOUBLE", "Wilson 95% lower bound."),
        Column("tnr_high", "DOUBLE", "Wilson 95% upper bound."),
        Column("accuracy", "DOUBLE", "Share of agreement."),
        Column("accuracy_low", "DOUBLE", "Wilson 95% lower bound."),
        Column("accuracy_high", "DOUBLE", "Wilson 95% upper bound."),
        Column("balanced_accuracy", "DOUBLE", "(TPR + TNR) / 2."),
        Column("balanced_accuracy_low", "DOUBLE", "Bootstrap 95% lower bound."),
        Column("balanced_accuracy_high", "DOUBLE", "Bootstrap 95% upper bound."),
        Column("kappa", "DOUBLE", "Cohen's kappa, judge vs expert."),
        Column("kappa_low", "DOUBLE", "Bootstrap 95% lower bound."),
        Column("kappa_high", "DOUBLE", "Bootstrap 95% upper bound."),
        Column(
            "trusted",
            "BOOLEAN",
            "Test split, all categories: TPR and TNR both reach the threshold. Null elsewhere.",
        ),
        Column("threshold", "DOUBLE", "The trust threshold applied."),
        Column(
            "position_consistency",
            "DOUBLE",
            "Pairwise judges: share of active-pool comparisons whose verdict survived swapping the order ('all' rows).",
        ),
    ),
)

ANNOTATOR_AGREEMENT = Table(
    "annotator_agreement",
    "Cohen's kappa between each pair of human annotators on the subjects both labelled.",
    (
        Column("kind", "VARCHAR", "pointwise or pairwise."),
        Column("source", "VARCHAR", "Label source (file stem)."),
        Column("annotator_a", "VARCHAR", "First annotator."),
        Column("annotator_b", "VARCHAR", "Second annotator."),
        Column("n", "INTEGER", "Subjects both labelled."),
        Column("agreement", "DOUBLE", "Raw agreement."),
        Column("kappa", "DOUBLE", "Cohen's kappa."),
        Column("kappa_low", "DOUBLE", "Bootstrap 95% lower bound."),
        Column("kappa_high", "DOUBLE", "Bootstrap 95% upper bound."),
    ),
)

CATEGORIZER_ACCURACY = Table(
    "categorizer_accuracy",
    "The categorizer measured like a judge: on labelled traces held out from its training "
    "(their category came from an attribute or the record), per category and overall.",
    (
        Column("categorizer", "VARCHAR", "classifier:<version> or llm:<model>."),
        Column("category", "VARCHAR", "The true category, or 'all'."),
        Column("n", "INTEGER", "Held-out labelled traces of the category."),
        Column("correct", "INTEGER", "Of those, assigned their true category."),
        Column(
            "accuracy",
            "DOUBLE",
            "correct / n (recall of the category; overall accuracy for 'all').",
        ),
        Column(
            "precision", "DOUBLE", "Of the traces assigned this category, the share truly in it."
        ),
        Column(
            "assigned_share",
            "DOUBLE",
            "Share assigned any category (the rest would stay uncategorized: not confident, failed call, none fits).",
        ),
        Column("kappa", "DOUBLE", "Cohen's kappa over all held-out traces ('all' row only)."),
    ),
)

CALIBRATION_TEST_USES = Table(
    "calibration_test_uses",
    "Every look at the test split, per judge and rubric version; a second look needs force and says so.",
    (
        Column("judge", "VARCHAR", "Judge."),
        Column("rubric", "VARCHAR", "Rubric name."),
        Column("rubric_version", "VARCHAR", "Rubric version."),
        Column("used_at", "TIMESTAMP", "When (UTC).", run_time=True),
        Column("run_id", "VARCHAR", "Dagster run id.", run_time=True),
        Column("forced", "BOOLEAN", "True when the look was a forced second look."),
        Column("n", "INTEGER", "Test-split outputs measured."),
    ),
)

CORRECTED_PASS_RATES = Table(
    "corrected_pass_rates",
    "Active-pool pass rate per judge and app version, corrected for the judge's test-split TPR/TNR (Rogan-Gladen), with the judge's trust status.",
    (
        Column("judge", "VARCHAR", "Judge."),
        Column("rubric", "VARCHAR", "Rubric name."),
        Column("rubric_version", "VARCHAR", "Rubric version."),
        Column("app_version", "VARCHAR", "App version."),
        Column("n", "INTEGER", "Candidate outputs judged."),
        Column("observed_pass_rate", "DOUBLE", "Share the judge passed."),
        Column(
            "corrected_pass_rate",
            "DOUBLE",
            "(observed + TNR - 1) / (TPR + TNR - 1), clipped to [0, 1]; null when TPR + TNR <= 1 (interval_note says so).",
        ),
        Column(
            "ci_low",
            "DOUBLE",
            "Bootstrap 95% lower bound (resamples outputs and the calibration test set); null when the judge is at or near chance.",
        ),
        Column("ci_high", "DOUBLE", "Bootstrap 95% upper bound."),
        Column(
            "trusted",
            "BOOLEAN",
            "Whether the judge is trusted for this rubric version (null: not calibrated).",
        ),
        Column(
            "calibration_status",
            "VARCHAR",
            "trusted, untrusted, or needs_calibration (no test-split measurement for this judge + rubric version).",
        ),
        Column(
            "resamples_uncorrectable",
            "INTEGER",
            "Bootstrap resamples (of 1,000) whose calibration sample had TPR + TNR <= 1, so could not be corrected; over 5% means no interval.",
        ),
        Column(
            "interval_note",
            "VARCHAR",
            "Why there is no corrected rate or interval (judge at or near chance), or how many resamples were uncorrectable.",
        ),
    ),
)
