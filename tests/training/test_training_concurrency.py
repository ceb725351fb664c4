"""Many concurrent waits share one watch; cancelling leaves nothing behind."""

from __future__ import annotations

import asyncio
import contextlib

import pytest
from _training_helpers import eventually

from maestro_ml_async import AsyncMaestroClient, TrainingException
from maestro_ml_async.testing import FakeCluster
from maestro_ml_async.testing._scripts import fail, hang, succeed
from maestro_ml_async.types.training import JobStatus, TrainingJob


def sdk_tasks() -> set[asyncio.Task[object]]:
    """Tasks running SDK code (not the fake cluster's own tasks)."""
    found = set()
    for task in asyncio.all_tasks():
        code = getattr(task.get_coro(), "cr_code", None)
        filename = code.co_filename if code is not None else ""
        if "maestro_ml_async" in filename and "testing" not in filename:
            found.add(task)
    return found


async def hub_of(client: AsyncMaestroClient, plural: str = "pytorchjobs") -> object:
    transport = await client._cluster.get()
    group = "batch" if plural == "jobs" else "kubeflow.org"
    return transport.hub(group, "v1", plural, "ml-platform")


async def test_hundred_waits_share_one_watch(
    cluster: FakeCluster, client: AsyncMaestroClient
) -> None:
    # The count of watch requests below must not include reconnects after an
    # idle deadline, which the fixture shortens to 1 s.
    transport = await client._cluster.get()
    transport.watch_settings.idle_timeout = 60.0
    # The jobs must outlast the 100 submits, or each wait finds its job done
    # and never opens the shared watch; 100 submits take seconds when loaded.
    cluster.scripts.set("pytorchjobs", "many-*", succeed(run_time=8.0))
    cluster.scripts.set("pytorchjobs", "many-13", fail(exit_code=2, run_time=8.0))
    names = [f"many-{i}" for i in range(100)]
    jobs = await asyncio.gather(
        *(client.training.submit_job(n, "pytorch", "img", workers=0) for n in names)
    )
    watches_before = cluster.stats.requests_by_resource["watch pytorchjobs"]
    results = await asyncio.wait_for(
        asyncio.gather(*(job.wait(timeout=40) for job in jobs), return_exceptions=True),
        60,
    )
    failed = [r for r in results if isinstance(r, BaseException)]
    assert len(failed) == 1
    assert isinstance(failed[0], TrainingException)
    assert failed[0].job_name == "many-13"
    assert failed[0].reason == "PyTorchJobFailed"
    done = [r for r in results if isinstance(r, TrainingJob)]
    assert len(done) == 99
    assert all(job.status is JobStatus.SUCCEEDED for job in done)
    assert cluster.stats.requests_by_resource["watch pytorchjobs"] - watches_before == 1
    await eventually(lambda: cluster.stats.watch_connections_open == 0, what="close")


async def test_wait_for_jobs_uses_one_watch(
    cluster: FakeCluster, client: AsyncMaestroClient
) -> None:
    # The jobs outlast the sequential submits, so every wait needs the watch;
    # the long idle deadline keeps reconnects out of the count.
    transport = await client._cluster.get()
    transport.watch_settings.idle_timeout = 60.0
    cluster.scripts.set("jobs", "b-*", succeed(run_time=5.0))
    names = [f"b-{i}" for i in range(10)]
    for name in names:
        await client.training.submit_job(name, "custom", "img")
    results = await client.training.wait_for_jobs(names, timeout=30)
    assert [job.name for job in results if isinstance(job, TrainingJob)] == names
    assert cluster.stats.requests_by_resource["watch jobs"] == 1


async def test_cancelled_wait_leaves_nothing(
    cluster: FakeCluster, client: AsyncMaestroClient
) -> None:
    cluster.scripts.set("pytorchjobs", "slow", hang())
    job = await client.training.submit_job("slow", "pytorch", "img", workers=1)
    before = sdk_tasks()
    waiter = asyncio.ensure_future(job.wait(timeout=30))
    await eventually(lambda: cluster.stats.watch_connections_open == 1, what="watch")
    hub = await hub_of(client)
    assert hub.running  # type: ignore[attr-defined]
    waiter.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiter
    assert not hub.running  # type: ignore[attr-defined]
    assert hub.subscribers == 0  # type: ignore[attr-defined]
    await eventually(lambda: cluster.stats.watch_connections_open == 0, what="close")
    assert sdk_tasks() - before == set()


async def test_broken_watch_loop_closes_stream(
    cluster: FakeCluster, client: AsyncMaestroClient
) -> None:
    cluster.scripts.set("pytorchjobs", "loop", hang())
    job = await client.training.submit_job("loop", "pytorch", "img", workers=1)
    before = sdk_tasks()
    async with contextlib.aclosing(job.watch()) as snapshots:  # type: ignore[type-var]
        async for snapshot in snapshots:
            if snapshot.status is JobStatus.RUNNING:
                break
    hub = await hub_of(client)
    assert not hub.running  # type: ignore[attr-defined]
    await eventually(lambda: cluster.stats.watch_connections_open == 0, what="close")
    assert sdk_tasks() - before == set()


async def test_cancelled_watch_task_leaves_nothing(
    cluster: FakeCluster, client: AsyncMaestroClient
) -> None:
    cluster.scripts.set("pytorchjobs", "loop2", hang())
    job = await client.training.submit_job("loop2", "pytorch", "img", workers=1)
    before = sdk_tasks()
    seen: list[JobStatus] = []

    async def consume() -> None:
        async for snapshot in job.watch():
            seen.append(snapshot.status)

    task = asyncio.ensure_future(consume())
    await eventually(lambda: JobStatus.RUNNING in seen, what="running")
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    await eventually(lambda: cluster.stats.watch_connections_open == 0, what="close")
    assert sdk_tasks() - before == set()


async def test_cancelled_log_follow_leaves_nothing(
    cluster: FakeCluster, client: AsyncMaestroClient
) -> None:
    cluster.scripts.set("pytorchjobs", "chatty", hang(logs=[(0.01, "tick")] * 5))
    job = await client.training.submit_job("chatty", "pytorch", "img", workers=2)
    before = sdk_tasks()
    lines: list[str] = []

    async def consume() -> None:
        async for line in job.logs(pod_timeout=5):
            lines.append(line.pod)

    task = asyncio.ensure_future(consume())
    await eventually(lambda: len(set(lines)) == 3, what="lines from 3 pods")
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    await eventually(lambda: cluster.stats.watch_connections_open == 0, what="close")
    await eventually(lambda: not (sdk_tasks() - before), what="no SDK tasks")


async def test_watch_jobs_one_stream_per_kind(
    cluster: FakeCluster, client: AsyncMaestroClient
) -> None:
    before = sdk_tasks()
    await client.training.submit_job("wj-a", "pytorch", "img", workers=0)
    events: list[tuple[str, str, JobStatus]] = []
    async with contextlib.aclosing(client.training.watch_jobs()) as stream:  # type: ignore[type-var]
        submitted = False
        async for event in stream:
            events.append((event.type, event.job.name, event.job.status))
            if not submitted:
                submitted = True
                await client.training.submit_job("wj-b", "xgboost", "img", workers=1)
            finished = {name for _, name, status in events if status.finished}
            if finished == {"wj-a", "wj-b"}:
                break
    assert ("ADDED", "wj-a", events[0][2]) == events[0]
    assert any(name == "wj-b" and kind == "ADDED" for kind, name, _ in events)
    watches = {
        key: count
        for key, count in cluster.stats.requests_by_resource.items()
        if key.startswith("watch ")
    }
    assert all(count == 1 for count in watches.values())
    assert "watch pytorchjobs" in watches
    assert "watch xgboostjobs" in watches
    await eventually(lambda: cluster.stats.watch_connections_open == 0, what="close")
    assert sdk_tasks() - before == set()


async def test_break_without_aclosing_closes_later(
    cluster: FakeCluster, client: AsyncMaestroClient
) -> None:
    cluster.scripts.set("pytorchjobs", "brk", hang())
    job = await client.training.submit_job("brk", "pytorch", "img", workers=0)
    before = sdk_tasks()
    async for snapshot in job.watch():
        if snapshot.status is JobStatus.RUNNING:
            break
    # The event loop's async-generator finalizer closes the abandoned stream.
    hub = await hub_of(client)
    await eventually(lambda: not hub.running, what="hub stopped")  # type: ignore[attr-defined]
    await eventually(lambda: cluster.stats.watch_connections_open == 0, what="close")
    await eventually(lambda: not (sdk_tasks() - before), what="no SDK tasks")
