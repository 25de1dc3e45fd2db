"""The dimension file and the tuples drawn from it.

A dimension file (YAML) names the product, 3-5 dimensions with their values, and which
dimension is the task category (its values are taxonomy categories):

    product: Nimbus, a cloud file-sharing service ...
    category: intent
    dimensions:
      intent: [factual_lookup, how_to, reasoning, refusal_sensitive, edge_case]
      persona: [new_user, team_admin, developer, finance_manager]
      difficulty: [simple, multi_step, ambiguous]

Tuples are drawn like the sampler's strata: every value of every dimension gets at least
`floor` tuples, the rest of the draw is spread evenly, and no tuple repeats while distinct
tuples remain (seed 004: examples for each combination of dimensions, as far as the budget
goes).
"""

from __future__ import annotations

import hashlib
import itertools
import json

import numpy as np

from evals_pipeline.project import DimensionError, Dimensions, load_dimensions

__all__ = [
    "DimensionError",
    "Dimensions",
    "below_floor",
    "coverage",
    "load_dimensions",
    "sample_tuples",
    "synthetic_id",
]

# The draw chooses among at most this many distinct combinations per tuple wanted (a random
# subset when there are more): enough choice to meet the floors, a bounded cost.
CANDIDATES_PER_TUPLE = 20


def _candidates(dims: Dimensions, rng: np.random.Generator, n: int) -> list[tuple[str, ...]]:
    """Distinct combinations in a seeded random order (all of them when there are few)."""
    sizes = [len(v) for v in dims.values.values()]
    total = int(np.prod([float(s) for s in sizes]))
    want = max(CANDIDATES_PER_TUPLE * n, 500)
    if total <= want:
        combos = list(itertools.product(*dims.values.values()))
        return [combos[i] for i in rng.permutation(len(combos))]
    picks: dict[tuple[str, ...], None] = {}
    while len(picks) < want:
        picks[tuple(vals[rng.integers(len(vals))] for vals in dims.values.values())] = None
    return list(picks)


def sample_tuples(dims: Dimensions, n: int, floor: int, seed: int) -> list[dict[str, str]]:
    """`n` tuples in which each value of each dimension appears at least `floor` times (when
    n allows: `n >= floor x the largest dimension`), then as evenly as possible; distinct
    while distinct combinations remain. Deterministic for (dimensions, n, floor, seed)."""
    largest = max(len(v) for v in dims.values.values())
    if n < floor * largest:
        raise DimensionError(
            f"{n} tuples cannot give each of {largest} values {floor} tuples (the floor)"
        )
    rng = np.random.default_rng(seed)
    pool = _candidates(dims, rng, n)
    count = {(d, v): 0 for d, vals in dims.values.items() for v in vals}
    chosen: list[tuple[str, ...]] = []
    names = dims.names
    while len(chosen) < n:
        if not pool:  # every distinct combination is used: repeat them, in the same order
            pool = _candidates(dims, rng, n)
        # The combination whose values are furthest below their fair share goes next:
        # values under the floor first, then the least used (ties: the seeded order).
        best = min(
            range(len(pool)),
            key=lambda i: (
                -sum(count[(d, v)] < floor for d, v in zip(names, pool[i], strict=True)),
                sum(count[(d, v)] for d, v in zip(names, pool[i], strict=True)),
                i,
            ),
        )
        combo = pool.pop(best)
        chosen.append(combo)
        for d, v in zip(names, combo, strict=True):
            count[(d, v)] += 1
    return [dict(zip(names, c, strict=True)) for c in chosen]


def coverage(tuples: list[dict[str, str]], dims: Dimensions) -> dict[str, dict[str, int]]:
    """dimension -> value -> how many of `tuples` carry it (0 for a value none carries)."""
    return {
        d: {v: sum(t.get(d) == v for t in tuples) for v in vals} for d, vals in dims.values.items()
    }


def below_floor(tuples: list[dict[str, str]], dims: Dimensions, floor: int) -> list[str]:
    """'dimension=value (n)' for each value carried by fewer than `floor` of `tuples`."""
    return [
        f"{d}={v} ({n})"
        for d, counts in coverage(tuples, dims).items()
        for v, n in counts.items()
        if n < floor
    ]


def synthetic_id(t: dict[str, str], variant: int) -> str:
    """A stable id of a tuple's generation: the same tuple and variant, the same id."""
    key = json.dumps([sorted(t.items()), variant])
    return "syn_" + hashlib.sha256(key.encode()).hexdigest()[:16]
