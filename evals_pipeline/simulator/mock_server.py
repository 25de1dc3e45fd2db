"""A local OpenAI-compatible mock server for tests and the judging benchmark.

`POST /v1/chat/completions` answers after a fixed latency with a valid binary verdict, or
injects a fault at configurable rates: HTTP 429, HTTP 500, a timeout (a reply slower than
the client waits) or a malformed (non-JSON) verdict. Faults are drawn per request from a
seeded generator. Every request body is recorded, so a test can scan what left the
pipeline. It listens on 127.0.0.1 only and stops when its context exits.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import random
import threading
import time
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web


@dataclass
class MockConfig:
    latency_s: float = 0.05
    rate_429: float = 0.0
    rate_500: float = 0.0
    rate_timeout: float = 0.0
    rate_malformed: float = 0.0
    timeout_sleep_s: float = 5.0
    seed: int = 0
    # Models that are down: every request for them gets a 500 (a provider outage).
    down_models: tuple[str, ...] = ()


@dataclass
class MockStats:
    requests: int = 0
    faults: dict[str, int] = field(default_factory=dict)
    bodies: list[dict[str, Any]] = field(default_factory=list)
    # Requests being served at once: now, and the most seen (a client's concurrency limit).
    in_flight: int = 0
    max_in_flight: int = 0


class MockServer:
    """`with MockServer(MockConfig(...)) as server:` then use `server.api_base`."""

    def __init__(self, config: MockConfig, record_bodies: bool = True) -> None:
        self.config = config
        self.stats = MockStats()
        self.record_bodies = record_bodies
        self._rng = random.Random(config.seed)
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._runner: web.AppRunner | None = None
        self.port = 0

    @property
    def api_base(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        body = await request.json()
        self.stats.requests += 1
        if self.record_bodies:
            self.stats.bodies.append(body)
        draw = self._rng.random()
        c = self.config
        fault = None
        for name, rate in (
            ("429", c.rate_429),
            ("500", c.rate_500),
            ("timeout", c.rate_timeout),
            ("malformed", c.rate_malformed),
        ):
            if draw < rate:
                fault = name
                break
            draw -= rate
        if body.get("model") in c.down_models:
            fault = "500"
        if fault:
            self.stats.faults[fault] = self.stats.faults.get(fault, 0) + 1
        self.stats.in_flight += 1
        self.stats.max_in_flight = max(self.stats.max_in_flight, self.stats.in_flight)
        try:
            await asyncio.sleep(c.timeout_sleep_s if fault == "timeout" else c.latency_s)
        finally:
            self.stats.in_flight -= 1
        if fault == "429":
            return web.json_response(
                {"error": {"message": "rate limited", "type": "rate_limit_error"}}, status=429
            )
        if fault == "500":
            return web.json_response(
                {"error": {"message": "server error", "type": "server_error"}}, status=500
            )
        prompt = json.dumps(body.get("messages", []))
        verdict = "pass" if hashlib.sha256(prompt.encode()).digest()[0] < 128 else "fail"
        content = (
            "Sure! I think it passes."
            if fault == "malformed"
            else json.dumps({"critique": "mock", "verdict": verdict})
        )
        return web.json_response(
            {
                "id": f"mock-{self.stats.requests}",
                "object": "chat.completion",
                "created": int(time.time()),
                "model": body.get("model", "mock"),
                "choices": [
                    {
                        "index": 0,
                        "message": {"role": "assistant", "content": content},
                        "finish_reason": "stop",
                    }
                ],
                "usage": {"prompt_tokens": 100, "completion_tokens": 20, "total_tokens": 120},
            }
        )

    async def _stats(self, request: web.Request) -> web.StreamResponse:
        return web.json_response({"requests": self.stats.requests, "faults": self.stats.faults})

    async def _start(self) -> None:
        app = web.Application()
        app.router.add_post("/v1/chat/completions", self._handle)
        app.router.add_get("/stats", self._stats)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]

    def __enter__(self) -> MockServer:
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self._start(), self._loop).result(timeout=30)
        return self

    def __exit__(self, *exc: object) -> None:
        if self._runner is not None:
            asyncio.run_coroutine_threadsafe(self._runner.cleanup(), self._loop).result(timeout=30)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=10)


def expected_verdict(messages: list[dict[str, Any]]) -> str:
    """The verdict the mock gives a prompt when it does not inject a fault."""
    prompt = json.dumps(messages)
    return "pass" if hashlib.sha256(prompt.encode()).digest()[0] < 128 else "fail"


class MockServerProcess:
    """The mock server in its own process, so its CPU does not compete with the client's
    event loop in a benchmark. `stats()` fetches the counters over HTTP."""

    def __init__(self, config: MockConfig) -> None:
        self.config = config
        self.proc: Any = None
        self.port = 0

    @property
    def api_base(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def __enter__(self) -> MockServerProcess:
        import subprocess
        import sys

        args = [
            sys.executable,
            "-m",
            "evals_pipeline.simulator.mock_server",
            json.dumps(self.config.__dict__),
        ]
        self.proc = subprocess.Popen(args, stdout=subprocess.PIPE, text=True)
        self.port = int(self.proc.stdout.readline())
        return self

    def stats(self) -> dict[str, Any]:
        import urllib.request

        with urllib.request.urlopen(
            f"http://127.0.0.1:{self.port}/stats", timeout=10
        ) as r:  # loopback only
            return json.loads(r.read())

    def __exit__(self, *exc: object) -> None:
        self.proc.terminate()
        self.proc.wait(timeout=30)


def _main() -> None:
    import sys

    config = MockConfig(**json.loads(sys.argv[1]))
    with MockServer(config, record_bodies=False) as server:
        print(server.port, flush=True)
        with contextlib.suppress(KeyboardInterrupt):
            threading.Event().wait()


if __name__ == "__main__":
    _main()
