"""Measure the CPU cost of a sync client call against the same async call.

No server runs: an `httpx.MockTransport` returns a fixed
``registered-models/get`` body, so the figures are the client's own cost.
Contestants, each a loop of sequential ``models.get`` calls after a warm-up:

- ``async``: ``await client.models.get(name)`` on `AsyncMaestroClient`, inside
  ``asyncio.run``.
- ``sync``: ``client.models.get(name)`` on `MaestroClient`, which hands the
  coroutine to its loop thread and waits for the result.
- ``sync via anyio portal``: ``portal.call(client.models.get, name)`` through
  ``anyio.from_thread.start_blocking_portal``, the usual alternative to the
  runner's own asyncio hand-off, shown for comparison.

CPU time is `time.process_time`, which counts every thread of the process, so
the sync figures include the loop thread's work. The three clients stay open
side by side and run blocks of calls in turn, so that load from other
processes affects each about equally. Each figure is the median over blocks.
Target: ``sync`` at most 1.25x ``async``. The exit status is 1 when the
target is missed.

Usage::

    python benchmarks/sync_overhead.py [--calls 500] [--rounds 20]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable

import anyio
import anyio.from_thread
import httpx

from maestro_ml_async import AsyncMaestroClient, MaestroClient

TARGET_RATIO = 1.25
MODEL_NAME = "fraud-detector"
BASE_URL = "http://127.0.0.1:5000"
BODY = json.dumps(
    {
        "registered_model": {
            "name": MODEL_NAME,
            "creation_timestamp": 1733184000000,
            "last_updated_timestamp": 1733184000500,
            "description": "Card fraud model",
            "latest_versions": [
                {
                    "name": MODEL_NAME,
                    "version": "5",
                    "creation_timestamp": 1733184000005,
                    "last_updated_timestamp": 1733184000505,
                    "current_stage": "Production",
                    "source": "mlflow-artifacts:/1/run5/artifacts/model",
                    "run_id": "run5",
                    "status": "READY",
                }
            ],
            "tags": [{"key": "team", "value": "risk"}],
            "aliases": [{"alias": "champion", "version": "5"}],
        }
    },
    indent=2,
).encode()


def transport() -> httpx.MockTransport:
    headers = {"content-type": "application/json"}
    return httpx.MockTransport(
        lambda request: httpx.Response(200, content=BODY, headers=headers)
    )


class Contestants:
    """The three clients, open side by side so that their blocks interleave."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.async_client = AsyncMaestroClient(
            mlflow_uri=BASE_URL, http_transport=transport()
        )
        self.sync_client = MaestroClient(
            mlflow_uri=BASE_URL, http_transport=transport()
        )
        self.portal_cm = anyio.from_thread.start_blocking_portal()
        self.portal = self.portal_cm.__enter__()
        self.portal_client = AsyncMaestroClient(
            mlflow_uri=BASE_URL, http_transport=transport()
        )

    def run_async(self, calls: int) -> float:
        async def block() -> float:
            started = time.process_time()
            for _ in range(calls):
                await self.async_client.models.get(MODEL_NAME)
            return time.process_time() - started

        return self.loop.run_until_complete(block())

    def run_sync(self, calls: int) -> float:
        started = time.process_time()
        for _ in range(calls):
            self.sync_client.models.get(MODEL_NAME)
        return time.process_time() - started

    def run_portal(self, calls: int) -> float:
        started = time.process_time()
        for _ in range(calls):
            self.portal.call(self.portal_client.models.get, MODEL_NAME)
        return time.process_time() - started

    def close(self) -> None:
        self.loop.run_until_complete(self.async_client.aclose())
        self.loop.close()
        self.sync_client.close()
        self.portal.call(self.portal_client.aclose)
        self.portal_cm.__exit__(None, None, None)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=500, help="calls per block")
    parser.add_argument("--rounds", type=int, default=20, help="blocks per contestant")
    options = parser.parse_args(argv)

    contestants = Contestants()
    runs: dict[str, Callable[[int], float]] = {
        "async": contestants.run_async,
        "sync": contestants.run_sync,
        "sync via anyio portal": contestants.run_portal,
    }
    samples: dict[str, list[float]] = {name: [] for name in runs}
    try:
        for run in runs.values():
            run(options.calls // 5)  # warm-up
        for _ in range(options.rounds):
            for name, run in runs.items():
                samples[name].append(run(options.calls) / options.calls)
    finally:
        contestants.close()

    per_call = {name: statistics.median(values) for name, values in samples.items()}
    print(
        f"python {platform.python_version()}, httpx {httpx.__version__}, "
        f"anyio {_version('anyio')}, {platform.machine()}, "
        f"{os.cpu_count()} CPUs, {options.rounds} blocks of {options.calls} calls"
    )
    print(f"{'contestant':<24}{'CPU us/call':>12}{'vs async':>10}")
    for name, cost in per_call.items():
        print(f"{name:<24}{cost * 1e6:>12.1f}{cost / per_call['async']:>9.2f}x")

    ratio = per_call["sync"] / per_call["async"]
    verdict = "meets" if ratio <= TARGET_RATIO else "misses"
    print(f"sync / async = {ratio:.2f}, which {verdict} the target of {TARGET_RATIO}x")
    return 0 if ratio <= TARGET_RATIO else 1


def _version(package: str) -> str:
    from importlib.metadata import version

    return version(package)


if __name__ == "__main__":
    sys.exit(main())
