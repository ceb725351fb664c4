"""Bulk reads and writes on a real MLflow server: the SDK against the alternatives.

The script starts its own ``mlflow server`` on 127.0.0.1 (SQLite store in a
temporary folder, job runner off), creates the models it needs, and runs each
contestant on the same workload:

- reads: ``--calls`` ``registered-models/get`` calls over ``--models`` models;
- writes: ``--calls`` ``registered-models/set-tag`` calls.

Contestants:

- ``mlflow seq``: `mlflow.MlflowClient` called in a loop;
- ``mlflow t16`` / ``mlflow t32``: the same client on 16 / 32 threads;
- ``httpx ka``: raw `httpx.AsyncClient`, keep-alive on, 16 requests in flight;
- ``httpx no-ka``: the same with keep-alive off (a new connection per request);
- ``sdk``: `AsyncMaestroClient.bulk_map` over ``client.models.get`` /
  ``client.models.set_tag`` with ``max_concurrency=16``;
- ``sdk no-ka``: the same on an httpx transport that keeps no idle
  connection (passed as ``http_transport``), a diagnostic: the SDK's
  configuration has no keep-alive switch.

On 2 cores the server, not the client, is the bottleneck, so how the client's
connections spread over uvicorn's worker processes decides throughput. The
``workers`` column shows the CPU seconds each server worker spent during the
contestant's run, read from ``/proc`` (Linux only), which shows a pool that sends
all requests to one worker.

Targets: SDK reads at least the best other contestant; SDK writes at least 1.5x
``mlflow t16``.

Usage::

    python benchmarks/mlflow_bulk.py [--server multi|single|both] [--calls 500]

``multi`` is ``mlflow server``'s default worker count (4 in MLflow 3.17),
``single`` is ``--workers 1``. Each server mode stops starting contestants
``--deadline`` seconds (default 90) after the server is ready and marks the
ones it skipped.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import time
import uuid
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from maestro_ml_async import AsyncMaestroClient
from maestro_ml_async.testing.mlflow_server import LocalMlflowServer

API = "/api/2.0/mlflow"
CONCURRENCY = 16
WRITE_TARGET = 1.5


class BenchmarkServer(LocalMlflowServer):
    """`LocalMlflowServer` with a configurable uvicorn worker count.

    Args:
        workers: Worker processes; None keeps ``mlflow server``'s default.
    """

    def __init__(self, workers: int | None) -> None:
        super().__init__()
        self.workers = workers

    def command(self) -> list[str]:
        """Build the command line, with ``--workers`` replaced or removed."""
        command = super().command()
        index = command.index("--workers")
        if self.workers is None:
            del command[index : index + 2]
        else:
            command[index + 1] = str(self.workers)
        return command


def descendant_pids(root: int) -> list[int]:
    """Return the PIDs of every process below `root` (Linux ``/proc``)."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        parent = int(stat.rsplit(")", 1)[1].split()[1])
        children.setdefault(parent, []).append(int(entry.name))
    found: list[int] = []
    pending = [root]
    while pending:
        pid = pending.pop()
        for child in children.get(pid, []):
            found.append(child)
            pending.append(child)
    return found


def cpu_seconds(pids: Sequence[int]) -> dict[int, float]:
    """Return user plus system CPU seconds of each process that still exists."""
    ticks = os.sysconf("SC_CLK_TCK")
    usage: dict[int, float] = {}
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        usage[pid] = (int(fields[11]) + int(fields[12])) / ticks
    return usage


@dataclass
class Result:
    """One contestant's run on one workload."""

    name: str
    seconds: float = 0.0
    calls: int = 0
    errors: int = 0
    workers: list[float] = field(default_factory=list)
    skipped: bool = False

    @property
    def rate(self) -> float:
        """Successful calls per second."""
        return (self.calls - self.errors) / self.seconds if self.seconds else 0.0


class Bench:
    """Runs the contestants against one server and collects `Result` rows."""

    def __init__(self, server: BenchmarkServer, calls: int, deadline: float) -> None:
        self.server = server
        self.url = server.url
        self.calls = calls
        self.deadline = deadline
        self.names: list[str] = []
        assert server.process is not None
        self.server_pid = server.process.pid

    def worker_usage(self) -> dict[int, float]:
        """CPU seconds of each server process so far."""
        return cpu_seconds([*descendant_pids(self.server_pid), self.server_pid])

    def measure(self, name: str, run: Callable[[], int]) -> Result:
        """Time `run` (which returns its error count) unless past the deadline."""
        if time.monotonic() > self.deadline:
            return Result(name, skipped=True)
        before = self.worker_usage()
        started = time.perf_counter()
        errors = run()
        seconds = time.perf_counter() - started
        after = self.worker_usage()
        spent = sorted(
            (after[pid] - before.get(pid, 0.0) for pid in after), reverse=True
        )
        busy = [value for value in spent if value >= 0.05]
        return Result(name, seconds, self.calls, errors, busy)


def create_models(url: str, count: int) -> list[str]:
    """Create `count` registered models with unique names; return the names."""
    prefix = f"bench-{uuid.uuid4().hex[:8]}"
    names = [f"{prefix}-{index:03d}" for index in range(count)]
    with httpx.Client(base_url=url, timeout=30) as http:
        for name in names:
            response = http.post(f"{API}/registered-models/create", json={"name": name})
            response.raise_for_status()
    return names


def run_mlflow(
    url: str, calls: list[tuple[str, str]], threads: int, write: bool
) -> int:
    """Send the calls through `mlflow.MlflowClient`, sequential when threads is 1."""
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=url, registry_uri=url)

    def one(call: tuple[str, str]) -> bool:
        name, key = call
        try:
            if write:
                client.set_registered_model_tag(name, key, "v")
            else:
                client.get_registered_model(name)
        except Exception:
            return False
        return True

    if threads == 1:
        return sum(not one(call) for call in calls)
    with ThreadPoolExecutor(threads) as pool:
        return sum(not ok for ok in pool.map(one, calls))


async def run_httpx(
    url: str, calls: list[tuple[str, str]], keepalive: bool, write: bool
) -> int:
    """Send the calls with raw httpx, `CONCURRENCY` in flight."""
    limits = httpx.Limits(
        max_connections=CONCURRENCY,
        max_keepalive_connections=CONCURRENCY if keepalive else 0,
    )
    gate = asyncio.Semaphore(CONCURRENCY)
    async with httpx.AsyncClient(base_url=url, limits=limits, timeout=60) as http:

        async def one(call: tuple[str, str]) -> bool:
            name, key = call
            async with gate:
                try:
                    if write:
                        response = await http.post(
                            f"{API}/registered-models/set-tag",
                            json={"name": name, "key": key, "value": "v"},
                        )
                    else:
                        response = await http.get(
                            f"{API}/registered-models/get", params={"name": name}
                        )
                    response.json()
                except httpx.HTTPError:
                    return False
                return response.is_success

        outcomes = await asyncio.gather(*(one(call) for call in calls))
    return sum(not ok for ok in outcomes)


async def run_sdk(
    url: str, calls: list[tuple[str, str]], write: bool, keepalive: bool = True
) -> int:
    """Send the calls through the SDK's bulk_map at `CONCURRENCY`.

    With `keepalive` False, the client gets an httpx transport that keeps no
    idle connection, which shows what a keep-alive switch in the configuration
    would change.
    """
    transport = None
    if not keepalive:
        limits = httpx.Limits(max_connections=CONCURRENCY, max_keepalive_connections=0)
        transport = httpx.AsyncHTTPTransport(limits=limits)
    async with AsyncMaestroClient(
        mlflow_uri=url, max_concurrency=CONCURRENCY, http_transport=transport
    ) as client:

        async def one(call: tuple[str, str]) -> Any:
            name, key = call
            if write:
                return await client.models.set_tag(name, key, "v")
            return await client.models.get(name)

        results = await client.bulk_map(one, calls, max_concurrency=CONCURRENCY)
    for error in results.errors[:3]:
        print(f"  sdk error: {type(error).__name__}: {error}", file=sys.stderr)
    return len(results.errors)


def run_workload(bench: Bench, write: bool) -> list[Result]:
    """Run every contestant on the read or the write workload."""
    names = bench.names
    label = "w" if write else "r"
    calls = [
        (names[index % len(names)], f"bench.{label}{index}")
        for index in range(bench.calls)
    ]
    url = bench.url
    contestants: list[tuple[str, Callable[[], int]]] = [
        ("mlflow seq", lambda: run_mlflow(url, calls, 1, write)),
        ("mlflow t16", lambda: run_mlflow(url, calls, 16, write)),
        ("mlflow t32", lambda: run_mlflow(url, calls, 32, write)),
        ("httpx ka", lambda: asyncio.run(run_httpx(url, calls, True, write))),
        ("httpx no-ka", lambda: asyncio.run(run_httpx(url, calls, False, write))),
        ("sdk", lambda: asyncio.run(run_sdk(url, calls, write))),
        ("sdk no-ka", lambda: asyncio.run(run_sdk(url, calls, write, False))),
    ]
    results = []
    for name, run in contestants:
        result = bench.measure(name, run)
        results.append(result)
        print_row(result)
    return results


def print_row(result: Result) -> None:
    """Print one result line as soon as it is known."""
    if result.skipped:
        print(f"  {result.name:<12} skipped (deadline)")
        return
    workers = "/".join(f"{value:.1f}" for value in result.workers)
    print(
        f"  {result.name:<12}{result.rate:>9.1f}/s{result.seconds:>8.2f} s"
        f"{result.errors:>7} err   server CPU s by process: {workers}",
        flush=True,
    )


def verdicts(reads: list[Result], writes: list[Result]) -> list[str]:
    """Compare the SDK with the others and state whether each target is met."""
    lines = []
    by_name = {result.name: result for result in reads}
    sdk = by_name["sdk"]
    others = [r for r in reads if not r.name.startswith("sdk") and not r.skipped]
    if not sdk.skipped and others:
        best = max(others, key=lambda result: result.rate)
        ratio = sdk.rate / best.rate
        verdict = "met" if ratio >= 1.0 else "MISSED"
        lines.append(
            f"reads: sdk {sdk.rate:.1f}/s = {ratio:.2f}x best other "
            f"({best.name} {best.rate:.1f}/s): {verdict}"
        )
        for other in others:
            lines.append(f"  sdk / {other.name}: {sdk.rate / other.rate:.2f}x")
    write_by_name = {result.name: result for result in writes}
    sdk_w = write_by_name["sdk"]
    t16 = write_by_name["mlflow t16"]
    if not sdk_w.skipped and not t16.skipped:
        ratio = sdk_w.rate / t16.rate
        verdict = "met" if ratio >= WRITE_TARGET else "MISSED"
        lines.append(
            f"writes: sdk {sdk_w.rate:.1f}/s = {ratio:.2f}x mlflow t16 "
            f"({t16.rate:.1f}/s), target {WRITE_TARGET}x: {verdict}"
        )
        for other in writes:
            if not other.name.startswith("sdk") and not other.skipped:
                lines.append(f"  sdk / {other.name}: {sdk_w.rate / other.rate:.2f}x")
    return lines


def bench_server(
    workers: int | None, args: argparse.Namespace, deadline: float
) -> bool:
    """Start one server, run both workloads, print the verdicts; True if met."""
    mode = "default workers" if workers is None else f"--workers {workers}"
    print(f"== mlflow server ({mode}), {args.calls} calls, {CONCURRENCY} in flight")
    started = time.perf_counter()
    server = BenchmarkServer(workers)
    with server:
        print(f"server ready in {time.perf_counter() - started:.1f} s at {server.url}")
        bench = Bench(server, args.calls, time.monotonic() + deadline)
        bench.names = create_models(server.url, args.models)
        print(f"reads (registered-models/get over {args.models} models):")
        reads = run_workload(bench, write=False)
        print("writes (registered-models/set-tag):")
        writes = run_workload(bench, write=True)
    lines = verdicts(reads, writes)
    for line in lines:
        print(line)
    return bool(lines) and all("MISSED" not in line for line in lines)


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark; return 1 when a target is missed."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--server",
        choices=("multi", "single", "both"),
        default="multi",
        help="server worker mode: default worker count, one worker, or both",
    )
    parser.add_argument("--calls", type=int, default=500, help="calls per workload")
    parser.add_argument("--models", type=int, default=50, help="models to create")
    parser.add_argument(
        "--deadline",
        type=float,
        default=90.0,
        help="seconds per server mode before the rest is skipped",
    )
    args = parser.parse_args(argv)

    import mlflow  # noqa: F401  (loaded once here, outside the timed runs)

    load = ", ".join(f"{value:.2f}" for value in os.getloadavg())
    print(f"load average before the run (1, 5, 15 min): {load}")

    choices: dict[str, list[int | None]] = {
        "multi": [None],
        "single": [1],
        "both": [None, 1],
    }
    modes = choices[args.server]
    met = True
    for workers in modes:
        met = bench_server(workers, args, args.deadline) and met
    return 0 if met else 1


if __name__ == "__main__":
    sys.exit(main())
