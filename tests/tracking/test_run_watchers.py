"""Run watchers against the real MLflow server, with another task writing."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import AsyncIterator
from typing import Any

import anyio
import pytest

from maestro_ml_async import AsyncMaestroClient, ValidationException
from maestro_ml_async.types.tracking import (
    Metric,
    RunMetricUpdate,
    RunStatus,
    RunStatusChange,
)

POLL = 0.05


@pytest.fixture
async def experiment_id(client: AsyncMaestroClient, unique: str) -> AsyncIterator[str]:
    experiment = await client.experiments.create(f"watch-{unique}")
    yield experiment.experiment_id


def count_calls(client: AsyncMaestroClient) -> Counter[str]:
    """Count MLflow REST calls by endpoint on this client."""
    counts: Counter[str] = Counter()
    transport = client._mlflow
    original = transport.call

    async def counting(method: str, endpoint: str, **kwargs: Any) -> dict[str, Any]:
        counts[endpoint] += 1
        return await original(method, endpoint, **kwargs)

    transport.call = counting  # type: ignore[method-assign]
    return counts


async def write_points(
    writer: AsyncMaestroClient, run_id: str, steps: int, *, finish: bool = True
) -> None:
    base = 1_760_000_000_000
    for step in range(steps):
        await writer.runs.log_batch(
            run_id,
            metrics=[
                ("loss", 1 / (step + 1), base + step, step),
                ("acc", step, base + step, step),
            ],
        )
        if step % 3 == 0:
            await asyncio.sleep(POLL * 1.5)
    # Same step, later timestamp: a second point at step 0, logged late.
    await writer.runs.log_metric(run_id, "acc", 0.0, step=0, timestamp=base + 99)
    if finish:
        await writer.runs.terminate(run_id)


async def test_watch_metrics_yields_each_point_once(
    client: AsyncMaestroClient, mlflow_server_url: str, experiment_id: str
) -> None:
    run = await client.runs.create(experiment_id)
    counts = count_calls(client)
    async with AsyncMaestroClient(mlflow_uri=mlflow_server_url) as writer:
        writing = asyncio.create_task(write_points(writer, run.run_id, 12))
        seen: list[Metric] = []
        with anyio.fail_after(30):
            async for point in client.runs.watch_metrics(
                run.run_id, poll_interval=POLL
            ):
                seen.append(point)
        await writing
    per_key = Counter(point.key for point in seen)
    assert per_key == {"loss": 12, "acc": 13}
    loss_steps = [p.step for p in seen if p.key == "loss"]
    assert loss_steps == list(range(12))
    identities = Counter((p.key, p.step, p.timestamp_ms, p.value) for p in seen)
    stored: Counter[tuple[str, int, int, float]] = Counter()
    for key in ("loss", "acc"):
        async for p in client.runs.get_metric_history(run.run_id, key):
            stored[(p.key, p.step, p.timestamp_ms, p.value)] += 1
    assert identities == stored
    polls = counts["runs/get"]
    # History reads happen only for keys whose latest point changed.
    assert counts["metrics/get-history"] <= 2 * polls + 2
    assert polls >= 3


async def test_watch_metrics_key_filter_and_existing(
    client: AsyncMaestroClient, experiment_id: str
) -> None:
    run = await client.runs.create(experiment_id)
    await client.runs.log_batch(
        run.run_id, metrics=[("a", 1.0, 1000, 0), ("b", 2.0, 1000, 0)]
    )
    await client.runs.terminate(run.run_id)
    only_a = [
        p
        async for p in client.runs.watch_metrics(run.run_id, ["a"], poll_interval=POLL)
    ]
    assert [(p.key, p.value) for p in only_a] == [("a", 1.0)]
    none = [
        p
        async for p in client.runs.watch_metrics(
            run.run_id, poll_interval=POLL, include_existing=False
        )
    ]
    assert none == []


async def test_watch_metrics_late_low_step(
    client: AsyncMaestroClient, experiment_id: str
) -> None:
    run = await client.runs.create(experiment_id)
    await client.runs.log_metric(run.run_id, "m", 1.0, step=10, timestamp=5000)
    stream = client.runs.watch_metrics(run.run_id, poll_interval=POLL)
    first = await stream.__anext__()
    assert first.step == 10
    # A lower step does not change the latest point, so only the final read finds it.
    await client.runs.log_metric(run.run_id, "m", 0.5, step=2, timestamp=4000)
    await client.runs.terminate(run.run_id)
    rest = [point async for point in stream]
    assert [(p.step, p.value) for p in rest] == [(2, 0.5)]


async def test_watch_run_reports_status_changes(
    client: AsyncMaestroClient, experiment_id: str
) -> None:
    run = await client.runs.create(experiment_id)
    await client.runs.update(run.run_id, status=RunStatus.SCHEDULED)
    changes: list[RunStatusChange] = []

    async def drive() -> None:
        await asyncio.sleep(POLL * 4)
        await client.runs.update(run.run_id, status=RunStatus.RUNNING)
        await asyncio.sleep(POLL * 4)
        await client.runs.terminate(run.run_id, RunStatus.KILLED)

    driver = asyncio.create_task(drive())
    with anyio.fail_after(30):
        async for change in client.runs.watch_run(run.run_id, poll_interval=POLL):
            changes.append(change)
    await driver
    assert [(c.old_status, c.status) for c in changes] == [
        (None, RunStatus.SCHEDULED),
        (RunStatus.SCHEDULED, RunStatus.RUNNING),
        (RunStatus.RUNNING, RunStatus.KILLED),
    ]


async def test_watch_many_uses_one_search_per_poll(
    client: AsyncMaestroClient, mlflow_server_url: str, experiment_id: str
) -> None:
    runs = [await client.runs.create(experiment_id, run_name=f"m{i}") for i in range(4)]
    ids = [run.run_id for run in runs]
    counts = count_calls(client)
    async with AsyncMaestroClient(mlflow_uri=mlflow_server_url) as writer:
        writers = [
            asyncio.create_task(write_points(writer, run_id, 4 + index))
            for index, run_id in enumerate(ids)
        ]
        events: list[RunStatusChange | RunMetricUpdate] = []
        with anyio.fail_after(30):
            async for event in client.runs.watch_many(ids, poll_interval=POLL):
                events.append(event)
        await asyncio.gather(*writers)
    for index, run_id in enumerate(ids):
        statuses = [
            e.status
            for e in events
            if isinstance(e, RunStatusChange) and e.run_id == run_id
        ]
        assert statuses == [RunStatus.RUNNING, RunStatus.FINISHED]
        points = [
            e for e in events if isinstance(e, RunMetricUpdate) and e.run_id == run_id
        ]
        assert len(points) == 2 * (4 + index) + 1
    # The first poll reads each run once; every later poll is one search.
    assert counts["runs/get"] == len(ids)
    assert counts["runs/search"] >= 2


async def test_watch_many_stops_when_cancelled(
    client: AsyncMaestroClient, experiment_id: str
) -> None:
    run = await client.runs.create(experiment_id)
    stream = client.runs.watch_many([run.run_id], poll_interval=POLL)
    first = await stream.__anext__()
    assert isinstance(first, RunStatusChange)
    await stream.aclose()
    with pytest.raises(StopAsyncIteration):
        await stream.__anext__()


async def test_watch_rejects_bad_arguments(client: AsyncMaestroClient) -> None:
    with pytest.raises(ValidationException):
        await client.runs.watch_many("abc").__anext__()  # type: ignore[arg-type]
    with pytest.raises(ValidationException):
        await client.runs.watch_run("abc", poll_interval=0).__anext__()


async def test_watch_ends_when_run_deleted(
    client: AsyncMaestroClient, experiment_id: str
) -> None:
    run = await client.runs.create(experiment_id)
    await client.runs.log_metric(run.run_id, "m", 1.0, step=0, timestamp=1000)
    stream = client.runs.watch_metrics(run.run_id, poll_interval=POLL)
    first = await stream.__anext__()
    assert first.value == 1.0
    await client.runs.log_metric(run.run_id, "m", 2.0, step=1, timestamp=2000)
    await client.runs.delete(run.run_id)
    with anyio.fail_after(10):
        rest = [point async for point in stream]
    assert [p.value for p in rest] == [2.0]


async def test_watch_many_across_experiments(
    client: AsyncMaestroClient, unique: str
) -> None:
    runs = []
    for index in range(2):
        experiment = await client.experiments.create(f"watch-x{index}-{unique}")
        runs.append(await client.runs.create(experiment.experiment_id))
    counts = count_calls(client)

    async def finish_later() -> None:
        await asyncio.sleep(POLL * 4)
        for run in runs:
            await client.runs.log_metric(run.run_id, "m", 1.0, step=0, timestamp=1000)
            await client.runs.terminate(run.run_id)

    finisher = asyncio.create_task(finish_later())
    with anyio.fail_after(10):
        stream = client.runs.watch_many([r.run_id for r in runs], poll_interval=POLL)
        events = [e async for e in stream]
    await finisher
    assert counts["runs/search"] >= 2
    for run in runs:
        mine = [type(e).__name__ for e in events if e.run_id == run.run_id]
        assert mine == ["RunStatusChange", "RunMetricUpdate", "RunStatusChange"]


async def test_watch_single_string_key(
    client: AsyncMaestroClient, experiment_id: str
) -> None:
    run = await client.runs.create(experiment_id)
    await client.runs.log_batch(
        run.run_id, metrics=[("loss", 1.0, 1000, 0), ("l", 2.0, 1000, 0)]
    )
    await client.runs.terminate(run.run_id)

    # A bare string names one key; it is not split into the letters l, o, s.
    points = [
        p
        async for p in client.runs.watch_metrics(run.run_id, "loss", poll_interval=POLL)
    ]
    assert [(p.key, p.value) for p in points] == [("loss", 1.0)]
    with pytest.raises(ValidationException, match="metric key"):
        await client.runs.watch_metrics(run.run_id, ["loss", ""]).__anext__()
    with pytest.raises(ValidationException, match="keys"):
        await client.runs.watch_many(
            [run.run_id],
            keys=5,  # type: ignore[arg-type]
        ).__anext__()
