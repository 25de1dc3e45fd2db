"""Where generated files live. Everything goes under one data directory (gitignored).

`EVALS_DATA_DIR` overrides it (tests point it at a temporary directory).
"""

from __future__ import annotations

import os
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]


def data_dir() -> Path:
    return Path(os.environ.get("EVALS_DATA_DIR", REPO_ROOT / "data")).resolve()


def warehouse_path() -> Path:
    """The working warehouse: the pipeline's own DuckDB file."""
    return data_dir() / "warehouse.duckdb"


def analytics_path() -> Path:
    """The analysts' snapshot, rebuilt and swapped in atomically at the end of a run."""
    return data_dir() / "analytics.duckdb"


def traffic_dir() -> Path:
    """Where the embedded simulator writes its production-like files."""
    return data_dir() / "traffic"


def golden_dir() -> Path:
    """The exported golden set (active.jsonl, CHANGELOG.md) and reviewed reference files."""
    return data_dir() / "golden"


def holdout_review_dir() -> Path:
    """The sealed review area beside the holdout store: the expert's queue of holdout answers
    (`queue.duckdb`), their label files (`labels/`) and the view log (`views/`). Never read
    by an analyst table, the snapshot or the ordinary review session."""
    return data_dir() / "holdout_review"


def taxonomy_path() -> Path:
    """The failure taxonomy file (review/taxonomy.py edits it; calibration reads its aliases)."""
    return Path(
        os.environ.get("EVALS_TAXONOMY_FILE", data_dir() / "taxonomy" / "failure_modes.json")
    )
