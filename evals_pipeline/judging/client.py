"""Model calls for judges and candidate generation: cached, concurrent, fault-tolerant.

`JudgeClient` is the abstract resource; `LiteLLMJudgeClient` calls any litellm model string
(the offline default is a litellm custom provider, so this path runs everywhere). A batch of
calls goes through `run_calls`:
1. calls already in `judge_cache` (same model, rendered prompt, purpose and parameters) are
   not made again: re-materializing with nothing new makes zero provider calls;
2. the rest run as asyncio tasks under a per-provider concurrency limit and an optional
   requests-per-minute budget, with retries and exponential backoff on rate limits, server
   errors, timeouts and connection errors, and on responses that fail validation;
3. finished calls are written to `judge_cache` every few seconds, so a run killed half-way
   and re-run pays only for what had not finished;
4. a call that still fails is a recorded error (never a pass), with its reason.
Progress (done / total, calls per second, cost so far) is logged as it goes.
"""

from __future__ import annotations

import asyncio
import hashlib
import importlib
import json
import logging
import os
import random
import time
from abc import ABC, abstractmethod
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any

import duckdb
import pyarrow as pa
from dagster import ConfigurableResource
from pydantic import Field

from evals_pipeline.judging.workers import (
    RateBudget,
    Redacted,
    call_in_processes,
    call_on_this_loop,
    redact_in_processes,
    redact_one,
)
from evals_pipeline.project import ProjectConfig
from evals_pipeline.records import JUDGE_CACHE
from evals_pipeline.warehouse import registered

# A worker process pays for itself only with enough calls to share (litellm's import and
# the first connection cost it about a second).
MIN_CALLS_PER_PROCESS = 100

log = logging.getLogger(__name__)


def cache_key(
    model: str, messages: Sequence[dict[str, str]], purpose: str, params: dict[str, Any]
) -> str:
    payload = json.dumps(
        [model, list(messages), purpose, params], sort_keys=True, ensure_ascii=False
    )
    return hashlib.sha256(payload.encode()).hexdigest()


@dataclass
class Call:
    model: str
    messages: list[dict[str, str]]
    purpose: str
    params: dict[str, Any] = field(default_factory=dict)
    # Validates the response text; raises ValueError when it is not usable.
    parse: Callable[[str], object] | None = None

    @property
    def key(self) -> str:
        return cache_key(self.model, self.messages, self.purpose, self.params)


@dataclass
class CallResult:
    key: str
    model: str
    purpose: str
    response: str | None
    error: str | None
    attempts: int
    cost_usd: float
    latency_ms: float
    cached: bool = False
    parsed: object = None


@dataclass
class RunStats:
    total: int = 0
    cached: int = 0
    called: int = 0
    provider_calls: int = 0
    errors: int = 0
    cost_usd: float = 0.0
    seconds: float = 0.0
    by_error: dict[str, int] = field(default_factory=dict)
    # PII and secrets replaced in the outgoing messages by kind (callers may have counted
    # some already when they built the prompt; this is what run_calls itself found).
    redacted: dict[str, int] = field(default_factory=dict)


class JudgeClient(ConfigurableResource, ABC):
    """Makes one model call (with retries); `run_calls` adds caching and concurrency."""

    max_concurrency: int = Field(default=16, description="Calls in flight per provider.")
    requests_per_minute: int = Field(
        default=0, description="Per-provider request budget; 0 = unlimited."
    )
    max_retries: int = Field(
        default=4,
        description="Retries after the first attempt for transient failures and malformed responses.",
    )
    backoff_s: float = Field(
        default=0.5, description="First retry delay; doubles each retry (with jitter)."
    )
    timeout_s: float = Field(default=60.0, description="Per-attempt timeout in seconds.")
    retry_errors: bool = Field(
        default=False,
        description="Re-run calls whose cached result is an error. Off: a recorded error stays recorded (no silent re-spend).",
    )
    api_bases: dict[str, str] = Field(
        default_factory=dict,
        description="api_base per model string (e.g. a local OpenAI-compatible server, or the simulator folder for offline/product-*).",
    )
    provider_limits: dict[str, dict[str, float]] = Field(
        default_factory=dict,
        description="Per litellm provider prefix: max_concurrency, rpm, timeout_s, max_retries "
        "(from the project file's providers); a provider not listed uses the fields above.",
    )
    api_key_envs: dict[str, str] = Field(
        default_factory=dict,
        description="Per provider prefix: the environment variable holding its API key.",
    )
    provider_handlers: dict[str, str] = Field(
        default_factory=dict,
        description="Per provider prefix: a module whose register_provider() registers a litellm "
        "custom provider (e.g. the simulator's offline models), imported before the first call.",
    )
    processes: int = Field(
        default=1,
        description="Event loops in worker processes that make a batch's calls (calls.processes "
        "in the project file); 1 = all on this process's loop.",
    )
    budget_usd: float = Field(
        default=0.0,
        description="Most a run may spend on model calls (budget.max_usd_per_run); 0 = no limit. "
        "A batch whose estimate would pass it is refused before its first call.",
    )

    def estimate_usd(self, calls: Sequence[Call]) -> tuple[float, list[str]]:
        """What `calls` would cost by litellm's price map (prompt ~4 characters a token, the
        answer `max_tokens` or 300 tokens), and the models it has no price for."""
        return 0.0, []

    def limit(self, model: str, name: str) -> float:
        """A provider's limit `name` for `model`, else this client's default."""
        defaults = {
            "max_concurrency": self.max_concurrency,
            "rpm": self.requests_per_minute,
            "timeout_s": self.timeout_s,
            "max_retries": self.max_retries,
        }
        return self.provider_limits.get(model.split("/", 1)[0], {}).get(name, defaults[name])

    @abstractmethod
    async def call_once(self, call: Call) -> tuple[str, float]:
        """One provider attempt: (response text, cost in USD). Raises on failure."""

    @abstractmethod
    def is_transient(self, exc: BaseException) -> bool:
        """Whether an exception from `call_once` is worth retrying."""

    def prepare(self) -> None:
        """Set up the client library before a batch (idempotent)."""

    async def call_with_retries(
        self, call: Call, gate: asyncio.Semaphore, budget: RateBudget
    ) -> CallResult:
        attempts, cost, last_error, latency = 0, 0.0, "no attempt", 0.0
        timeout = self.limit(call.model, "timeout_s")
        for attempt in range(int(self.limit(call.model, "max_retries")) + 1):
            attempts += 1
            await budget.wait()
            async with gate:
                t0 = time.perf_counter()
                try:
                    text, c = await asyncio.wait_for(self.call_once(call), timeout=timeout + 5)
                    cost += c
                except Exception as exc:  # classified below; never swallowed as a pass
                    latency = (time.perf_counter() - t0) * 1000
                    last_error = f"{type(exc).__name__}: {str(exc)[:200]}"
                    if not (self.is_transient(exc) or isinstance(exc, TimeoutError)):
                        break
                    await asyncio.sleep(self.backoff_s * (2**attempt) * (0.5 + random.random()))
                    continue
                latency = (time.perf_counter() - t0) * 1000
            if call.parse is not None:
                try:
                    parsed = call.parse(text)
                except ValueError as exc:
                    last_error = f"malformed response: {exc}"
                    continue
            else:
                parsed = text
            return CallResult(
                call.key,
                call.model,
                call.purpose,
                text,
                None,
                attempts,
                cost,
                latency,
                parsed=parsed,
            )
        return CallResult(
            call.key, call.model, call.purpose, None, last_error, attempts, cost, latency
        )


class LiteLLMJudgeClient(JudgeClient):
    """Any litellm model string; keys come from the provider's usual environment variables
    (OPENAI_API_KEY, ANTHROPIC_API_KEY, ...) or the one the project file names. Custom
    providers (the simulator's `offline/...`) are registered through `provider_handlers`."""

    def prepare(self) -> None:
        os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
        import litellm

        logging.getLogger("LiteLLM").setLevel(logging.ERROR)
        litellm.drop_params = True  # providers without JSON mode just ignore response_format
        litellm.suppress_debug_info = True
        litellm.telemetry = False
        # Switch off what we do not use: per-call token counting and message copies for logging.
        litellm.disable_token_counter = True
        litellm.turn_off_message_logging = True
        for module in self.provider_handlers.values():
            importlib.import_module(module).register_provider()

    async def call_once(self, call: Call) -> tuple[str, float]:
        import litellm

        params = dict(call.params)
        api_base = params.pop("api_base", None) or self.api_bases.get(call.model)
        key_env = self.api_key_envs.get(call.model.split("/", 1)[0])
        if key_env:
            params["api_key"] = os.environ.get(key_env)
        response = await litellm.acompletion(
            model=call.model,
            messages=call.messages,
            api_base=api_base,
            timeout=self.limit(call.model, "timeout_s"),
            num_retries=0,  # retries are ours: counted, backed off and logged
            **params,
        )
        text = response.choices[0].message.content or ""
        usage = getattr(response, "usage", None)
        known = (getattr(response, "_hidden_params", None) or {}).get("response_cost")
        if known is not None:
            return text, float(known)  # litellm already priced it: do not pay that CPU twice
        try:
            # Priced by the model string we called (custom providers report a bare model name).
            p_in, p_out = litellm.cost_per_token(
                model=call.model,
                prompt_tokens=getattr(usage, "prompt_tokens", 0) or 0,
                completion_tokens=getattr(usage, "completion_tokens", 0) or 0,
            )
            cost = float(p_in + p_out)
        except Exception:  # a model missing from litellm's price map costs what we cannot know
            cost = 0.0
        return text, cost

    def estimate_usd(self, calls: Sequence[Call]) -> tuple[float, list[str]]:
        import litellm

        total, unpriced = 0.0, set()
        for c in calls:
            prompt = sum(len(str(m.get("content", ""))) for m in c.messages) // 4 + 4
            answer = int(c.params.get("max_tokens", 300))
            try:
                p_in, p_out = litellm.cost_per_token(
                    model=c.model, prompt_tokens=prompt, completion_tokens=answer
                )
                total += float(p_in + p_out)
            except Exception:  # not in the price map: cannot be estimated
                unpriced.add(c.model)
        return total, sorted(unpriced)

    def is_transient(self, exc: BaseException) -> bool:
        import litellm

        transient = (
            litellm.exceptions.RateLimitError,
            litellm.exceptions.InternalServerError,
            litellm.exceptions.ServiceUnavailableError,
            litellm.exceptions.Timeout,
            litellm.exceptions.APIConnectionError,
            litellm.exceptions.BadGatewayError
            if hasattr(litellm.exceptions, "BadGatewayError")
            else litellm.exceptions.APIError,
        )
        return isinstance(exc, transient)


def _cached(
    conn: duckdb.DuckDBPyConnection, keys: list[str], include_errors: bool
) -> dict[str, CallResult]:
    if not keys:
        return {}
    with registered(conn, _wanted_keys=pa.table({"cache_key": keys})):
        rows = conn.execute(
            f"""SELECT c.cache_key, c.model, c.purpose, c.response, c.error, c.attempts, c.cost_usd, c.latency_ms
                FROM {JUDGE_CACHE.name} c JOIN _wanted_keys USING (cache_key)
                {"" if include_errors else "WHERE c.error IS NULL"}"""
        ).fetchall()
    return {
        r[0]: CallResult(r[0], r[1], r[2], r[3], r[4], r[5], r[6], r[7], cached=True) for r in rows
    }


def _persist(conn: duckdb.DuckDBPyConnection, results: list[CallResult]) -> None:
    if not results:
        return
    now = datetime.now(UTC).replace(tzinfo=None)
    batch = pa.table(
        {
            "cache_key": [r.key for r in results],
            "model": [r.model for r in results],
            "purpose": [r.purpose for r in results],
            "response": [r.response for r in results],
            "error": [r.error for r in results],
            "attempts": pa.array([r.attempts for r in results], pa.int32()),
            "cost_usd": [r.cost_usd for r in results],
            "latency_ms": [r.latency_ms for r in results],
            "created_at": [now] * len(results),
        }
    )
    with registered(conn, _finished_calls=batch):
        conn.execute(f"INSERT OR REPLACE INTO {JUDGE_CACHE.name} SELECT * FROM _finished_calls")


class BudgetExceeded(RuntimeError):
    """A batch of calls would take the run past its budget; nothing was called."""


# Spend per Dagster run id in this process: the budget is per run, across its assets.
_SPENT_BY_RUN: dict[str, float] = {}


def _check_budget(client: JudgeClient, todo: list[Call], run_id: str, progress: Callable) -> None:
    if client.budget_usd <= 0 or not todo:
        return
    estimate, unpriced = client.estimate_usd(todo)
    spent = _SPENT_BY_RUN.get(run_id, 0.0)
    if unpriced:
        progress(f"budget: no price known for {', '.join(unpriced)}; their calls count as $0")
    if spent + estimate > client.budget_usd:
        raise BudgetExceeded(
            f"{len(todo):,} model calls are estimated at ${estimate:,.2f}"
            + (f" on top of ${spent:,.2f} already spent in this run" if spent else "")
            + f", over budget.max_usd_per_run ${client.budget_usd:,.2f} in the project file. "
            "Nothing was called. Raise the budget, or narrow the run (fewer cases, versions or judges)."
        )
    progress(
        f"budget: ${estimate:,.4f} estimated, ${spent:,.4f} spent, ${client.budget_usd:,.2f} allowed"
    )


# Texts already redacted in this process, with what was found: a batch repeats its texts
# (every judge call carries the same rubric, every judge the same case), and re-runs repeat
# batches. Bounded: cleared when it grows past REDACTED_MEMO entries.
_REDACTED: dict[str, Redacted] = {}
REDACTED_MEMO = 200_000


def _redact_all(calls: Sequence[Call], processes: int) -> None:
    """Redact every distinct text of the calls not redacted before, over the worker processes
    when there are enough of them to share."""
    new = list(
        dict.fromkeys(
            m["content"]
            for c in calls
            for m in c.messages
            if isinstance(m.get("content"), str) and m["content"] not in _REDACTED
        )
    )
    if len(_REDACTED) + len(new) > REDACTED_MEMO:
        _REDACTED.clear()
    processes = min(processes, len(new) // MIN_CALLS_PER_PROCESS)
    done = redact_in_processes(new, processes) if processes > 1 else map(redact_one, new)
    _REDACTED.update(zip(new, done, strict=True))


def _redacted(call: Call, counts: Counter[str]) -> Call:
    messages = []
    for m in call.messages:
        if isinstance(m.get("content"), str):
            text, found = _REDACTED.get(m["content"]) or redact_one(m["content"])
            counts.update(dict(found))
            m = {**m, "content": text}
        messages.append(m)
    return replace(call, messages=messages)


def run_calls(
    client: JudgeClient,
    conn: duckdb.DuckDBPyConnection,
    calls: Sequence[Call],
    progress: Callable[[str], None] = log.info,
    flush_every_s: float = 1.0,
    on_flush: Callable[[int], None] | None = None,
    run_id: str = "",
) -> tuple[list[CallResult], RunStats]:
    """Results in the order of `calls` (duplicates share one call), and what it took.

    Every message is redacted here first (PII and secrets, `judging.pii`): this is the one
    point every text passes on its way to a provider. The cache keys are those of the
    redacted calls."""
    redacted: Counter[str] = Counter()
    _redact_all(calls, client.processes)
    calls = [_redacted(c, redacted) for c in calls]
    client.prepare()
    conn.execute(JUDGE_CACHE.ddl())
    t0 = time.perf_counter()
    unique: dict[str, Call] = {}
    for c in calls:
        unique.setdefault(c.key, c)
    results = _cached(conn, list(unique), include_errors=not client.retry_errors)
    # Cached responses are parsed again: a rubric's validation may have been tightened.
    for key, r in results.items():
        parse = unique[key].parse
        if r.error is None and parse is not None:
            try:
                r.parsed = parse(r.response or "")
            except ValueError as exc:
                r.error, r.parsed = f"malformed response: {exc}", None
        elif r.error is None:
            r.parsed = r.response
    todo = [c for k, c in unique.items() if k not in results]
    stats = RunStats(
        total=len(unique), cached=len(results), called=len(todo), redacted=dict(redacted)
    )
    _check_budget(client, todo, run_id, progress)
    if todo:
        progress(
            f"{len(todo):,} calls to make ({len(results):,} of {len(unique):,} already cached)"
        )
        collector = _Collector(conn, todo, results, stats, progress, flush_every_s, on_flush)
        try:
            processes = min(client.processes, len(todo) // MIN_CALLS_PER_PROCESS)
            if processes > 1:
                progress(f"calls made on {processes} event loops in worker processes")
                call_in_processes(client, todo, processes, collector.add)
            else:
                call_on_this_loop(client, todo, collector.add)
        finally:
            collector.flush()
    stats.seconds = time.perf_counter() - t0
    _SPENT_BY_RUN[run_id] = _SPENT_BY_RUN.get(run_id, 0.0) + stats.cost_usd
    if stats.called:
        progress(
            f"spent ${stats.cost_usd:,.4f} on {stats.called:,} calls; "
            f"${_SPENT_BY_RUN[run_id]:,.4f} in this run so far"
            + (f" of ${client.budget_usd:,.2f} allowed" if client.budget_usd > 0 else "")
        )
    stats.errors = sum(1 for r in results.values() if r.error)
    for r in results.values():
        if r.error:
            kind = r.error.split(":", 1)[0]
            stats.by_error[kind] = stats.by_error.get(kind, 0) + 1
    return [results[c.key] for c in calls], stats


class _Collector:
    """Takes finished calls as they come (from this loop or from worker processes): keeps
    them, writes them to `judge_cache` every `flush_every_s`, logs progress every 5 s."""

    def __init__(
        self,
        conn: duckdb.DuckDBPyConnection,
        todo: Sequence[Call],
        results: dict[str, CallResult],
        stats: RunStats,
        progress: Callable[[str], None],
        flush_every_s: float,
        on_flush: Callable[[int], None] | None,
    ) -> None:
        self.conn, self.total, self.results, self.stats = conn, len(todo), results, stats
        self.progress, self.flush_every_s, self.on_flush = progress, flush_every_s, on_flush
        self.pending: list[CallResult] = []
        self.done = 0
        self.started = self.last_flush = self.last_log = time.perf_counter()

    def add(self, r: CallResult) -> None:
        self.results[r.key] = r
        self.pending.append(r)
        self.stats.provider_calls += r.attempts
        self.stats.cost_usd += r.cost_usd
        self.done += 1
        now = time.perf_counter()
        if now - self.last_flush >= self.flush_every_s:
            self.flush()
            self.last_flush = now
        if now - self.last_log >= 5.0 or self.done == self.total:
            rate = self.done / max(now - self.started, 1e-9)
            errors = sum(1 for x in self.results.values() if x.error)
            self.progress(
                f"{self.done:,}/{self.total:,} calls, {rate:,.1f}/s, "
                f"${self.stats.cost_usd:.4f} so far, {errors} errors"
            )
            self.last_log = now

    def flush(self) -> None:
        _persist(self.conn, self.pending)
        if self.on_flush is not None:
            self.on_flush(len(self.pending))
        self.pending = []


def judge_client(config: ProjectConfig, **overrides: Any) -> LiteLLMJudgeClient:
    """The litellm client of this project: providers' endpoints, keys, limits and handlers,
    and the run budget (`overrides` for one-off settings such as max_retries)."""
    limits = {
        name: {
            "max_concurrency": p.max_concurrency,
            "rpm": p.rpm,
            "timeout_s": p.timeout_s,
            "max_retries": p.max_retries,
        }
        for name, p in config.providers.items()
    }
    api_bases = {
        m: config.provider_of(m).api_base
        for m in config.models()
        if m.split("/", 1)[0] in config.providers and config.provider_of(m).api_base
    }
    settings: dict[str, Any] = {
        "api_bases": api_bases,
        "provider_limits": limits,
        "api_key_envs": {n: p.api_key_env for n, p in config.providers.items() if p.api_key_env},
        "provider_handlers": {n: p.handler for n, p in config.providers.items() if p.handler},
        "budget_usd": config.budget.max_usd_per_run or 0.0,
        "processes": config.calls.processes,
    }
    settings.update(overrides)
    return LiteLLMJudgeClient(**settings)
