"""`evals`: the project's command line (also `python -m evals_pipeline`).

evals init [PATH]               write a commented starter evals.yaml for a real product
evals validate [PATH]           check the project file; one line per problem, with the fix
evals import labels FILE        check a label file (pointwise or pairwise), copy it into data/labels/
evals import pairwise FILE      the same, requiring pairwise labels naming both systems
evals import verdicts FILE      an external judge's verdicts, into data/verdicts/
evals import online-metrics FILE  per-system metrics with a date, into data/online_metrics/
evals import pandalm FILE       PandaLM's pairwise test set as a label file (docs/evidence.md)
evals status                    the project, the warehouse and the latest runs at a glance
"""

from __future__ import annotations

import argparse
import shutil
import sys
from pathlib import Path

from evals_pipeline.paths import analytics_path, warehouse_path
from evals_pipeline.project import CONFIG_ENV, ProjectError, load_project, project_file
from evals_pipeline.records import GOLDEN_POOLS, RELEASE_GATES, TRACES

TEMPLATE = Path(__file__).with_name("templates") / "evals.yaml"


def init(path: Path, force: bool) -> int:
    if path.exists() and not force:
        print(f"{path} exists; pass --force to overwrite it", file=sys.stderr)
        return 2
    path.write_text(TEMPLATE.read_text())
    print(f"wrote {path}: edit it, then `evals validate {path}`")
    return 0


def validate(path: Path) -> int:
    try:
        config = load_project(path)
    except ProjectError as exc:
        print(str(exc), file=sys.stderr)
        return 1
    print(
        f"{path.name}: valid. Source {config.source.kind}"
        + (f" ({config.path(config.source.path)})" if config.source.path else "")
        + f"; {len(config.app_versions)} app versions (baseline {config.version('baseline') or '-'}, "
        f"candidate {config.version('candidate') or '-'}); panel of {len(config.judges.panel)}: "
        + ", ".join(config.judges.panel)
    )
    return 0


# kind -> (drop folder, what loads it)
IMPORTS = {
    "labels": ("labels", "label_files_sensor starts evals_calibration"),
    "pairwise": ("labels", "label_files_sensor starts evals_calibration"),
    "pandalm": ("labels", "label_files_sensor starts evals_calibration"),
    "verdicts": ("verdicts", "verdict_files_sensor starts evals_calibration"),
    "online-metrics": ("online_metrics", "online_metrics_sensor starts evals_reports"),
}


def _segment_by() -> str:
    from evals_pipeline.calibration.evidence import DEFAULT_SEGMENT_BY

    try:
        return load_project().evidence.segment_by
    except ProjectError:
        return DEFAULT_SEGMENT_BY


def import_file(kind: str, source: Path, force: bool = False) -> int:
    """Check an evidence file as its loader will (rows stored, rows quarantined and why), then
    copy it into its drop folder, where a sensor picks it up. Nothing is copied when no row
    would be stored, or (pairwise) when a row is not a pairwise label naming both systems."""
    import duckdb

    from evals_pipeline.calibration.evidence import (
        LABELS,
        check_file,
        evidence_dir,
        verdicts_format,
    )
    from evals_pipeline.calibration.labels import import_pandalm
    from evals_pipeline.reports.online_metrics import online_metrics_format

    if not source.is_file():
        print(f"no file {source}", file=sys.stderr)
        return 2
    folder, loader = IMPORTS[kind]
    dest = evidence_dir(folder) / (
        f"pandalm_{source.stem}.jsonl" if kind == "pandalm" else source.name
    )
    checked = source
    if kind == "pandalm":
        checked = dest.with_name(dest.name + ".tmp.jsonl")
        import_pandalm(source, checked)
    if dest.exists() and not force and dest.read_bytes() != checked.read_bytes():
        if checked != source:
            checked.unlink()
        print(f"{dest} exists and differs: pass --force to replace it", file=sys.stderr)
        return 2
    fmt = {
        "verdicts": lambda: verdicts_format(_segment_by()),
        "online-metrics": lambda: online_metrics_format(_segment_by()),
    }.get(kind, lambda: LABELS)()
    try:
        with duckdb.connect() as conn:
            report = check_file(conn, fmt, checked)
            not_pairwise = (
                conn.execute(
                    "SELECT count(*) FROM _evidence_checked WHERE why IS NULL AND "
                    "(verdict IN ('pass', 'fail') OR system_a IS NULL OR system_b IS NULL)"
                ).fetchall()[0][0]
                if kind == "pairwise"
                else 0
            )
        print(f"{source}: {report['rows']:,} rows, {report['ok']:,} ok", end="")
        bad = sum(report["quarantined"].values())
        print(
            f", {bad:,} to be quarantined ("
            + ", ".join(f"{n:,} {why}" for why, n in report["quarantined"].items())
            + ")"
            if bad
            else ""
        )
        for row, reason, detail in report["examples"]:
            print(f"  row {row}: {reason}" + (f": {detail}" if detail else ""))
        if not_pairwise:
            print(
                f"{not_pairwise:,} rows are not pairwise labels naming system_a and system_b: "
                "use `evals import labels` for pointwise labels",
                file=sys.stderr,
            )
            return 1
        if report["ok"] == 0:
            print("no row would be stored: nothing copied", file=sys.stderr)
            return 1
        dest.parent.mkdir(parents=True, exist_ok=True)
        if kind == "pandalm":
            checked.replace(dest)
        else:
            shutil.copy(source, dest)
    finally:
        if kind == "pandalm":
            checked.unlink(missing_ok=True)
    print(f"copied to {dest}; the next run loads it ({loader} when files change).")
    return 0


def status(path: Path) -> int:
    from evals_pipeline.warehouse import connect

    code = validate(path)
    for name, p in (("warehouse", warehouse_path()), ("snapshot", analytics_path())):
        print(f"{name:<10} {p}" + ("" if p.exists() else " (not built yet: run a job)"))
    if analytics_path().exists():
        con = connect(analytics_path(), read_only=True)
        try:
            for label, sql in (
                ("traces", f"SELECT count(*), max(partition_date) FROM {TRACES}"),
                (
                    "golden pools",
                    f"SELECT count(*) FILTER (WHERE pool = 'active'), count(*) FILTER (WHERE pool = 'holdout') FROM {GOLDEN_POOLS}",
                ),
                (
                    "decision",
                    f"SELECT status || ' (' || candidate || ' vs ' || baseline || ')' FROM {RELEASE_GATES} WHERE gate = 'decision'",
                ),
            ):
                try:
                    row = con.execute(sql).fetchall()
                except Exception:
                    row = []
                print(f"{label:<10} {', '.join(str(v) for v in row[0]) if row else '-'}")
        finally:
            con.close()
    return code


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="evals", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("init", help="write a commented starter evals.yaml")
    p.add_argument("path", nargs="?", type=Path, default=Path("evals.yaml"))
    p.add_argument("--force", action="store_true")
    for name in ("validate", "status"):
        p = sub.add_parser(name, help=f"{name} the project (default: ${CONFIG_ENV} or evals.yaml)")
        p.add_argument("path", nargs="?", type=Path, default=None)
    p = sub.add_parser("import", help="bring in evidence a team already has")
    p.add_argument("kind", choices=list(IMPORTS))
    p.add_argument("file", type=Path)
    p.add_argument("--force", action="store_true", help="replace a different file of that name")
    args = parser.parse_args(argv)
    if args.command == "init":
        return init(args.path, args.force)
    if args.command == "import":
        return import_file(args.kind, args.file, args.force)
    path = (args.path or project_file()).resolve()
    return validate(path) if args.command == "validate" else status(path)


if __name__ == "__main__":
    raise SystemExit(main())
