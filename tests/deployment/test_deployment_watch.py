"""Watching deployments through drops, 410 Expired and silent sockets; listing."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import anyio
from _deployment_helpers import ISVC, NAMESPACE, RegisteredModel

from maestro_ml_async import AsyncMaestroClient
from maestro_ml_async.testing import FakeCluster
from maestro_ml_async.types.deployment import DeploymentEvent

WAIT = 10.0


class Recorder:
    """Collects the events of `watch(name)` in a background task."""

    def __init__(self, maestro: AsyncMaestroClient, name: str) -> None:
        self.events: list[DeploymentEvent] = []
        self._changed = asyncio.Event()
        self._task = asyncio.create_task(self._run(maestro, name))

    async def _run(self, maestro: AsyncMaestroClient, name: str) -> None:
        async for event in maestro.deployment.watch(name):
            self.events.append(event)
            self._changed.set()

    async def reach(self, resource_version: str) -> None:
        """Wait until an event with `resource_version` arrived."""
        await self.until(lambda: resource_version in self.versions())

    async def until(self, condition: Callable[[], bool]) -> None:
        """Wait until `condition()` is true after some event."""
        with anyio.fail_after(WAIT):
            while not condition():
                self._changed.clear()
                await self._changed.wait()

    def last_up_to_date(self, *, min_replicas: int) -> bool:
        """Whether the newest event shows `min_replicas` ready and current."""
        if not self.events:
            return False
        last = self.events[-1].deployment
        return last.up_to_date and last.min_replicas == min_replicas

    def versions(self) -> list[str]:
        return [str(e.deployment.resource_version) for e in self.events]

    async def stop(self) -> None:
        self._task.cancel()
        await asyncio.gather(self._task, return_exceptions=True)


async def eventually(condition: Callable[[], bool]) -> None:
    """Poll `condition` every 20 ms until it is true, for at most `WAIT` seconds."""
    for _ in range(int(WAIT / 0.02)):
        if condition():
            return
        await asyncio.sleep(0.02)
    raise AssertionError("condition still false after the wait")


def store_versions(cluster: FakeCluster, name: str, after: int) -> list[str]:
    """Return the resourceVersions of the object's stored changes after `after`."""
    history = cluster.store.history_since(ISVC, after) or []
    return [
        str(event.resource_version)
        for event in history
        if event.object["metadata"]["name"] == name
    ]


def current_version(cluster: FakeCluster, name: str) -> str:
    stored = cluster.store.get(ISVC, NAMESPACE, name)
    assert stored is not None
    return str(stored["metadata"]["resourceVersion"])


async def test_watch_survives_drop_and_expiry(
    kclient: AsyncMaestroClient,
    cluster: FakeCluster,
    model: RegisteredModel,
    deployment_name: str,
) -> None:
    kube = await kclient._cluster.get()
    # Short server timeouts make the watch reconnect often, and every new
    # connection is where an armed fault acts.
    kube.watch_settings.server_timeout = 0.2
    api = kclient.deployment
    drop = cluster.faults.drop_watch(plural="inferenceservices", after_events=1)
    recorder = Recorder(kclient, deployment_name)
    try:
        await api.deploy(deployment_name, model.name, alias="champion")
        await recorder.until(lambda: recorder.last_up_to_date(min_replicas=1))
        await api.update(deployment_name, replicas=2)
        await recorder.until(lambda: recorder.last_up_to_date(min_replicas=2))
        assert drop.hits == 1
        assert recorder.events[0].type == "ADDED"
        # A dropped connection resumes from the last resourceVersion, so every
        # stored change arrives once and in order.
        start = int(recorder.versions()[0]) - 1
        assert recorder.versions() == store_versions(cluster, deployment_name, start)

        expire = cluster.faults.expire_watch(plural="inferenceservices")
        await eventually(lambda: expire.hits == 1)
        before = len(recorder.events)
        await api.update(deployment_name, replicas=3)
        await recorder.until(lambda: recorder.last_up_to_date(min_replicas=3))
        assert expire.hits == 1
        assert len(recorder.events) > before
        versions = recorder.versions()
        assert len(versions) == len(set(versions))
        assert [int(v) for v in versions] == sorted(int(v) for v in versions)
        assert versions[-1] == current_version(cluster, deployment_name)
    finally:
        await recorder.stop()


async def test_watch_reconnects_silent_socket(
    kclient: AsyncMaestroClient,
    cluster: FakeCluster,
    model: RegisteredModel,
    deployment_name: str,
) -> None:
    kube = await kclient._cluster.get()
    kube.watch_settings.idle_timeout = 0.3
    api = kclient.deployment
    hang = cluster.faults.hang_watch(plural="inferenceservices")
    recorder = Recorder(kclient, deployment_name)
    try:
        await api.deploy(deployment_name, model.name, alias="champion")
        await recorder.until(lambda: recorder.last_up_to_date(min_replicas=1))
        assert hang.hits == 1
        assert recorder.versions()[-1] == current_version(cluster, deployment_name)
    finally:
        await recorder.stop()
    # The server notices a client that left a silent stream on its next write.
    await eventually(lambda: cluster.stats.watch_connections_open == 0)


async def test_watch_reports_deletion(
    kclient: AsyncMaestroClient,
    cluster: FakeCluster,
    model: RegisteredModel,
    deployment_name: str,
) -> None:
    api = kclient.deployment
    created = await api.deploy(deployment_name, model.name, alias="champion")
    recorder = Recorder(kclient, deployment_name)
    try:
        await created.wait_ready(timeout=WAIT)
        await recorder.reach(current_version(cluster, deployment_name))
        await api.delete(deployment_name)
        await recorder.until(lambda: recorder.events[-1].type == "DELETED")
        assert recorder.events[-1].deployment.name == deployment_name
    finally:
        await recorder.stop()


async def test_list_deployments_paged(
    kclient: AsyncMaestroClient,
    cluster: FakeCluster,
    model: RegisteredModel,
    unique: str,
) -> None:
    api = kclient.deployment
    names = sorted(f"svc-{unique}-{index}" for index in range(5))
    for name in names:
        await api.deploy(name, model.name, alias="champion")
    other = cluster.store.create(
        ISVC,
        {
            "apiVersion": "serving.kserve.io/v1beta1",
            "kind": "InferenceService",
            "metadata": {"name": f"foreign-{unique}", "namespace": NAMESPACE},
            "spec": {"predictor": {"model": {"modelFormat": {"name": "sklearn"}}}},
        },
    )
    before = cluster.stats.requests_by_verb.get("list", 0)
    listed = [item async for item in api.list_deployments(page_size=2)]
    assert cluster.stats.requests_by_verb.get("list", 0) - before == 3
    assert sorted(item.name for item in listed) == sorted(
        [*names, other["metadata"]["name"]]
    )
    foreign = next(item for item in listed if item.name.startswith("foreign"))
    assert foreign.model_name is None

    mine = await api.list_deployments(model_name=model.name, page_size=2)
    assert sorted(item.name for item in mine) == names
    assert all(item.model_version == "1" for item in mine)

    capped = await api.list_deployments(page_size=2, max_results=3)
    assert len(capped) == 3
    assert await api.list_deployments(model_name=f"other-{unique}") == []
    await asyncio.gather(*(api.delete(name) for name in names))
