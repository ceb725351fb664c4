"""Watch streams of the fake API server, read as raw chunked JSON lines."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import aiohttp

from maestro_ml_async.testing import RESOURCE_TYPES, FakeCluster

Obj = dict[str, Any]
PJ = "/apis/kubeflow.org/v1/namespaces/default/pytorchjobs"
PJ_TYPE = RESOURCE_TYPES["pytorchjobs.kubeflow.org"]


def job(name: str, **labels: str) -> Obj:
    return {"metadata": {"name": name, "namespace": "default", "labels": labels}}


class Lines:
    """Reads a watch response one JSON line at a time, with a timeout."""

    def __init__(self, response: aiohttp.ClientResponse) -> None:
        self.response = response

    async def next(self, timeout: float = 2.0) -> Obj | None:
        raw = await asyncio.wait_for(self.response.content.readline(), timeout)
        if not raw:
            return None
        event: Obj = json.loads(raw)
        return event

    async def take(self, count: int) -> list[Obj]:
        events = []
        for _ in range(count):
            event = await self.next()
            assert event is not None, f"stream ended after {len(events)} events"
            events.append(event)
        return events


@asynccontextmanager
async def watch(
    http: aiohttp.ClientSession, path: str = PJ, **params: str
) -> AsyncIterator[Lines]:
    query = {"watch": "true", **params}
    async with http.get(path, params=query) as response:
        assert response.status == 200
        assert response.content_type == "application/json"
        yield Lines(response)


def summary(events: list[Obj]) -> list[tuple[str, str]]:
    return [(e["type"], e["object"]["metadata"].get("name", "")) for e in events]


async def test_initial_events_then_live(
    http: aiohttp.ClientSession, bare_cluster: FakeCluster
) -> None:
    store = bare_cluster.store
    store.create(PJ_TYPE, job("a"))
    store.create(PJ_TYPE, job("b"))
    async with watch(http) as lines:
        assert summary(await lines.take(2)) == [("ADDED", "a"), ("ADDED", "b")]
        store.mutate(PJ_TYPE, "default", "a", lambda o: o.update(spec={"x": 1}))
        store.delete(PJ_TYPE, "default", "b")
        events = await lines.take(2)
    assert summary(events) == [("MODIFIED", "a"), ("DELETED", "b")]
    assert events[0]["object"]["spec"] == {"x": 1}


async def test_resume_from_resource_version(
    http: aiohttp.ClientSession, bare_cluster: FakeCluster
) -> None:
    store = bare_cluster.store
    store.create(PJ_TYPE, job("a"))
    resume_from = store.resource_version
    store.create(PJ_TYPE, job("b"))
    store.delete(PJ_TYPE, "default", "a")
    async with watch(http, resourceVersion=str(resume_from)) as lines:
        events = await lines.take(2)
    assert summary(events) == [("ADDED", "b"), ("DELETED", "a")]
    versions = [int(e["object"]["metadata"]["resourceVersion"]) for e in events]
    assert all(version > resume_from for version in versions)


async def test_too_old_version_gets_410_event(
    http: aiohttp.ClientSession, bare_cluster: FakeCluster
) -> None:
    store = bare_cluster.store
    store.create(PJ_TYPE, job("a"))
    old = store.resource_version
    for index in range(60):  # history_size is 50 in the fixture
        store.mutate(
            PJ_TYPE, "default", "a", lambda o, i=index: o.update(spec={"i": i})
        )
    async with watch(http, resourceVersion=str(old - 1)) as lines:
        event = await lines.next()
        end = await lines.next()
    assert event is not None
    assert event["type"] == "ERROR"
    status = event["object"]
    assert status["code"] == 410
    assert status["reason"] == "Expired"
    assert status["message"].startswith(f"too old resource version: {old - 1} (")
    assert end is None, "the stream closes after the ERROR event"


async def test_future_version_watch_list_gets_timeout(
    http: aiohttp.ClientSession, bare_cluster: FakeCluster
) -> None:
    store = bare_cluster.store
    store.create(PJ_TYPE, job("a"))
    current = store.resource_version
    params = {
        "resourceVersion": str(current + 10),
        "resourceVersionMatch": "NotOlderThan",
        "sendInitialEvents": "true",
        "allowWatchBookmarks": "true",
    }
    async with watch(http, **params) as lines:
        event = await lines.next()
        end = await lines.next()
    assert event is not None
    assert event["type"] == "ERROR"
    status = event["object"]
    assert status["code"] == 504
    assert status["reason"] == "Timeout"
    assert status["message"] == (
        f"Timeout: Too large resource version: {current + 10}, current: {current}"
    )
    assert status["details"]["causes"][0]["reason"] == "ResourceVersionTooLarge"
    assert status["details"]["retryAfterSeconds"] == 1
    assert end is None, "the stream closes after the ERROR event"


async def test_future_version_watch_waits_for_it(
    http: aiohttp.ClientSession, bare_cluster: FakeCluster
) -> None:
    store = bare_cluster.store
    store.create(PJ_TYPE, job("a"))
    requested = store.resource_version + 2
    async with watch(
        http, resourceVersion=str(requested), allowWatchBookmarks="true"
    ) as lines:
        # Two bookmark intervals pass with the store behind the requested
        # version, so no bookmark may arrive.
        await asyncio.sleep(0.25)
        store.create(PJ_TYPE, job("b"))
        store.create(PJ_TYPE, job("c"))
        store.create(PJ_TYPE, job("d"))
        event = await lines.next()
    assert event is not None
    assert summary([event]) == [("ADDED", "d")]
    assert int(event["object"]["metadata"]["resourceVersion"]) > requested


async def test_timeout_seconds_closes_cleanly(http: aiohttp.ClientSession) -> None:
    started = time.monotonic()
    async with watch(http, timeoutSeconds="1") as lines:
        assert await lines.next(timeout=3) is None
    assert 0.9 <= time.monotonic() - started < 2.5


async def test_bookmarks(
    http: aiohttp.ClientSession, bare_cluster: FakeCluster
) -> None:
    bare_cluster.store.create(PJ_TYPE, job("a"))
    async with watch(http, allowWatchBookmarks="true") as lines:
        added = await lines.next()
        bookmark = await lines.next()
    assert added is not None and added["type"] == "ADDED"
    assert bookmark is not None
    assert bookmark["type"] == "BOOKMARK"
    assert bookmark["object"]["kind"] == "PyTorchJob"
    assert bookmark["object"]["apiVersion"] == "kubeflow.org/v1"
    current = str(bare_cluster.store.resource_version)
    assert bookmark["object"]["metadata"] == {"resourceVersion": current}


async def test_send_initial_events_bookmark(
    http: aiohttp.ClientSession, bare_cluster: FakeCluster
) -> None:
    bare_cluster.store.create(PJ_TYPE, job("a"))
    params = {
        "sendInitialEvents": "true",
        "allowWatchBookmarks": "true",
        "resourceVersionMatch": "NotOlderThan",
    }
    async with watch(http, **params) as lines:
        added, bookmark = await lines.take(2)
    assert added["type"] == "ADDED"
    assert bookmark["type"] == "BOOKMARK"
    annotations = bookmark["object"]["metadata"]["annotations"]
    assert annotations == {"k8s.io/initial-events-end": "true"}


async def test_label_selector_sends_deleted_when_unmatched(
    http: aiohttp.ClientSession, bare_cluster: FakeCluster
) -> None:
    store = bare_cluster.store
    store.create(PJ_TYPE, job("a", team="ml"))
    store.create(PJ_TYPE, job("b", team="ops"))
    async with watch(http, labelSelector="team=ml") as lines:
        assert summary(await lines.take(1)) == [("ADDED", "a")]

        def relabel(team: str) -> Any:
            return lambda obj: obj["metadata"]["labels"].update(team=team)

        store.mutate(PJ_TYPE, "default", "a", relabel("ops"))
        store.mutate(PJ_TYPE, "default", "b", relabel("ml"))
        events = await lines.take(2)
    assert summary(events) == [("DELETED", "a"), ("ADDED", "b")]
    gone = events[0]["object"]
    assert gone["metadata"]["labels"] == {"team": "ml"}, "DELETED shows the old state"
    assert gone["metadata"]["resourceVersion"] == str(store.resource_version - 1)


async def test_field_selector_by_name(
    http: aiohttp.ClientSession, bare_cluster: FakeCluster
) -> None:
    store = bare_cluster.store
    async with watch(http, fieldSelector="metadata.name=b") as lines:
        store.create(PJ_TYPE, job("a"))
        store.create(PJ_TYPE, job("b"))
        assert summary(await lines.take(1)) == [("ADDED", "b")]


async def test_namespace_scoping(
    http: aiohttp.ClientSession, bare_cluster: FakeCluster
) -> None:
    store = bare_cluster.store
    async with watch(http) as lines:
        store.create(
            PJ_TYPE, dict(job("x"), metadata={"name": "x", "namespace": "ml-platform"})
        )
        store.create(PJ_TYPE, job("y"))
        assert summary(await lines.take(1)) == [("ADDED", "y")]
    all_namespaces = "/apis/kubeflow.org/v1/pytorchjobs"
    async with watch(http, all_namespaces) as lines:
        events = await lines.take(2)
    assert sorted(summary(events)) == [("ADDED", "x"), ("ADDED", "y")]


async def test_watch_stats_count_connections(
    http: aiohttp.ClientSession, bare_cluster: FakeCluster
) -> None:
    stats = bare_cluster.stats
    async with watch(http, allowWatchBookmarks="true") as lines:
        await lines.next()
        assert stats.watch_connections_open == 1
    async with watch(http, timeoutSeconds="1") as lines:
        await lines.next(timeout=3)
    for _ in range(100):
        if stats.watch_connections_open == 0:
            break
        await asyncio.sleep(0.01)
    assert stats.watch_connections_open == 0
    assert stats.watch_connections_total == 2
    assert stats.requests_by_verb["watch"] == 2


async def test_invalid_resource_version_gets_400(http: aiohttp.ClientSession) -> None:
    params = {"watch": "true", "resourceVersion": "abc"}
    async with http.get(PJ, params=params) as response:
        assert response.status == 400


async def test_many_watchers_see_every_event(
    http: aiohttp.ClientSession, bare_cluster: FakeCluster
) -> None:
    store = bare_cluster.store

    async def one_watcher(ready: asyncio.Event) -> list[str]:
        async with watch(http, resourceVersion=str(store.resource_version)) as lines:
            ready.set()
            return [e["object"]["metadata"]["name"] for e in await lines.take(5)]

    readies = [asyncio.Event() for _ in range(20)]
    tasks = [asyncio.create_task(one_watcher(ready)) for ready in readies]
    await asyncio.gather(*(ready.wait() for ready in readies))
    for index in range(5):
        store.create(PJ_TYPE, job(f"j{index}"))
    results = await asyncio.gather(*tasks)
    assert all(names == [f"j{i}" for i in range(5)] for names in results)


async def test_stop_closes_open_watches() -> None:
    async with FakeCluster(controllers=False) as cluster:
        headers = {"Authorization": f"Bearer {cluster.token}"}
        async with aiohttp.ClientSession(base_url=cluster.url, headers=headers) as http:
            async with watch(http) as lines:
                reader = asyncio.create_task(lines.next(timeout=5))
                await asyncio.sleep(0.05)
                await cluster.stop()
                try:
                    result = await reader
                except (aiohttp.ClientError, asyncio.TimeoutError) as exc:
                    raise AssertionError("stop must end watches cleanly") from exc
    assert result is None
