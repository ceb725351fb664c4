"""The fake API server's pods/log endpoint, with lines fed through PodLogs."""

from __future__ import annotations

import asyncio
import re
from datetime import datetime, timedelta, timezone
from typing import Any

import aiohttp

from maestro_ml_async.testing import RESOURCE_TYPES, FakeCluster

Obj = dict[str, Any]
POD_TYPE = RESOURCE_TYPES["pods"]
LOG = "/api/v1/namespaces/default/pods/p/log"
STAMP = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{9}Z ")


def make_pod(cluster: FakeCluster, containers: list[str], state: Obj) -> None:
    spec = {"containers": [{"name": name, "image": "busybox"} for name in containers]}
    cluster.store.create(POD_TYPE, {"metadata": {"name": "p"}, "spec": spec})
    statuses = [{"name": name, "state": state, "ready": True} for name in containers]
    status = {"phase": "Running", "containerStatuses": statuses}
    cluster.store.update_status(POD_TYPE, "default", "p", status)


async def read_log(http: aiohttp.ClientSession, **params: str) -> tuple[int, str]:
    async with http.get(LOG, params=params) as response:
        return response.status, await response.text()


async def test_log_lines_and_content_type(
    http: aiohttp.ClientSession, bare_cluster: FakeCluster
) -> None:
    make_pod(bare_cluster, ["main"], {"running": {}})
    for text in ("one", "two", "three"):
        bare_cluster.pod_logs.append("default", "p", "main", text)
    async with http.get(LOG) as response:
        assert response.status == 200
        assert response.content_type == "text/plain"
        assert await response.text() == "one\ntwo\nthree\n"


async def test_tail_limit_and_timestamps(
    http: aiohttp.ClientSession, bare_cluster: FakeCluster
) -> None:
    make_pod(bare_cluster, ["main"], {"running": {}})
    for text in ("one", "two", "three"):
        bare_cluster.pod_logs.append("default", "p", "main", text)
    _, text = await read_log(http, tailLines="2")
    assert text == "two\nthree\n"
    _, text = await read_log(http, tailLines="0")
    assert text == ""
    _, text = await read_log(http, limitBytes="5")
    assert text == "one\nt"
    _, text = await read_log(http, timestamps="true")
    lines = text.splitlines()
    assert len(lines) == 3
    assert all(STAMP.match(line) for line in lines), lines
    assert lines[0].endswith(" one")


async def test_since_time_and_seconds(
    http: aiohttp.ClientSession, bare_cluster: FakeCluster
) -> None:
    make_pod(bare_cluster, ["main"], {"running": {}})
    now = datetime.now(timezone.utc)
    logs = bare_cluster.pod_logs
    logs.append("default", "p", "main", "old", timestamp=now - timedelta(hours=1))
    logs.append("default", "p", "main", "new", timestamp=now)
    since = (now - timedelta(minutes=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
    _, text = await read_log(http, sinceTime=since)
    assert text == "new\n"
    _, text = await read_log(http, sinceSeconds="60")
    assert text == "new\n"
    status, _ = await read_log(http, sinceTime="yesterday")
    assert status == 400


async def test_follow_ends_when_container_terminates(
    http: aiohttp.ClientSession, bare_cluster: FakeCluster
) -> None:
    make_pod(bare_cluster, ["main"], {"running": {}})
    logs = bare_cluster.pod_logs
    logs.append("default", "p", "main", "before")
    async with http.get(LOG, params={"follow": "true"}) as response:
        first = await asyncio.wait_for(response.content.readline(), 2)
        assert first == b"before\n"
        logs.append("default", "p", "main", "during")
        second = await asyncio.wait_for(response.content.readline(), 2)
        assert second == b"during\n"
        logs.finish("default", "p", "main")
        rest = await asyncio.wait_for(response.content.read(), 2)
    assert rest == b""


async def test_waiting_container_gets_400(
    http: aiohttp.ClientSession, bare_cluster: FakeCluster
) -> None:
    make_pod(bare_cluster, ["pytorch"], {"waiting": {"reason": "ContainerCreating"}})
    async with http.get(LOG) as response:
        assert response.status == 400
        body = await response.json()
    assert body == {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": (
            'container "pytorch" in pod "p" is waiting to start: ContainerCreating'
        ),
        "reason": "BadRequest",
        "code": 400,
    }


async def test_pull_error_reason_in_400(
    http: aiohttp.ClientSession, bare_cluster: FakeCluster
) -> None:
    make_pod(bare_cluster, ["main"], {"waiting": {"reason": "ImagePullBackOff"}})
    async with http.get(LOG) as response:
        body = await response.json()
    assert body["message"].endswith("is waiting to start: ImagePullBackOff")


async def test_container_choice(
    http: aiohttp.ClientSession, bare_cluster: FakeCluster
) -> None:
    make_pod(bare_cluster, ["a", "b"], {"running": {}})
    bare_cluster.pod_logs.append("default", "p", "b", "from b")
    async with http.get(LOG) as response:
        assert response.status == 400
        body = await response.json()
    expected = "a container name must be specified for pod p, choose one of: [a b]"
    assert body["message"] == expected
    status, text = await read_log(http, container="b")
    assert status == 200
    assert text == "from b\n"
    status, _ = await read_log(http, container="c")
    assert status == 400


async def test_previous_instance(
    http: aiohttp.ClientSession, bare_cluster: FakeCluster
) -> None:
    make_pod(bare_cluster, ["main"], {"running": {}})
    logs = bare_cluster.pod_logs
    async with http.get(LOG, params={"previous": "true"}) as response:
        assert response.status == 400
        body = await response.json()
    assert (
        body["message"] == 'previous terminated container "main" in pod "p" not found'
    )
    logs.append("default", "p", "main", "first run")
    logs.restart("default", "p", "main")
    logs.append("default", "p", "main", "second run")
    _, text = await read_log(http, previous="true")
    assert text == "first run\n"
    _, text = await read_log(http)
    assert text == "second run\n"


async def test_missing_pod_gets_404(http: aiohttp.ClientSession) -> None:
    async with http.get(LOG) as response:
        assert response.status == 404
        body = await response.json()
    assert body["message"] == 'pods "p" not found'


async def test_invalid_log_options_get_422(
    http: aiohttp.ClientSession, bare_cluster: FakeCluster
) -> None:
    make_pod(bare_cluster, ["main"], {"running": {}})
    cases = [
        (
            {"tailLines": "-1"},
            "tailLines: Invalid value: -1: must be greater than or equal to 0",
        ),
        ({"limitBytes": "0"}, "limitBytes: Invalid value: 0: must be greater than 0"),
        (
            {"sinceSeconds": "0"},
            "sinceSeconds: Invalid value: 0: must be greater than 0",
        ),
        (
            {"sinceSeconds": "5", "sinceTime": "2024-01-01T00:00:00Z"},
            ": Forbidden: at most one of `sinceTime` or `sinceSeconds` may be "
            "specified",
        ),
    ]
    for params, error in cases:
        async with http.get(LOG, params=params) as response:
            body = await response.json()
        assert response.status == 422, params
        assert body["reason"] == "Invalid", params
        assert body["message"] == f'PodLogOptions "p" is invalid: {error}', params


async def test_since_time_has_second_precision(
    http: aiohttp.ClientSession, bare_cluster: FakeCluster
) -> None:
    make_pod(bare_cluster, ["main"], {"running": {}})
    second = datetime(2024, 1, 5, 22, 58, 20, tzinfo=timezone.utc)
    logs = bare_cluster.pod_logs
    logs.append("default", "p", "main", "early", timestamp=second)
    logs.append(
        "default", "p", "main", "late", timestamp=second + timedelta(seconds=0.5)
    )
    logs.append("default", "p", "main", "next", timestamp=second + timedelta(seconds=1))

    _, text = await read_log(http, sinceTime="2024-01-05T22:58:20.600000000Z")

    assert text == "early\nlate\nnext\n", "the fraction of the second is dropped"
    status, _ = await read_log(http, sinceTime="2024-01-05T22:58:20")
    assert status == 400, "a time without an offset is rejected, not a 500"
