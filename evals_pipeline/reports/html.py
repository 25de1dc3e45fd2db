"""The HTML report: one self-contained page per run under data/reports/ (plots embedded as
PNG), plus `latest.html`. Tables go through pandas' escaping, so trace text cannot inject
markup."""

from __future__ import annotations

import base64
import html
import io
import json
import os
from datetime import UTC, datetime
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd

from evals_pipeline.records import (
    CANARY_GATE,
    FAILURE_MODE_DISTRIBUTION,
    FAILURE_MODE_JUDGES,
    FAILURE_MODE_VERDICTS,
    FEW_SHOT_EFFECT,
    HOLDOUT_GAP,
    JUDGE_BIAS,
    JUDGE_CALIBRATION,
    ONLINE_OFFLINE_CORRELATION,
    POOL_SIZES,
    QUALITY_COST_LATENCY,
    RELEASE_GATES,
    SEGMENT_REPORT,
    SHADOW_GATE,
)
from evals_pipeline.reports.correlation import CELL_ONLINE_SQL, PER_TRACE_SQL
from evals_pipeline.reports.online import Spark, online_query, per_trace_query
from evals_pipeline.reports.pareto import frame_axes, pareto_plot_png
from evals_pipeline.reports.trends import (
    PASS_RATE_TREND_SQL,
    correlation_trend,
    judge_trend,
    pass_rate_trend,
    since_last_run,
)
from evals_pipeline.warehouse import table_names


def _png(fig) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
    import matplotlib.pyplot as plt

    plt.close(fig)
    return (
        f'<img alt="plot" src="data:image/png;base64,{base64.b64encode(buf.getvalue()).decode()}">'
    )


# Values as people read them: pandas' own spellings (<NA>, True, not_ingested) never reach the page.
_WORDS = {"not_ingested": "quarantined at ingest"}


def _dollars(v: float) -> str:
    """Dollars with three significant digits, never rounded to `0.000` nor in e-notation."""
    if v == 0:
        return "$0"
    digits = np.format_float_positional(
        abs(v), precision=3, unique=False, fractional=False, trim="-"
    )
    return ("-$" if v < 0 else "$") + (f"{abs(v):,.2f}" if abs(v) >= 100 else digits)


def _cell(column: str, v: object, whole: bool) -> str:
    if v is None or v is pd.NA or v is pd.NaT or (isinstance(v, float) and np.isnan(v)):
        return ""
    if isinstance(v, bool | np.bool_):
        return "yes" if v else "no"
    if isinstance(v, int | np.integer) or (whole and isinstance(v, float | np.floating)):
        return f"{int(v):,}"
    if isinstance(v, float | np.floating):
        return _dollars(float(v)) if "cost" in column or "usd" in column else f"{v:.3f}"
    return html.escape(_WORDS.get(str(v), str(v)))


def _table(conn: duckdb.DuckDBPyConnection, sql: str, params: dict | None = None) -> str:
    return _frame_html(conn.execute(sql, params or {}).df())


def _frame_html(frame: pd.DataFrame) -> str:
    if frame.empty:
        return "<p>(nothing yet)</p>"
    head = "".join(f"<th>{html.escape(_WORDS.get(str(c), str(c)))}</th>" for c in frame.columns)
    cols = []
    for c in frame.columns:  # counts with gaps (a pivot's empty cells) stay counts
        values = frame[c]
        known = values.dropna()
        whole = (
            pd.api.types.is_float_dtype(values)
            and not known.empty
            and bool((known == known.round()).all())
            and known.abs().max() < 2**53
            and not ("cost" in str(c) or "rate" in str(c) or "share" in str(c))
        )
        cols.append([_cell(str(c), v, whole) for v in values.astype(object)])
    # text reads from the left, numbers line up on the right
    left = ["" if pd.api.types.is_numeric_dtype(frame[c]) else ' class="t"' for c in frame.columns]
    rows = "".join(
        "<tr>" + "".join(f"<td{a}>{v}</td>" for a, v in zip(left, r, strict=True)) + "</tr>"
        for r in zip(*cols, strict=True)
    )
    return f"<table><thead><tr>{head}</tr></thead><tbody>{rows}</tbody></table>"


def _trends(conn: duckdb.DuckDBPyConnection) -> tuple[list[str], dict[str, object]]:
    """The history sections (since the last run first) and their data, for the page's JSON."""
    diff = since_last_run(conn)
    frames = {
        "Pass rate over time (ensemble; a column per quarter a report ran for)": pass_rate_trend(
            conn
        ),
        "Judges over rubric versions (test split)": judge_trend(conn),
        "Offline-online correlation per quarter (cell level, thumbs-up rate)": correlation_trend(
            conn
        ),
    }
    changed = diff[diff["changed"]] if not diff.empty else diff
    parts = [
        "<h2>Since the last run</h2>"
        + (
            _frame_html(changed)
            if not changed.empty
            else "<p>(nothing changed)</p>"
            if not diff.empty
            else "<p>(the first run: nothing to compare yet)</p>"
        )
    ]
    parts += [f"<h2>{html.escape(t)}</h2>{_frame_html(f)}" for t, f in frames.items()]
    data = {
        "since_last_run": diff.to_dict("records"),
        **{
            key: frame.astype(object).where(frame.notna(), None).to_dict("records")
            for key, frame in zip(
                ("pass_rate_trend", "judge_trend", "correlation_trend"),
                frames.values(),
                strict=True,
            )
        },
    }
    return parts, data


def _trend_plot(conn: duckdb.DuckDBPyConnection) -> tuple[str, str] | None:
    import matplotlib.pyplot as plt

    trend = conn.execute(PASS_RATE_TREND_SQL).df()
    overall = trend[trend["category"] == "all"]
    if overall["partition"].nunique() < 2:
        return None
    fig, ax = plt.subplots(figsize=(6, 3))
    for version, g in overall.groupby("app_version"):
        ax.errorbar(
            g["partition"],
            g["score"],
            yerr=_err(g["score"], g["ci_low"], g["ci_high"]),
            marker="o",
            capsize=3,
            label=version,
        )
    ax.set_ylabel("ensemble pass rate (95% CI)")
    ax.set_xlabel("quarter the report ran for")
    ax.legend(fontsize=7, title="app version")
    return "Pass rate per version over time", _png(fig)


def _headline(conn: duckdb.DuckDBPyConnection, existing: set[str]) -> tuple[str, str, str]:
    """(css class, the decision in words, the gates behind it) from release_gates."""
    if RELEASE_GATES.name not in existing:
        return "pending", "No decision yet: run evals_reports", ""
    gates = conn.execute(
        f"SELECT gate, status, candidate, baseline FROM {RELEASE_GATES}"
    ).fetchall()
    decision = next((g for g in gates if g[0] == "decision"), None)
    if decision is None:
        return "pending", "No decision yet: run evals_reports", ""
    _, status, candidate, baseline = decision
    failed = [g[0] for g in gates if g[1] == "fail" and g[0] != "decision"]
    warned = [g[0] for g in gates if g[1] in ("warn", "not_evaluated")]
    if status == "pass":
        text = f"Ship {candidate}: it passes every gate against {baseline}"
    else:
        text = f"Do not ship {candidate}: {', '.join(failed)} failed against {baseline}"
    note = f"To look at: {', '.join(warned)}." if warned else ""
    return ("ship" if status == "pass" else "noship"), text, note


def _err(point: pd.Series, low: pd.Series, high: pd.Series) -> list[np.ndarray]:
    """Error-bar lengths; an unknown or degenerate interval draws no bar."""
    return [
        np.nan_to_num((point - low).clip(lower=0).to_numpy(dtype=float)),
        np.nan_to_num((high - point).clip(lower=0).to_numpy(dtype=float)),
    ]


def _plots(conn: duckdb.DuckDBPyConnection, spark: Spark = None) -> list[tuple[str, str]]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out = []
    seg = conn.execute(
        f"""SELECT app_version, category, delta_vs_baseline AS d, delta_ci_low AS lo, delta_ci_high AS hi, baseline
           FROM {SEGMENT_REPORT} WHERE scorer = 'ensemble' AND level = 'category' AND app_version <> baseline ORDER BY 1, 2"""
    ).df()
    if not seg.empty:
        fig, ax = plt.subplots(figsize=(7, 3.5))
        for i, (version, g) in enumerate(seg.groupby("app_version")):
            y = range(len(g))
            ax.errorbar(
                g["d"],
                [v + 0.15 * i for v in y],
                xerr=_err(g["d"], g["lo"], g["hi"]),
                fmt="o",
                label=version,
                capsize=3,
            )
            ax.set_yticks(list(y), g["category"])
        ax.axvline(0, color="grey", lw=0.8)
        ax.axvline(-0.03, color="red", lw=0.8, ls="--")
        ax.set_xlabel(f"pass-rate delta vs {seg['baseline'].iloc[0]} (paired, 95% CI)")
        ax.legend()
        out.append(("Segment deltas", _png(fig)))
    cells = per_trace_query(
        conn,
        spark,
        PER_TRACE_SQL.replace("AND t.partition_date >= $start AND t.partition_date < $end", ""),
    )
    if not cells.empty:
        online = online_query(
            conn,
            spark,
            CELL_ONLINE_SQL.replace(
                "WHERE t.partition_date >= $start AND t.partition_date < $end", ""
            ),
        )
        agg = cells.groupby(["judge", "app_version", "user_segment"]).agg(
            offline=("offline", "mean"), n=("offline", "size")
        )
        agg = (
            agg[agg["n"] >= 20]
            .reset_index()
            .merge(
                online[["app_version", "user_segment", "thumbs_up_rate"]],
                on=["app_version", "user_segment"],
            )
        )
        agg = agg.rename(columns={"thumbs_up_rate": "online"})
        fig, ax = plt.subplots(figsize=(6, 4))
        for judge, g in agg.groupby("judge"):
            ax.scatter(g["offline"], g["online"], label=judge, s=18)
        ax.set_xlabel("offline pass rate (judge)")
        ax.set_ylabel("online thumbs-up rate (all of the cell's traffic)")
        if not agg.empty:
            ax.legend(fontsize=7, title="judge (one point per version x segment)")
        out.append(("Offline vs online, per app version x user segment", _png(fig)))
    pools = conn.execute(
        f"SELECT quarter, pool, sum(cases) AS n FROM {POOL_SIZES} GROUP BY ALL ORDER BY 1"
    ).df()
    if not pools.empty:
        wide = pools.pivot_table(index="quarter", columns="pool", values="n", fill_value=0)
        fig, ax = plt.subplots(figsize=(6, 3))
        x = np.arange(len(wide))
        bottom = np.zeros(len(wide))
        for pool in [p for p in ("active", "holdout", "retired") if p in wide.columns]:
            ax.bar(x, wide[pool].to_numpy(), 0.6, bottom=bottom, label=pool)
            bottom += wide[pool].to_numpy()
        quarters = [pd.Timestamp(q) for q in wide.index]
        ax.set_xticks(x, [f"{q.year} Q{(q.month - 1) // 3 + 1}" for q in quarters])
        ax.set_xlim(-0.6, len(wide) - 0.4)
        ax.set_ylabel("cases")
        ax.legend(fontsize=7)
        out.append(("Golden pools after each rotation", _png(fig)))
    cal = conn.execute(
        f"""SELECT judge, tpr, tpr_low, tpr_high, tnr, tnr_low, tnr_high FROM {JUDGE_CALIBRATION}
           WHERE split = 'test' AND category = 'all' AND rubric NOT LIKE 'failure_mode:%'
           ORDER BY judge"""
    ).df()
    if not cal.empty:
        fig, ax = plt.subplots(figsize=(6, 3))
        y = range(len(cal))
        ax.errorbar(
            cal["tpr"],
            y,
            xerr=_err(cal["tpr"], cal["tpr_low"], cal["tpr_high"]),
            fmt="o",
            label="TPR",
            capsize=3,
        )
        ax.errorbar(
            cal["tnr"],
            [v + 0.2 for v in y],
            xerr=_err(cal["tnr"], cal["tnr_low"], cal["tnr_high"]),
            fmt="s",
            label="TNR",
            capsize=3,
        )
        ax.axvline(0.8, color="red", lw=0.8, ls="--")
        ax.set_yticks(list(y), cal["judge"])
        ax.set_xlim(0, 1)
        ax.legend()
        out.append(("Judge calibration (test split, 95% CI; trust threshold dashed)", _png(fig)))
    qcl = conn.execute(f"SELECT * FROM {QUALITY_COST_LATENCY}").df()
    if not qcl.empty:
        axes = frame_axes(qcl).assign(pareto_optimal=qcl["pareto_optimal"])
        png = base64.b64encode(pareto_plot_png(axes)).decode()
        out.append(
            (
                "Quality vs cost vs latency: the Pareto frontier",
                f'<img alt="Pareto frontier" src="data:image/png;base64,{png}">',
            )
        )
    return out


SECTIONS = (
    ("Release gates", f"SELECT gate, status, evidence FROM {RELEASE_GATES}"),
    (
        "Shadow period: the trusted judges on the candidate's and the control's answers to the "
        "same live inputs (paired, per category)",
        f"""SELECT candidate, control, window_start, window_end, category, n, undecided, control_pass_rate,
                  candidate_pass_rate, delta, ci_low, ci_high, p_value, significant, detectable, status
           FROM {SHADOW_GATE} ORDER BY level, category""",
    ),
    (
        "Canary: online signals of canary users against control users over the monitoring window",
        f"""SELECT candidate, control, window_start, days_observed, days_planned, level, segment, signal,
                  canary_users, control_users, canary_n, control_n, canary_rate, control_rate, delta, ci_low,
                  ci_high, p_value, significant, detectable, status
           FROM {CANARY_GATE} ORDER BY status = 'fail' DESC, level, segment, signal""",
    ),
    ("Quality, cost and latency", f"SELECT * FROM {QUALITY_COST_LATENCY}"),
    (
        "Segment report (ensemble, per category)",
        f"""SELECT app_version, category, n, score, ci_low, ci_high, delta_vs_baseline, delta_ci_low, delta_ci_high, regressed, trusted
           FROM {SEGMENT_REPORT} WHERE scorer = 'ensemble' AND level IN ('overall', 'category') ORDER BY app_version, level DESC, category""",
    ),
    (
        "Segment report against both references (graded ensemble: share as good as the "
        "borderline / the high-quality reference, per category)",
        f"""PIVOT (SELECT app_version, category, n, replace(scorer, 'ensemble:reference_grade/', '') AS level, score
                  FROM {SEGMENT_REPORT} WHERE scorer LIKE 'ensemble:%/as_good_as_%' AND level IN ('overall', 'category'))
           ON level USING first(score) ORDER BY app_version, category = 'all' DESC, category""",
    ),
    (
        "Judge calibration (test split: the latest re-validation window)",
        f"""SELECT judge, rubric, rubric_version, test_since, n, tpr, tpr_low, tpr_high, tnr, tnr_low, tnr_high, kappa, trust_status
           FROM {JUDGE_CALIBRATION} WHERE split = 'test' AND category = 'all' ORDER BY judge""",
    ),
    (
        "Judge biases (length at the same human label, position, self-preference)",
        f"""SELECT judge, rubric_version, n, length_coef, length_coef_low, length_coef_high, length_biased,
                  padded_n, padded_shift, padded_shift_low, padded_shift_high, padded_p_value, padded_biased,
                  position_flip_rate, family, same_family_versions AS self_preference_risk_with
           FROM {JUDGE_BIAS} ORDER BY judge""",
    ),
    (
        "Few-shot examples: dev agreement with the expert without and with them (McNemar p)",
        f"""SELECT judge, category, n, agreement_without, agreement_with, kappa_without, kappa_with,
                  fixed, broken, p_value, few_shot_version, in_use
           FROM {FEW_SHOT_EFFECT} ORDER BY judge, category = 'all' DESC, category""",
    ),
    (
        "Per-failure-mode judges: gold fails of each mode, and each judge measured on its test split",
        f"""SELECT j.failure_mode, j.labelled, j.min_labels, j.enabled, c.judge, c.n, c.tpr, c.tnr,
                  c.kappa, c.trust_status
           FROM {FAILURE_MODE_JUDGES} j LEFT JOIN {JUDGE_CALIBRATION} c
             ON c.rubric = j.rubric AND c.rubric_version = j.rubric_version AND c.split = 'test' AND c.category = 'all'
           ORDER BY j.failure_mode, c.judge""",
    ),
    (
        "Failure modes per app version, by the trusted per-mode judges (share of outputs showing the mode)",
        f"""SELECT failure_mode, app_version, judge, count(*) AS outputs,
                  round(avg((verdict = 'fail')::INT), 3) AS shows_mode, count(error) AS errors
           FROM {FAILURE_MODE_VERDICTS} GROUP BY ALL ORDER BY failure_mode, app_version, judge""",
    ),
    (
        "Offline-online correlation (thumbs-up rate)",
        f"""SELECT quarter, judge, trusted, level, n, pearson, spearman, spearman_low, spearman_high
           FROM {ONLINE_OFFLINE_CORRELATION} WHERE signal = 'thumbs_up_rate' ORDER BY quarter, judge, level""",
    ),
    ("Holdout gap", f"SELECT * FROM {HOLDOUT_GAP}"),
    (
        "Failure modes (error analysis: failing outputs per mode, from the experts' labels)",
        f"""SELECT failure_mode, defined, n, share, share_of_reviewed, taxonomy_version FROM {FAILURE_MODE_DISTRIBUTION}
           WHERE category = 'all' AND app_version = 'all' ORDER BY n DESC, failure_mode""",
    ),
    (
        "Failure modes by category (failing outputs)",
        f"""PIVOT (SELECT failure_mode, category, n FROM {FAILURE_MODE_DISTRIBUTION} WHERE app_version = 'all' AND category <> 'all')
           ON category USING sum(n) ORDER BY failure_mode""",
    ),
    (
        "Failure modes by app version (failing outputs)",
        f"""PIVOT (SELECT failure_mode, app_version, n FROM {FAILURE_MODE_DISTRIBUTION} WHERE category = 'all' AND app_version <> 'all')
           ON app_version USING sum(n) ORDER BY failure_mode""",
    ),
)


def report_page(
    conn: duckdb.DuckDBPyConnection, run_id: str, spark: Spark = None
) -> tuple[str, str, list[tuple[str, str]]]:
    """(the page, its decision headline, its plots as (title, base64 PNG)); `spark` (engine
    spark's session and lake) aggregates the online signals over all traffic."""
    existing = table_names(conn)
    css, decision, note = _headline(conn, existing)
    body = []
    for title, sql in SECTIONS:
        table = sql.split(" FROM ")[1].split()[0]
        body.append(
            f"<h2>{html.escape(title)}</h2>"
            + (_table(conn, sql) if table in existing else "<p>(not computed yet)</p>")
        )
    needed = {
        "segment_report",
        "pool_sizes",
        "judge_calibration",
        "calibration_verdicts",
        "trace_feedback",
    }
    plots = _plots(conn, spark) if needed <= existing else []
    trend_plot = _trend_plot(conn) if needed <= existing else None
    plots += [trend_plot] if trend_plot else []
    for title, img in plots:
        body.append(f"<h2>{html.escape(title)}</h2>{img}")
    history, data = _trends(conn)
    body = history[:1] + body + history[1:]
    payload = json.dumps(data, default=str).replace("</", "<\\/")
    stamp = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    page = f"""<!doctype html><html><head><meta charset="utf-8"><title>{html.escape(decision)}</title>
<style>body{{font-family:sans-serif;max-width:1100px;margin:2em auto}}table{{border-collapse:collapse;font-size:12px;display:block;overflow-x:auto}}
td,th{{padding:2px 8px;border-bottom:1px solid #ddd;text-align:right}}td.t{{text-align:left}}img{{max-width:100%}}
#decision{{margin:0 0 .3em;padding:.5em .8em;border-radius:6px;color:#fff}}
#decision.ship{{background:#1a7f37}}#decision.noship{{background:#c62828}}#decision.pending{{background:#777}}</style></head>
<body><h1 id="decision" class="{css}">{html.escape(decision)}</h1><p id="decision-note">{html.escape(note)}</p>
<p>evals_pipeline report, run {html.escape(run_id)}, {stamp}</p>{"".join(body)}
<script type="application/json" id="report-data">{payload}</script></body></html>"""
    images = [(t, i.split("base64,", 1)[1].split('"', 1)[0]) for t, i in plots]
    return page, decision, images


def render_report(
    conn: duckdb.DuckDBPyConnection, folder: Path, run_id: str, spark: Spark = None
) -> tuple[Path, str, list[tuple[str, str]]]:
    """Write <folder>/<run_id>.html and latest.html; return the run's page, its decision
    headline and its plots."""
    page, decision, plots = report_page(conn, run_id, spark)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{run_id}.html"
    path.write_text(page, encoding="utf-8")
    tmp = folder / ".latest.html.tmp"
    tmp.write_text(page, encoding="utf-8")
    os.replace(tmp, folder / "latest.html")
    return path, decision, plots
