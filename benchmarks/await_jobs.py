"""Await many training jobs: the SDK's shared watch against per-job polling.

The script starts the project's fake Kubernetes API server on 127.0.0.1 with
its controllers off, so only the script changes job statuses. It creates
``--jobs`` PyTorchJobs for each contestant and then:

1. starts one waiter per job;
2. measures, with `tracemalloc`, the memory the waiters hold once they all
   wait (per job);
3. marks the jobs Succeeded one by one, evenly spread over ``--window``
   seconds, by writing their status into the fake's store, and records when
   each write happened;
4. records when each waiter returns, and reports the time from the status
   write to the return (median and p99), the watch connections opened and
   the API requests sent while waiting.

Contestants:

- ``sdk``: ``client.training.wait_for_job(name)`` for every job, which shares
  one watch connection per resource type and namespace.
- ``polling``: what the Kubeflow training SDK's
  ``TrainingClient.wait_for_job_conditions`` does, whose ``polling_interval``
  defaults to 15 s. It GETs the job at a fixed interval until the job has the
  Succeeded condition. Here it uses kubernetes-asyncio, and the interval is
  scaled down to ``--poll-interval`` (1.5 s by default, 10x the default rate)
  so the run ends in seconds. Polling at the real 15 s makes the wake-up delay
  about 10x larger and the request rate about 10x smaller.

The fake server runs in the same process and event loop as the waiters, so the
latencies include the server's own work. Usage::

    python benchmarks/await_jobs.py [--jobs 1000] [--poll-interval 1.5] [--window 10]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import time
import tracemalloc
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from maestro_ml_async import AsyncMaestroClient
from maestro_ml_async.testing import RESOURCE_TYPES, FakeCluster

NAMESPACE = "ml-platform"
PYTORCHJOBS = RESOURCE_TYPES["pytorchjobs.kubeflow.org"]


@dataclass
class Outcome:
    """Figures of one contestant."""

    name: str
    jobs: int
    bytes_per_job: float = 0.0
    latencies: list[float] = field(default_factory=list)
    watch_connections: int = 0
    requests_waiting: int = 0
    requests_setup: int = 0
    seconds: float = 0.0
    errors: int = 0


def succeeded_status() -> dict[str, Any]:
    """Return a PyTorchJob status with a true Succeeded condition."""
    now = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    return {
        "conditions": [
            {"type": "Created", "status": "True", "lastTransitionTime": now},
            {"type": "Running", "status": "False", "lastTransitionTime": now},
            {
                "type": "Succeeded",
                "status": "True",
                "reason": "PyTorchJobSucceeded",
                "lastTransitionTime": now,
            },
        ],
        "replicaStatuses": {"Master": {"succeeded": 1}},
        "startTime": now,
        "completionTime": now,
    }


async def create_jobs(client: AsyncMaestroClient, prefix: str, count: int) -> list[str]:
    """Submit `count` PyTorchJobs through the SDK; return their names."""
    names = [f"{prefix}-{index:04d}" for index in range(count)]

    async def submit(name: str) -> None:
        await client.training.submit_job(
            name, "pytorch", "python:3.11-slim", command=["python", "-c", "pass"]
        )

    await client.bulk_map(submit, names, max_concurrency=32, raise_on_error=True)
    return names


async def measure(
    cluster: FakeCluster,
    outcome: Outcome,
    names: list[str],
    start_waiter: Callable[[str], Awaitable[None]],
    spacing: float,
    settle: Callable[[], Awaitable[None]],
) -> None:
    """Start the waiters, measure memory, write the statuses, collect latencies."""
    written: dict[str, float] = {}
    woken: dict[str, float] = {}

    async def waiter(name: str) -> None:
        await start_waiter(name)
        woken[name] = time.perf_counter()

    stats = cluster.stats
    requests_before = stats.requests_total
    watches_before = stats.watch_connections_total
    tracemalloc.start()
    baseline = tracemalloc.get_traced_memory()[0]
    tasks = [asyncio.create_task(waiter(name)) for name in names]
    await settle()
    held = tracemalloc.get_traced_memory()[0] - baseline
    tracemalloc.stop()
    outcome.bytes_per_job = held / len(names)
    requests_ready = stats.requests_total
    outcome.requests_setup = requests_ready - requests_before

    started = time.perf_counter()
    for name in names:
        written[name] = time.perf_counter()
        cluster.store.update_status(PYTORCHJOBS, NAMESPACE, name, succeeded_status())
        await asyncio.sleep(spacing)
    results = await asyncio.gather(*tasks, return_exceptions=True)
    outcome.seconds = time.perf_counter() - started
    outcome.errors = sum(isinstance(result, BaseException) for result in results)
    outcome.latencies = [woken[n] - written[n] for n in names if n in woken]
    outcome.requests_waiting = stats.requests_total - requests_ready
    outcome.watch_connections = stats.watch_connections_total - watches_before


async def run_sdk(
    cluster: FakeCluster, client: AsyncMaestroClient, args: Any
) -> Outcome:
    """Await every job with ``client.training.wait_for_job``."""
    names = await create_jobs(client, f"sdk-{uuid.uuid4().hex[:4]}", args.jobs)
    outcome = Outcome("sdk", len(names))

    async def wait(name: str) -> None:
        await client.training.wait_for_job(name, timeout=120)

    async def settle() -> None:
        # The waits first read their job, then follow the shared watch.
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            before = cluster.stats.requests_total
            await asyncio.sleep(0.5)
            idle = cluster.stats.requests_total == before
            if idle and cluster.stats.watch_connections_open > 0:
                return

    await measure(cluster, outcome, names, wait, args.spacing, settle)
    return outcome


async def run_polling(
    cluster: FakeCluster, client: AsyncMaestroClient, args: Any
) -> Outcome:
    """Await every job by GETting it every ``--poll-interval`` seconds."""
    from kubernetes_asyncio import client as kube_client
    from kubernetes_asyncio import config as kube_config

    names = await create_jobs(client, f"poll-{uuid.uuid4().hex[:4]}", args.jobs)
    outcome = Outcome("polling", len(names))
    configuration = kube_client.Configuration()
    await kube_config.load_kube_config(
        config_file=cluster.kubeconfig_path,
        context=cluster.context,
        client_configuration=configuration,
    )
    async with kube_client.ApiClient(configuration) as api:
        custom = kube_client.CustomObjectsApi(api)
        polled: set[str] = set()
        all_polled = asyncio.Event()

        async def poll(name: str) -> None:
            while True:
                job = await custom.get_namespaced_custom_object(
                    "kubeflow.org", "v1", NAMESPACE, "pytorchjobs", name
                )
                polled.add(name)
                if len(polled) == len(names):
                    all_polled.set()
                conditions = (job.get("status") or {}).get("conditions") or []
                if any(
                    c.get("type") == "Succeeded" and c.get("status") == "True"
                    for c in conditions
                ):
                    return
                await asyncio.sleep(args.poll_interval)

        async def settle() -> None:
            # Every poller has sent its first GET and sleeps until the next.
            await all_polled.wait()

        await measure(cluster, outcome, names, poll, args.spacing, settle)
    return outcome


def percentile(values: list[float], fraction: float) -> float:
    """Return the value below which `fraction` of the sorted values lie."""
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(fraction * (len(ordered) - 1))))
    return ordered[index]


def report(outcomes: list[Outcome]) -> None:
    """Print one row per contestant and the ratios polling / sdk."""
    header = (
        f"{'contestant':<10}{'jobs':>6}{'errors':>7}{'KiB/job':>9}{'median ms':>11}"
        f"{'p99 ms':>9}{'watches':>9}{'req setup':>10}{'req waiting':>12}"
        f"{'wait s':>8}"
    )
    print(header)
    for outcome in outcomes:
        latencies = outcome.latencies or [float("nan")]
        print(
            f"{outcome.name:<10}{outcome.jobs:>6}{outcome.errors:>7}"
            f"{outcome.bytes_per_job / 1024:>9.1f}"
            f"{statistics.median(latencies) * 1000:>11.1f}"
            f"{percentile(latencies, 0.99) * 1000:>9.1f}"
            f"{outcome.watch_connections:>9}{outcome.requests_setup:>10}"
            f"{outcome.requests_waiting:>12}{outcome.seconds:>8.1f}"
        )
    sdk, polling = outcomes
    if sdk.latencies and polling.latencies:
        ratio = statistics.median(polling.latencies) / statistics.median(sdk.latencies)
        print(f"median wake-up delay, polling / sdk: {ratio:.1f}x")
    if sdk.requests_waiting:
        ratio = polling.requests_waiting / sdk.requests_waiting
        print(f"requests while waiting, polling / sdk: {ratio:.1f}x")
    if sdk.bytes_per_job:
        ratio = polling.bytes_per_job / sdk.bytes_per_job
        print(f"memory per awaited job, polling / sdk: {ratio:.2f}x")


async def main_async(args: Any) -> list[Outcome]:
    """Run both contestants on one fake cluster."""
    async with FakeCluster(controllers=False, bookmark_interval=5.0) as cluster:
        async with AsyncMaestroClient(
            mlflow_uri="http://127.0.0.1:9",
            kube_config_path=cluster.kubeconfig_path,
            kube_context=cluster.context,
            namespace=NAMESPACE,
            max_concurrency=32,
        ) as client:
            sdk = await run_sdk(cluster, client, args)
            polling = await run_polling(cluster, client, args)
    return [sdk, polling]


def main(argv: list[str] | None = None) -> int:
    """Parse the options, run the benchmark and print the results."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=1000, help="jobs per contestant")
    parser.add_argument(
        "--poll-interval",
        type=float,
        default=1.5,
        help="seconds between GETs of one job by the polling contestant",
    )
    parser.add_argument(
        "--window",
        type=float,
        default=10.0,
        help="seconds over which the jobs finish, one status write at a time",
    )
    args = parser.parse_args(argv)
    args.spacing = args.window / args.jobs
    outcomes = asyncio.run(main_async(args))
    load = ", ".join(f"{value:.2f}" for value in os.getloadavg())
    print(f"load average before the run (1, 5, 15 min): {load}")
    report(outcomes)
    return 0 if all(outcome.errors == 0 for outcome in outcomes) else 1


if __name__ == "__main__":
    sys.exit(main())
