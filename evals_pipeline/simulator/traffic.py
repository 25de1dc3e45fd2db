"""Seeded, vectorized simulator of an LLM product's production traffic: the embedded default.

It writes what a real deployment would deliver, one folder per UTC day:

    <out>/traces/dt=YYYY-MM-DD/api.parquet     traces from the API channel (input as text)
    <out>/traces/dt=YYYY-MM-DD/web.jsonl       traces from the web app (input as OpenAI chat messages)
    <out>/feedback/dt=YYYY-MM-DD/events.jsonl  feedback events, filed by the day they arrived
    <out>/labels/sim_expert_a.jsonl            simulated expert labels (and a noisier second annotator)

and, for tests and later stages only (the pipeline never reads it as traffic), the ground truth:

    <out>/truth/quality.json           hidden P(good answer) per app version x category
    <out>/truth/trace_truth.parquet    per trace: topic, whether the answer was good, failure mode
    <out>/truth/topics.parquet         the topic bank with references (the "reviewed" references)
    <out>/truth/planted_bad_rows.parquet  rows deliberately corrupted, with the expected reason

The hidden quality drives both the output text (good vs bad answer) and the online feedback,
so a correct offline judge agrees with users. The newest app version is better on aggregate
but clearly worse on `reasoning`: the planted regression that only a per-segment report finds.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, timedelta
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd

from evals_pipeline.records import GOOD_SIGNALS
from evals_pipeline.sampling.allocation import allocate
from evals_pipeline.simulator.topics import FAILURE_MODES, OVER_REFUSAL, topic_bank

SIMULATOR_VERSION = "1"


@dataclass(frozen=True)
class AppVersion:
    """One deployed configuration: a model plus a prompt, released on a date."""

    name: str
    released: str
    model: str
    system_prompt: str
    # Style wrapped around every answer: later versions are chattier and more confident.
    prefix: str
    suffix: str
    usd_per_1k_input: float
    usd_per_1k_output: float
    latency_ms: float


DEFAULT_VERSIONS: tuple[AppVersion, ...] = (
    AppVersion(
        "v1",
        "2026-01-01",
        "sim/nimbus-small",
        "You are Nimbus support. Answer briefly.",
        "",
        "",
        0.0005,
        0.0015,
        650.0,
    ),
    AppVersion(
        "v2",
        "2026-03-01",
        "sim/nimbus-medium",
        "You are Nimbus support. Answer accurately and cite settings paths.",
        "",
        " Let me know if you need anything else.",
        0.0010,
        0.0030,
        900.0,
    ),
    AppVersion(
        "v3",
        "2026-06-15",
        "sim/nimbus-large",
        "You are Nimbus support. Be thorough, friendly and confident.",
        "Certainly! ",
        " I'm confident this is accurate and fully up to date. For more detail, the Nimbus"
        " documentation covers every plan and feature in depth, and our support team is"
        " always happy to help.",
        0.0030,
        0.0090,
        1400.0,
    ),
)

# Hidden P(good answer) per app version and category. v3 beats v2 on aggregate (about +4
# points at the default mix) but drops 18 points on reasoning: the planted regression.
DEFAULT_QUALITY: dict[str, dict[str, float]] = {
    "v1": {
        "factual_lookup": 0.74,
        "how_to": 0.70,
        "reasoning": 0.66,
        "refusal_sensitive": 0.82,
        "edge_case": 0.48,
    },
    "v2": {
        "factual_lookup": 0.81,
        "how_to": 0.77,
        "reasoning": 0.76,
        "refusal_sensitive": 0.86,
        "edge_case": 0.55,
    },
    "v3": {
        "factual_lookup": 0.88,
        "how_to": 0.85,
        "reasoning": 0.58,
        "refusal_sensitive": 0.91,
        "edge_case": 0.64,
    },
}

DEFAULT_CATEGORY_MIX: dict[str, float] = {
    "factual_lookup": 0.52,
    "how_to": 0.24,
    "reasoning": 0.13,
    "refusal_sensitive": 0.085,
    "edge_case": 0.025,
}
TIERS = {"free": 0.6, "pro": 0.3, "enterprise": 0.1}
EXPERTISE = {"novice": 0.7, "expert": 0.3}
# Experts ask harder questions: their answers are a little worse.
SEGMENT_QUALITY_OFFSET = {"novice": 0.0, "expert": -0.05}

# P(event | answer good), P(event | answer bad) for the binary feedback signals.
SIGNAL_PROBS: dict[str, tuple[float, float]] = {
    "regenerate": (0.03, 0.22),
    "follow_up": (0.12, 0.30),
    "escalation": (0.01, 0.07),
    "session_continued": (0.72, 0.50),
    "task_completed": (0.62, 0.22),
}


@dataclass(frozen=True)
class CanaryPlan:
    """A canary: from `start`, for `days` days, the users with a stable draw below `share` are
    served by `version`, the others by `control`; `version` then ramps up as any release.
    `effect`: segment (a category or a user segment) -> points by which every feedback signal
    of the canary's traces in that segment moves the wrong way (the planted online effect;
    good signals less likely, bad ones more)."""

    version: str
    control: str
    start: str
    days: int = 7
    share: float = 0.05
    effect: dict[str, float] = field(default_factory=dict)

    def window(self) -> tuple[np.datetime64, np.datetime64]:
        first = np.datetime64(self.start, "D")
        return first, first + np.timedelta64(self.days, "D")


@dataclass(frozen=True)
class SimulationConfig:
    """Every knob of the simulator. Defaults are the embedded demo.

    seed: makes everything deterministic.
    start, end: first and last simulated UTC day (inclusive). Default: three quarters.
    traces_per_day: mean daily volume at the start (weekends are 30% quieter, volume grows
        by `growth` over the period, days vary by about 5%).
    category_mix: traffic share per category (skewed: one >= 50%, one <= 3%).
    app_versions: the deployed versions; each new one ramps to 100% over `rollout_days`.
    quality: hidden P(good answer) per version x category.
    topics_per_category: size of the question bank per category (popularity is Zipf-like).
    n_users: simulated user population (each user has a fixed segment).
    parquet_share: share of traffic from the API channel, written as Parquet; the rest is
        the web channel, written as JSONL with OpenAI-style chat messages as input.
    explicit_feedback_rate: P(thumbs up/down) per trace (experts rate 1.3x as often).
    feedback_delay_median_min: median delay of feedback events (lognormal, sigma 1.8), so
        some arrive in a later day's files; events after `end` never arrive.
    label_count: traces labelled by the simulated expert (category floor of 12%).
    second_annotator_share: share of those also labelled by a second, noisier annotator.
    annotator_error: P(label flipped) for the expert and the second annotator.
    malformed_rate: share of JSONL lines and Parquet rows deliberately corrupted (one of
        the quarantine reasons each), recorded in truth/planted_bad_rows.parquet.
    oversized_bytes: size of the planted oversized field.
    with_text: False writes ids, times, categories and segments only (for benchmarks).
    canary: a canary of a release with a planted online effect (`CanaryPlan`), or None.
    """

    seed: int = 7
    start: str = "2026-01-01"
    end: str = "2026-09-30"
    traces_per_day: int = 1200
    growth: float = 0.3
    category_mix: dict[str, float] = field(default_factory=lambda: dict(DEFAULT_CATEGORY_MIX))
    app_versions: tuple[AppVersion, ...] = DEFAULT_VERSIONS
    quality: dict[str, dict[str, float]] = field(
        default_factory=lambda: {k: dict(v) for k, v in DEFAULT_QUALITY.items()}
    )
    rollout_days: int = 21
    topics_per_category: int = 250
    n_users: int = 20000
    parquet_share: float = 0.5
    explicit_feedback_rate: float = 0.30
    feedback_delay_median_min: float = 15.0
    label_count: int = 3000
    second_annotator_share: float = 0.4
    annotator_error: tuple[float, float] = (0.06, 0.12)
    malformed_rate: float = 0.002
    oversized_bytes: int = 80_000
    with_text: bool = True
    canary: CanaryPlan | None = None

    def days(self) -> list[date]:
        first, last = date.fromisoformat(self.start), date.fromisoformat(self.end)
        if last < first:
            raise ValueError(f"end {self.end} is before start {self.start}")
        return [first + timedelta(days=i) for i in range((last - first).days + 1)]

    def fingerprint(self) -> str:
        payload = json.dumps(
            {"v": SIMULATOR_VERSION, **dataclasses.asdict(self)}, sort_keys=True, default=str
        )
        return hashlib.sha256(payload.encode()).hexdigest()[:16]

    def validate(self) -> None:
        cats = set(self.category_mix)
        for v in self.app_versions:
            if v.name not in self.quality or set(self.quality[v.name]) != cats:
                raise ValueError(f"quality must give every category for app version {v.name}")
        if abs(sum(self.category_mix.values()) - 1.0) > 1e-6:
            raise ValueError("category_mix must sum to 1")
        released = [v.released for v in self.app_versions]
        if released != sorted(released) or released[0] > self.start:
            raise ValueError("app_versions must be in release order, the first released by start")
        if self.canary is not None:
            names = [v.name for v in self.app_versions]
            if self.canary.version not in names or self.canary.control not in names:
                raise ValueError(f"canary versions must be among the app versions {names}")


Log = Callable[[str], None]


def _quiet(_: str) -> None:
    return None


def generate_traces(
    config: SimulationConfig, log: Log = _quiet
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """All traces of the period as one frame (sorted by ts), plus the topic bank."""
    config.validate()
    rng = np.random.default_rng(config.seed)
    days = config.days()
    n_days = len(days)
    day_idx = np.arange(n_days)
    weekday = np.array([d.weekday() for d in days])
    volume = config.traces_per_day * (1 + config.growth * day_idx / max(1, n_days - 1))
    volume = volume * np.where(weekday >= 5, 0.7, 1.0) * rng.lognormal(0, 0.05, n_days)
    per_day = rng.poisson(volume)
    n = int(per_day.sum())
    log(f"simulating {n:,} traces over {n_days} days ({days[0]} .. {days[-1]})")

    t_day = np.repeat(day_idx, per_day)
    # Diurnal profile: busier in (UTC) working hours.
    hours = np.arange(24)
    profile = 0.4 + np.exp(-0.5 * ((hours - 14) / 4.0) ** 2)
    hour = rng.choice(24, size=n, p=profile / profile.sum())
    seconds = hour * 3600 + rng.uniform(0, 3600, n)
    epoch0 = np.datetime64(days[0].isoformat(), "ms")
    ts = epoch0 + (t_day * 86_400_000 + (seconds * 1000).astype(np.int64)).astype("timedelta64[ms]")

    cats = list(config.category_mix)
    category_idx = rng.choice(len(cats), size=n, p=np.array([config.category_mix[c] for c in cats]))

    # Users have fixed segments; activity is heavy-tailed.
    tier_names, tier_p = list(TIERS), np.array(list(TIERS.values()))
    exp_names, exp_p = list(EXPERTISE), np.array(list(EXPERTISE.values()))
    user_tier = rng.choice(len(tier_names), size=config.n_users, p=tier_p)
    user_exp = rng.choice(len(exp_names), size=config.n_users, p=exp_p)
    activity = rng.pareto(1.5, config.n_users) + 1
    user = rng.choice(config.n_users, size=n, p=activity / activity.sum())
    segment_names = np.array([f"{t}_{e}" for t in tier_names for e in exp_names])
    segment_idx = user_tier[user] * len(exp_names) + user_exp[user]
    is_expert = user_exp[user] == exp_names.index("expert")

    # Versions roll out: the newest released version ramps up over rollout_days.
    versions = config.app_versions
    rel = np.array([(date.fromisoformat(v.released) - days[0]).days for v in versions])
    latest = np.searchsorted(rel, t_day, side="right") - 1
    ramp = np.clip((t_day - rel[latest]) / max(1, config.rollout_days), 0, 1)
    on_new = (rng.random(n) < ramp) | (latest == 0)
    version_idx = np.where(on_new, latest, latest - 1)
    if config.canary is not None:
        version_idx = _with_canary(config, days, t_day, user, latest, version_idx)

    # Hidden quality -> whether this answer is good.
    q = np.array([[config.quality[v.name][c] for c in cats] for v in versions])
    offset = np.where(is_expert, SEGMENT_QUALITY_OFFSET["expert"], SEGMENT_QUALITY_OFFSET["novice"])
    p_good = np.clip(q[version_idx, category_idx] + offset, 0.02, 0.98)
    is_good = rng.random(n) < p_good

    # Its own stream: the question bank does not depend on volume or period.
    bank = topic_bank(np.random.default_rng([config.seed, 4]), config.topics_per_category)
    bank_cat = bank["category"].to_numpy()
    # Zipf-like topic popularity within each category.
    topic_idx = np.empty(n, dtype=np.int64)
    for ci, c in enumerate(cats):
        members = np.flatnonzero(bank_cat == c)
        if len(members) == 0:
            raise ValueError(
                f"no topics for category {c}; topic_bank knows {sorted(set(bank_cat))}"
            )
        pop = 1.0 / np.arange(1, len(members) + 1) ** 0.8
        rows = np.flatnonzero(category_idx == ci)
        topic_idx[rows] = members[rng.choice(len(members), size=len(rows), p=pop / pop.sum())]

    # Bad answers: mostly the topic's typical failure, sometimes an over-refusal.
    over_refusal = (
        (~is_good) & (rng.random(n) < 0.12) & (bank_cat[topic_idx] != "refusal_sensitive")
    )
    failure_mode = np.where(
        is_good,
        None,
        np.where(over_refusal, "over_refusal", bank["bad_mode"].to_numpy()[topic_idx]),
    )

    ids = rng.integers(0, 2**62, size=n, dtype=np.int64)
    if len(np.unique(ids)) != n:
        raise RuntimeError("trace id collision; change the seed")
    trace_id = np.array([f"tr_{x:016x}" for x in ids], dtype=object)
    channel = np.where(rng.random(n) < config.parquet_share, "api", "web")

    frame = pd.DataFrame(
        {
            "trace_id": trace_id,
            "ts": ts,
            "day": np.array(days, dtype="datetime64[D]")[t_day],
            "session_id": [f"s_{u:05d}_{d:03d}" for u, d in zip(user, t_day, strict=True)],
            "user_id": [f"u_{u:05d}" for u in user],
            "app_version": np.array([v.name for v in versions], dtype=object)[version_idx],
            "category": np.array(cats, dtype=object)[category_idx],
            "user_segment": segment_names[segment_idx],
            "channel": channel,
            # truth (not written to traffic files)
            "topic_id": bank["topic_id"].to_numpy()[topic_idx],
            "is_good": is_good,
            "p_good": p_good,
            "failure_mode": failure_mode,
        }
    )
    if config.with_text:
        _add_text(
            frame, config, rng, bank, topic_idx, version_idx, is_good, over_refusal, is_expert
        )
    log(f"generated {n:,} traces")
    return frame, bank


def _with_canary(
    config: SimulationConfig,
    days: list[date],
    t_day: np.ndarray,
    user: np.ndarray,
    latest: np.ndarray,
    version_idx: np.ndarray,
) -> np.ndarray:
    """Within the canary window the canary's users get the candidate, everyone else the
    control; after it the candidate ramps up from the window's end. Its own random stream, so
    the traffic outside the window is unchanged."""
    plan = config.canary
    assert plan is not None
    names = [v.name for v in config.app_versions]
    cand, control = names.index(plan.version), names.index(plan.control)
    in_canary = np.random.default_rng([config.seed, 5]).random(config.n_users) < plan.share
    first = (date.fromisoformat(plan.start) - days[0]).days
    last = first + plan.days
    inside = (t_day >= first) & (t_day < last)
    out = np.where(inside, np.where(in_canary[user], cand, control), version_idx)
    # After the window the candidate ramps up as a release does, starting at the window's end;
    # its canary users keep it.
    after = (t_day >= last) & (latest == cand)
    ramp = np.clip((t_day - last + 1) / max(1, config.rollout_days), 0, 1)
    on_cand = in_canary[user] | (np.random.default_rng([config.seed, 6]).random(len(t_day)) < ramp)
    return np.where(after, np.where(on_cand, cand, control), out)


def canary_shift(config: SimulationConfig, traces: pd.DataFrame) -> np.ndarray:
    """Per trace, the planted canary effect in points (0 outside the canary's traces)."""
    plan = config.canary
    shift = np.zeros(len(traces))
    if plan is None or not plan.effect:
        return shift
    first, end = plan.window()
    day = traces["ts"].to_numpy().astype("datetime64[D]")
    canary = (traces["app_version"].to_numpy() == plan.version) & (day >= first) & (day < end)
    for segment, points in plan.effect.items():
        hit = (traces["category"].to_numpy() == segment) | (
            traces["user_segment"].to_numpy() == segment
        )
        shift = np.where(canary & hit, points, shift)
    return shift


def _add_text(
    frame: pd.DataFrame,
    config: SimulationConfig,
    rng: np.random.Generator,
    bank: pd.DataFrame,
    topic_idx: np.ndarray,
    version_idx: np.ndarray,
    is_good: np.ndarray,
    over_refusal: np.ndarray,
    is_expert: np.ndarray,
) -> None:
    """Inputs, outputs, context, tool calls, tokens, latency and cost, by indexing small banks."""
    versions = config.app_versions
    n = len(frame)
    greetings = np.array(
        ["", "Hi, ", "Quick question: ", "Hello! ", "Hey - ", "Please help: "], dtype=object
    )
    greeting = greetings[rng.integers(len(greetings), size=n)]
    question = bank["question"].to_numpy()[topic_idx]
    # Every conversation carries its support-ticket number, so no two traces share a text
    # (as in real traffic), while the same question recurs with the same references.
    ticket = np.array([f"#{t}" for t in rng.integers(100_000, 10_000_000, size=n)], dtype=object)
    frame["input"] = greeting + question + " (ticket " + ticket + ")"
    # Output bank: (topic, version, kind) with kind 0 = good, 1 = typical failure, 2 = over-refusal.
    n_topics = len(bank)
    answers = np.empty((n_topics, len(versions), 3), dtype=object)
    for vi, v in enumerate(versions):
        answers[:, vi, 0] = v.prefix + bank["good_core"].to_numpy(dtype=object) + v.suffix
        answers[:, vi, 1] = v.prefix + bank["bad_core"].to_numpy(dtype=object) + v.suffix
        answers[:, vi, 2] = OVER_REFUSAL
    kind = np.where(is_good, 0, np.where(over_refusal, 2, 1))
    frame["output"] = "Re " + ticket + ": " + answers[topic_idx, version_idx, kind]
    frame["context"] = bank["context"].to_numpy()[topic_idx]
    frame["tool_calls"] = bank["tool_calls"].to_numpy()[topic_idx]
    frame["system_prompt"] = np.array([v.system_prompt for v in versions], dtype=object)[
        version_idx
    ]
    words_in = (
        2
        + np.array([len(s.split()) for s in question])
        + np.array([len(v.system_prompt.split()) for v in versions])[version_idx]
    )
    words_out = np.vectorize(lambda s: s.count(" ") + 1, otypes=[np.int64])(answers)[
        topic_idx, version_idx, kind
    ]
    frame["input_tokens"] = np.round(words_in * 1.3 + 4).astype(np.int64)
    frame["output_tokens"] = np.round((words_out + 2) * 1.3 + 2).astype(np.int64)
    base_latency = np.array([v.latency_ms for v in versions])[version_idx]
    frame["latency_ms"] = np.round(
        base_latency * np.sqrt(frame["output_tokens"] / 30.0) * rng.lognormal(0, 0.3, n), 1
    )
    price_in = np.array([v.usd_per_1k_input for v in versions])[version_idx]
    price_out = np.array([v.usd_per_1k_output for v in versions])[version_idx]
    frame["cost_usd"] = np.round(
        (frame["input_tokens"] * price_in + frame["output_tokens"] * price_out) / 1000, 6
    )
    frame["locale"] = np.where(is_expert, "en-GB", "en-US")


def generate_feedback(config: SimulationConfig, traces: pd.DataFrame) -> pd.DataFrame:
    """Feedback events driven by whether each answer was good; some arrive days later."""
    rng = np.random.default_rng([config.seed, 1])
    n = len(traces)
    good = traces["is_good"].to_numpy()
    expert = traces["user_segment"].str.endswith("expert").to_numpy()
    enterprise = traces["user_segment"].str.startswith("enterprise").to_numpy()
    parts: list[pd.DataFrame] = []

    def emit(mask: np.ndarray, signal: str, value: np.ndarray | float) -> None:
        idx = np.flatnonzero(mask)
        vals = (
            np.broadcast_to(np.asarray(value, dtype=float), (n,))[idx]
            if np.ndim(value)
            else np.full(len(idx), float(value))
        )
        parts.append(pd.DataFrame({"row": idx, "signal": signal, "value": vals}))

    # The planted canary effect (0 elsewhere) moves each signal the wrong way with the same
    # random draws, so a null effect gives exactly the traffic without one.
    shift = canary_shift(config, traces)
    rate = config.explicit_feedback_rate * np.where(expert, 1.3, 1.0)
    rated = rng.random(n) < rate
    # Thumbs are per trace: shifting P(up | rated) by shift / rate moves both thumbs rates by shift.
    up = rng.random(n) < np.where(good, 0.88, 0.25) - shift / np.maximum(rate, 1e-9)
    emit(rated & up, "thumbs_up", 1.0)
    emit(rated & ~up, "thumbs_down", 1.0)
    for signal, (p_good, p_bad) in SIGNAL_PROBS.items():
        p = np.where(good, p_good, p_bad)
        if signal == "escalation":
            p = p * np.where(enterprise, 2.0, 1.0)
        p = p + np.where(signal in GOOD_SIGNALS, -shift, shift)
        emit(rng.random(n) < p, signal, 1.0)
    edited = rng.random(n) < 0.10
    emit(edited, "edit_distance", np.round(rng.lognormal(np.where(good, 2.3, 4.4), 0.6)))

    events = pd.concat(parts, ignore_index=True)
    delay_ms = rng.lognormal(
        np.log(config.feedback_delay_median_min * 60_000), 1.8, len(events)
    ).astype(np.int64)
    events["trace_id"] = traces["trace_id"].to_numpy()[events["row"]]
    events["ts"] = traces["ts"].to_numpy()[events["row"]] + delay_ms.astype("timedelta64[ms]")
    end = np.datetime64(date.fromisoformat(config.end) + timedelta(days=1), "ms")
    events = events[events["ts"] < end].drop(columns="row")
    events["day"] = events["ts"].to_numpy().astype("datetime64[D]")
    return events.sort_values("ts", kind="stable").reset_index(drop=True)


def generate_labels(config: SimulationConfig, traces: pd.DataFrame) -> pd.DataFrame:
    """Expert labels for a category-floored subset, plus a noisier second annotator."""
    rng = np.random.default_rng([config.seed, 2])
    counts = traces["category"].value_counts().to_dict()
    quota = allocate(counts, min(config.label_count, len(traces)), 0.12)
    chosen: list[np.ndarray] = []
    for cat, k in sorted(quota.items()):
        rows = np.flatnonzero(traces["category"].to_numpy() == cat)
        chosen.append(rng.choice(rows, size=k, replace=False))
    rows = np.sort(np.concatenate(chosen)) if chosen else np.array([], dtype=np.int64)
    sub = traces.iloc[rows]
    labels = []
    second = rng.random(len(sub)) < config.second_annotator_share
    for who, err, mask in (
        ("sim_expert_a", config.annotator_error[0], np.ones(len(sub), dtype=bool)),
        ("sim_expert_b", config.annotator_error[1], second),
    ):
        part = sub[mask]
        flip = rng.random(len(part)) < err
        verdict_pass = part["is_good"].to_numpy() ^ flip
        mode = np.where(
            verdict_pass,
            None,
            np.where(part["is_good"].to_numpy(), "incomplete", part["failure_mode"].to_numpy()),
        )
        critique = np.array(
            [
                ""
                if m is None
                else (FAILURE_MODES.get(m) or "The answer leaves out part of what was asked.")
                for m in mode
            ],
            dtype=object,
        )
        delay = rng.uniform(1, 10, len(part)) * 86_400_000
        labels.append(
            pd.DataFrame(
                {
                    "trace_id": part["trace_id"].to_numpy(),
                    "annotator": who,
                    "verdict": np.where(verdict_pass, "pass", "fail"),
                    "critique": critique,
                    "failure_mode": mode,
                    "labelled_at": part["ts"].to_numpy() + delay.astype("timedelta64[ms]"),
                }
            )
        )
    return pd.concat(labels, ignore_index=True)


TRACE_CORRUPTIONS = (
    "malformed_json",
    "missing_field",
    "wrong_type",
    "unknown_category",
    "duplicate_trace_id",
    "ts_outside_partition",
    "oversized_field",
    "invalid_utf8",
)
FEEDBACK_CORRUPTIONS = (
    "malformed_json",
    "missing_field",
    "wrong_type",
    "unknown_signal",
    "duplicate_event",
)


def _corrupt_jsonl(
    path: Path, rng: np.random.Generator, rate: float, kinds: tuple[str, ...], oversized: int
) -> list[dict[str, object]]:
    """Replace a few lines of a JSONL file by bad rows; return what was planted where."""
    lines = path.read_bytes().splitlines()
    picks = np.flatnonzero(rng.random(len(lines)) < rate)
    planted: list[dict[str, object]] = []
    appended: list[bytes] = []
    for i in picks:
        kind = kinds[int(rng.integers(len(kinds)))]
        rec = json.loads(lines[i])
        line_no = int(i) + 1
        if kind == "malformed_json":
            text = lines[i].decode()
            lines[i] = text[: len(text) // 2].encode()  # cut on a character, not mid-UTF-8
        elif kind in ("duplicate_trace_id", "duplicate_event"):
            appended.append(lines[i])  # the same row delivered twice: the copy is quarantined
            line_no = len(lines) + len(appended)
        else:
            if kind == "missing_field":
                del rec["user_segment" if "user_segment" in rec else "signal"]
            elif kind == "wrong_type":
                rec["latency_ms" if "output" in rec else "value"] = "fast"
            elif kind == "unknown_category":
                rec["category"] = "astrology"
            elif kind == "unknown_signal":
                rec["signal"] = "applause"
            elif kind == "ts_outside_partition":
                rec["ts"] = str(int(rec["ts"][:4]) + 1) + rec["ts"][4:]
            elif kind == "oversized_field":
                rec["output"] = rec["output"] + " lorem" * (oversized // 6 + 1)
            lines[i] = json.dumps(rec).encode()
            if kind == "invalid_utf8":
                cut = lines[i].index(b'"output": "') + 11
                lines[i] = lines[i][:cut] + b"\xff\xfe" + lines[i][cut:]
        planted.append({"line": line_no, "trace_id": rec.get("trace_id"), "reason": kind})
    path.write_bytes(b"\n".join(lines + appended) + b"\n")
    return planted


Planted = list[dict[str, object]]


def plant_parquet_rows(
    config: SimulationConfig, traces: pd.DataFrame, rng: np.random.Generator
) -> tuple[pd.DataFrame, Planted]:
    """Bad rows in the Parquet channel too (reasons a typed file can still carry): a missing
    user_id or an unknown category, recorded in the truth."""
    planted: Planted = []
    if not (config.with_text and config.malformed_rate > 0):
        return traces, planted
    api_rows = np.flatnonzero(
        (traces["channel"] == "api").to_numpy() & (rng.random(len(traces)) < config.malformed_rate)
    )
    traces = traces.astype({"user_id": object, "category": object})
    for j, r in enumerate(api_rows):
        reason = ("missing_field", "unknown_category")[j % 2]
        if reason == "missing_field":
            traces.iat[r, traces.columns.get_loc("user_id")] = None
        else:
            traces.iat[r, traces.columns.get_loc("category")] = "astrology"
        day = pd.Timestamp(traces["day"].iat[r]).date().isoformat()
        planted.append(
            {
                "source_file": f"traces/dt={day}/api.parquet",
                "line": None,
                "trace_id": traces["trace_id"].iat[r],
                "reason": reason,
            }
        )
    return traces, planted


def _export_sql(config: SimulationConfig) -> tuple[str, str, str]:
    """SELECTs of the API channel (Parquet), the web channel (JSONL, chat messages) and the
    feedback events, each with its day partition column `dt`."""
    ts_iso = "strftime(ts, '%Y-%m-%dT%H:%M:%S.%g') || 'Z'"
    day_col = "strftime(day, '%Y-%m-%d') AS dt"
    if config.with_text:
        common = f"""trace_id, {ts_iso} AS ts, session_id, user_id, app_version, category, user_segment,
            output, context, tool_calls, latency_ms, cost_usd, input_tokens, output_tokens"""
        api_sql = f"""SELECT {common}, input, {{'channel': 'api', 'locale': locale}} AS metadata, {day_col}
            FROM sim_traces WHERE channel = 'api' ORDER BY sim_traces.ts, trace_id"""
        web_sql = f"""SELECT {common},
            [{{'role': 'system', 'content': system_prompt}}, {{'role': 'user', 'content': input}}] AS input,
            {{'channel': 'web', 'locale': locale}} AS metadata, {day_col}
            FROM sim_traces WHERE channel = 'web' ORDER BY sim_traces.ts, trace_id"""
    else:
        api_sql = f"SELECT trace_id, ts, app_version, category, user_segment, {day_col} FROM sim_traces WHERE channel = 'api' ORDER BY ts, trace_id"
        web_sql = api_sql.replace("'api'", "'web'")
    fb_sql = (
        # a total order: events of one trace can share a millisecond, and DuckDB's parallel
        # sort breaks ties differently from run to run (which lines get corrupted would too)
        f"SELECT trace_id, {ts_iso} AS ts, signal, value, {day_col} FROM sim_feedback ORDER BY sim_feedback.ts, trace_id, signal, value"
    )
    return api_sql, web_sql, fb_sql


def write_day_files(
    config: SimulationConfig, traces: pd.DataFrame, feedback: pd.DataFrame, out_dir: Path
) -> None:
    """traces/dt=<day>/{api.parquet, web.jsonl} and feedback/dt=<day>/events.jsonl."""
    con = duckdb.connect()
    try:
        con.execute("SET TimeZone = 'UTC'")
        # One thread: a partitioned COPY written by several threads does not keep the ORDER BY
        # within a file, and which lines get corrupted later depends on the line order.
        con.execute("SET threads = 1")
        con.register("sim_traces", traces)
        con.register("sim_feedback", feedback)
        api_sql, web_sql, fb_sql = _export_sql(config)
        opts = "PARTITION_BY (dt), OVERWRITE_OR_IGNORE, FILENAME_PATTERN"
        con.execute(f"COPY ({api_sql}) TO '{out_dir / 'traces'}' (FORMAT parquet, {opts} 'api')")
        con.execute(f"COPY ({web_sql}) TO '{out_dir / 'traces'}' (FORMAT json, {opts} 'web')")
        con.execute(f"COPY ({fb_sql}) TO '{out_dir / 'feedback'}' (FORMAT json, {opts} 'events')")
    finally:
        con.close()
    # DuckDB names partition files <pattern><i>.<ext>: name them api.parquet, web.jsonl, ...
    for path in sorted(out_dir.glob("*/dt=*/*")):
        suffix = ".jsonl" if path.suffix == ".json" else path.suffix
        path.rename(path.with_name(path.stem.rstrip("0123456789") + suffix))


def corrupt_day_files(config: SimulationConfig, out_dir: Path, rng: np.random.Generator) -> Planted:
    """Malformed lines planted in the JSONL files (recorded in the truth)."""
    planted: Planted = []
    if not (config.with_text and config.malformed_rate > 0):
        return planted
    for pattern, kinds in (
        ("traces/dt=*/web.jsonl", TRACE_CORRUPTIONS),
        ("feedback/dt=*/events.jsonl", FEEDBACK_CORRUPTIONS),
    ):
        for path in sorted(out_dir.glob(pattern)):
            rel = path.relative_to(out_dir).as_posix()
            for p in _corrupt_jsonl(
                path, rng, config.malformed_rate, kinds, config.oversized_bytes
            ):
                planted.append({"source_file": rel, **p})
    return planted


def write_labels(labels: pd.DataFrame, out_dir: Path) -> None:
    """One label file per simulated expert under labels/."""
    if not len(labels):
        return
    (out_dir / "labels").mkdir()
    for who, part in labels.groupby("annotator"):
        part = part.assign(labelled_at=part["labelled_at"].dt.strftime("%Y-%m-%dT%H:%M:%SZ"))
        part.to_json(out_dir / "labels" / f"{who}.jsonl", orient="records", lines=True)


TRUTH_COLUMNS = [
    "trace_id",
    "day",
    "app_version",
    "category",
    "user_segment",
    "channel",
    "topic_id",
    "is_good",
    "p_good",
    "failure_mode",
]


def write_truth(
    config: SimulationConfig,
    traces: pd.DataFrame,
    bank: pd.DataFrame,
    planted: Planted,
    out_dir: Path,
) -> None:
    """What tests and benchmarks check against: per-trace truth, topics, planted bad rows."""
    truth = out_dir / "truth"
    traces[TRUTH_COLUMNS].to_parquet(truth / "trace_truth.parquet", index=False)
    bank.assign(
        context=bank["context"].map(json.dumps), tool_calls=bank["tool_calls"].map(json.dumps)
    ).to_parquet(truth / "topics.parquet", index=False)
    pd.DataFrame(planted, columns=["source_file", "line", "trace_id", "reason"]).astype(
        {"line": "Int64"}
    ).to_parquet(truth / "planted_bad_rows.parquet", index=False)
    (truth / "quality.json").write_text(json.dumps(config.quality, indent=2))


def simulate(config: SimulationConfig, out_dir: Path, log: Log = _quiet) -> dict[str, object]:
    """Write the simulated traffic, labels and truth under `out_dir` (replacing it)."""
    t0 = time.perf_counter()
    out_dir = Path(out_dir)
    if out_dir.exists():
        shutil.rmtree(out_dir)
    (out_dir / "truth").mkdir(parents=True)
    traces, bank = generate_traces(config, log)
    feedback = generate_feedback(config, traces)
    rng = np.random.default_rng([config.seed, 3])
    traces, planted = plant_parquet_rows(config, traces, rng)
    write_day_files(config, traces, feedback, out_dir)
    planted += corrupt_day_files(config, out_dir, rng)
    labels = generate_labels(config, traces) if config.with_text else pd.DataFrame()
    write_labels(labels, out_dir)
    write_truth(config, traces, bank, planted, out_dir)
    summary: dict[str, object] = {
        "fingerprint": config.fingerprint(),
        "config": dataclasses.asdict(config),
        "traces": len(traces),
        "feedback_events": len(feedback),
        "labels": len(labels),
        "planted_bad_rows": len(planted),
        "days": len(config.days()),
        "seconds": round(time.perf_counter() - t0, 2),
        "duckdb_version": duckdb.__version__,
    }
    (out_dir / "manifest.json").write_text(json.dumps(summary, indent=2, default=str))
    log(
        f"wrote {summary['traces']:,} traces, {summary['feedback_events']:,} feedback events, "
        f"{summary['labels']:,} labels, {summary['planted_bad_rows']} planted bad rows in {summary['seconds']} s"
    )
    return summary


def ensure_simulated(
    config: SimulationConfig, out_dir: Path, log: Log = _quiet
) -> dict[str, object]:
    """Simulate unless `out_dir` already holds this exact configuration's output."""
    manifest = Path(out_dir) / "manifest.json"
    if manifest.exists():
        summary = json.loads(manifest.read_text())
        if summary.get("fingerprint") == config.fingerprint():
            return summary
    return simulate(config, out_dir, log)
