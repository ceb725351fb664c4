"""Measure client CPU per call on an `httpx.MockTransport`, parsing included.

No server runs: the mock transport returns a fixed ``registered-models/get``
body shaped like MLflow 3.17's (pretty-printed, two latest versions, tags and
aliases), so the figures are the client's own cost per call. Contestants:

- ``sdk``: ``await client.models.get(name)``, which returns a parsed `Model`.
- ``raw``: ``httpx.AsyncClient.get`` with the same query string, then
  ``json.loads`` of the body.
- ``sdk transport``: the SDK's transport alone (retries, error mapping and
  logging, no model parsing), to show where the cost goes. It calls a private
  attribute, so it may change without notice.

CPU time is `time.process_time` over a loop of sequential calls after a
warm-up. Target: ``sdk`` at most 1.3x ``raw``.

Usage::

    python benchmarks/client_cpu.py [--calls 10000] [--rounds 3]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import time
from collections.abc import Awaitable, Callable

import httpx

from maestro_ml_async import AsyncMaestroClient

TARGET_RATIO = 1.3
MODEL_NAME = "fraud-detector"
BASE_URL = "http://127.0.0.1:5000"


def _version(number: int, stage: str) -> dict[str, object]:
    return {
        "name": MODEL_NAME,
        "version": str(number),
        "creation_timestamp": 1733184000000 + number,
        "last_updated_timestamp": 1733184000500 + number,
        "current_stage": stage,
        "description": "",
        "source": f"mlflow-artifacts:/1/runabc{number}/artifacts/model",
        "run_id": f"runabc{number}",
        "status": "READY",
        "tags": [{"key": "validated", "value": "true"}],
        "run_link": "",
        "aliases": ["champion"] if stage == "Production" else [],
    }


BODY = json.dumps(
    {
        "registered_model": {
            "name": MODEL_NAME,
            "creation_timestamp": 1733184000000,
            "last_updated_timestamp": 1733184999000,
            "description": "Detects fraudulent card transactions.",
            "latest_versions": [_version(3, "Staging"), _version(2, "Production")],
            "tags": [
                {"key": "team", "value": "risk"},
                {"key": "tier", "value": "gold"},
            ],
            "aliases": [{"alias": "champion", "version": "2"}],
        }
    },
    indent=2,
).encode()


def handler(request: httpx.Request) -> httpx.Response:
    """Return the fixed body for every request."""
    return httpx.Response(
        200, content=BODY, headers={"Content-Type": "application/json"}
    )


async def cpu_per_call(call: Callable[[], Awaitable[object]], calls: int) -> float:
    """Return the CPU microseconds per call of `calls` sequential awaits."""
    for _ in range(min(500, calls)):
        await call()
    started = time.process_time()
    for _ in range(calls):
        await call()
    return (time.process_time() - started) / calls * 1e6


async def run(calls: int, rounds: int) -> dict[str, list[float]]:
    """Measure every contestant `rounds` times, interleaved to share drift."""
    transport = httpx.MockTransport(handler)
    results: dict[str, list[float]] = {"raw": [], "sdk": [], "sdk transport": []}
    async with (
        httpx.AsyncClient(transport=transport, base_url=BASE_URL) as raw_client,
        AsyncMaestroClient(mlflow_uri=BASE_URL, http_transport=transport) as client,
    ):

        async def raw_get() -> object:
            response = await raw_client.get(
                "/api/2.0/mlflow/registered-models/get", params={"name": MODEL_NAME}
            )
            response.raise_for_status()
            return json.loads(response.content)

        async def sdk_get() -> object:
            return await client.models.get(MODEL_NAME)

        async def sdk_transport() -> object:
            # Private API: isolates the transport from the model parsing.
            return await client._mlflow.call(
                "GET", "registered-models/get", params={"name": MODEL_NAME}
            )

        contestants = {"raw": raw_get, "sdk": sdk_get, "sdk transport": sdk_transport}
        for _ in range(rounds):
            for name, call in contestants.items():
                results[name].append(await cpu_per_call(call, calls))
    return results


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark, print the table; return 1 when the target is missed."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=10_000, help="calls per round")
    parser.add_argument("--rounds", type=int, default=3, help="rounds per contestant")
    args = parser.parse_args(argv)

    results = asyncio.run(run(args.calls, args.rounds))
    raw = statistics.median(results["raw"])
    print(f"{'contestant':<16}{'µs CPU/call':>12}{'vs raw':>9}   rounds (µs)")
    for name, values in results.items():
        median = statistics.median(values)
        rounds = ", ".join(f"{value:.0f}" for value in values)
        print(f"{name:<16}{median:>12.1f}{median / raw:>8.2f}x   {rounds}")
    ratio = statistics.median(results["sdk"]) / raw
    verdict = "met" if ratio <= TARGET_RATIO else "MISSED"
    print(f"target sdk <= {TARGET_RATIO}x raw: {verdict} ({ratio:.2f}x)")
    return 0 if ratio <= TARGET_RATIO else 1


if __name__ == "__main__":
    sys.exit(main())
