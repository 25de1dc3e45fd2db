"""The quality-cost-latency frontier: which app versions no other version beats on every
axis at once (seed 003: a decision on the curve, not on one number).

A version is dominated when another is at least as good on every axis (higher pass rate,
lower cost, lower latency) and strictly better on one. An unknown value never wins: a
version missing an axis cannot dominate one that has it (an axis neither has is left out),
and a version with no pass rate is on no frontier.
"""

from __future__ import annotations

import base64
import io

import numpy as np
import pandas as pd

# (column, direction): +1 = higher is better, -1 = lower is better
AXES: tuple[tuple[str, int], ...] = (("quality", 1), ("cost", -1), ("latency", -1))


def dominates(a: pd.Series, b: pd.Series, axes: tuple[tuple[str, int], ...] = AXES) -> bool:
    """Whether version `a` dominates version `b` on the axes `b` has a value for."""
    if any(pd.notna(b[c]) and pd.isna(a[c]) for c, _ in axes):
        return False
    shared = [(c, d) for c, d in axes if pd.notna(b[c])]
    if not shared:
        return False
    diffs = np.array([d * (a[c] - b[c]) for c, d in shared], dtype=float)
    return bool((diffs >= 0).all() and (diffs > 0).any())


def pareto_front(
    frame: pd.DataFrame, name: str = "app_version", axes: tuple[tuple[str, int], ...] = AXES
) -> pd.DataFrame:
    """`frame` with `pareto_optimal` and `dominated_by` (the versions that dominate it, comma
    separated) for rows with columns `name` and the axes."""
    rows = frame.reset_index(drop=True)
    optimal, by = [], []
    for i, row in rows.iterrows():
        if pd.isna(row[axes[0][0]]):
            optimal.append(False)
            by.append(None)
            continue
        winners = sorted(
            str(other[name])
            for j, other in rows.iterrows()
            if j != i and pd.notna(other[axes[0][0]]) and dominates(other, row, axes)
        )
        optimal.append(not winners)
        by.append(", ".join(winners) or None)
    return rows.assign(pareto_optimal=optimal, dominated_by=by)


def pareto_plot_png(frame: pd.DataFrame, name: str = "app_version") -> bytes:
    """Quality against cost, marker size by latency, the frontier joined by a line and labelled
    in the legend (columns: name, quality, cost, latency, pareto_optimal)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    data = frame.dropna(subset=["quality", "cost"])
    fig, ax = plt.subplots(figsize=(6, 3.6))
    if not data.empty:
        lat = data["latency"].fillna(
            data["latency"].median() if data["latency"].notna().any() else 1
        )
        size = 40 + 260 * (lat / lat.max() if lat.max() > 0 else 0)
        on = data["pareto_optimal"].map(lambda v: bool(v) if pd.notna(v) else False)
        front = data[on].sort_values("cost")
        rest = data[~on]
        ax.scatter(
            front["cost"],
            front["quality"],
            s=size[front.index],
            color="tab:green",
            label="on the frontier",
            zorder=3,
        )
        if not rest.empty:
            ax.scatter(
                rest["cost"],
                rest["quality"],
                s=size[rest.index],
                color="tab:gray",
                label="dominated",
                zorder=3,
            )
        if len(front) > 1:
            ax.plot(front["cost"], front["quality"], color="tab:green", lw=1, label="frontier")
        for _, r in data.iterrows():
            ax.annotate(
                str(r[name]),
                (r["cost"], r["quality"]),
                textcoords="offset points",
                xytext=(6, 4),
                fontsize=8,
            )
        ax.legend(fontsize=7, loc="best")
    ax.set_xlabel("cost per trace (USD)")
    ax.set_ylabel("pass rate")
    ax.set_title("Quality vs cost (marker size: latency)", fontsize=9)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100, bbox_inches="tight")
    plt.close(fig)
    return buf.getvalue()


def markdown_image(png: bytes, alt: str) -> str:
    """A PNG as a markdown image (data URI): Dagster's UI shows it in the asset's metadata."""
    return f"![{alt}](data:image/png;base64,{base64.b64encode(png).decode()})"


def frame_axes(qcl: pd.DataFrame) -> pd.DataFrame:
    """The axes of `quality_cost_latency` rows: pass rate; production cost per trace, else the
    generation cost per case (a version not yet in production); production p50 latency, else
    the generation latency."""
    return pd.DataFrame(
        {
            "app_version": qcl["app_version"],
            "quality": qcl["pass_rate"],
            "cost": qcl["production_cost_usd_per_trace"].fillna(qcl["candidate_cost_usd_per_case"]),
            "latency": qcl["production_latency_p50_ms"].fillna(qcl["candidate_latency_ms"]),
        }
    )


def with_frontier(qcl: pd.DataFrame) -> pd.DataFrame:
    """`quality_cost_latency` rows with `pareto_optimal` and `dominated_by`."""
    front = pareto_front(frame_axes(qcl))
    return qcl.reset_index(drop=True).assign(
        pareto_optimal=front["pareto_optimal"], dominated_by=front["dominated_by"]
    )
