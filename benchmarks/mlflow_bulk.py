"""Bulk reads and writes on a real MLflow server: the SDK against the alternatives.

The script starts its own ``mlflow server`` on 127.0.0.1 (SQLite store in a
temporary folder, job runner off), creates the models it needs, and runs each
contestant on the same workload:

- reads: ``--calls`` ``registered-models/get`` calls over ``--models`` models;
- writes: ``--calls`` ``registered-models/set-tag`` calls over another
  ``--models`` models, so the tags never grow the read responses.

Contestants:

- ``mlflow seq``: `mlflow.MlflowClient` called in a loop;
- ``mlflow t16`` / ``mlflow t32``: the same client on 16 / 32 threads;
- ``httpx ka``: raw `httpx.AsyncClient`, keep-alive on, 16 requests in flight;
- ``httpx no-ka``: the same with keep-alive off (a new connection per request);
- ``sdk``: `AsyncMaestroClient.bulk_map` over ``client.models.get`` /
  ``client.models.set_tag`` with ``max_concurrency=16`` and the configured
  ``requests_per_connection`` (the default, or
  ``MAESTRO_ML_REQUESTS_PER_CONNECTION`` to try another value);
- ``sdk no-recycle``: the same with ``requests_per_connection=0``, so every
  connection stays open for the whole run.

``requests_per_connection=1`` closes the connection after every request, like
``httpx no-ka``. ``--requests-per-connection 0,10,20`` replaces the contestants
with the SDK alone, once per value (``sdk n=0``, ``sdk n=10``, ...), to compare
values. That mode prints the medians but no verdict.

On 2 cores the server, not the client, is the bottleneck, so how the client's
connections spread over uvicorn's worker processes decides throughput. The
``workers`` column shows the CPU seconds each server worker spent during the
contestant's run, read from ``/proc`` (Linux only), which shows a pool that sends
all requests to one worker.

Before the first round, one pass of raw httpx without keep-alive reads each
model a few times, so every server worker has served requests before the
first timed contestant. Then ``--rounds`` rounds (default 3) each run every
contestant once, reads then writes. Each round starts a further
``1/rounds`` of the way down the list of contestants, so that load from other
processes on the machine hits every contestant alike. The verdicts compare
medians over the rounds.

Targets: SDK reads at least the best other contestant; SDK writes at least 1.5x
``mlflow t16``.

Usage::

    python benchmarks/mlflow_bulk.py [--server multi|single|both] [--calls 500]
        [--rounds 3] [--deadline SECONDS] [--requests-per-connection 0,10,20]

``multi`` is ``mlflow server``'s default worker count (4 in MLflow 3.17),
``single`` is ``--workers 1``. Each server mode stops starting contestants
``--deadline`` seconds (default 90 per round) after the server is ready and
marks the ones it skipped. Medians then use the rounds that ran.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import time
import uuid
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from maestro_ml_async import AsyncMaestroClient, Config
from maestro_ml_async.testing.mlflow_server import LocalMlflowServer

API = "/api/2.0/mlflow"
CONCURRENCY = 16
WRITE_TARGET = 1.5
DEADLINE_PER_ROUND = 90.0


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

    def __init__(
        self,
        server: BenchmarkServer,
        calls: int,
        deadline: float,
        sdk_values: list[int] | None = None,
    ) -> None:
        self.server = server
        self.sdk_values = sdk_values
        self.url = server.url
        self.calls = calls
        self.deadline = deadline
        self.read_names: list[str] = []
        self.write_names: list[str] = []
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
    url: str,
    calls: list[tuple[str, str]],
    write: bool,
    requests_per_connection: int | None = None,
) -> int:
    """Send the calls through the SDK's bulk_map at `CONCURRENCY`.

    `requests_per_connection` None keeps the configured value.
    """
    async with AsyncMaestroClient(
        mlflow_uri=url,
        max_concurrency=CONCURRENCY,
        requests_per_connection=requests_per_connection,
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


Contestant = tuple[str, Callable[[], int]]


def workload_calls(bench: Bench, write: bool) -> list[tuple[str, str]]:
    """Return the (model name, tag key) pairs of the read or the write workload."""
    names = bench.write_names if write else bench.read_names
    label = "w" if write else "r"
    return [
        (names[index % len(names)], f"bench.{label}{index}")
        for index in range(bench.calls)
    ]


def contestants(bench: Bench, write: bool) -> list[Contestant]:
    """Return every contestant of the read or the write workload, in table order."""
    calls = workload_calls(bench, write)
    url = bench.url
    if bench.sdk_values is not None:
        return [
            (f"sdk n={value}", _sdk_run(url, calls, write, value))
            for value in bench.sdk_values
        ]
    return [
        ("mlflow seq", lambda: run_mlflow(url, calls, 1, write)),
        ("mlflow t16", lambda: run_mlflow(url, calls, 16, write)),
        ("mlflow t32", lambda: run_mlflow(url, calls, 32, write)),
        ("httpx ka", lambda: asyncio.run(run_httpx(url, calls, True, write))),
        ("httpx no-ka", lambda: asyncio.run(run_httpx(url, calls, False, write))),
        ("sdk", lambda: asyncio.run(run_sdk(url, calls, write))),
        (
            "sdk no-recycle",
            lambda: asyncio.run(run_sdk(url, calls, write, 0)),
        ),
    ]


def _sdk_run(
    url: str, calls: list[tuple[str, str]], write: bool, value: int
) -> Callable[[], int]:
    # A function per value, because a lambda in the comprehension would see
    # only the last value.
    return lambda: asyncio.run(run_sdk(url, calls, write, value))


def rotated(items: list[Contestant], round_index: int, rounds: int) -> list[Contestant]:
    """Return `items` rotated so that each round starts further down the list."""
    offset = (round_index * len(items) // max(rounds, 1)) % len(items)
    return items[offset:] + items[:offset]


def run_round(bench: Bench, write: bool, round_index: int, rounds: int) -> list[Result]:
    """Run every contestant once on one workload, in this round's order."""
    results = []
    for name, run in rotated(contestants(bench, write), round_index, rounds):
        result = bench.measure(name, run)
        results.append(result)
        print_row(result, round_index)
    return results


def print_row(result: Result, round_index: int) -> None:
    """Print one result line as soon as it is known."""
    prefix = f"  round {round_index + 1} {result.name:<15}"
    if result.skipped:
        print(f"{prefix}skipped (deadline)", flush=True)
        return
    workers = "/".join(f"{value:.1f}" for value in result.workers)
    print(
        f"{prefix}{result.rate:>9.1f}/s{result.seconds:>8.2f} s"
        f"{result.errors:>5} err   server CPU s by process: {workers}",
        flush=True,
    )


@dataclass
class Summary:
    """One contestant's runs on one workload, over all rounds."""

    name: str
    rates: list[float]

    @property
    def median(self) -> float:
        """Median of the per-round rates, or 0.0 when every round was skipped."""
        return statistics.median(self.rates) if self.rates else 0.0


def summarize(results: list[Result]) -> dict[str, Summary]:
    """Group the rounds' results by contestant, in first-seen order."""
    summaries: dict[str, Summary] = {}
    for result in results:
        summary = summaries.setdefault(result.name, Summary(result.name, []))
        if not result.skipped:
            summary.rates.append(result.rate)
    return summaries


def print_summary(title: str, summaries: dict[str, Summary], rounds: int) -> None:
    """Print the median, range and round count of each contestant."""
    print(f"{title}, median over rounds (min-max):")
    for summary in summaries.values():
        if not summary.rates:
            print(f"  {summary.name:<15}skipped in every round")
            continue
        spread = f"{min(summary.rates):.1f}-{max(summary.rates):.1f}"
        print(
            f"  {summary.name:<15}{summary.median:>9.1f}/s  ({spread}, "
            f"{len(summary.rates)} of {rounds} rounds)"
        )


def verdicts(reads: dict[str, Summary], writes: dict[str, Summary]) -> list[str]:
    """Compare the SDK's medians with the others' and state each target's result."""
    lines = []
    sdk = reads["sdk"]
    others = [
        summary
        for summary in reads.values()
        if not summary.name.startswith("sdk") and summary.rates
    ]
    if sdk.rates and others:
        best = max(others, key=lambda summary: summary.median)
        ratio = sdk.median / best.median
        verdict = "met" if ratio >= 1.0 else "MISSED"
        lines.append(
            f"reads: sdk {sdk.median:.1f}/s = {ratio:.2f}x best other "
            f"({best.name} {best.median:.1f}/s): {verdict}"
        )
        for other in [*others, *_sdk_variants(reads)]:
            lines.append(f"  sdk / {other.name}: {sdk.median / other.median:.2f}x")
    sdk_w = writes["sdk"]
    t16 = writes["mlflow t16"]
    if sdk_w.rates and t16.rates:
        ratio = sdk_w.median / t16.median
        verdict = "met" if ratio >= WRITE_TARGET else "MISSED"
        lines.append(
            f"writes: sdk {sdk_w.median:.1f}/s = {ratio:.2f}x mlflow t16 "
            f"({t16.median:.1f}/s), target {WRITE_TARGET}x: {verdict}"
        )
        for other in writes.values():
            if other.name != "sdk" and other.rates:
                lines.append(
                    f"  sdk / {other.name}: {sdk_w.median / other.median:.2f}x"
                )
    return lines


def _sdk_variants(summaries: dict[str, Summary]) -> list[Summary]:
    return [
        summary
        for summary in summaries.values()
        if summary.name.startswith("sdk ") and summary.rates
    ]


def warm_up(bench: Bench) -> None:
    """Read every model a few times, over a new connection per request."""
    calls = workload_calls(bench, write=False)[: 4 * len(bench.read_names)]
    started = time.perf_counter()
    errors = asyncio.run(run_httpx(bench.url, calls, keepalive=False, write=False))
    seconds = time.perf_counter() - started
    print(f"warm-up: {len(calls)} get calls in {seconds:.1f} s, {errors} errors")


def bench_server(
    workers: int | None, args: argparse.Namespace, deadline: float
) -> bool:
    """Start one server, run the rounds and print the verdicts.

    Returns True when every target is met, and always in the
    ``--requests-per-connection`` mode, which has no targets.
    """
    mode = "default workers" if workers is None else f"--workers {workers}"
    print(
        f"== mlflow server ({mode}), {args.calls} calls, {CONCURRENCY} in flight, "
        f"{args.rounds} rounds"
    )
    started = time.perf_counter()
    server = BenchmarkServer(workers)
    reads: list[Result] = []
    writes: list[Result] = []
    with server:
        print(f"server ready in {time.perf_counter() - started:.1f} s at {server.url}")
        bench = Bench(server, args.calls, time.monotonic() + deadline, args.sdk_values)
        bench.read_names = create_models(server.url, args.models)
        bench.write_names = create_models(server.url, args.models)
        warm_up(bench)
        for round_index in range(args.rounds):
            print(f"reads (registered-models/get over {args.models} models):")
            reads += run_round(bench, False, round_index, args.rounds)
            print("writes (registered-models/set-tag):")
            writes += run_round(bench, True, round_index, args.rounds)
    read_summaries = summarize(reads)
    write_summaries = summarize(writes)
    print_summary("reads", read_summaries, args.rounds)
    print_summary("writes", write_summaries, args.rounds)
    load = ", ".join(f"{value:.2f}" for value in os.getloadavg())
    print(f"load average after the rounds (1, 5, 15 min): {load}")
    if args.sdk_values is not None:
        return True
    lines = verdicts(read_summaries, write_summaries)
    for line in lines:
        print(line)
    return bool(lines) and all("MISSED" not in line for line in lines)


def parse_values(text: str) -> list[int]:
    """Parse the ``--requests-per-connection`` list of whole numbers, 0 or more."""
    try:
        values = [int(part) for part in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected comma-separated whole numbers such as 0,10,20, got {text!r}"
        ) from None
    if any(value < 0 for value in values):
        raise argparse.ArgumentTypeError(f"values must be 0 or more, got {text!r}")
    return values


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
        "--rounds",
        type=int,
        default=3,
        help="number of rounds, each running every contestant once in rotated order",
    )
    parser.add_argument(
        "--deadline",
        type=float,
        default=None,
        help=(
            "seconds per server mode before the rest is skipped "
            f"(default {DEADLINE_PER_ROUND:.0f} per round)"
        ),
    )
    parser.add_argument(
        "--requests-per-connection",
        dest="sdk_values",
        type=parse_values,
        default=None,
        metavar="LIST",
        help=(
            "comma-separated requests_per_connection values to compare: runs "
            "only the SDK, once per value, and prints no verdict"
        ),
    )
    args = parser.parse_args(argv)
    if args.rounds < 1:
        parser.error(f"--rounds must be at least 1, got {args.rounds}")
    deadline = args.deadline
    if deadline is None:
        deadline = DEADLINE_PER_ROUND * args.rounds

    import mlflow  # noqa: F401  (loaded once here, outside the timed runs)

    load = ", ".join(f"{value:.2f}" for value in os.getloadavg())
    print(f"load average before the run (1, 5, 15 min): {load}")
    if args.sdk_values is None:
        recycle = Config().requests_per_connection
        print(f"sdk contestant: requests_per_connection={recycle}")

    choices: dict[str, list[int | None]] = {
        "multi": [None],
        "single": [1],
        "both": [None, 1],
    }
    modes = choices[args.server]
    met = True
    for workers in modes:
        met = bench_server(workers, args, deadline) and met
    return 0 if met else 1


if __name__ == "__main__":
    sys.exit(main())
