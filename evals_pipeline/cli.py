"""`evals`: the project's command line (also `python -m evals_pipeline`).

evals init [PATH]               write a commented starter evals.yaml for a real product
evals validate [PATH]           check the project file; one line per problem, with the fix
evals import pandalm FILE       bring in PandaLM's pairwise test set as a label file
evals import labels FILE        copy a label file (JSONL or CSV) into data/labels/
evals status                    the project, the warehouse and the latest runs at a glance
"""

from __future__ import annotations

import argparse
import shutil
import sys
from pathlib import Path

from evals_pipeline.paths import analytics_path, data_dir, warehouse_path
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


def import_file(kind: str, source: Path) -> int:
    from evals_pipeline.calibration.labels import import_pandalm

    if not source.is_file():
        print(f"no file {source}", file=sys.stderr)
        return 2
    dest_dir = data_dir() / "labels"
    dest_dir.mkdir(parents=True, exist_ok=True)
    if kind == "pandalm":
        dest = dest_dir / f"pandalm_{source.stem}.jsonl"
        n = import_pandalm(source, dest)
        print(f"{n:,} labels (3 annotators per pair) written to {dest}")
    else:
        dest = dest_dir / source.name
        shutil.copy(source, dest)
        print(f"copied {source} to {dest}")
    print("The next evals_calibration run (label_files_sensor starts one) loads it.")
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
    p.add_argument("kind", choices=["pandalm", "labels"])
    p.add_argument("file", type=Path)
    args = parser.parse_args(argv)
    if args.command == "init":
        return init(args.path, args.force)
    if args.command == "import":
        return import_file(args.kind, args.file)
    path = (args.path or project_file()).resolve()
    return validate(path) if args.command == "validate" else status(path)


if __name__ == "__main__":
    raise SystemExit(main())
