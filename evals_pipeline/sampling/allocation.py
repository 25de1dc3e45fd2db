"""How many rows each category gets: a floor for every category, the rest by traffic."""

from __future__ import annotations

import math
from collections.abc import Mapping


def allocate(counts: Mapping[str, int], n: int, floor: float) -> dict[str, int]:
    """Split a sample of `n` rows over categories with traffic `counts`.

    Every category first gets `ceil(floor * n)` rows, or all its rows when it has fewer; the
    remaining rows go to categories in proportion to their traffic (largest-remainder
    rounding, capped at each category's traffic). When the floors cannot all fit (say
    `floor * len(counts) > 1`), the per-category floor is lowered until they do.
    Deterministic: ties break on the category name.
    """
    if n < 0:
        raise ValueError(f"sample size must be >= 0, got {n}")
    if not 0.0 <= floor <= 1.0:
        raise ValueError(f"floor must be within [0, 1], got {floor}")
    counts = {c: int(k) for c, k in counts.items() if int(k) > 0}
    total = sum(counts.values())
    if total <= n:
        return dict(counts)
    per_floor = math.ceil(floor * n - 1e-9)
    # Rounding up (or too high a floor for this many categories) can overshoot n: lower the
    # floor just enough that all floors fit.
    while per_floor > 0 and sum(min(k, per_floor) for k in counts.values()) > n:
        per_floor -= 1
    alloc = {c: min(k, per_floor) for c, k in counts.items()}
    remaining = n - sum(alloc.values())
    while remaining > 0:
        open_cats = sorted(c for c in counts if alloc[c] < counts[c])
        if not open_cats:
            break
        weight = sum(counts[c] for c in open_cats)
        quotas = {c: remaining * counts[c] / weight for c in open_cats}
        add = {c: min(math.floor(quotas[c]), counts[c] - alloc[c]) for c in open_cats}
        left = remaining - sum(add.values())
        # Hand out what rounding left over, largest fractional part first.
        by_fraction = sorted(open_cats, key=lambda c: (-(quotas[c] - math.floor(quotas[c])), c))
        for c in by_fraction:
            if left == 0:
                break
            if alloc[c] + add[c] < counts[c]:
                add[c] += 1
                left -= 1
        for c in open_cats:
            alloc[c] += add[c]
        given = sum(add.values())
        if given == 0:
            break
        remaining -= given
    return alloc
