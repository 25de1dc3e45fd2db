"""What `make demo` prints about the snapshot it built: one section per stage of the data
flow, each read from the analysts' snapshot (so the summary is a function of its contents)."""

from __future__ import annotations

from collections.abc import Callable

import duckdb

from evals_pipeline.paths import analytics_path
from evals_pipeline.records import (
    ANNOTATOR_AGREEMENT,
    BT_RATINGS,
    CANARY_GATE,
    CORRECTED_PASS_RATES,
    FAILURE_MODE_DISTRIBUTION,
    FAILURE_MODE_JUDGES,
    FEW_SHOT_EFFECT,
    GOLD_LABELS,
    HOLDOUT_EVALUATION,
    HOLDOUT_PANEL_EVALUATION,
    HOLDOUT_REVIEW,
    JUDGE_BIAS,
    JUDGE_CALIBRATION,
    JUDGE_ENSEMBLE,
    JUDGE_VERDICTS,
    POOL_EVENTS,
    POOL_SIZES,
    PREFERENCE_RATINGS,
    QUARANTINED_FEEDBACK,
    QUARANTINED_TRACES,
    RELEASE_GATES,
    REVIEW_ITEMS,
    REVIEW_QUEUE,
    SEGMENT_REPORT,
    SHADOW_GATE,
    SYNTHETIC_INPUTS,
    TRACE_SAMPLE,
    TRACES,
)

Con = duckdb.DuckDBPyConnection


def snapshot_tables(con: Con) -> list[str]:
    """Every table of the snapshot with its row count and comment."""
    out: list[str] = []
    tables = con.execute(
        "SELECT table_name, estimated_size, comment FROM duckdb_tables() ORDER BY table_name"
    ).fetchall()
    out.append(f"The analysts' snapshot {analytics_path()} holds:")
    for name, _, comment in tables:
        n = con.execute(f"SELECT count(*) FROM {name}").fetchall()[0][0]
        out.append(f"  {name:<26} {n:>10,}  {comment}")
    return out


def quarantine(con: Con) -> list[str]:
    """Quarantined rows by stream and reason."""
    out: list[str] = []
    out.append("\nQuarantined rows by reason:")
    for stream, reason, n in con.execute(
        f"""SELECT 'traces', reason, count(*) FROM {QUARANTINED_TRACES} GROUP BY ALL
           UNION ALL SELECT 'feedback', reason, count(*) FROM {QUARANTINED_FEEDBACK} GROUP BY ALL
           ORDER BY 1 DESC, 3 DESC, 2"""
    ).fetchall():
        out.append(f"  {stream:<9} {reason:<22} {n:>6,}")
    return out


def sampling(con: Con) -> list[str]:
    """Sample vs traffic share per category."""
    out: list[str] = []
    out.append("\nSample vs traffic share per category (traffic stratum, all days):")
    for cat, sampled, s_share, t_share in con.execute(
        f"""SELECT category, count(*), round(100 * count(*) / sum(count(*)) OVER (), 1),
                  round(100 * sum(weight) / sum(sum(weight)) OVER (), 1)
           FROM {TRACE_SAMPLE} WHERE stratum = 'traffic' GROUP BY 1 ORDER BY 4 DESC"""
    ).fetchall():
        out.append(
            f"  {cat:<18} {sampled:>6,} sampled  {s_share:>5}% of sample  {t_share:>5}% of traffic"
        )
    return out


def pools(con: Con) -> list[str]:
    """Golden pools after each rotation, the audit log, the sealed reservoir."""
    out: list[str] = []
    out.append("\nGolden pools after each quarterly rotation:")
    for quarter, rotated, active, holdout, retired in con.execute(
        f"""SELECT quarter, any_value(rotated_at),
                  coalesce(sum(cases) FILTER (WHERE pool = 'active'), 0),
                  coalesce(sum(cases) FILTER (WHERE pool = 'holdout'), 0),
                  coalesce(sum(cases) FILTER (WHERE pool = 'retired'), 0)
           FROM {POOL_SIZES} GROUP BY 1 ORDER BY 1"""
    ).fetchall():
        out.append(
            f"  quarter {quarter} (rotated {rotated}): {active:>4} active {holdout:>4} holdout {retired:>4} retired"
        )
    moves = con.execute(
        f"SELECT event, count(*) FROM {POOL_EVENTS} GROUP BY 1 ORDER BY 1"
    ).fetchall()
    out.append("  pool_events: " + ", ".join(f"{e} {n}" for e, n in moves))
    sealed, total = con.execute(
        f"SELECT count(*) FILTER (WHERE sealed), count(*) FROM {TRACES}"
    ).fetchall()[0]
    out.append(
        f"  {sealed:,} of {total:,} traces are sealed in the holdout reservoir: analysts see their ids,"
        " categories, segments and feedback, never their text"
    )
    return out


def holdout(con: Con) -> list[str]:
    """The holdout evaluation at each rotation."""
    out: list[str] = []
    out.append("\nHoldout evaluation at each rotation (reference_token_f1, mean over categories):")
    for quarter, n, score in con.execute(
        f"SELECT quarter, sum(n), round(sum(n * mean_score) / sum(n), 3) FROM {HOLDOUT_EVALUATION} GROUP BY 1 ORDER BY 1"
    ).fetchall():
        out.append(f"  quarter {quarter}: {n} holdout cases, mean {score}")
    rows = con.execute(
        f"""SELECT quarter, app_version, any_value(judges),
                  sum(n) FILTER (WHERE side = 'active'), round(sum(n * pass_rate) FILTER (WHERE side = 'active')
                      / sum(n) FILTER (WHERE side = 'active'), 3),
                  sum(n) FILTER (WHERE side = 'holdout'), round(sum(n * pass_rate) FILTER (WHERE side = 'holdout')
                      / sum(n) FILTER (WHERE side = 'holdout'), 3)
           FROM {HOLDOUT_PANEL_EVALUATION} GROUP BY 1, 2 ORDER BY 1, 2"""
    ).fetchall()
    if rows:
        out.append(f"  Judged inside the seal by the trusted judges ({rows[0][2]}):")
    for quarter, version, _, an, arate, hn, hrate in rows:
        out.append(
            f"    quarter {quarter} {version}: active {arate} on {an} cases, holdout {hrate} on {hn} cases"
        )
    return out


def judging(con: Con) -> list[str]:
    """Ensemble pass rates, judges' trust, Bradley-Terry ratings."""
    out: list[str] = []
    out.append(
        "\nJudging the active pool (ensemble of 3 judges, pass_fail rubric): pass rate per app version"
    )
    for version, n, rate, queued in con.execute(
        f"""SELECT e.app_version, count(*), round(avg((e.verdict = 'pass')::INT), 3),
                  (SELECT count(*) FROM {REVIEW_QUEUE} q WHERE q.app_version = e.app_version)
           FROM {JUDGE_ENSEMBLE} e WHERE e.rubric = 'pass_fail' GROUP BY 1 ORDER BY 1"""
    ).fetchall():
        out.append(f"  {version}: {n} cases, pass rate {rate}, {queued} queued for review")
    status = con.execute(
        f"""SELECT DISTINCT v.judge, c.trusted FROM {JUDGE_VERDICTS} v LEFT JOIN {JUDGE_CALIBRATION} c
           ON c.judge = v.judge AND c.rubric = v.rubric AND c.rubric_version = v.rubric_version
              AND c.split = 'test' AND c.category = 'all'
           WHERE v.rubric = 'pass_fail' ORDER BY 1"""
    ).fetchall()
    out.append(
        "  judges: "
        + ", ".join(
            f"{j} ({'trusted' if t else 'NOT trusted' if t is not None else 'not calibrated'})"
            for j, t in status
        )
    )
    out.append("  Bradley-Terry ratings (pairwise, both orders; 95% bootstrap interval):")
    for judge, version, rating, lo, hi in con.execute(
        f"SELECT judge, app_version, round(rating), round(ci_low), round(ci_high) FROM {BT_RATINGS} ORDER BY 1, 2"
    ).fetchall():
        out.append(f"    {judge:<26} {version}: {rating:>6} [{lo}, {hi}]")
    return out


def calibration(con: Con) -> list[str]:
    """Judge calibration, annotator agreement, gold labels, ratings, corrected pass rates."""
    out: list[str] = []
    out.append(
        "\nJudge calibration on the test split (vs the gold label; trusted = TPR and TNR >= 0.8"
        " on the latest quarters' test items):"
    )
    for judge, since, n, tpr, tlo, thi, tnr, nlo, nhi, kap, status in con.execute(
        f"""SELECT judge, test_since, n, round(tpr, 3), round(tpr_low, 3), round(tpr_high, 3), round(tnr, 3), round(tnr_low, 3),
                  round(tnr_high, 3), round(kappa, 3), trust_status
           FROM {JUDGE_CALIBRATION} WHERE split = 'test' AND category = 'all' AND rubric = 'pass_fail'
           ORDER BY judge"""
    ).fetchall():
        out.append(
            f"  {judge:<26} n={n} since {since or 'the start'}  TPR {tpr} [{tlo}, {thi}]  TNR {tnr} "
            f"[{nlo}, {nhi}]  kappa {kap}  {status}"
        )
    out.append(
        "  Length bias (log-odds of a pass per SD of log output length at the same human label, "
        "95% interval; train and dev):"
    )
    for judge, coef, lo, hi, biased, flips, n, shift, slo, shi, p, padded in con.execute(
        f"""SELECT judge, round(length_coef, 2), round(length_coef_low, 2), round(length_coef_high, 2),
                  length_biased, round(position_flip_rate, 3), padded_n, padded_shift,
                  padded_shift_low, padded_shift_high, padded_p_value, padded_biased
           FROM {JUDGE_BIAS} WHERE length_coef IS NOT NULL AND rubric_version NOT LIKE '%+fs%' ORDER BY judge"""
    ).fetchall():
        out.append(
            f"    {judge:<26} {coef:+.2f} [{lo:+.2f}, {hi:+.2f}]  "
            + ("biased" if biased else "no significant bias")
            + (
                f"; padding {n} outputs moves the pass rate {shift:+.3f} [{slo:+.3f}, {shi:+.3f}] "
                f"(p {p:.2g}) " + ("length-biased" if padded else "no length bias")
                if n
                else ""
            )
            + (f"; pairwise order flips {flips}" if flips is not None else "")
        )
    out += few_shot_lines(con) + failure_mode_lines(con)
    out.append("  Human annotators (Cohen's kappa, 95% bootstrap interval):")
    for a, b, n, k, lo, hi in con.execute(
        f"""SELECT annotator_a, annotator_b, n, round(kappa, 2), round(kappa_low, 2), round(kappa_high, 2)
           FROM {ANNOTATOR_AGREEMENT} WHERE segment = 'all' ORDER BY 1, 2"""
    ).fetchall():
        out.append(f"    {a} vs {b}: {k} [{lo}, {hi}] on {n} items")
    out.append(
        "  Gold labels (one per item: the principal's pass/fail, the annotators' majority A/B/tie):"
    )
    for kind, method, verdicts, items, agreement in con.execute(
        f"""SELECT kind, method, string_agg(verdict || ' ' || n, ', ' ORDER BY verdict), sum(n)::INT,
                  round(sum(n * agreement) / sum(n), 3)
           FROM (SELECT kind, method, coalesce(verdict, 'none') AS verdict, count(*) AS n,
                        avg(item_agreement) AS agreement FROM {GOLD_LABELS} GROUP BY ALL)
           GROUP BY ALL ORDER BY 1, 2"""
    ).fetchall():
        out.append(
            f"    {kind} ({method}): {items:,} items: {verdicts}; mean item agreement {agreement}"
        )
    ratings = con.execute(
        f"""SELECT system, round(rating), round(ci_low), round(ci_high) FROM {PREFERENCE_RATINGS}
           WHERE evidence = 'human' AND segment = 'all' ORDER BY rating DESC"""
    ).fetchall()
    if ratings:
        out.append("  Bradley-Terry from the human gold preferences (Elo, 95% interval):")
        out.append(
            "    " + ", ".join(f"{s} {r:+.0f} [{lo:+.0f}, {hi:+.0f}]" for s, r, lo, hi in ratings)
        )
    out.append(
        "  Pass rates corrected for judge error (Rogan-Gladen, 95% interval), reference judge:"
    )
    for version, obs, cor, lo, hi, status in con.execute(
        f"""SELECT app_version, round(observed_pass_rate, 3), round(corrected_pass_rate, 3), round(ci_low, 3),
                  round(ci_high, 3), calibration_status
           FROM {CORRECTED_PASS_RATES} WHERE judge = 'offline/reference-judge' ORDER BY 1"""
    ).fetchall():
        out.append(f"    {version}: observed {obs} -> corrected {cor} [{lo}, {hi}] ({status})")
    return out


def release_gates(con: Con) -> list[str]:
    """The release gates and the segment deltas behind them."""
    out: list[str] = []
    out.append("\nRelease gates (candidate vs baseline):")
    for gate, status, evidence in con.execute(
        f"SELECT gate, status, evidence FROM {RELEASE_GATES}"
    ).fetchall():
        out.append(f"  {gate:<19} {status:<14} {evidence[:110]}")
    for version, level, cat, score, delta, lo, hi in con.execute(
        f"""SELECT app_version, level, category, round(score, 3), round(delta_vs_baseline, 3), round(delta_ci_low, 3),
                  round(delta_ci_high, 3)
           FROM {SEGMENT_REPORT} WHERE scorer = 'ensemble' AND (level = 'overall' OR category = 'reasoning')
             AND level <> 'cell' ORDER BY 1, 2 DESC"""
    ).fetchall():
        out.append(
            f"  {version} {level:<8} {cat:<10} pass rate {score}  delta vs baseline {delta:+} [{lo:+}, {hi:+}]"
        )
    return out


def online_gates(con: Con) -> list[str]:
    """The shadow period per category and the canary over all users (seed 003)."""
    out: list[str] = []
    shadow = con.execute(
        f"""SELECT category, n, round(control_pass_rate, 3), round(candidate_pass_rate, 3), round(delta, 3),
                  round(ci_low, 3), round(ci_high, 3), status
           FROM {SHADOW_GATE} ORDER BY level, category"""
    ).fetchall()
    if shadow:
        out.append(
            "\nShadow period (the candidate's and the control's answers to the same live inputs):"
        )
        for cat, n, ctl, cand, d, lo, hi, status in shadow:
            out.append(
                f"  {cat:<18} n {n:>4}  control {ctl}  candidate {cand}  delta {d:+} [{lo:+}, {hi:+}]  {status}"
            )
    canary = con.execute(
        f"""SELECT signal, canary_users, canary_n, control_n, round(canary_rate, 3), round(control_rate, 3),
                  round(delta, 3), round(ci_low, 3), round(ci_high, 3), round(detectable, 3), status
           FROM {CANARY_GATE} WHERE level = 'all' ORDER BY signal"""
    ).fetchall()
    if canary:
        out.append("\nCanary, all users (online signal rates of canary vs control users):")
        for sig, users, n_c, n_k, rc, rk, d, lo, hi, det, status in canary:
            out.append(
                f"  {sig:<18} {users} users / {n_c} traces vs {n_k}: {rc} vs {rk}  delta {d:+} "
                f"[{lo:+}, {hi:+}]  detectable {det}  {status}"
            )
    return out


def synthetic(con: Con) -> list[str]:
    """The synthetic inputs: what became of them, the filter's calibration, their scores."""
    out: list[str] = []
    statuses = con.execute(
        f"SELECT status, count(*) FROM {SYNTHETIC_INPUTS} GROUP BY 1 ORDER BY 2 DESC, 1"
    ).fetchall()
    if not statuses:
        return out
    out.append("\nSynthetic inputs (tuples of evals.dimensions.yaml, filtered for realism):")
    out.append("  " + ", ".join(f"{s} {n}" for s, n in statuses))
    for judge, n, tpr, tnr, kappa, trusted in con.execute(
        f"""SELECT judge, n, round(tpr, 3), round(tnr, 3), round(kappa, 3), trusted FROM {JUDGE_CALIBRATION}
           WHERE rubric = 'realism' AND split = 'test' AND category = 'all' ORDER BY 1"""
    ).fetchall():
        out.append(
            f"  realism filter {judge}: test n {n}, TPR {tpr}, TNR {tnr}, kappa {kappa}, trusted {trusted}"
        )
    for version, n, score in con.execute(
        f"""SELECT app_version, n, round(score, 3) FROM {SEGMENT_REPORT}
           WHERE level = 'synthetic' AND category = 'all' AND scorer = 'ensemble' ORDER BY 1"""
    ).fetchall():
        out.append(f"  {version} on the {n} synthetic cases in the active pool: pass rate {score}")
    return out


def failure_modes(con: Con) -> list[str]:
    """Failure modes among the experts' fails."""
    out: list[str] = []
    out.append(
        "\nFailure modes among the experts' fails (failure_mode_distribution; by category in the HTML report):"
    )
    for mode, n, share in con.execute(
        f"""SELECT failure_mode, n, round(100 * share, 1) FROM {FAILURE_MODE_DISTRIBUTION}
           WHERE category = 'all' AND app_version = 'all' ORDER BY n DESC, 1"""
    ).fetchall():
        out.append(f"  {mode:<20} {n:>5} fails  {share:>5}% of fails")
    return out


def review_queues(con: Con) -> list[str]:
    """The review app's queues."""
    out: list[str] = []
    out.append("\nReview queues for the domain expert (make review):")
    for queue, n, reason in con.execute(
        f"""SELECT queue, count(*), arg_min(reason, position) FROM {REVIEW_ITEMS} GROUP BY 1
           ORDER BY array_position(['disagreement', 'weekly', 'calibration_gap'], queue)"""
    ).fetchall():
        out.append(f"  {queue:<16} {n:>4} cases, e.g. {reason[:90]}")
    for quarter, queued in con.execute(
        f"SELECT quarter, max(queued) FROM {HOLDOUT_REVIEW} GROUP BY 1 ORDER BY 1 DESC LIMIT 1"
    ).fetchall():
        out.append(
            f"  holdout (sealed) {queued:>4} answers of the {quarter} rotation's holdout for the "
            "principal expert alone (make review-holdout; every view a logged holdout read)"
        )
    return out


SECTIONS: tuple[Callable[[Con], list[str]], ...] = (
    snapshot_tables,
    quarantine,
    sampling,
    pools,
    holdout,
    judging,
    calibration,
    release_gates,
    online_gates,
    synthetic,
    failure_modes,
    review_queues,
)


def summary(con: Con) -> list[str]:
    """The demo's summary of the snapshot open on `con`, section by section."""
    return [line for section in SECTIONS for line in section(con)]


def few_shot_lines(con: Con) -> list[str]:
    """The few-shot examples' effect on dev: per judge, overall and its largest change."""
    rows = con.execute(
        f"""SELECT judge, category, n, round(agreement_without, 3), round(agreement_with, 3), fixed, broken, p_value,
                  few_shot_version
           FROM {FEW_SHOT_EFFECT} ORDER BY judge, abs(agreement_with - agreement_without) DESC, category"""
    ).fetchall()
    if not rows:
        return []
    out = [
        f"  Few-shot examples ({rows[0][8]}, from the train split): dev agreement without -> with "
        "(largest change by category; McNemar p):"
    ]
    for judge in dict.fromkeys(r[0] for r in rows):
        mine = [r for r in rows if r[0] == judge]
        overall = next(r for r in mine if r[1] == "all")
        top = next((r for r in mine if r[1] != "all"), overall)
        out.append(
            f"    {judge:<26} all {overall[3]} -> {overall[4]}; {top[1]} {top[3]} -> {top[4]} "
            f"({top[5]} fixed, {top[6]} broken, p {top[7]:.2g})"
        )
    return out


def failure_mode_lines(con: Con) -> list[str]:
    """Per-failure-mode judges: enabled or waiting for labels, and the trusted ones."""
    rows = con.execute(
        f"""SELECT j.failure_mode, j.labelled, j.min_labels, j.enabled,
                  string_agg(c.judge || ' TPR ' || round(c.tpr, 2) || ' TNR ' || round(c.tnr, 2)
                             || CASE WHEN c.trusted THEN ' trusted' ELSE ' not trusted' END, '; ' ORDER BY c.judge)
           FROM {FAILURE_MODE_JUDGES} j LEFT JOIN {JUDGE_CALIBRATION} c
             ON c.rubric = j.rubric AND c.rubric_version = j.rubric_version AND c.split = 'test' AND c.category = 'all'
           GROUP BY ALL ORDER BY 1"""
    ).fetchall()
    if not rows:
        return []
    out = ["  Per-failure-mode judges (gold fails of the mode; test split):"]
    for mode, labelled, need, enabled, judges in rows:
        out.append(
            f"    {mode:<18} {labelled} fails: "
            + (judges or "enabled, not measured yet" if enabled else f"waiting for {need}")
        )
    return out
