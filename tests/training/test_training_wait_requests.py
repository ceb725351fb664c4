"""Requests a wait sends: no second read of the job when the shared watch covers it."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

import pytest
from _training_helpers import eventually

from maestro_ml_async import AsyncMaestroClient, TrainingException
from maestro_ml_async._transport._kube_watch import WatchHub
from maestro_ml_async.testing import RESOURCE_TYPES, FakeCluster
from maestro_ml_async.testing._scripts import PodScript, hang, succeed
from maestro_ml_async.types.training import JobStatus, TrainingTimeoutException

NAMESPACE = "ml-platform"
PJ_TYPE = RESOURCE_TYPES["pytorchjobs.kubeflow.org"]


def counts(cluster: FakeCluster) -> dict[str, int]:
    stats = cluster.stats.requests_by_resource
    keys = ("get pytorchjobs", "list pods", "list pytorchjobs", "watch pytorchjobs")
    return {key: stats[key] for key in keys}


def sent_since(cluster: FakeCluster, before: dict[str, int]) -> dict[str, int]:
    now = counts(cluster)
    return {key: now[key] - before[key] for key in now}


def watch_connections(hub: WatchHub) -> int:
    watch = hub._watch
    return 0 if watch is None else watch.counters.connections


@contextlib.asynccontextmanager
async def listed_hub(client: AsyncMaestroClient, name: str) -> AsyncIterator[WatchHub]:
    """Keep a wait on job `name` open, so the shared watch has listed."""
    transport = await client._cluster.get()
    # These tests count requests, so the shared watch must not reconnect on
    # its own: an idle deadline of 1 s can pass on a loaded machine.
    transport.watch_settings.idle_timeout = 60.0
    hub = transport.hub("kubeflow.org", "v1", "pytorchjobs", NAMESPACE)
    task = asyncio.ensure_future(client.training.wait_for_job(name, timeout=30))
    await eventually(lambda: hub.has_current(name), what="the hub to list")
    # The hub reports an object as current before it sends its watch request.
    # Wait for that request too, so that no test counts it.
    await eventually(lambda: watch_connections(hub) >= 1, what="the hub's watch")
    try:
        yield hub
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def test_wait_on_listed_hub_reads_once(
    cluster: FakeCluster, client: AsyncMaestroClient
) -> None:
    cluster.scripts.set("pytorchjobs", "*", hang())
    await client.training.submit_job("first", "pytorch", "img", workers=0)
    await client.training.submit_job("second", "pytorch", "img", workers=0)
    async with listed_hub(client, "first"):
        await client.training.wait_for_job("second", timeout=5, until="running")
        before = counts(cluster)
        with pytest.raises(TrainingTimeoutException) as caught:
            await client.training.wait_for_job("second", timeout=0.3)
        sent = sent_since(cluster, before)
    assert caught.value.last_status is JobStatus.RUNNING
    assert caught.value.pod_reasons == {}
    # One read of the job (the current state first), no second read after
    # subscribing, one pod list for the timeout report, and no new watch.
    assert sent == {
        "get pytorchjobs": 1,
        "list pods": 1,
        "list pytorchjobs": 0,
        "watch pytorchjobs": 0,
    }


async def test_wait_on_fresh_hub_reads_once(
    cluster: FakeCluster, client: AsyncMaestroClient
) -> None:
    # The wait starts the shared watch, whose list is sent after the read and
    # so stands in for the second read.
    cluster.scripts.set("pytorchjobs", "*", succeed(run_time=0.2))
    await client.training.submit_job("alone", "pytorch", "img", workers=0)
    before = counts(cluster)
    done = await client.training.wait_for_job("alone", timeout=10)
    sent = sent_since(cluster, before)
    assert done.status is JobStatus.SUCCEEDED
    assert done.pods == {"Master": ["alone-master-0"]}
    assert sent == {
        "get pytorchjobs": 1,
        "list pods": 1,
        "list pytorchjobs": 1,
        "watch pytorchjobs": 1,
    }


async def test_deleted_before_fresh_hub_lists(
    cluster: FakeCluster, client: AsyncMaestroClient
) -> None:
    cluster.scripts.set("pytorchjobs", "*", hang())
    await client.training.submit_job("brief", "pytorch", "img", workers=0)
    real_find = client.training._find

    async def find_then_delete(name: str, namespace: str) -> Any:
        found = await real_find(name, namespace)
        cluster.store.delete(PJ_TYPE, namespace, name)
        return found

    client.training._find = find_then_delete  # type: ignore[method-assign]
    before = counts(cluster)
    with pytest.raises(TrainingException) as caught:
        await client.training.wait_for_job("brief", timeout=5)
    sent = sent_since(cluster, before)
    assert caught.value.reason == "Deleted"
    assert sent["get pytorchjobs"] == 1, "only the read before subscribing"
    assert sent["list pytorchjobs"] == 1


async def test_hub_reports_absent_objects(client: AsyncMaestroClient) -> None:
    transport = await client._cluster.get()
    hub = transport.hub("kubeflow.org", "v1", "pytorchjobs", NAMESPACE)
    async with hub.subscribe("ghost", seen_version="1") as starter:
        # Read at a version later than the hub's list, "future" can still
        # appear as a watch event, so the hub reports nothing for it.
        future = hub.subscribe("future", seen_version="999999")
        async with future as joiner:
            assert starter.covered
            assert joiner.covered
            event = await starter.get(timeout=5)
            assert event.type == "DELETED"
            assert event.synthetic
            assert event.name == "ghost"
            with pytest.raises(asyncio.TimeoutError):
                await joiner.get(timeout=0.2)
        # Once the hub has listed, a missing object is reported at once.
        async with hub.subscribe("late", seen_version="1") as late:
            assert late.covered
            assert (await late.get(timeout=0)).type == "DELETED"
        async with hub.subscribe("plain") as plain:
            assert not plain.covered
            with pytest.raises(asyncio.TimeoutError):
                await plain.get(timeout=0.2)


async def test_many_waits_read_each_job_once(
    cluster: FakeCluster, client: AsyncMaestroClient
) -> None:
    # Waits that subscribe while the shared watch is still listing are
    # covered as well, so each job is read once. The containers stay Running
    # until every wait has subscribed: a job that finished before its wait
    # started needs no watch at all.
    transport = await client._cluster.get()
    transport.watch_settings.idle_timeout = 60.0
    hub = transport.hub("kubeflow.org", "v1", "pytorchjobs", NAMESPACE)
    cluster.scripts.set("pytorchjobs", "*", PodScript(gate="many"))
    names = [f"many-{index}" for index in range(20)]
    for name in names:
        await client.training.submit_job(name, "pytorch", "img", workers=0)
    before = counts(cluster)
    waits = asyncio.gather(
        *(client.training.wait_for_job(name, timeout=10) for name in names)
    )
    await eventually(lambda: hub.subscribers == len(names), what="every wait")
    cluster.scripts.open_gate("many")
    await waits
    sent = sent_since(cluster, before)
    assert sent["get pytorchjobs"] == len(names)
    assert sent["list pods"] == len(names)
    assert sent["watch pytorchjobs"] == 1


async def test_wait_on_listed_hub_sees_deletion(
    cluster: FakeCluster, client: AsyncMaestroClient
) -> None:
    cluster.scripts.set("pytorchjobs", "*", hang())
    await client.training.submit_job("keep", "pytorch", "img", workers=0)
    await client.training.submit_job("gone", "pytorch", "img", workers=0)
    async with listed_hub(client, "keep") as hub:
        await eventually(lambda: hub.has_current("gone"), what="the hub to see gone")
        waiter = asyncio.ensure_future(client.training.wait_for_job("gone", timeout=10))
        await eventually(lambda: hub.subscribers == 2, what="the second waiter")
        cluster.store.delete(PJ_TYPE, NAMESPACE, "gone")
        with pytest.raises(TrainingException) as caught:
            await asyncio.wait_for(waiter, 5)
    assert caught.value.reason == "Deleted"


async def test_watch_on_listed_hub_reads_once(
    cluster: FakeCluster, client: AsyncMaestroClient
) -> None:
    cluster.scripts.set("pytorchjobs", "*", hang())
    await client.training.submit_job("base", "pytorch", "img", workers=0)
    await client.training.submit_job("seen", "pytorch", "img", workers=0)
    async with listed_hub(client, "base"):
        await eventually(
            lambda: cluster.store.get(PJ_TYPE, NAMESPACE, "seen") is not None,
            what="the job",
        )
        before = counts(cluster)
        async with contextlib.aclosing(client.training.watch("seen")) as stream:
            first = await anext(stream)
        sent = sent_since(cluster, before)
    assert first.name == "seen"
    assert sent["get pytorchjobs"] == 1
    assert sent["watch pytorchjobs"] == 0
