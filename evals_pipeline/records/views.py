"""The seal as views: what every stage after the pools may read."""

from __future__ import annotations

from evals_pipeline.records.ingest import TRACES
from evals_pipeline.records.pools import GOLDEN_CASES, GOLDEN_POOLS
from evals_pipeline.records.schema import View

# The seal as views: what every stage after the pools may read.
VISIBLE_TRACES = View(
    "visible_traces",
    "Production traces outside the holdout reservoir (their text is in the warehouse).",
    f"SELECT * FROM {TRACES.name} WHERE NOT sealed",
    (TRACES,),
)
ACTIVE_POOL = View(
    "active_pool",
    "Golden cases in the active pool: the set judged, reported and iterated on.",
    f"SELECT * FROM {GOLDEN_POOLS.name} WHERE pool = 'active'",
    (GOLDEN_POOLS,),
)
UNSEALED_POOL = View(
    "unsealed_pool",
    "Golden cases outside the holdout (active and retired): what may be reviewed and labelled.",
    f"SELECT * FROM {GOLDEN_POOLS.name} WHERE pool <> 'holdout'",
    (GOLDEN_POOLS,),
)
ACTIVE_CASES = View(
    "active_cases",
    "Content of the active pool's cases.",
    f"SELECT c.* FROM {GOLDEN_CASES.name} c JOIN {GOLDEN_POOLS.name} p USING (case_id) "
    "WHERE p.pool = 'active'",
    (GOLDEN_CASES, GOLDEN_POOLS),
)
SEAL_VIEWS: tuple[View, ...] = (VISIBLE_TRACES, ACTIVE_POOL, UNSEALED_POOL, ACTIVE_CASES)
