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
        Column("system_a", "VARCHAR", "Pairwise: the system whose output is A."),
        Column("system_b", "VARCHAR", "Pairwise: the system whose output is B."),
        Column(
            "attributes",
            "JSON",
            "Every other column of the label file (model pair, segment, ...), kept as segment attributes.",
        ),
    ),
)

QUARANTINED_LABELS = quarantine_table("quarantined_labels", "human label")

GOLD_LABELS = Table(
    "gold_labels",
    "One gold label per subject and kind, from the annotators' current labels: by majority, "
    "or the principal annotator's (evidence.gold); calibration measures judges against it.",
    (
        Column("subject_id", "VARCHAR", "What was labelled."),
        Column("kind", "VARCHAR", "pointwise or pairwise."),
        Column(
            "verdict",
            "VARCHAR",
            "The gold label (pass / fail, or A / B / tie); null when the annotators have no majority.",
        ),
        Column("method", "VARCHAR", "majority or principal:<annotator>."),
        Column("annotators", "INTEGER", "Annotators with a current label of the subject."),
        Column(
            "agreeing",
            "INTEGER",
            "Annotators whose label equals the gold label (with no gold: the largest group).",
        ),
        Column("item_agreement", "DOUBLE", "agreeing / annotators: per-item agreement."),
        Column("split", "VARCHAR", "train / dev / test, as for human_labels."),
        Column("system_a", "VARCHAR", "Pairwise: the system whose output is A."),
        Column("system_b", "VARCHAR", "Pairwise: the system whose output is B."),
        Column(
            "segment", "VARCHAR", "The labels' evidence.segment_by attribute ('all' when absent)."
        ),
        Column("attributes", "JSON", "The first label's extra columns."),
        Column(
            "labelled_quarter",
            "DATE",
            "First day of the quarter (UTC) the item was first labelled in; null when its labels "
            "carry no time. Each quarter's test items are that quarter's fresh test split.",
        ),
    ),
)

EXTERNAL_VERDICTS = Table(
    "external_verdicts",
    "Verdicts of external judges imported from data/verdicts/ (judge external/<name>), "
    "pointwise or pairwise with the presentation order; calibrated like the litellm judges.",
    (
        Column("judge", "VARCHAR", "external/<name>."),
        Column("kind", "VARCHAR", "pointwise or pairwise."),
        Column("subject_id", "VARCHAR", "What was judged (the labels' subject ids)."),
        Column("rubric", "VARCHAR", "Rubric name (default external)."),
        Column("rubric_version", "VARCHAR", "Rubric version (default 1)."),
        Column("verdict", "VARCHAR", "As given: pass / fail, or A / B / tie by position shown."),
        Column(
            "presentation",
            "VARCHAR",
            "Pairwise: ab (system_a's output shown first) or ba (system_b's first).",
        ),
        Column(
            "winner",
            "VARCHAR",
            "Pairwise: the verdict in systems' terms, a / b / tie (A shown second counts for b).",
        ),
        Column("system_a", "VARCHAR", "Pairwise: system a."),
        Column("system_b", "VARCHAR", "Pairwise: system b."),
        Column("segment", "VARCHAR", "The evidence.segment_by attribute ('all' when absent)."),
        Column("attributes", "JSON", "Every other column of the verdict file."),
        Column(
            "current", "BOOLEAN", "The newest verdict for this judge, rubric, subject and order."
        ),
        Column("source_file", "VARCHAR", "Verdict file."),
        Column("source_row", "BIGINT", "Line or CSV row in that file, from 1."),
    ),
)

QUARANTINED_VERDICTS = quarantine_table("quarantined_verdicts", "external verdict")

PAIRWISE_CALIBRATION = Table(
    "pairwise_calibration",
    "Pairwise judges (imported external/<name> and our own) measured against the gold "
    "preference, per judge, split and segment ('all' = overall), in each presentation order.",
    (
        Column("judge", "VARCHAR", "Judge."),
        Column("split", "VARCHAR", "train / dev / test (of the gold label)."),
        Column("segment", "VARCHAR", "Segment, or 'all'."),
        Column("items", "INTEGER", "Gold-labelled items the judge compared."),
        Column(
            "verdicts", "INTEGER", "Verdicts measured (an item judged in both orders counts twice)."
        ),
        Column(
            "accuracy_ab", "DOUBLE", "Share of verdicts equal to gold with system_a shown first."
        ),
        Column("accuracy_ba", "DOUBLE", "The same with system_b shown first."),
        Column(
            "accuracy",
            "DOUBLE",
            "Mean of the two orders' accuracies (the one measured when only one order was).",
        ),
        Column("accuracy_low", "DOUBLE", "Wilson 95% lower bound of accuracy over all verdicts."),
        Column("accuracy_high", "DOUBLE", "Wilson 95% upper bound."),
        Column(
            "positional_agreement",
            "DOUBLE",
            "Of the items judged in both orders, the share with the same winner in both.",
        ),
        Column("kappa", "DOUBLE", "Cohen's kappa, judge vs gold, over a / b / tie (all verdicts)."),
        Column("kappa_low", "DOUBLE", "Bootstrap 95% lower bound (resampling verdicts)."),
        Column("kappa_high", "DOUBLE", "Bootstrap 95% upper bound."),
        Column("judge_tie_rate", "DOUBLE", "Share of the judge's verdicts that are tie."),
        Column("gold_tie_rate", "DOUBLE", "Share of gold labels that are tie."),
        Column(
            "trusted",
            "BOOLEAN",
            "Test split, all segments: the accuracy in each order reaches the threshold. Null elsewhere.",
        ),
        Column("threshold", "DOUBLE", "The trust threshold applied (judges.trust_threshold)."),
    ),
)

CALIBRATION_VERDICTS = Table(
    "calibration_verdicts",
    "Judges' verdicts on the production outputs that humans labelled (the calibration set).",
    (
        Column("subject_id", "VARCHAR", "Labelled trace."),
        Column("category", "VARCHAR", "Task category."),
        Column(
            "judge",
            "VARCHAR",
            "Judge (litellm model string, sklearn/... for the classifier judge, or "
            "external/<name> for imported verdicts).",
        ),
        Column("rubric", "VARCHAR", "Rubric name."),
        Column("rubric_version", "VARCHAR", "Rubric version."),
        Column("verdict", "VARCHAR", "pass / fail; null on error."),
        Column("error", "VARCHAR", "Null, or why there is no verdict."),
        Column(
            "output_chars",
            "INTEGER",
            "Length of the judged output in characters (null for imported verdicts): the "
            "length-bias check reads it.",
        ),
    ),
)

FAILURE_MODE_JUDGES = Table(
    "failure_mode_judges",
    "The per-failure-mode judges the project file enables (judges.failure_modes, seed 001): "
    "each mode's rubric, how many gold fails of the mode there are, and whether that is enough "
    "(judges.failure_mode_min_labels) for its judge to be calibrated and used.",
    (
        Column("failure_mode", "VARCHAR", "The mode (canonical name in the taxonomy)."),
        Column("definition", "VARCHAR", "The definition its rubric states."),
        Column(
            "rubric", "VARCHAR", "failure_mode:<mode>: also the gold_labels kind of its labels."
        ),
        Column(
            "rubric_version",
            "VARCHAR",
            "A digest of the definition: a new definition is a new version.",
        ),
        Column(
            "names",
            "VARCHAR",
            "The label names counted as this mode: the mode and its taxonomy aliases.",
        ),
        Column("labelled", "INTEGER", "Gold pointwise labels that are fails of this mode."),
        Column(
            "labelled_other",
            "INTEGER",
            "Gold labels without this mode (passes and other modes' fails).",
        ),
        Column("min_labels", "INTEGER", "judges.failure_mode_min_labels."),
        Column("enabled", "BOOLEAN", "labelled >= min_labels: its judge is calibrated and used."),
    ),
)

FEW_SHOT_EXAMPLES = Table(
    "few_shot_examples",
    "The few-shot examples pinned per rubric version (judges.few_shot): chosen once from the "
    "calibration train split, balanced pass/fail across categories, each fail with the "
    "expert's critique. Dev and test items are never chosen (they measure the judges).",
    (
        Column("rubric", "VARCHAR", "Rubric name."),
        Column(
            "rubric_version", "VARCHAR", "The rubric file's version the examples are pinned to."
        ),
        Column(
            "few_shot_version",
            "VARCHAR",
            "The version of the rubric with these examples in its prompt: <version>+fs<k>.<digest>.",
        ),
        Column(
            "requested",
            "INTEGER",
            "k asked for (judges.few_shot); fewer are pinned when the train split runs short.",
        ),
        Column("position", "INTEGER", "Order in the prompt, from 1."),
        Column("subject_id", "VARCHAR", "The labelled trace or case."),
        Column("category", "VARCHAR", "Task category."),
        Column("split", "VARCHAR", "Always train."),
        Column("verdict", "VARCHAR", "The gold label: pass / fail."),
        Column("critique", "VARCHAR", "The expert's critique ('' for a pass without one)."),
        Column("input", "VARCHAR", "The example's user input, as shown to the judge."),
        Column("output", "VARCHAR", "The example's output, as shown to the judge."),
        Column("pinned_at", "TIMESTAMP", "When the examples were chosen (UTC).", run_time=True),
    ),
)

FEW_SHOT_EFFECT = Table(
    "few_shot_effect",
    "What the pinned few-shot examples change, measured on the dev split only: each judge's "
    "agreement with the expert on the same dev outputs without and with the examples, per "
    "category and overall, with an exact McNemar test on the paired verdicts.",
    (
        Column("judge", "VARCHAR", "Judge."),
        Column("rubric", "VARCHAR", "Rubric name."),
        Column("rubric_version", "VARCHAR", "The rubric without examples."),
        Column("few_shot_version", "VARCHAR", "The rubric with the pinned examples."),
        Column("category", "VARCHAR", "Task category, or 'all'."),
        Column("n", "INTEGER", "Dev outputs with a verdict under both prompts."),
        Column("agreement_without", "DOUBLE", "Share agreeing with the expert, zero-shot."),
        Column("agreement_with", "DOUBLE", "Share agreeing with the expert, with the examples."),
        Column("kappa_without", "DOUBLE", "Cohen's kappa against the expert, zero-shot."),
        Column("kappa_with", "DOUBLE", "Cohen's kappa against the expert, with the examples."),
        Column("tpr_without", "DOUBLE", "TPR zero-shot (null without human passes)."),
        Column("tpr_with", "DOUBLE", "TPR with the examples."),
        Column("tnr_without", "DOUBLE", "TNR zero-shot (null without human fails)."),
        Column("tnr_with", "DOUBLE", "TNR with the examples."),
        Column("fixed", "INTEGER", "Outputs wrong zero-shot and right with the examples."),
        Column("broken", "INTEGER", "Outputs right zero-shot and wrong with the examples."),
        Column(
            "p_value",
            "DOUBLE",
            "Exact McNemar test (two-sided binomial on fixed vs broken): is the change real?",
        ),
        Column("in_use", "BOOLEAN", "The judges use the examples (judges.use_few_shot)."),
    ),
)

JUDGE_BIAS = Table(
    "judge_bias",
    "The judge biases seed 002 names, per judge and rubric version: length (at the same human "
    "label, does a longer output pass more often?), position (pairwise verdicts that change "
    "when the order is swapped) and self-preference (the judge is of the same model family as "
    "an app version it judges).",
    (
        Column("judge", "VARCHAR", "Judge."),
        Column("rubric", "VARCHAR", "Rubric name."),
        Column("rubric_version", "VARCHAR", "Rubric version."),
        Column(
            "n",
            "INTEGER",
            "Gold-labelled outputs of the train and dev splits with a verdict and a length (the "
            "test split is not looked at for this).",
        ),
        Column(
            "length_coef",
            "DOUBLE",
            "Logistic regression of the judge's pass on the human label and the output's log "
            "length (standardized): the length coefficient, log-odds per standard deviation.",
        ),
        Column("length_coef_low", "DOUBLE", "Bootstrap 95% lower bound."),
        Column("length_coef_high", "DOUBLE", "Bootstrap 95% upper bound."),
        Column("length_biased", "BOOLEAN", "The interval excludes 0 (null: too little to fit)."),
        Column(
            "padded_n",
            "INTEGER",
            "Length probe: train and dev outputs judged again with a content-free sentence "
            "appended (judges.length_probe of them), with a verdict both times.",
        ),
        Column("padded_to_pass", "INTEGER", "Of them, fail before and pass once padded."),
        Column("padded_to_fail", "INTEGER", "Of them, pass before and fail once padded."),
        Column(
            "padded_shift",
            "DOUBLE",
            "(to_pass - to_fail) / n: how much padding alone raises the pass rate.",
        ),
        Column("padded_shift_low", "DOUBLE", "95% lower bound (paired difference, Wald)."),
        Column("padded_shift_high", "DOUBLE", "95% upper bound."),
        Column(
            "padded_p_value",
            "DOUBLE",
            "Exact two-sided binomial test of to_pass against to_fail (a fair judge's changes "
            "go either way).",
        ),
        Column(
            "padded_biased",
            "BOOLEAN",
            "Padding alone turns fails into passes more than the reverse (p < 0.05): a length "
            "bias measured by experiment, free of the label noise that can make the coefficient "
            "above non-zero for a fair judge. Null without the probe.",
        ),
        Column("pairwise_comparisons", "INTEGER", "Pairwise comparisons judged in both orders."),
        Column(
            "position_flip_rate",
            "DOUBLE",
            "Share of them whose verdict changed when the order was swapped (position bias).",
        ),
        Column("position_flip_low", "DOUBLE", "Wilson 95% lower bound."),
        Column("position_flip_high", "DOUBLE", "Wilson 95% upper bound."),
        Column("family", "VARCHAR", "The judge's model family: provider/first word of the model."),
        Column(
            "same_family_versions",
            "VARCHAR",
            "App versions of the same family (self-preference risk), comma-separated; null when none.",
        ),
    ),
)

JUDGE_CALIBRATION = Table(
    "judge_calibration",
    "Each judge measured against the gold labels (by default the principal expert's), per rubric version, split and category ('all' = overall).",
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
        Column(
            "test_since",
            "DATE",
            "Test rows: the first labelled quarter of the test items measured. Re-validation "
            "measures the latest quarters that hold judges.min_test_labels test items (older "
            "test items are retired, never reused); null = items of every quarter.",
        ),
        Column(
            "trust_status",
            "VARCHAR",
            "Test split, all categories: trusted, not_trusted, or needs_recalibration (trusted on "
            "test items older than the traffic's latest quarter: re-validate on its labels).",
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
        Column(
            "segment",
            "VARCHAR",
            "'all', or a value of the labels' evidence.segment_by attribute (per-segment agreement).",
        ),
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
        Column(
            "test_since",
            "DATE",
            "The re-validation window looked at (first labelled quarter; null = every quarter).",
        ),
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
