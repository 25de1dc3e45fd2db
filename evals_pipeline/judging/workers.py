"""Where model calls are made: asyncio tasks on one event loop, or a batch split over worker
processes each running its own loop.

litellm spends about 3.5 ms of CPU per call (building the request, parsing the response into
its objects). One event loop is one core, so at high concurrency the CPU, not the provider,
becomes the limit: 128 calls in flight at 0.5 s latency want 256 calls/s, which one core
cannot serve. `calls.processes` in the project file splits a batch over that many processes;
each makes its shard with its share of every provider's concurrency and request budget (so
the provider still sees the project file's limits in all), and sends each result back to the
parent as it completes, which writes the judge cache as before. The processes are started
once per Python process and reused (`python -m evals_pipeline.judging.workers`); a shard's
calls must be picklable (their parse functions module-level), as the judging stage's are.
"""

from __future__ import annotations

import asyncio
import atexit
import pickle
import queue
import struct
import subprocess
import sys
import threading
import time
import traceback
from collections import Counter
from collections.abc import Callable, Sequence
from functools import partial
from typing import Any, BinaryIO, Protocol

from evals_pipeline.judging.pii import redact

# A text redacted, and what was found in it by kind.
Redacted = tuple[str, tuple[tuple[str, int], ...]]


def redact_one(text: str) -> Redacted:
    found: Counter[str] = Counter()
    return redact(text, found) or text, tuple(found.items())


# A call and its result are `judging.client.Call` / `CallResult`; this module only passes them
# on (client.py imports this one, so it names no type of client.py's).
Call = Any
CallResult = Any


class JudgeClient(Protocol):
    """What the loops need of `judging.client.JudgeClient`."""

    def limit(self, model: str, name: str) -> float: ...

    async def call_with_retries(
        self, call: Call, gate: asyncio.Semaphore, budget: RateBudget
    ) -> CallResult: ...

    def prepare(self) -> None: ...

    def model_dump(self) -> dict[str, Any]: ...


class RateBudget:
    """Spaces request starts so a provider sees at most `rpm` per minute."""

    def __init__(self, rpm: int) -> None:
        self.interval = 60.0 / rpm if rpm > 0 else 0.0
        self.next_at = 0.0
        self.lock = asyncio.Lock()

    async def wait(self) -> None:
        if not self.interval:
            return
        async with self.lock:
            now = time.monotonic()
            start = max(now, self.next_at)
            self.next_at = start + self.interval
        await asyncio.sleep(max(0.0, start - now))


def loop_factory() -> Callable[[], asyncio.AbstractEventLoop] | None:
    """uvloop when installed (it comes with Dagster's webserver): less event-loop overhead per call."""
    try:
        import uvloop
    except ImportError:
        return None
    return uvloop.new_event_loop


async def call_all(
    client: JudgeClient,
    todo: Sequence[Call],
    on_result: Callable[[CallResult], None],
    share: float = 1.0,
) -> None:
    """Make the calls on this event loop, each provider's concurrency and request budget
    times `share` (a worker among N makes its shard with 1/N of each), handing each result
    to `on_result` as it completes."""
    gates: dict[str, asyncio.Semaphore] = {}
    budgets: dict[str, RateBudget] = {}
    for c in todo:
        provider = c.model.split("/", 1)[0]
        limit = max(1, int(client.limit(c.model, "max_concurrency") * share))
        gates.setdefault(provider, asyncio.Semaphore(limit))
        budgets.setdefault(provider, RateBudget(int(client.limit(c.model, "rpm") * share)))
    tasks = [
        asyncio.ensure_future(
            client.call_with_retries(
                c, gates[c.model.split("/", 1)[0]], budgets[c.model.split("/", 1)[0]]
            )
        )
        for c in todo
    ]
    try:
        for fut in asyncio.as_completed(tasks):
            on_result(await fut)
    finally:
        for t in tasks:
            t.cancel()


def call_on_this_loop(
    client: JudgeClient,
    todo: Sequence[Call],
    on_result: Callable[[CallResult], None],
    share: float = 1.0,
) -> None:
    with asyncio.Runner(loop_factory=loop_factory()) as runner:
        runner.run(call_all(client, todo, on_result, share))


# ---- worker processes -------------------------------------------------------------------
# Workers are plain `python -m evals_pipeline.judging.workers` processes speaking pickled,
# length-prefixed frames on stdin/stdout, not multiprocessing's: its spawn start re-runs the
# caller's __main__ (a script or notebook without a main guard would start workers forever).


def _send(stream: BinaryIO, item: object) -> None:
    data = pickle.dumps(item, protocol=pickle.HIGHEST_PROTOCOL)
    stream.write(struct.pack("<Q", len(data)) + data)
    stream.flush()


def _receive(stream: BinaryIO) -> Any:
    head = stream.read(8)
    if len(head) < 8:
        raise EOFError("worker stream closed")
    (size,) = struct.unpack("<Q", head)
    return pickle.loads(stream.read(size))


class _Worker:
    """One worker process and a thread that puts what it sends on the shared queue."""

    def __init__(self, inbox: queue.Queue[tuple[int, str, Any]]) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-m", "evals_pipeline.judging.workers"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
        )
        self.reader = threading.Thread(target=self._read, args=(inbox,), daemon=True)
        self.reader.start()

    def _read(self, inbox: queue.Queue[tuple[int, str, Any]]) -> None:
        try:
            while True:
                inbox.put(_receive(self.process.stdout))  # type: ignore[arg-type]
        except (EOFError, OSError, pickle.UnpicklingError):
            inbox.put((0, "died", self.process.pid))

    def submit(self, tag: int, client: JudgeClient, shard: list[Call], share: float) -> None:
        payload = (type(client), client.model_dump(), shard, share)
        _send(self.process.stdin, ("calls", tag, payload))  # type: ignore[arg-type]

    def redact(self, tag: int, index: int, texts: list[str]) -> None:
        _send(self.process.stdin, ("redact", tag, (index, texts)))  # type: ignore[arg-type]

    def stop(self) -> None:
        self.process.kill()
        self.process.wait()


class _Pool:
    def __init__(self, size: int) -> None:
        self.inbox: queue.Queue[tuple[int, str, Any]] = queue.Queue()
        self.workers = [_Worker(self.inbox) for _ in range(size)]

    def stop(self) -> None:
        for w in self.workers:
            w.stop()


_POOL: _Pool | None = None
_TAGS = iter(range(1, 1 << 62))


def _pool(processes: int) -> list[_Worker]:
    """`processes` worker processes, started on first use and kept (litellm's import is paid
    once). The pool only grows: a smaller batch uses the first of the workers it has."""
    global _POOL
    if _POOL is None or len(_POOL.workers) < processes:
        _stop_pool()
        _POOL = _Pool(processes)
        atexit.register(_stop_pool)
    return _POOL.workers[:processes]


def call_in_processes(
    client: JudgeClient,
    todo: Sequence[Call],
    processes: int,
    on_result: Callable[[CallResult], None],
) -> None:
    """Split the calls round-robin over `processes` worker processes and hand each result to
    `on_result` in this process as it arrives. A worker that fails raises here."""
    workers = _pool(processes)
    inbox = _POOL.inbox  # type: ignore[union-attr]
    tag = next(_TAGS)
    for i, worker in enumerate(workers):
        worker.submit(tag, client, list(todo[i::processes]), 1.0 / processes)
    finished = 0
    try:
        while finished < processes:
            got, kind, payload = inbox.get()
            if kind == "died":
                raise RuntimeError(f"judging worker process {payload} exited")
            if got != tag:  # from an earlier, abandoned batch
                continue
            if kind == "result":
                on_result(payload)
            elif kind == "done":
                finished += 1
            else:
                raise RuntimeError(f"judging worker failed: {payload}")
    except BaseException:
        # Abandoned (an error, an interrupt): stop the workers, or they would go on paying
        # for calls whose results nobody keeps.
        _stop_pool()
        raise


def worker_pids() -> list[int]:
    """The live worker processes (benchmarks add their CPU time to this process's)."""
    return [w.process.pid for w in _POOL.workers] if _POOL is not None else []


def redact_in_processes(texts: Sequence[str], processes: int) -> list[Redacted]:
    """`judging.pii.redact` of each text (with what it found), the texts split over the worker
    processes: a large batch's texts are redacted on every core before any call is keyed."""
    workers = _pool(processes)
    inbox = _POOL.inbox  # type: ignore[union-attr]
    tag = next(_TAGS)
    shares = [list(texts[i::processes]) for i in range(processes)]
    for index, (worker, share) in enumerate(zip(workers, shares, strict=True)):
        worker.redact(tag, index, share)
    done: dict[int, list[Redacted]] = {}
    try:
        while len(done) < processes:
            got, kind, payload = inbox.get()
            if kind == "died":
                raise RuntimeError(f"judging worker process {payload} exited")
            if got != tag:
                continue
            if kind != "redacted":
                raise RuntimeError(f"judging worker failed: {payload}")
            index, out = payload
            done[index] = out
    except BaseException:
        _stop_pool()
        raise
    merged: list[Redacted] = [("", ())] * len(texts)
    for index, out in done.items():
        merged[index::processes] = out
    return merged


def stop_workers() -> None:
    """Stop the worker processes (they start again on the next batch that needs them)."""
    _stop_pool()


def _stop_pool() -> None:
    global _POOL
    if _POOL is not None:
        _POOL.stop()
        _POOL = None


def _result_frame(send: Callable[[object], None], tag: int, result: CallResult) -> None:
    send((tag, "result", result))


def _serve(inbox: BinaryIO, outbox: BinaryIO) -> None:
    """A worker: for each shard it is sent, make the calls on its own loop and send back each
    result as it completes, then `done` (or `error` with the traceback)."""
    lock = threading.Lock()

    def send(item: object) -> None:
        with lock:
            _send(outbox, item)

    while True:
        try:
            kind, tag, payload = _receive(inbox)
        except EOFError:
            return
        try:
            if kind == "redact":
                index, texts = payload
                send((tag, "redacted", (index, [redact_one(t) for t in texts])))
                continue
            client_type, settings, shard, share = payload
            client = client_type(**settings)
            client.prepare()
            call_on_this_loop(client, shard, partial(_result_frame, send, tag), share)
            send((tag, "done", len(shard)))
        except Exception:
            send((tag, "error", traceback.format_exc()))


if __name__ == "__main__":
    # stdout carries frames only: anything a library prints goes to stderr.
    frames = sys.stdout.buffer
    sys.stdout = sys.stderr
    _serve(sys.stdin.buffer, frames)
