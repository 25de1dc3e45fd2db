"""The simulated domain expert labels synthetic inputs for realism (the labels the realism
filter is calibrated against), as a label file in the documented format."""

from __future__ import annotations

import json
from pathlib import Path

import duckdb

from evals_pipeline.records import SYNTHETIC_INPUTS
from evals_pipeline.simulator.offline_models import expert_realism_labels


def label_synthetic_inputs(
    warehouse: Path, root: Path, out: Path, share: float = 1.0, seed: int = 0
) -> int:
    """Write the simulated expert's realism labels on `share` of the generated inputs in the
    warehouse file `warehouse` (read-only) to `out` (JSONL); `root` is the simulator folder
    (its topic bank is what Nimbus users ask). Returns the labels written."""
    con = duckdb.connect(str(warehouse), read_only=True)
    try:
        rows = con.execute(
            f"SELECT synthetic_id, input FROM {SYNTHETIC_INPUTS} WHERE input IS NOT NULL ORDER BY 1"
        ).fetchall()
    finally:
        con.close()
    labels = expert_realism_labels(str(root), rows, share, seed)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text("".join(json.dumps(label) + "\n" for label in labels), encoding="utf-8")
    return len(labels)
