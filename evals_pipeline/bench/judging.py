"""Judging benchmark: our judging stage against a local OpenAI-compatible mock server.

Everything goes through the real litellm path (`openai/mock-judge` at a loopback
`api_base`); the mock server runs in its own process. In one run:
  1. clean: `--calls` judge calls at `--concurrency`, fixed `--latency`: efficiency =
     ideal_seconds / seconds, with ideal = calls x latency / concurrency;
  2. sequential baseline: a plain `litellm.completion` loop over `--sequential-calls` of
     the same kind of calls; its time per call x calls is what a loop would take;
  3. faults: the same number of new calls with `--fault-rate` injected (split evenly over
     429, 500, timeouts and malformed JSON): every call must end as a valid verdict or a
     recorded error; a verdict that differs from the mock's true answer is a silent pass;
  4. rerun of step 3's calls: served from the judge cache (rerun_calls must be 0).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import tempfile
import time
from functools import partial
from pathlib import Path
from typing import Any

import duckdb

from evals_pipeline.judging.client import Call, LiteLLMJudgeClient, run_calls
from evals_pipeline.judging.rubrics import load_rubric, parse_response, render_messages
from evals_pipeline.simulator.mock_server import MockConfig, MockServerProcess, expected_verdict

MODEL = "openai/mock-judge"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--calls", type=int, default=2000)
    parser.add_argument(
        "--concurrency",
        type=int,
        nargs="+",
        default=[32],
        help="one or more levels (e.g. 32 128): one JSON line each",
    )
    parser.add_argument(
        "--latency",
        type=float,
        default=0.5,
        help="mock latency in seconds (default 0.5, a realistic judge)",
    )
    parser.add_argument(
        "--processes",
        type=int,
        default=os.cpu_count() or 1,
        help="worker processes making the calls (calls.processes; default: one per core); "
        "the same calls on one process are measured beside",
    )
    parser.add_argument("--fault-rate", type=float, default=0.2)
    parser.add_argument(
        "--sequential-calls", type=int, default=40, help="calls timed in the sequential baseline"
    )
    parser.add_argument(
        "--timeout",
        type=float,
        default=2.0,
        help="client timeout per attempt (the mock's timeouts sleep 3x this)",
    )


def _calls(n: int, tag: str) -> list[Call]:
    rubric = load_rubric("pass_fail")
    params = {"temperature": 0, "response_format": {"type": "json_object"}}
    out = []
    for i in range(n):
        case = {
            "input": f"How do I rotate an API key? ({tag} case {i})",
            "reference_good": "Open Settings > API keys and click Rotate key.",
            "reference_borderline": "Settings > API keys, Rotate key.",
        }
        messages = render_messages(
            rubric, case, f"Open Settings > API keys and click Rotate key. ({tag} {i})"
        )
        out.append(
            Call(MODEL, messages, "judge:pass_fail@1", params, partial(parse_response, rubric))
        )
    return out


async def _plain_litellm(api_base: str, call: Call, gate: asyncio.Semaphore) -> None:
    import litellm

    async with gate:
        await litellm.acompletion(
            model=call.model, messages=call.messages, api_base=api_base, **call.params
        )


async def _raw_http(api_base: str, call: Call, gate: asyncio.Semaphore, session: Any) -> None:
    async with (
        gate,
        session.post(
            f"{api_base}/chat/completions",
            json={"model": call.model.split("/", 1)[1], "messages": call.messages, **call.params},
            headers={"Authorization": "Bearer sk-mock-not-a-secret"},
        ) as r,
    ):
        await r.json()


def _cpu_seconds() -> float:
    """CPU time of this process and of its worker processes (the live ones included: a
    reused pool's workers have not exited, so their time is read from /proc)."""
    total = time.process_time()
    from evals_pipeline.judging.workers import worker_pids

    for child in worker_pids():
        try:
            fields = Path(f"/proc/{child}/stat").read_text().rsplit(")", 1)[1].split()
            total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
        except (OSError, IndexError, ValueError):
            continue
    return total


def _floor_run(
    kind: Any, api_base: str, calls: list[Call], concurrency: int
) -> tuple[float, float]:
    """Seconds and CPU seconds of `calls` through `kind` at `concurrency`."""
    import aiohttp

    async def main() -> None:
        gate = asyncio.Semaphore(concurrency)
        if kind is _raw_http:
            # aiohttp, as litellm's own transport: one session, no connection cap of its own
            async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as session:
                await asyncio.gather(*(kind(api_base, c, gate, session) for c in calls))
        else:
            await asyncio.gather(*(kind(api_base, c, gate) for c in calls))

    t0, cpu0 = time.perf_counter(), time.process_time()
    asyncio.run(main())
    return time.perf_counter() - t0, time.process_time() - cpu0


def run(args: argparse.Namespace) -> list[dict[str, Any]]:
    """One measurement per concurrency level asked for."""
    levels = args.concurrency if isinstance(args.concurrency, list) else [args.concurrency]
    return [_run_at(argparse.Namespace(**{**vars(args), "concurrency": c})) for c in levels]


def _run_at(args: argparse.Namespace) -> dict[str, Any]:
    os.environ.setdefault("OPENAI_API_KEY", "sk-mock-not-a-secret")
    rate = args.fault_rate / 4
    with tempfile.TemporaryDirectory() as tmp:
        con = duckdb.connect(str(Path(tmp) / "bench.duckdb"))
        clean_cfg = MockConfig(latency_s=args.latency)
        with MockServerProcess(clean_cfg) as server:
            client = LiteLLMJudgeClient(
                api_bases={MODEL: server.api_base},
                max_concurrency=args.concurrency,
                timeout_s=args.timeout,
                backoff_s=0.05,
                processes=args.processes,
            )
            client.prepare()
            # Warm up litellm's lazy imports, the HTTP clients and the worker processes
            # outside the timing.
            run_calls(
                client,
                duckdb.connect(),
                _calls(max(args.concurrency, 100 * args.processes), "warmup"),
                progress=lambda _: None,
            )
            calls = _calls(args.calls, "clean")
            t0, cpu0 = time.perf_counter(), _cpu_seconds()
            _, stats = run_calls(client, con, calls, progress=print)
            seconds, cpu = time.perf_counter() - t0, _cpu_seconds() - cpu0
            one = client.model_copy(update={"processes": 1})
            run_calls(
                one, duckdb.connect(), _calls(args.concurrency, "warmup1"), progress=lambda _: None
            )
            t0, cpu0 = time.perf_counter(), _cpu_seconds()
            run_calls(one, con, _calls(args.calls, "one"), progress=lambda _: None)
            one_seconds, one_cpu = time.perf_counter() - t0, _cpu_seconds() - cpu0
            # The floors, same server, same calls, same concurrency: plain litellm.acompletion
            # and raw HTTP (aiohttp), each on its own event loop.
            plain_seconds, plain_cpu = _floor_run(
                _plain_litellm, server.api_base, _calls(args.calls, "plain"), args.concurrency
            )
            raw_seconds, raw_cpu = _floor_run(
                _raw_http, server.api_base, _calls(args.calls, "raw"), args.concurrency
            )
            import litellm

            seq = _calls(args.sequential_calls, "sequential")
            t0 = time.perf_counter()
            for c in seq:
                r = litellm.completion(
                    model=c.model, messages=c.messages, api_base=server.api_base, **c.params
                )
                parse_response(load_rubric("pass_fail"), r.choices[0].message.content)
            seq_per_call = (time.perf_counter() - t0) / len(seq)
        ideal = args.calls * args.latency / args.concurrency
        print(
            f"clean: {args.calls} calls in {seconds:.1f} s (ideal {ideal:.1f} s); sequential {seq_per_call * 1000:.0f} ms/call"
        )

        fault_cfg = MockConfig(
            latency_s=args.latency,
            rate_429=rate,
            rate_500=rate,
            rate_timeout=rate,
            rate_malformed=rate,
            timeout_sleep_s=3 * args.timeout,
            seed=7,
        )
        with MockServerProcess(fault_cfg) as server:
            client = LiteLLMJudgeClient(
                api_bases={MODEL: server.api_base},
                max_concurrency=args.concurrency,
                timeout_s=args.timeout,
                backoff_s=0.05,
                processes=args.processes,
            )
            faulty = _calls(args.calls, "faulty")
            t0 = time.perf_counter()
            f_results, f_stats = run_calls(client, con, faulty, progress=print)
            f_seconds = time.perf_counter() - t0
            served = server.stats()
            before = served["requests"]
            _, rerun = run_calls(client, con, faulty, progress=print)
            rerun_requests = server.stats()["requests"] - before

    truth = [expected_verdict(c.messages) for c in faulty]
    silent = sum(
        1
        for r, t in zip(f_results, truth, strict=True)
        if (r.error is None and not isinstance(r.parsed, dict))
        or (r.error is None and r.parsed["verdict"] != t)
    )
    return {
        "bench": "judging",
        "calls": args.calls,
        "concurrency": args.concurrency,
        "latency_s": args.latency,
        "seconds": round(seconds, 3),
        "ideal_seconds": round(ideal, 3),
        "efficiency": round(ideal / seconds, 3),
        "calls_per_second": round(args.calls / seconds, 1),
        "processes": args.processes,
        "cpu_ms_per_call": round(1000 * cpu / args.calls, 2),
        "one_process_efficiency": round(ideal / one_seconds, 3),
        "one_process_cpu_ms_per_call": round(1000 * one_cpu / args.calls, 2),
        "plain_litellm_efficiency": round(ideal / plain_seconds, 3),
        "plain_litellm_cpu_ms_per_call": round(1000 * plain_cpu / args.calls, 2),
        "raw_http_efficiency": round(ideal / raw_seconds, 3),
        "raw_http_cpu_ms_per_call": round(1000 * raw_cpu / args.calls, 2),
        "ratio_vs_raw_http": round(seconds / raw_seconds, 3),
        "sequential_seconds_per_call": round(seq_per_call, 4),
        "sequential_calls_measured": args.sequential_calls,
        "speedup_vs_sequential": round(seq_per_call * args.calls / seconds, 1),
        "clean_errors": stats.errors,
        "fault_rate": args.fault_rate,
        "faults_injected": sum(served["faults"].values()),
        "faults_by_kind": served["faults"],
        "fault_run_seconds": round(f_seconds, 3),
        "provider_requests_fault_run": f_stats.provider_calls,
        "valid_verdicts": sum(1 for r in f_results if r.error is None),
        "errors_recorded": f_stats.errors,
        "silent_passes": silent,
        "rerun_calls": rerun.called,
        "rerun_provider_requests": rerun_requests,
    }
