"""Faults of the fake API server, as kubernetes-asyncio and raw HTTP see them."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import pytest_asyncio
from kubernetes_asyncio import client, config, watch
from kubernetes_asyncio.client.exceptions import ApiException

from maestro_ml_async.testing import RESOURCE_TYPES, FakeCluster

Obj = dict[str, Any]
PJ = "/apis/kubeflow.org/v1/namespaces/default/pytorchjobs"
PJ_TYPE = RESOURCE_TYPES["pytorchjobs.kubeflow.org"]
GROUP, VERSION, PLURAL = "kubeflow.org", "v1", "pytorchjobs"


def job(name: str) -> Obj:
    return {
        "apiVersion": "kubeflow.org/v1",
        "kind": "PyTorchJob",
        "metadata": {"name": name, "namespace": "default"},
        "spec": {},
    }


@pytest_asyncio.fixture
async def custom(bare_cluster: FakeCluster) -> AsyncIterator[client.CustomObjectsApi]:
    configuration = client.Configuration()
    await config.load_kube_config(
        config_file=bare_cluster.kubeconfig_path,
        context=bare_cluster.context,
        client_configuration=configuration,
    )
    async with client.ApiClient(configuration) as api_client:
        yield client.CustomObjectsApi(api_client)


async def test_status_fault_counts_down(
    custom: client.CustomObjectsApi, bare_cluster: FakeCluster
) -> None:
    fault = bare_cluster.faults.fail(503, times=2, verb="list", plural=PLURAL)
    for _ in range(2):
        with pytest.raises(ApiException) as caught:
            await custom.list_namespaced_custom_object(
                GROUP, VERSION, "default", PLURAL
            )
        assert caught.value.status == 503
        body = json.loads(caught.value.body)
        assert body["reason"] == "ServiceUnavailable"
    listed = await custom.list_namespaced_custom_object(
        GROUP, VERSION, "default", PLURAL
    )
    assert listed["items"] == []
    assert fault.hits == 2
    assert bare_cluster.faults.armed == []


@pytest.mark.parametrize(
    ("code", "reason"),
    [(401, "Unauthorized"), (403, "Forbidden"), (404, "NotFound"), (409, "Conflict")],
)
async def test_status_fault_reason_fits_code(
    custom: client.CustomObjectsApi, bare_cluster: FakeCluster, code: int, reason: str
) -> None:
    bare_cluster.faults.fail(code, verb="list", plural=PLURAL)

    with pytest.raises(ApiException) as caught:
        await custom.list_namespaced_custom_object(GROUP, VERSION, "default", PLURAL)

    assert caught.value.status == code
    assert json.loads(caught.value.body)["reason"] == reason


async def test_fault_scope_by_verb_and_name(
    custom: client.CustomObjectsApi, bare_cluster: FakeCluster
) -> None:
    bare_cluster.store.create(PJ_TYPE, job("a"))
    bare_cluster.store.create(PJ_TYPE, job("b"))
    bare_cluster.faults.fail(500, times=None, verb="get", name="b")
    got = await custom.get_namespaced_custom_object(
        GROUP, VERSION, "default", PLURAL, "a"
    )
    assert got["metadata"]["name"] == "a"
    with pytest.raises(ApiException) as caught:
        await custom.get_namespaced_custom_object(
            GROUP, VERSION, "default", PLURAL, "b"
        )
    assert caught.value.status == 500
    bare_cluster.faults.clear()
    await custom.get_namespaced_custom_object(GROUP, VERSION, "default", PLURAL, "b")


async def test_throttle_sends_retry_after(
    http: aiohttp.ClientSession, bare_cluster: FakeCluster
) -> None:
    bare_cluster.faults.throttle(retry_after=3, watch=False)
    async with http.get(PJ) as response:
        assert response.status == 429
        assert response.headers["Retry-After"] == "3"
        body = await response.json()
    assert body["reason"] == "TooManyRequests"
    assert body["details"] == {"retryAfterSeconds": 3}
    async with http.get(PJ) as response:
        assert response.status == 200


async def test_lose_write_race(
    custom: client.CustomObjectsApi, bare_cluster: FakeCluster
) -> None:
    bare_cluster.store.create(PJ_TYPE, job("a"))
    bare_cluster.faults.lose_write_race(times=1, plural=PLURAL)
    await custom.get_namespaced_custom_object(GROUP, VERSION, "default", PLURAL, "a")
    patch = {"metadata": {"labels": {"x": "1"}}}
    with pytest.raises(ApiException) as caught:
        await custom.patch_namespaced_custom_object(
            GROUP,
            VERSION,
            "default",
            PLURAL,
            "a",
            patch,
            _content_type="application/merge-patch+json",
        )
    assert caught.value.status == 409
    assert json.loads(caught.value.body)["reason"] == "Conflict"
    patched = await custom.patch_namespaced_custom_object(
        GROUP,
        VERSION,
        "default",
        PLURAL,
        "a",
        patch,
        _content_type="application/merge-patch+json",
    )
    assert patched["metadata"]["labels"] == {"x": "1"}


async def test_expired_token_until_rotated(
    custom: client.CustomObjectsApi, bare_cluster: FakeCluster
) -> None:
    bare_cluster.expire_token()
    with pytest.raises(ApiException) as caught:
        await custom.list_namespaced_custom_object(GROUP, VERSION, "default", PLURAL)
    assert caught.value.status == 401
    new_token = bare_cluster.rotate_token()
    with pytest.raises(ApiException):
        await custom.list_namespaced_custom_object(GROUP, VERSION, "default", PLURAL)
    kubeconfig = json.loads(Path(bare_cluster.kubeconfig_path).read_text())  # noqa: ASYNC240
    assert kubeconfig["users"][0]["user"]["token"] == new_token
    configuration = client.Configuration()
    await config.load_kube_config(
        config_file=bare_cluster.kubeconfig_path, client_configuration=configuration
    )
    async with client.ApiClient(configuration) as api_client:
        fresh = client.CustomObjectsApi(api_client)
        await fresh.list_namespaced_custom_object(GROUP, VERSION, "default", PLURAL)
    assert bare_cluster.stats.unauthorized_total == 2


async def test_injected_410_raises_api_exception(
    custom: client.CustomObjectsApi, bare_cluster: FakeCluster
) -> None:
    bare_cluster.store.create(PJ_TYPE, job("a"))
    fault = bare_cluster.faults.expire_watch(after_events=1, times=None)
    stream = watch.Watch()
    seen = []
    with pytest.raises(ApiException) as caught:
        async with stream.stream(
            custom.list_namespaced_custom_object,
            GROUP,
            VERSION,
            "default",
            PLURAL,
            timeout_seconds=5,
        ) as events:
            async for event in events:
                seen.append(event["type"])
    assert caught.value.status == 410
    assert seen == ["ADDED"]
    assert fault.hits >= 1


async def test_drop_watch_mid_line(
    http: aiohttp.ClientSession, bare_cluster: FakeCluster
) -> None:
    bare_cluster.store.create(PJ_TYPE, job("a"))
    bare_cluster.faults.drop_watch(after_events=1)
    async with http.get(PJ, params={"watch": "1"}) as response:
        first = await response.content.readline()
        assert json.loads(first)["type"] == "ADDED"
        bare_cluster.store.create(PJ_TYPE, job("b"))
        with pytest.raises(aiohttp.ClientPayloadError):
            rest = await asyncio.wait_for(response.content.read(), 2)
            assert not rest.endswith(b"\n"), "the last line must be cut short"
    async with http.get(PJ, params={"watch": "1", "timeoutSeconds": "1"}) as response:
        lines = (await response.read()).splitlines()
    assert len(lines) == 2, "the fault is one-shot, so the next watch works"


async def test_drop_watch_leaves_half_a_line(bare_cluster: FakeCluster) -> None:
    bare_cluster.faults.drop_watch()
    reader, writer = await asyncio.open_connection("127.0.0.1", _port(bare_cluster))
    request = (
        f"GET {PJ}?watch=true HTTP/1.1\r\nHost: x\r\n"
        f"Authorization: Bearer {bare_cluster.token}\r\n\r\n"
    )
    writer.write(request.encode())
    await writer.drain()
    await asyncio.sleep(0.05)
    bare_cluster.store.create(PJ_TYPE, job("a"))
    received = await asyncio.wait_for(reader.read(), 2)
    writer.close()
    head, _, body = received.partition(b"\r\n\r\n")
    assert b"200 OK" in head
    assert b'{"type":"ADDED"' in body
    assert not body.endswith(b"0\r\n\r\n"), "an aborted stream has no final chunk"
    assert not body.rstrip(b"\r\n").endswith(b"}"), "the JSON line is cut in half"


def _port(cluster: FakeCluster) -> int:
    return int(cluster.url.rsplit(":", 1)[1])


async def test_hang_watch_stays_silent(
    http: aiohttp.ClientSession, bare_cluster: FakeCluster
) -> None:
    bare_cluster.store.create(PJ_TYPE, job("a"))
    bare_cluster.faults.hang_watch()
    params = {"watch": "1", "timeoutSeconds": "1"}
    async with http.get(PJ, params=params) as response:
        assert response.status == 200
        with pytest.raises(asyncio.TimeoutError):
            await asyncio.wait_for(response.content.readline(), 1.5)
    assert bare_cluster.stats.watch_connections_total == 1


async def test_empty_watch(
    http: aiohttp.ClientSession, bare_cluster: FakeCluster
) -> None:
    bare_cluster.store.create(PJ_TYPE, job("a"))
    bare_cluster.faults.empty_watch()
    async with http.get(PJ, params={"watch": "1"}) as response:
        assert response.status == 200
        assert await response.read() == b""


async def test_watch_faults_skip_plain_requests(
    http: aiohttp.ClientSession, bare_cluster: FakeCluster
) -> None:
    fault = bare_cluster.faults.empty_watch()
    async with http.get(PJ) as response:
        assert response.status == 200
    assert fault.hits == 0


POD_TYPE = RESOURCE_TYPES["pods"]


def running_pod(cluster: FakeCluster, name: str, containers: list[str]) -> None:
    spec = {"containers": [{"name": c, "image": "busybox"} for c in containers]}
    cluster.store.create(POD_TYPE, {"metadata": {"name": name}, "spec": spec})
    statuses = [
        {"name": c, "state": {"running": {}}, "ready": True} for c in containers
    ]
    status = {"phase": "Running", "containerStatuses": statuses}
    cluster.store.update_status(POD_TYPE, "default", name, status)


def log_path(pod: str) -> str:
    return f"/api/v1/namespaces/default/pods/{pod}/log"


async def test_drop_log_cuts_followed_log(
    http: aiohttp.ClientSession, bare_cluster: FakeCluster
) -> None:
    running_pod(bare_cluster, "p", ["main"])
    logs = bare_cluster.pod_logs
    logs.append("default", "p", "main", "stored-0")
    logs.append("default", "p", "main", "stored-1")
    fault = bare_cluster.faults.drop_log(after_lines=3, pod="p", container="main")
    params = {"follow": "true", "container": "main"}
    async with http.get(log_path("p"), params=params) as response:
        assert response.status == 200
        assert await response.content.readline() == b"stored-0\n"
        assert await response.content.readline() == b"stored-1\n"
        logs.append("default", "p", "main", "live-2")
        assert await response.content.readline() == b"live-2\n"
        logs.append("default", "p", "main", "live-3 is cut in half")
        with pytest.raises(aiohttp.ClientPayloadError):
            await asyncio.wait_for(response.content.read(), 2)
    assert fault.hits == 1
    # The fault is one-shot, so the next follow reads every line.
    logs.finish("default", "p", "main")
    async with http.get(log_path("p"), params=params) as response:
        text = await response.text()
    assert text.splitlines() == [
        "stored-0",
        "stored-1",
        "live-2",
        "live-3 is cut in half",
    ]


async def test_drop_log_scope(
    http: aiohttp.ClientSession, bare_cluster: FakeCluster
) -> None:
    running_pod(bare_cluster, "p", ["main", "side"])
    running_pod(bare_cluster, "q", ["main"])
    for pod, container in (("p", "main"), ("p", "side"), ("q", "main")):
        bare_cluster.pod_logs.append("default", pod, container, "line")
        bare_cluster.pod_logs.finish("default", pod, container)
    fault = bare_cluster.faults.drop_log(pod="p", container="main")
    # Reads without follow, other containers and other pods are not cut.
    requests = [
        ("p", {"container": "main"}),
        ("p", {"container": "side", "follow": "true"}),
        ("q", {"container": "main", "follow": "true"}),
    ]
    for pod, params in requests:
        async with http.get(log_path(pod), params=params) as response:
            assert await response.text() == "line\n", (pod, params)
    assert fault.hits == 0
    params = {"container": "main", "follow": "true"}
    async with http.get(log_path("p"), params=params) as response:
        with pytest.raises(aiohttp.ClientPayloadError):
            await asyncio.wait_for(response.content.read(), 2)
    assert fault.hits == 1
