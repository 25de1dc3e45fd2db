"""The HTML report: one self-contained page per run under data/reports/ (plots embedded as
PNG), plus `latest.html`. Tables go through pandas' escaping, so trace text cannot inject
markup."""

from __future__ import annotations

import base64
import html
import io
import os
from datetime import UTC, datetime
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd

from evals_pipeline.records import (
    FAILURE_MODE_DISTRIBUTION,
    HOLDOUT_GAP,
    JUDGE_CALIBRATION,
    ONLINE_OFFLINE_CORRELATION,
    POOL_SIZES,
    QUALITY_COST_LATENCY,
    RELEASE_GATES,
    SEGMENT_REPORT,
)
from evals_pipeline.reports.correlation import CELL_ONLINE_SQL, PER_TRACE_SQL
from evals_pipeline.reports.pareto import frame_axes, pareto_plot_png
from evals_pipeline.warehouse import table_names


def _png(fig) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
    import matplotlib.pyplot as plt

    plt.close(fig)
    return (
        f'<img alt="plot" src="data:image/png;base64,{base64.b64encode(buf.getvalue()).decode()}">'
    )


def _table(conn: duckdb.DuckDBPyConnection, sql: str, params: dict | None = None) -> str:
    frame = conn.execute(sql, params or {}).df()
    for col in frame.columns:  # counts with gaps (a pivot's empty cells) stay counts
        values = frame[col]
        if pd.api.types.is_float_dtype(values) and values.notna().any():
            whole = values.dropna()
            if (whole == whole.round()).all() and whole.abs().max() < 2**53:
                frame[col] = values.map(lambda v: "" if pd.isna(v) else f"{int(v):d}")
    return (
        frame.to_html(index=False, float_format=lambda v: f"{v:.3f}", na_rep="", border=0)
        if not frame.empty
        else "<p>(nothing yet)</p>"
    )


def _err(point: pd.Series, low: pd.Series, high: pd.Series) -> list[np.ndarray]:
    """Error-bar lengths; an unknown or degenerate interval draws no bar."""
    return [
        np.nan_to_num((point - low).clip(lower=0).to_numpy(dtype=float)),
        np.nan_to_num((high - point).clip(lower=0).to_numpy(dtype=float)),
    ]


def _plots(conn: duckdb.DuckDBPyConnection) -> list[tuple[str, str]]:
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
    cells = conn.execute(
        PER_TRACE_SQL.replace("AND t.partition_date >= $start AND t.partition_date < $end", "")
    ).df()
    if not cells.empty:
        online = conn.execute(
            CELL_ONLINE_SQL.replace(
                "WHERE t.partition_date >= $start AND t.partition_date < $end", ""
            )
        ).df()
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
        ax.legend(fontsize=7)
        out.append(("Offline vs online, per app version x user segment", _png(fig)))
    pools = conn.execute(
        f"SELECT quarter, pool, sum(cases) AS n FROM {POOL_SIZES} GROUP BY ALL ORDER BY 1"
    ).df()
    if not pools.empty:
        wide = pools.pivot_table(index="quarter", columns="pool", values="n", fill_value=0)
        fig, ax = plt.subplots(figsize=(6, 3))
        wide.plot(kind="bar", stacked=True, ax=ax)
        ax.set_xticks(range(len(wide)), [str(q)[:10] for q in wide.index], rotation=0)
        ax.set_ylabel("cases")
        out.append(("Golden pools after each rotation", _png(fig)))
    cal = conn.execute(
        f"""SELECT judge, tpr, tpr_low, tpr_high, tnr, tnr_low, tnr_high FROM {JUDGE_CALIBRATION}
           WHERE split = 'test' AND category = 'all' ORDER BY judge"""
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
    ("Quality, cost and latency", f"SELECT * FROM {QUALITY_COST_LATENCY}"),
    (
        "Segment report (ensemble, per category)",
        f"""SELECT app_version, category, n, score, ci_low, ci_high, delta_vs_baseline, delta_ci_low, delta_ci_high, regressed, trusted
           FROM {SEGMENT_REPORT} WHERE scorer = 'ensemble' AND level IN ('overall', 'category') ORDER BY app_version, level DESC, category""",
    ),
    (
        "Judge calibration (test split)",
        f"""SELECT judge, rubric, rubric_version, n, tpr, tpr_low, tpr_high, tnr, tnr_low, tnr_high, kappa, trusted
           FROM {JUDGE_CALIBRATION} WHERE split = 'test' AND category = 'all' ORDER BY judge""",
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


def render_report(conn: duckdb.DuckDBPyConnection, folder: Path, run_id: str) -> Path:
    """Write <folder>/<run_id>.html and latest.html; return the run's page."""
    existing = table_names(conn)
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
    if needed <= existing:
        for title, img in _plots(conn):
            body.append(f"<h2>{html.escape(title)}</h2>{img}")
    stamp = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    page = f"""<!doctype html><html><head><meta charset="utf-8"><title>evals_pipeline report</title>
<style>body{{font-family:sans-serif;max-width:1100px;margin:2em auto}}table{{border-collapse:collapse;font-size:12px}}
td,th{{padding:2px 8px;border-bottom:1px solid #ddd;text-align:right}}img{{max-width:100%}}</style></head>
<body><h1>evals_pipeline report</h1><p>run {html.escape(run_id)}, {stamp}</p>{"".join(body)}</body></html>"""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{run_id}.html"
    path.write_text(page, encoding="utf-8")
    tmp = folder / ".latest.html.tmp"
    tmp.write_text(page, encoding="utf-8")
    os.replace(tmp, folder / "latest.html")
    return path
