"""Measure how fast the fake cluster delivers a write to its watchers.

The fake API server runs in its own process (``python -m
maestro_ml_async.testing``), as it would for an external client. This script
opens N watch streams on PyTorchJobs, then sends merge patches one at a time.
For each patch it records, per watcher, the time from sending the PATCH
request to reading the matching watch line. It waits until every watcher has
the event before sending the next patch.

Reported per watcher count: median and p99 latency over all (watcher, write)
pairs, and the median time until the last watcher has the event. The watchers
share one client process and event loop, so at high counts the numbers
include this script's own JSON parsing.

Usage: ``python benchmarks/fake_watch_latency.py [--writes 50] [--sizes 1,100,500]``
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import signal
import statistics
import sys
import tempfile
import time
from pathlib import Path

import aiohttp

PJ = "/apis/kubeflow.org/v1/namespaces/default/pytorchjobs"


class Watcher:
    """One watch stream that timestamps each labelled write it receives."""

    def __init__(self) -> None:
        self.received: dict[int, float] = {}
        self.changed = asyncio.Event()

    async def run(
        self, session: aiohttp.ClientSession, rv: str, ready: asyncio.Event
    ) -> None:
        params = {"watch": "true", "resourceVersion": rv}
        async with session.get(PJ, params=params) as response:
            ready.set()
            async for raw in response.content:
                event = json.loads(raw)
                labels = event["object"]["metadata"].get("labels") or {}
                if "seq" in labels:
                    self.received[int(labels["seq"])] = time.perf_counter()
                    self.changed.set()


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    index = min(len(ordered) - 1, round(fraction * (len(ordered) - 1)))
    return ordered[index]


async def start_server(kubeconfig: Path) -> tuple[asyncio.subprocess.Process, str]:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "maestro_ml_async.testing",
        "--kubeconfig",
        str(kubeconfig),
        stdout=asyncio.subprocess.PIPE,
    )
    assert process.stdout is not None
    server = ""
    while not server:
        line = (await asyncio.wait_for(process.stdout.readline(), 20)).decode()
        if not line:
            raise RuntimeError("the fake cluster exited before it printed its URL")
        if line.startswith("server="):
            server = line.strip().removeprefix("server=")
    return process, server


async def measure(
    session: aiohttp.ClientSession, watchers_count: int, writes: int, first_seq: int
) -> dict[str, float]:
    async with session.get(PJ) as response:
        rv = (await response.json())["metadata"]["resourceVersion"]
    watchers = [Watcher() for _ in range(watchers_count)]
    readies = [asyncio.Event() for _ in watchers]
    tasks = [
        asyncio.create_task(w.run(session, rv, ready))
        for w, ready in zip(watchers, readies, strict=True)
    ]
    await asyncio.gather(*(ready.wait() for ready in readies))
    await asyncio.sleep(0.2)

    latencies: list[float] = []
    fan_out: list[float] = []
    headers = {"Content-Type": "application/merge-patch+json"}
    for seq in range(first_seq, first_seq + writes):
        patch = json.dumps({"metadata": {"labels": {"seq": str(seq)}}})
        sent = time.perf_counter()
        async with session.patch(f"{PJ}/bench", data=patch, headers=headers) as answer:
            answer.raise_for_status()
            await answer.read()
        for watcher in watchers:
            while seq not in watcher.received:
                watcher.changed.clear()
                await asyncio.wait_for(watcher.changed.wait(), 10)
        times = [watcher.received[seq] - sent for watcher in watchers]
        latencies += times
        fan_out.append(max(times))

    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    return {
        "median_ms": statistics.median(latencies) * 1000,
        "p99_ms": percentile(latencies, 0.99) * 1000,
        "last_watcher_median_ms": statistics.median(fan_out) * 1000,
    }


async def main(writes: int, sizes: list[int]) -> None:
    folder = tempfile.mkdtemp(prefix="fake-watch-bench-")
    process, server = await start_server(Path(folder) / "kubeconfig")
    try:
        config = json.loads((Path(folder) / "kubeconfig").read_text())
        token = config["users"][0]["user"]["token"]
        connector = aiohttp.TCPConnector(limit=0)
        headers = {"Authorization": f"Bearer {token}"}
        async with aiohttp.ClientSession(
            server, headers=headers, connector=connector
        ) as session:
            job = {"metadata": {"name": "bench"}, "spec": {}}
            async with session.post(PJ, json=job) as response:
                response.raise_for_status()
            print(f"python {platform.python_version()}, {os.cpu_count()} CPUs")
            print(f"{'watchers':>8} {'median ms':>10} {'p99 ms':>8} {'last ms':>8}")
            seq = 0
            for size in sizes:
                result = await measure(session, size, writes, seq)
                seq += writes
                print(
                    f"{size:>8} {result['median_ms']:>10.2f} {result['p99_ms']:>8.2f} "
                    f"{result['last_watcher_median_ms']:>8.2f}"
                )
    finally:
        process.send_signal(signal.SIGTERM)
        await process.wait()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--writes", type=int, default=50, help="patches per size")
    parser.add_argument(
        "--sizes", default="1,100,500", help="comma-separated watcher counts"
    )
    arguments = parser.parse_args()
    counts = [int(part) for part in arguments.sizes.split(",")]
    asyncio.run(main(arguments.writes, counts))
