"""Polling engine behind `runs.watch_metrics`, `runs.watch_run` and `runs.watch_many`.

MLflow has no push API for runs, so watchers poll. Cost per poll:

* One request for the watched runs together: ``runs/get`` for a single run, one
  ``runs/search`` with an ``attributes.run_id IN (...)`` filter for several
  (more pages only beyond 1000 runs). The response contains each run's status
  and the latest point (value, timestamp, step) of every metric.
* For metric watchers, one ``metrics/get-history`` request (per 25,000 points)
  for each metric key whose latest point changed since the previous poll. No
  REST endpoint returns the new points of several keys at once:
  ``get-history`` takes one key, and ``get-history-bulk-interval`` samples, so
  it is not exact. A poll in which no metric changed costs one request.
* When a run reaches a terminal status (or is deleted), one last history read
  of every watched key of that run, which also finds points logged out of
  order.

Points are yielded exactly once: each watcher counts the points it has yielded
per key, (step, timestamp, value) as identity, and yields only the surplus of a
history read. Within one poll, points are yielded in (step, timestamp) order.
A point logged with a lower step than the key's latest point does not change
the latest point, so it is found only by the final read.
"""

from __future__ import annotations

import asyncio
import logging
from collections import Counter
from collections.abc import AsyncIterator, Collection, Sequence

from .._exceptions import (
    RateLimitedException,
    RunNotFoundException,
    ServerUnavailableException,
    TransportException,
    ValidationException,
)
from .._pagination import AsyncPager, Page, next_page_token
from .._transport import MlflowTransport
from .._validation import check_collection, check_poll_interval
from ..types.tracking import (
    Metric,
    Run,
    RunMetricUpdate,
    RunStatus,
    RunStatusChange,
    ViewType,
)
from ._poll_backoff import PollBackoff
from ._responses import parse_field, parse_items

__all__ = ["RunWatchEvent", "metric_history", "watch_runs"]

logger = logging.getLogger(__name__)

RunWatchEvent = RunStatusChange | RunMetricUpdate

MAX_HISTORY_PAGE = 25_000
_HISTORY_CONCURRENCY = 4

PointId = tuple[int, int, str]
_TRANSIENT = (TransportException, ServerUnavailableException, RateLimitedException)


def _point_id(metric: Metric) -> PointId:
    # repr() keeps NaN equal to itself and floats exact.
    return (metric.step, metric.timestamp_ms, repr(metric.value))


def metric_history(
    transport: MlflowTransport, run_id: str, key: str, *, page_size: int
) -> AsyncPager[Metric]:
    """Return every point of one metric of a run, page by page."""

    async def fetch(token: str | None) -> Page[Metric]:
        params: dict[str, object] = {
            "run_id": run_id,
            "metric_key": key,
            "max_results": page_size,
        }
        if token:
            params["page_token"] = token
        response = await transport.call(
            "GET",
            "metrics/get-history",
            params=params,
            not_found=RunNotFoundException,
        )
        items = parse_items(response, "metrics", Metric.model_validate)
        return Page(items, response.get("next_page_token"), response)

    return AsyncPager(fetch)


class _RunState:
    """The reporting state of one watcher for one run."""

    def __init__(self, run_id: str, keys: frozenset[str] | None) -> None:
        self.run_id = run_id
        self.keys = keys
        self.status: RunStatus | None = None
        self.latest: dict[str, PointId] = {}
        self.yielded: dict[str, Counter[PointId]] = {}
        self.done = False

    def watched(self, run: Run) -> dict[str, Metric]:
        latest = run.data.latest_metrics
        if self.keys is None:
            return latest
        return {key: value for key, value in latest.items() if key in self.keys}

    def reads_needed(self, run: Run) -> list[tuple[str, PointId]]:
        """Return the keys to read, with their latest point, for this snapshot.

        These are the keys whose latest point differs from the last one read,
        or every watched key once the run has ended. Nothing is recorded
        until `record_read` confirms the read.
        """
        needed = []
        final = _has_ended(run)
        for key, metric in sorted(self.watched(run).items()):
            point = _point_id(metric)
            if final or self.latest.get(key) != point:
                needed.append((key, point))
        return needed

    def record_read(
        self, key: str, point: PointId, history: Sequence[Metric]
    ) -> list[Metric]:
        """Record a successful history read and return its points not yet yielded."""
        self.latest[key] = point
        return self.new_points(key, history)

    def new_points(self, key: str, history: Sequence[Metric]) -> list[Metric]:
        """Points of a history read that were not yielded before."""
        seen = self.yielded.setdefault(key, Counter())
        remaining = Counter(seen)
        fresh = []
        for metric in history:
            point = _point_id(metric)
            if remaining[point] > 0:
                remaining[point] -= 1
                continue
            seen[point] += 1
            fresh.append(metric)
        return fresh


class _Snapshotter:
    """Fetches all watched runs in one request per poll."""

    def __init__(self, transport: MlflowTransport, run_ids: Sequence[str]) -> None:
        self._transport = transport
        self._run_ids = list(run_ids)
        self._experiment_ids: list[str] | None = None

    async def fetch(self) -> dict[str, Run]:
        if len(self._run_ids) == 1:
            run_id = self._run_ids[0]
            response = await self._transport.call(
                "GET",
                "runs/get",
                params={"run_id": run_id},
                not_found=RunNotFoundException,
            )
            return {run_id: parse_field(response, "run", Run.model_validate)}
        if self._experiment_ids is None:
            return await self._first_fetch()
        return await self._search()

    async def _first_fetch(self) -> dict[str, Run]:
        # runs/search needs experiment ids; the first poll learns them.
        runs: dict[str, Run] = {}
        for run_id in self._run_ids:
            response = await self._transport.call(
                "GET",
                "runs/get",
                params={"run_id": run_id},
                not_found=RunNotFoundException,
            )
            runs[run_id] = parse_field(response, "run", Run.model_validate)
        self._experiment_ids = sorted({r.info.experiment_id for r in runs.values()})
        return runs

    async def _search(self) -> dict[str, Run]:
        quoted = ", ".join(
            "'" + run_id.replace("'", "") + "'" for run_id in self._run_ids
        )
        body: dict[str, object] = {
            "experiment_ids": self._experiment_ids,
            "filter": f"attributes.run_id IN ({quoted})",
            "run_view_type": ViewType.ALL.value,
            "max_results": 1000,
        }
        runs: dict[str, Run] = {}
        token: str | None = None
        seen_tokens: set[str] = set()
        while True:
            if token:
                body["page_token"] = token
            response = await self._transport.call("POST", "runs/search", json=body)
            for run in parse_items(response, "runs", Run.model_validate):
                runs[run.run_id] = run
            token = next_page_token(response, seen_tokens)
            if token is None:
                break
        missing = [run_id for run_id in self._run_ids if run_id not in runs]
        if missing:
            raise RunNotFoundException(
                f"run {missing[0]!r} is no longer found by runs/search"
            )
        return runs


def _has_ended(run: Run) -> bool:
    # A deleted run keeps its status, which may stay RUNNING forever.
    return run.status.is_terminal or run.info.lifecycle_stage == "deleted"


def _check_watch_args(run_ids: Collection[str], poll_interval: float) -> list[str]:
    ids = list(dict.fromkeys(check_collection(run_ids, what="run_ids")))
    if not ids:
        raise ValidationException("run_ids must not be empty")
    for run_id in ids:
        if not isinstance(run_id, str) or not run_id.strip():
            raise ValidationException(f"invalid run id {run_id!r}")
    check_poll_interval(poll_interval)
    return ids


def _check_keys(keys: Collection[str] | None) -> frozenset[str] | None:
    """Return the watched metric keys as a set, taking a single string as one key."""
    if keys is None:
        return None
    if isinstance(keys, str):
        keys = [keys]
    checked = frozenset(check_collection(keys, what="keys"))
    for key in checked:
        if not isinstance(key, str) or not key:
            raise ValidationException(f"invalid metric key {key!r} in keys")
    return checked


async def _read_histories(
    transport: MlflowTransport, reads: list[tuple[_RunState, str]]
) -> list[list[Metric]]:
    limiter = asyncio.Semaphore(_HISTORY_CONCURRENCY)

    async def read(state: _RunState, key: str) -> list[Metric]:
        async with limiter:
            pager = metric_history(
                transport, state.run_id, key, page_size=MAX_HISTORY_PAGE
            )
            return await pager.to_list()

    return await asyncio.gather(*(read(state, key) for state, key in reads))


async def _metric_events(
    transport: MlflowTransport,
    states: dict[str, _RunState],
    runs: dict[str, Run],
    *,
    report: bool,
) -> list[RunMetricUpdate]:
    """Read the histories this snapshot calls for and return the new points.

    State changes only after every read succeeded, so a failed poll can be
    repeated without losing or repeating a point.
    """
    reads: list[tuple[_RunState, str, PointId]] = []
    for run_id, state in states.items():
        if not state.done:
            reads.extend(
                (state, key, point) for key, point in state.reads_needed(runs[run_id])
            )
    if not reads:
        return []
    histories = await _read_histories(transport, [(s, key) for s, key, _ in reads])
    events: list[RunMetricUpdate] = []
    for (state, key, point), history in zip(reads, histories, strict=True):
        for metric in state.record_read(key, point, history):
            events.append(RunMetricUpdate(run_id=state.run_id, metric=metric))
    if not report:
        return []
    events.sort(key=lambda e: (e.run_id, e.metric.step, e.metric.timestamp_ms))
    return events


async def watch_runs(
    transport: MlflowTransport,
    run_ids: Collection[str],
    *,
    keys: Collection[str] | None = None,
    poll_interval: float = 1.0,
    metrics: bool = True,
    statuses: bool = True,
    include_existing: bool = True,
) -> AsyncIterator[RunWatchEvent]:
    """Poll runs and yield their status changes and new metric points.

    Ends after the poll in which the last run is seen in a terminal status or
    deleted. With `include_existing` False, points logged before the first
    poll count as already seen and are not yielded. A poll that still fails
    with a connection error, a 5xx or a 429 after the transport's retries is
    logged and repeated, after a delay that doubles with each failure in a
    row (see `PollBackoff`).
    """
    ids = _check_watch_args(run_ids, poll_interval)
    key_set = _check_keys(keys)
    backoff = PollBackoff(poll_interval, f"run watch poll of {ids}", logger)
    states = {run_id: _RunState(run_id, key_set) for run_id in ids}
    snapshotter = _Snapshotter(transport, ids)
    first = True
    while True:
        try:
            runs = await snapshotter.fetch()
            points: list[RunMetricUpdate] = []
            if metrics:
                report = include_existing or not first
                points = await _metric_events(transport, states, runs, report=report)
        except _TRANSIENT as exc:
            await asyncio.sleep(backoff.failed(exc))
            continue
        backoff.succeeded()
        for event in points:
            yield event
        for run_id, state in states.items():
            if state.done:
                continue
            run = runs[run_id]
            if run.status != state.status:
                old, state.status = state.status, run.status
                if statuses:
                    yield RunStatusChange(
                        run_id=run_id, old_status=old, status=run.status, run=run
                    )
            if _has_ended(run):
                state.done = True
                logger.debug("run %s reached %s; watch of it ends", run_id, run.status)
        if all(state.done for state in states.values()):
            return
        first = False
        await asyncio.sleep(poll_interval)
