"""The active pool as files a team can keep in git: `active.jsonl` plus a `CHANGELOG.md`
entry per rotation (what entered, graduated, retired, and why), both rebuilt from the
warehouse state, so exporting twice writes the same bytes."""

from __future__ import annotations

import json
import os
from pathlib import Path

import duckdb

from evals_pipeline.records import ACTIVE_CASES, GOLDEN_POOLS, POOL_EVENTS


def _write_atomically(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


def export_active_pool(conn: duckdb.DuckDBPyConnection, folder: Path) -> dict[str, int]:
    folder.mkdir(parents=True, exist_ok=True)
    rows = conn.execute(
        f"""SELECT c.case_id, c.trace_id, c.category, c.user_segment, c.input, c.output,
                  c.reference_good, c.reference_borderline, c.why, c.version,
                  p.entered_at, p.pool_since
           FROM {ACTIVE_CASES} c JOIN {GOLDEN_POOLS} p USING (case_id)
           ORDER BY c.case_id"""
    ).fetchall()
    lines = [
        json.dumps(
            {
                "case_id": r[0],
                "trace_id": r[1],
                "category": r[2],
                "user_segment": r[3],
                "input": r[4],
                "output": r[5],
                "references": {"good": r[6], "borderline": r[7]},
                "why": r[8],
                "version": r[9],
                "entered_at": r[10].isoformat(),
                "active_since": r[11].isoformat(),
            },
            ensure_ascii=False,
        )
        for r in rows
    ]
    _write_atomically(folder / "active.jsonl", "".join(line + "\n" for line in lines))
    changelog = changelog_markdown(conn)
    _write_atomically(folder / "CHANGELOG.md", changelog)
    return {"active_cases": len(rows), "rotations": changelog.count("\n## ")}


def changelog_markdown(conn: duckdb.DuckDBPyConnection) -> str:
    out = [
        "# Golden set changelog",
        "",
        "One entry per quarterly rotation, newest first. Holdout cases are listed by count only:",
        "their content is sealed until they graduate.",
    ]
    quarters = conn.execute(
        f"SELECT quarter, max(reason) FROM {POOL_EVENTS} WHERE event = 'rotation_complete' GROUP BY 1 ORDER BY 1 DESC"
    ).fetchall()
    for quarter, reason in quarters:
        label = f"{quarter:%Y}-Q{(quarter.month - 1) // 3 + 1}"
        out += ["", f"## {label}", "", f"_{reason}_", ""]
        for event, title in (
            ("entered_active", "Entered active"),
            ("entered_holdout", "Entered holdout (sealed)"),
            ("graduated", "Graduated holdout → active"),
            ("retired", "Retired"),
        ):
            moved = conn.execute(
                f"""SELECT e.case_id, p.category, p.why, e.reason FROM {POOL_EVENTS} e JOIN {GOLDEN_POOLS} p USING (case_id)
                   WHERE e.quarter = ? AND e.event = ? ORDER BY p.category, e.case_id""",
                [quarter, event],
            ).fetchall()
            if not moved:
                out.append(f"- {title}: none")
                continue
            by_why: dict[str, int] = {}
            for _, _, why, _ in moved:
                by_why[why] = by_why.get(why, 0) + 1
            whys = ", ".join(f"{w} {n}" for w, n in sorted(by_why.items()))
            out.append(f"- {title}: {len(moved)} ({whys}) — {moved[0][3].split(': ', 1)[-1]}")
            if event != "entered_holdout":
                out += [f"  - `{case_id}` {category}" for case_id, category, _, _ in moved]
    return "\n".join(out) + "\n"
