"""The online gates of seed 003, before full rollout: the shadow period (the candidate answers
live traffic beside the control; users see the control) and the canary (a share of users
served by the candidate). Both compare the candidate with the control on the same period:

- shadow: the trusted judges' pass rate of the candidate's and the control's answers to the
  same live inputs, paired per input, per category;
- canary: each online signal's rate (the share of traces with the event) for canary users
  against control users, per segment, over the monitoring window, with intervals that treat
  a user as the unit (users are assigned, and one user's traces are not independent).

A row fails when the candidate is worse by more than the gate's tolerance (`max_drop`) *and*
significantly worse than the control (one-sided, Holm over every row of the gate at
`alpha`): a material and real regression. The heavy lifting (a week of traffic and its
feedback) is SQL in DuckDB; what comes back is one row per segment, signal and arm.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Sequence
from datetime import date, datetime, timedelta

import numpy as np
import pandas as pd
from duckdb import DuckDBPyConnection
from scipy.stats import norm

from evals_pipeline.judging.candidates import AppVersion, candidate_calls
from evals_pipeline.judging.client import JudgeClient, RunStats, run_calls
from evals_pipeline.judging.few_shot import project_rubric
from evals_pipeline.judging.panel import majority, subject_verdicts
from evals_pipeline.judging.rubrics import Rubric
from evals_pipeline.judging.trust import trusted_judges
from evals_pipeline.pools.references import REFERENCES_TABLE
from evals_pipeline.project import (
    CanarySpec,
    OnlineGatesSpec,
    ProjectConfig,
    ShadowSpec,
)
from evals_pipeline.records import GOOD_SIGNALS, SHADOW_GATE, TRACE_FEEDBACK, TRACES, VISIBLE_TRACES
from evals_pipeline.warehouse import registered

Z95 = float(norm.ppf(0.975))


def holm(p_values: Sequence[float], alpha: float) -> np.ndarray:
    """Holm's step-down procedure: which hypotheses are rejected at family-wise `alpha`."""
    p = np.asarray(p_values, dtype=float)
    order = np.argsort(p, kind="stable")
    reject = np.zeros(len(p), dtype=bool)
    for rank, i in enumerate(order):
        if not p[i] <= alpha / (len(p) - rank):
            break
        reject[i] = True
    return reject


def judged_drops(frame: pd.DataFrame, max_drop: float, alpha: float) -> pd.DataFrame:
    """`frame` has `harm` (how much worse the candidate is; positive = worse) and its standard
    error `se`. Adds the one-sided p-value that the candidate is worse, `significant` (Holm
    over all rows), the harm a row could have detected with 80% power at that level
    (`detectable`), and `status`: fail when significantly worse by more than `max_drop`."""
    out = frame.copy()
    se = out["se"].to_numpy(dtype=float)
    harm = out["harm"].to_numpy(dtype=float)
    with np.errstate(divide="ignore", invalid="ignore"):
        z = np.where(se > 0, harm / se, np.where(harm > 0, np.inf, 0.0))
    p = np.where(np.isnan(harm), 1.0, norm.sf(z))
    out["p_value"] = p
    out["significant"] = holm(p, alpha) if len(out) else np.zeros(0, dtype=bool)
    z_holm = float(norm.isf(alpha / max(1, len(out))))
    out["detectable"] = (z_holm + float(norm.ppf(0.8))) * se
    out["status"] = np.where(
        out["significant"] & (harm > max_drop),
        "fail",
        np.where(np.isnan(harm), "no_data", "pass"),
    )
    return out


# ---- canary -----------------------------------------------------------------------------

# Per user and cell first (a user's traces and events counted once per category, segment and
# arm), so the signals multiply those cells rather than the traces; then each level per user.
CANARY_COUNTS_SQL = f"""
WITH t AS (
    SELECT trace_id, user_id, category, user_segment,
           CASE WHEN app_version = $candidate THEN 'canary' ELSE 'control' END AS arm
    FROM {TRACES}
    WHERE ts >= $start AND ts < $end AND app_version IN ($candidate, $control)
),
n AS (SELECT user_id, category, user_segment, arm, count(*) AS n FROM t GROUP BY ALL),
y AS (
    SELECT t.user_id, t.category, t.user_segment, t.arm, h.signal, count(*) AS y
    FROM (SELECT DISTINCT trace_id, signal FROM {TRACE_FEEDBACK}
          WHERE signal IN (SELECT signal FROM _gated) AND trace_id IN (SELECT trace_id FROM t)) h
    JOIN t USING (trace_id) GROUP BY ALL
),
cells AS (
    SELECT n.user_id, n.category, n.user_segment, n.arm, g.signal, n.n, coalesce(y.y, 0) AS y
    FROM n CROSS JOIN _gated g
    LEFT JOIN y ON y.user_id = n.user_id AND y.category = n.category
               AND y.user_segment = n.user_segment AND y.arm = n.arm AND y.signal = g.signal
),
per_user AS (
    SELECT 'all' AS level, 'all' AS segment, arm, signal, user_id, sum(n) AS n, sum(y) AS y
    FROM cells GROUP BY ALL
    UNION ALL
    SELECT 'category', category, arm, signal, user_id, sum(n), sum(y) FROM cells
    WHERE 'category' IN (SELECT level FROM _levels) GROUP BY ALL
    UNION ALL
    SELECT 'user_segment', user_segment, arm, signal, user_id, sum(n), sum(y) FROM cells
    WHERE 'user_segment' IN (SELECT level FROM _levels) GROUP BY ALL
)
SELECT level, segment, arm, signal, count(*) AS users, sum(n) AS n, sum(y) AS y,
       sum(n * n) AS nn, sum(y * y) AS yy, sum(n * y) AS ny
FROM per_user GROUP BY ALL
"""


def _arm_rates(counts: pd.DataFrame) -> pd.DataFrame:
    """Per arm: the rate (events / traces) and its variance with the user as the cluster (the
    linearised ratio estimator: sum over users of (y_u - r n_u)^2 / N^2, times G / (G - 1))."""
    c = counts.astype({"n": float, "y": float, "nn": float, "yy": float, "ny": float})
    r = c["y"] / c["n"]
    resid = (c["yy"] - 2 * r * c["ny"] + r * r * c["nn"]).clip(lower=0)
    g = c["users"].astype(float)
    var = resid / (c["n"] ** 2) * np.where(g > 1, g / (g - 1), np.nan)
    return c.assign(rate=r, var=var)


def canary_frame(
    conn: DuckDBPyConnection,
    spec: CanarySpec,
    candidate: str,
    control: str,
    as_of: date,
    alpha: float,
) -> pd.DataFrame:
    """`canary_gate` rows: per level, segment and signal, the canary's and the control's rates,
    the difference (canary - control) with its 95% interval, how much worse the canary is
    (the difference turned so that positive is worse), and the verdict. The window is
    [start, start + days) cut at `as_of` (the last day of traffic so far)."""
    start = datetime.combine(spec.start, datetime.min.time())
    planned_end = start + timedelta(days=spec.days)
    end = min(planned_end, datetime.combine(as_of, datetime.min.time()) + timedelta(days=1))
    gated = pd.DataFrame({"signal": spec.signals})
    levels = pd.DataFrame({"level": spec.segments})
    with registered(conn, _gated=gated, _levels=levels):
        counts = conn.execute(
            CANARY_COUNTS_SQL,
            {"candidate": candidate, "control": control, "start": start, "end": max(start, end)},
        ).df()
    rates = _arm_rates(counts)
    keys = ["level", "segment", "signal"]
    wide = rates[rates["arm"] == "canary"].merge(
        rates[rates["arm"] == "control"], on=keys, how="outer", suffixes=("_canary", "_control")
    )
    delta = wide["rate_canary"] - wide["rate_control"]
    se = np.sqrt(wide["var_canary"] + wide["var_control"])
    good = wide["signal"].isin(GOOD_SIGNALS)
    frame = pd.DataFrame(
        {
            "level": wide["level"],
            "segment": wide["segment"],
            "signal": wide["signal"],
            "canary_users": wide["users_canary"].fillna(0).astype(int),
            "control_users": wide["users_control"].fillna(0).astype(int),
            "canary_n": wide["n_canary"].fillna(0).astype(int),
            "control_n": wide["n_control"].fillna(0).astype(int),
            "canary_rate": wide["rate_canary"],
            "control_rate": wide["rate_control"],
            "delta": delta,
            "ci_low": delta - Z95 * se,
            "ci_high": delta + Z95 * se,
            "harm": np.where(good, -delta, delta),
            "se": se,
        }
    )
    judged = judged_drops(frame, spec.max_drop, alpha)
    days_seen = max(0, min(spec.days, (end - start).days))
    judged.insert(0, "window_start", spec.start)
    judged.insert(1, "days_observed", days_seen)
    judged.insert(2, "days_planned", spec.days)
    order = {"all": 0, "category": 1, "user_segment": 2}
    return judged.sort_values(
        ["level", "segment", "signal"], key=lambda s: s.map(order) if s.name == "level" else s
    ).reset_index(drop=True)


# ---- shadow -----------------------------------------------------------------------------

# The control's live traces of the shadow period that the judges can read (not sealed, with
# references), up to `per_category` per category, chosen by a stable hash of the id.
SHADOW_INPUTS_SQL = f"""
SELECT trace_id, category, input, output, reference_good, reference_borderline FROM (
    SELECT t.trace_id, t.category, t.input, t.output, r.reference_good, r.reference_borderline,
           row_number() OVER (PARTITION BY t.category ORDER BY md5(t.trace_id)) AS k
    FROM {VISIBLE_TRACES} t JOIN {REFERENCES_TABLE} r USING (trace_id)
    WHERE t.ts >= $start AND t.ts < $end AND t.app_version = $control
      AND t.input IS NOT NULL AND t.output IS NOT NULL
)
WHERE k <= $per_category ORDER BY category, trace_id
"""


def shadow_window(spec: ShadowSpec) -> tuple[datetime, datetime]:
    start = datetime.combine(spec.start, datetime.min.time())
    return start, start + timedelta(hours=spec.hours)


def shadow_pairs(
    conn: DuckDBPyConnection,
    client: JudgeClient,
    inputs: pd.DataFrame,
    candidate: AppVersion,
    rubric: Rubric,
    judges: Sequence[str],
    progress: Callable[[str], None],
    run_id: str = "",
) -> tuple[pd.DataFrame, RunStats]:
    """The shadow's evidence on `inputs` (SHADOW_INPUTS_SQL's rows): the candidate answers each
    live input (through litellm, cached: a re-run pays nothing again), then the trusted judges
    judge its answer and the control's answer users saw, under the same rubric. Returns
    (subject_id, category, control, candidate) with each answer's majority verdict (1.0 pass,
    0.0 fail, NaN: a tie, no valid verdict, or the candidate's call failed), and the candidate
    calls' stats."""
    calls, _ = candidate_calls(
        inputs.rename(columns={"trace_id": "case_id"}), [candidate], Counter()
    )
    results, stats = run_calls(client, conn, calls, progress, run_id=run_id)
    answered = inputs.assign(candidate_output=[r.response for r in results])
    subjects = pd.concat(
        [
            answered.assign(subject_id=answered["trace_id"] + "|control"),
            answered.dropna(subset=["candidate_output"]).assign(
                subject_id=lambda f: f["trace_id"] + "|candidate",
                output=lambda f: f["candidate_output"],
            ),
        ],
        ignore_index=True,
    )
    verdicts = subject_verdicts(client, conn, subjects, rubric, judges, progress, run_id)
    arm = verdicts["subject_id"].str.rsplit("|", n=1)
    verdicts = verdicts.assign(subject_id=arm.str[0], arm=arm.str[1])
    decided = majority(verdicts, ["subject_id", "arm"]).pivot(
        index="subject_id", columns="arm", values="passed"
    )
    pairs = inputs[["trace_id", "category"]].rename(columns={"trace_id": "subject_id"})
    pairs = pairs.merge(decided, left_on="subject_id", right_index=True, how="left")
    for column in ("control", "candidate"):
        if column not in pairs:
            pairs[column] = np.nan
    return pairs[["subject_id", "category", "control", "candidate"]], stats


def shadow_frame(pairs: pd.DataFrame, spec: ShadowSpec, alpha: float) -> pd.DataFrame:
    """`shadow_gate` rows from `pairs` (subject_id, category, control, candidate: 1.0 pass, 0.0
    fail, NaN undecided): per category and over all inputs, both pass rates on the inputs both
    answers have a verdict for, the paired difference (candidate - control) with its 95%
    interval, and the verdict."""
    both = pairs.dropna(subset=["control", "candidate"])
    rows = []
    groups = [("all", "all", both)] + [
        ("category", c, g) for c, g in both.groupby("category", sort=True)
    ]
    for level, category, g in groups:
        d = (g["candidate"] - g["control"]).to_numpy(dtype=float)
        n = len(d)
        mean = float(d.mean()) if n else np.nan
        se = float(d.std(ddof=1) / np.sqrt(n)) if n > 1 else np.nan
        undecided = (
            int((pairs["category"] == category).sum() if level == "category" else len(pairs)) - n
        )
        rows.append(
            {
                "level": level,
                "category": category,
                "n": n,
                "undecided": undecided,
                "control_pass_rate": float(g["control"].mean()) if n else np.nan,
                "candidate_pass_rate": float(g["candidate"].mean()) if n else np.nan,
                "delta": mean,
                "ci_low": mean - Z95 * se,
                "ci_high": mean + Z95 * se,
                "harm": -mean,
                "se": se,
            }
        )
    frame = judged_drops(pd.DataFrame(rows), spec.max_drop, alpha)
    start, end = shadow_window(spec)
    frame.insert(0, "window_start", start)
    frame.insert(1, "window_end", end)
    return frame


def shadow_evidence(
    conn: DuckDBPyConnection,
    client: JudgeClient,
    project: ProjectConfig,
    progress: Callable[[str], None],
    run_id: str = "",
) -> tuple[pd.DataFrame, RunStats | None]:
    """`shadow_gate` rows for the project's shadow period (the references of the live inputs
    loaded in `_references`), and the candidate calls' stats; no rows when the project has no
    shadow, the period has no readable input of the control, or no judge is trusted."""
    spec, candidate, control = (
        project.online_gates.shadow,
        project.version("candidate"),
        project.version("baseline"),
    )
    empty = pd.DataFrame(columns=SHADOW_GATE.column_names)
    if spec is None:
        return empty, None
    rubric = project_rubric(conn, project.judges)
    judges = trusted_judges(conn, project.judges.panel, rubric)
    start, end = shadow_window(spec)
    inputs = conn.execute(
        SHADOW_INPUTS_SQL,
        {"start": start, "end": end, "control": control, "per_category": spec.per_category},
    ).df()
    progress(
        f"{len(inputs):,} live inputs of {control} in the shadow period {start} .. {end}; "
        f"trusted judges: {', '.join(judges) or 'none'}"
    )
    if not (judges and len(inputs)):
        return empty, None
    version = next(v for v in project.app_versions if v.name == candidate)
    pairs, stats = shadow_pairs(
        conn,
        client,
        inputs,
        AppVersion(version.name, version.model, project.system_prompt(version)),
        rubric,
        judges,
        progress,
        run_id,
    )
    frame = shadow_frame(pairs, spec, project.online_gates.alpha)
    return frame.assign(candidate=candidate, control=control, judges=", ".join(judges))[
        SHADOW_GATE.column_names
    ], stats


# Feedback arrives after its trace (minutes to days): the gates are evaluated this many days
# past the end of their windows too, so the last days' signals are in.
FEEDBACK_DAYS = 2


def evaluation_days(gates: OnlineGatesSpec) -> tuple[date, date] | None:
    """The first and last day the online gates are evaluated (None: no online gate): from the
    first window's start to FEEDBACK_DAYS past the last window's end."""
    windows = []
    if gates.shadow is not None:
        start, end = shadow_window(gates.shadow)
        windows.append((start.date(), (end - timedelta(microseconds=1)).date()))
    if gates.canary is not None:
        c = gates.canary
        windows.append((c.start, c.start + timedelta(days=c.days - 1)))
    if not windows:
        return None
    return min(w[0] for w in windows), max(w[1] for w in windows) + timedelta(days=FEEDBACK_DAYS)
