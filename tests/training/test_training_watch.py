"""Resumable watches under the faults real clusters cause, and waits over them.

Objects are written straight into the fake's store, so each test records every
resourceVersion the server emitted and can check that the watch delivered each
change once: never lost, never twice.
"""

from __future__ import annotations

import asyncio
import itertools
import time
from typing import Any

import pytest
from _training_helpers import NAMESPACE, eventually, make_client, shrink_watch_timings

from maestro_ml_async import AsyncMaestroClient, KubernetesException
from maestro_ml_async._transport._kube_watch import ResumableWatch, WatchEvent
from maestro_ml_async.testing import RESOURCE_TYPES, FakeCluster
from maestro_ml_async.testing._scripts import succeed
from maestro_ml_async.types.training import JobStatus

CONFIGMAPS = RESOURCE_TYPES["configmaps"]


def put(cluster: FakeCluster, name: str, value: int) -> str:
    """Create or update ConfigMap `name` with data value; return its new RV."""
    existing = cluster.store.get(CONFIGMAPS, NAMESPACE, name)
    if existing is None:
        obj = cluster.store.create(
            CONFIGMAPS,
            {"metadata": {"name": name, "namespace": NAMESPACE}, "data": {"v": "0"}},
        )
        if value == 0:
            return str(obj["metadata"]["resourceVersion"])

    def change(obj: dict[str, Any]) -> None:
        obj["data"] = {"v": str(value)}

    updated = cluster.store.mutate(CONFIGMAPS, NAMESPACE, name, change)
    return str(updated["metadata"]["resourceVersion"])


async def configmap_watch(client: AsyncMaestroClient) -> ResumableWatch:
    transport = await client._cluster.get()
    return transport.watch("", "v1", "configmaps", namespace=NAMESPACE)


async def next_events(watch: ResumableWatch, count: int) -> list[WatchEvent]:
    events = []
    for _ in range(count):
        events.append(await asyncio.wait_for(watch.__anext__(), 5))
    return events


def assert_once_each(events: list[WatchEvent]) -> None:
    seen = [(e.type, e.name, e.resource_version) for e in events]
    assert len(seen) == len(set(seen)), f"duplicate events: {seen}"
    last: dict[str, int] = {}
    for event in events:
        if event.type == "DELETED":
            continue
        rv = int(event.resource_version)
        assert rv > last.get(event.name, -1), f"out of order: {seen}"
        last[event.name] = rv


async def test_watch_resumes_after_mid_chunk_drop(
    cluster: FakeCluster, client: AsyncMaestroClient
) -> None:
    put(cluster, "a", 0)
    watch = await configmap_watch(client)
    async with watch:
        (added,) = await next_events(watch, 1)
        assert added.type == "ADDED"
        assert added.synthetic
        fault = cluster.faults.drop_watch(after_events=2, plural="configmaps")
        # The fault acts on the next watch connection; close any open one.
        watch._drop_response()
        expected = [put(cluster, "a", i) for i in range(1, 6)]
        events = await next_events(watch, 5)
    assert fault.hits == 1
    assert [e.resource_version for e in events] == expected
    assert all(e.type == "MODIFIED" for e in events)
    assert_once_each([added, *events])
    assert watch.counters.connections >= 2


async def test_watch_resumes_after_server_timeout() -> None:
    async with FakeCluster(tick=0.01, watch_max_seconds=0.15) as cluster:
        async with make_client(cluster) as client:
            await shrink_watch_timings(client)
            transport = await client._cluster.get()
            transport.watch_settings.server_timeout = None
            watch = await configmap_watch(client)
            async with watch:
                expected = []
                events: list[WatchEvent] = []
                for i in range(6):
                    expected.append(put(cluster, "t", i))
                    events.extend(await next_events(watch, 1))
                    await asyncio.sleep(0.06)
            assert cluster.stats.watch_connections_total >= 2
    assert [e.resource_version for e in events] == expected
    assert_once_each(events)


async def test_watch_relists_after_expired_and_reports_vanished(
    cluster: FakeCluster, client: AsyncMaestroClient
) -> None:
    for name in ("keep", "gone", "change"):
        put(cluster, name, 0)
    watch = await configmap_watch(client)
    async with watch:
        first = await next_events(watch, 3)
        assert {e.name for e in first} == {"keep", "gone", "change"}
        cluster.faults.expire_watch(plural="configmaps")
        watch._drop_response()
        # The next connection gets 410 Expired; meanwhile the store moves on.
        cluster.store.delete(CONFIGMAPS, NAMESPACE, "gone")
        changed_rv = put(cluster, "change", 7)
        new_rv = put(cluster, "new", 0)
        events = await next_events(watch, 3)
        later_rv = put(cluster, "keep", 9)
        (later,) = await next_events(watch, 1)
    kinds = {(e.type, e.name) for e in events}
    assert kinds == {("DELETED", "gone"), ("MODIFIED", "change"), ("ADDED", "new")}
    by_name = {e.name: e for e in events}
    assert by_name["change"].resource_version == changed_rv
    assert by_name["new"].resource_version == new_rv
    assert all(e.synthetic for e in events)
    assert later.resource_version == later_rv
    assert watch.counters.relists == 2
    assert_once_each([*first, *events, later])


async def test_watch_relists_when_resource_version_too_old() -> None:
    async with FakeCluster(tick=0.01, history_size=5, bookmark_interval=0.2) as cluster:
        async with make_client(cluster) as client:
            await shrink_watch_timings(client)
            put(cluster, "x", 0)
            put(cluster, "y", 0)
            watch = await configmap_watch(client)
            async with watch:
                await next_events(watch, 2)
                cluster.faults.hang_watch(plural="configmaps")
                watch._drop_response()
                cluster.store.delete(CONFIGMAPS, NAMESPACE, "y")
                final = [put(cluster, "x", i) for i in range(1, 12)][-1]
                events = await next_events(watch, 2)
            assert watch.counters.idle_reconnects >= 1
    assert {(e.type, e.name) for e in events} == {("DELETED", "y"), ("MODIFIED", "x")}
    x_event = next(e for e in events if e.name == "x")
    assert x_event.resource_version == final


async def test_watch_backs_off_on_empty_responses(
    cluster: FakeCluster, client: AsyncMaestroClient
) -> None:
    put(cluster, "e", 0)
    watch = await configmap_watch(client)
    async with watch:
        await next_events(watch, 1)
        fault = cluster.faults.empty_watch(times=4, plural="configmaps")
        watch._drop_response()
        started = time.monotonic()
        rv = put(cluster, "e", 1)
        (event,) = await next_events(watch, 1)
        elapsed = time.monotonic() - started
    assert fault.hits == 4
    assert event.resource_version == rv
    # Equal-jitter backoff: at least half of 0.02 + 0.04 + 0.08 + 0.16 seconds.
    assert elapsed >= 0.15
    assert watch.counters.failures >= 4


async def test_watch_survives_silent_socket(
    cluster: FakeCluster, client: AsyncMaestroClient
) -> None:
    transport = await client._cluster.get()
    transport.watch_settings.idle_timeout = 0.4
    put(cluster, "s", 0)
    watch = await configmap_watch(client)
    async with watch:
        await next_events(watch, 1)
        cluster.faults.hang_watch(plural="configmaps")
        watch._drop_response()
        rv = put(cluster, "s", 1)
        (event,) = await next_events(watch, 1)
        # Bookmarks every 0.2 s keep a healthy watch open past the idle deadline.
        reconnects = watch.counters.idle_reconnects
        await asyncio.sleep(0.9)
        rv2 = put(cluster, "s", 2)
        (event2,) = await next_events(watch, 1)
    assert event.resource_version == rv
    assert reconnects == 1
    assert watch.counters.idle_reconnects == 1
    assert event2.resource_version == rv2


async def test_watch_gives_up_after_repeated_failures(
    cluster: FakeCluster, client: AsyncMaestroClient
) -> None:
    transport = await client._cluster.get()
    transport.watch_settings.max_failures = 3
    cluster.faults.fail(503, times=None, plural="configmaps", watch=True)
    watch = await configmap_watch(client)
    async with watch:
        with pytest.raises(KubernetesException, match="failed 4 times"):
            await next_events(watch, 1)


async def test_watch_raises_forbidden(
    cluster: FakeCluster, client: AsyncMaestroClient
) -> None:
    cluster.faults.fail(403, plural="configmaps", watch=True)
    watch = await configmap_watch(client)
    async with watch:
        with pytest.raises(KubernetesException) as caught:
            await next_events(watch, 1)
    assert caught.value.status_code == 403


FAULTS = {
    "drop": lambda c: c.faults.drop_watch(after_events=1, plural="pytorchjobs"),
    "expire": lambda c: c.faults.expire_watch(after_events=1, plural="pytorchjobs"),
    "empty": lambda c: c.faults.empty_watch(times=2, plural="pytorchjobs"),
    "hang": lambda c: c.faults.hang_watch(plural="pytorchjobs"),
    "error": lambda c: c.faults.fail(500, times=2, plural="pytorchjobs", watch=True),
}


@pytest.mark.parametrize("fault", sorted(FAULTS))
async def test_wait_and_watch_end_under_fault(
    cluster: FakeCluster, client: AsyncMaestroClient, fault: str
) -> None:
    transport = await client._cluster.get()
    transport.watch_settings.idle_timeout = 0.5
    cluster.scripts.set("pytorchjobs", "f-*", succeed(logs=[(0.05, "a"), (0.05, "b")]))
    armed = FAULTS[fault](cluster)
    job = await client.training.submit_job(f"f-{fault}", "pytorch", "img", workers=1)
    snapshots = []

    async def follow() -> None:
        async for snapshot in job.watch():
            snapshots.append(snapshot)

    _, final = await asyncio.wait_for(asyncio.gather(follow(), job.wait()), 10)
    assert armed.hits >= 1
    assert final.status is JobStatus.SUCCEEDED
    assert snapshots[-1].status is JobStatus.SUCCEEDED
    versions = [int(s.resource_version or 0) for s in snapshots]
    assert versions == sorted(set(versions))
    statuses = [s.raw.get("status") for s in snapshots]
    assert all(a != b for a, b in itertools.pairwise(statuses))
    await eventually(lambda: cluster.stats.watch_connections_open == 0, what="close")


def test_replayed_events_are_dropped() -> None:
    watch = ResumableWatch(None, "", "v1", "configmaps", namespace=NAMESPACE)  # type: ignore[arg-type]

    def obj(rv: str, uid: str = "u1") -> dict[str, Any]:
        return {"metadata": {"name": "a", "uid": uid, "resourceVersion": rv}}

    assert watch._accept("ADDED", obj("5")) is not None
    assert watch._accept("MODIFIED", obj("7")) is not None
    assert watch._accept("MODIFIED", obj("7")) is None
    assert watch._accept("MODIFIED", obj("6")) is None
    assert watch.counters.dropped_duplicates == 2
    assert watch._accept("DELETED", obj("8")) is not None
    assert watch._accept("DELETED", obj("8")) is None
    # A new object of the same name (another uid) is not a replay.
    assert watch._accept("ADDED", obj("3", uid="u2")) is not None
    assert watch.resource_version == "8"


async def test_wait_learns_of_vanished_job_from_relist(
    cluster: FakeCluster, client: AsyncMaestroClient
) -> None:
    from maestro_ml_async import TrainingException
    from maestro_ml_async.testing._scripts import hang

    transport = await client._cluster.get()
    transport.watch_settings.idle_timeout = 0.4
    cluster.scripts.set("pytorchjobs", "*", hang())
    await client.training.submit_job("stays", "pytorch", "img", workers=0)
    await client.training.submit_job("vanishes", "pytorch", "img", workers=0)
    stays = asyncio.ensure_future(client.training.wait_for_job("stays", timeout=10))
    gone = asyncio.ensure_future(client.training.wait_for_job("vanishes", timeout=10))
    await eventually(lambda: cluster.stats.watch_connections_open == 1, what="watch")
    hub = transport.hub("kubeflow.org", "v1", "pytorchjobs", NAMESPACE)
    # The next connection stays silent; the one after it gets 410 Expired, so
    # the deletion below reaches the client only through the relist.
    cluster.faults.hang_watch(plural="pytorchjobs")
    cluster.faults.expire_watch(plural="pytorchjobs")
    assert hub._watch is not None
    hub._watch._drop_response()
    await eventually(lambda: cluster.stats.watch_connections_total >= 2, what="hang")
    jobs = RESOURCE_TYPES["pytorchjobs.kubeflow.org"]
    cluster.store.delete(jobs, NAMESPACE, "vanishes")
    with pytest.raises(TrainingException, match="deleted"):
        await gone
    assert hub._watch.counters.relists == 2
    assert not stays.done()
    stays.cancel()
    await asyncio.gather(stays, return_exceptions=True)
