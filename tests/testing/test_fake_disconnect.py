"""Clients that leave a watch or a followed log: the fake server ends quietly."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

import aiohttp
import pytest

from maestro_ml_async.testing import RESOURCE_TYPES, FakeCluster

PJ = "/apis/kubeflow.org/v1/namespaces/default/pytorchjobs"
PJ_TYPE = RESOURCE_TYPES["pytorchjobs.kubeflow.org"]
POD_TYPE = RESOURCE_TYPES["pods"]
LOG = "/api/v1/namespaces/default/pods/p/log"


async def eventually(predicate: Callable[[], bool], what: str) -> None:
    for _ in range(300):
        if predicate():
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"timed out waiting for {what}")


def errors_of(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [
        f"{record.name}: {record.getMessage()}"
        for record in caplog.records
        if record.levelno >= logging.ERROR
    ]


def make_running_pod(cluster: FakeCluster) -> None:
    spec = {"containers": [{"name": "main", "image": "busybox"}]}
    cluster.store.create(POD_TYPE, {"metadata": {"name": "p"}, "spec": spec})
    statuses = [{"name": "main", "state": {"running": {}}, "ready": True}]
    status = {"phase": "Running", "containerStatuses": statuses}
    cluster.store.update_status(POD_TYPE, "default", "p", status)


@asynccontextmanager
async def churn(step: Callable[[int], None]) -> AsyncIterator[None]:
    """Run `step` on every loop iteration, so a handler always has data to write.

    aiohttp closes the server transport when the client's FIN or RST arrives
    and cancels the handler one iteration later, so only a handler that writes
    in that iteration hits the closed transport. Constant writes make every
    disconnect land there.
    """
    running = True

    async def loop() -> None:
        count = 0
        while running:
            step(count)
            count += 1
            await asyncio.sleep(0)

    task = asyncio.create_task(loop())
    try:
        yield
    finally:
        running = False
        await task


@pytest.mark.parametrize("bookmarks", [True, False], ids=["bookmarks", "quiet"])
async def test_watch_client_leaves(
    http: aiohttp.ClientSession,
    bare_cluster: FakeCluster,
    caplog: pytest.LogCaptureFixture,
    bookmarks: bool,
) -> None:
    caplog.set_level(logging.DEBUG)
    stats = bare_cluster.stats
    store = bare_cluster.store
    subscribers = len(store._subscribers)
    before = stats.watch_connections_open

    def create(index: int) -> None:
        store.create(PJ_TYPE, {"metadata": {"name": f"job-{index}"}})

    async with churn(create):
        for _ in range(10):
            params = {"watch": "true", "resourceVersion": str(store.resource_version)}
            if bookmarks:
                params["allowWatchBookmarks"] = "true"
            response = await http.get(PJ, params=params)
            assert response.status == 200
            first = await asyncio.wait_for(response.content.readline(), 2)
            assert b'"ADDED"' in first
            # Close the connection with unread events still arriving.
            response.close()
    await eventually(
        lambda: stats.watch_connections_open == before, "the watches to close"
    )
    assert len(store._subscribers) == subscribers
    assert errors_of(caplog) == []


async def test_follow_log_client_leaves(
    http: aiohttp.ClientSession,
    bare_cluster: FakeCluster,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    stats = bare_cluster.stats
    make_running_pod(bare_cluster)
    logs = bare_cluster.pod_logs
    logs.append("default", "p", "main", "first")

    def append(index: int) -> None:
        # A burst of lines per iteration keeps the handler writing. With one
        # line it is often idle when the disconnect arrives.
        for line in range(20):
            logs.append("default", "p", "main", f"line {index}.{line}")

    async with churn(append):
        for _ in range(10):
            response = await http.get(LOG, params={"follow": "true"})
            assert response.status == 200
            assert await asyncio.wait_for(response.content.readline(), 2)
            assert stats.log_streams_open >= 1
            response.close()
    await eventually(lambda: stats.log_streams_open == 0, "the log streams to end")
    assert errors_of(caplog) == []


async def test_idle_follow_log_client_leaves(
    http: aiohttp.ClientSession, bare_cluster: FakeCluster
) -> None:
    # No line arrives after the client leaves, so only the disconnect itself
    # can end the server's stream.
    stats = bare_cluster.stats
    make_running_pod(bare_cluster)
    bare_cluster.pod_logs.append("default", "p", "main", "only")
    response = await http.get(LOG, params={"follow": "true"})
    assert await asyncio.wait_for(response.content.readline(), 2) == b"only\n"
    assert stats.log_streams_open == 1
    response.close()
    await eventually(lambda: stats.log_streams_open == 0, "the log stream to end")
