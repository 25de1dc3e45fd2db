"""The simulated world's online experiments, for the online gates' tests and benchmarks:

- `canary_traffic`: one canary window of the simulated product (the traffic simulator with a
  `CanaryPlan`, ids and segments only), its traces and feedback events;
- `shadow_pairs`: the trusted judges' verdicts on the control's and the candidate's answers to
  the same live inputs, drawn as the offline product and reference judges produce them
  (`offline_models`): a question's difficulty is shared by every version (with 10% of
  version-specific luck), an answer is good below its version's hidden quality, and each
  judge errs on a fixed share of its calls.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pandas as pd

from evals_pipeline.simulator.offline_models import JUDGE_ERROR
from evals_pipeline.simulator.traffic import (
    DEFAULT_QUALITY,
    CanaryPlan,
    SimulationConfig,
    generate_feedback,
    generate_traces,
)

CANARY_START = "2026-06-15"  # the default candidate's (v3) release day


def canary_traffic(
    seed: int,
    *effects: dict[str, float],
    traces_per_day: int = 12_000,
    days: int = 7,
    share: float = 0.05,
) -> tuple[pd.DataFrame, list[pd.DataFrame]]:
    """The traces of a `days`-day canary of v3 against v2 on `share` of the users, and their
    feedback events under each of `effects` (segment -> points every signal moves the wrong
    way; the same traces, as the effect changes what users do, not who is served). v3 answers
    exactly as well as v2 here (the same hidden quality), so the planted effect is the only
    difference users can feel: with no effect ({}), the canary is a null."""
    end = (np.datetime64(CANARY_START) + np.timedelta64(days - 1, "D")).astype(str)
    config = SimulationConfig(
        seed=seed,
        start=CANARY_START,
        end=end,
        traces_per_day=traces_per_day,
        growth=0.0,
        topics_per_category=10,  # no text is written: a small question bank is enough
        with_text=False,
        malformed_rate=0.0,
        quality={**DEFAULT_QUALITY, "v3": dict(DEFAULT_QUALITY["v2"])},
        canary=CanaryPlan("v3", "v2", CANARY_START, days, share),
    )
    traces, _ = generate_traces(config)
    feedback = [
        generate_feedback(
            replace(config, canary=replace(config.canary, effect=dict(e))),
            traces,  # type: ignore[arg-type]
        )[["trace_id", "ts", "signal", "value"]]
        for e in effects
    ]
    return traces[
        ["trace_id", "ts", "user_id", "app_version", "category", "user_segment"]
    ], feedback


def shadow_pairs(
    seed: int,
    per_category: int = 300,
    control: str = "v2",
    regression: dict[str, float] | None = None,
    judges: tuple[str, ...] = ("reference-judge", "reference-judge-b"),
) -> pd.DataFrame:
    """subject_id, category, control, candidate: the judges' majority verdict (1.0 pass, 0.0
    fail, NaN tied) on each answer, for `per_category` live inputs per category. The candidate
    is the control with its hidden quality lowered by `regression` (category -> points)."""
    rng = np.random.default_rng([seed, 20])
    quality = DEFAULT_QUALITY[control]
    rows = []
    for category, q in quality.items():
        u = rng.random(per_category)  # the question's difficulty, shared
        q_candidate = q - (regression or {}).get(category, 0.0)
        good = {}
        for arm, level in (("control", q), ("candidate", q_candidate)):
            lucky = rng.random(per_category) < 0.1
            draw = np.where(lucky, rng.random(per_category), u)
            good[arm] = draw < level
        frame = {"subject_id": [f"{category}-{i}" for i in range(per_category)]}
        for arm in ("control", "candidate"):
            votes = sum(
                np.where(good[arm] ^ (rng.random(per_category) < JUDGE_ERROR[j]), 1, -1)
                for j in judges
            )
            frame[arm] = np.where(votes > 0, 1.0, np.where(votes < 0, 0.0, np.nan))
        rows.append(pd.DataFrame(frame).assign(category=category))
    return pd.concat(rows, ignore_index=True)[["subject_id", "category", "control", "candidate"]]
