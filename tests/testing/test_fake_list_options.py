"""resourceVersion, resourceVersionMatch and sendInitialEvents on lists and watches."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import aiohttp
import pytest

from maestro_ml_async.testing import RESOURCE_TYPES, FakeCluster

Obj = dict[str, Any]
PJ = "/apis/kubeflow.org/v1/namespaces/default/pytorchjobs"
PJ_TYPE = RESOURCE_TYPES["pytorchjobs.kubeflow.org"]


def job(name: str, **labels: str) -> Obj:
    return {"metadata": {"name": name, "namespace": "default", "labels": labels}}


async def list_jobs(http: aiohttp.ClientSession, **params: str) -> tuple[int, Obj]:
    async with http.get(PJ, params=params) as response:
        return response.status, await response.json()


def names(body: Obj) -> list[str]:
    return [item["metadata"]["name"] for item in body["items"]]


FORBIDDEN_LISTS = [
    (
        {"resourceVersionMatch": "Exact"},
        "resourceVersionMatch: Forbidden: resourceVersionMatch is forbidden unless "
        "resourceVersion is provided",
    ),
    (
        {"resourceVersion": "0", "resourceVersionMatch": "Exact"},
        'resourceVersionMatch: Forbidden: resourceVersionMatch "exact" is forbidden '
        'for resourceVersion "0"',
    ),
    (
        {"resourceVersion": "1", "resourceVersionMatch": "Newest"},
        'resourceVersionMatch: Unsupported value: "Newest": supported values: '
        '"Exact", "NotOlderThan", ""',
    ),
    (
        {"sendInitialEvents": "true"},
        "sendInitialEvents: Forbidden: sendInitialEvents is forbidden for list",
    ),
]


@pytest.mark.parametrize(("params", "error"), FORBIDDEN_LISTS)
async def test_list_option_errors(
    http: aiohttp.ClientSession, params: dict[str, str], error: str
) -> None:
    status, body = await list_jobs(http, **params)

    assert status == 422
    assert body["reason"] == "Invalid"
    assert body["message"] == f'ListOptions.meta.k8s.io "" is invalid: {error}'
    assert body["details"]["kind"] == "ListOptions"
    assert body["details"]["group"] == "meta.k8s.io"
    (cause,) = body["details"]["causes"]
    assert f"{cause['field']}: {cause['message']}" == error


async def test_list_option_errors_are_joined(http: aiohttp.ClientSession) -> None:
    params = {"resourceVersionMatch": "Exact", "continue": "abc"}

    status, body = await list_jobs(http, **params)

    assert status == 422
    assert body["message"].startswith('ListOptions.meta.k8s.io "" is invalid: [')
    assert len(body["details"]["causes"]) == 2


async def test_exact_list_shows_past_state(
    http: aiohttp.ClientSession, bare_cluster: FakeCluster
) -> None:
    store = bare_cluster.store
    store.create(PJ_TYPE, job("a", stage="one"))
    store.create(PJ_TYPE, job("b"))
    then = store.resource_version
    store.mutate(
        PJ_TYPE, "default", "a", lambda o: o["metadata"]["labels"].update(stage="two")
    )
    store.delete(PJ_TYPE, "default", "b")
    store.create(PJ_TYPE, job("c"))

    status, body = await list_jobs(
        http, resourceVersion=str(then), resourceVersionMatch="Exact"
    )

    assert status == 200
    assert body["metadata"]["resourceVersion"] == str(then)
    assert names(body) == ["a", "b"]
    assert body["items"][0]["metadata"]["labels"] == {"stage": "one"}
    _, latest = await list_jobs(http)
    assert names(latest) == ["a", "c"]


async def test_exact_list_too_old_gets_410(
    http: aiohttp.ClientSession, bare_cluster: FakeCluster
) -> None:
    store = bare_cluster.store
    store.create(PJ_TYPE, job("a"))
    old = store.resource_version
    for index in range(60):  # more than the fixture's history_size of 50
        store.mutate(
            PJ_TYPE, "default", "a", lambda o, i=index: o.update(spec={"i": i})
        )

    status, body = await list_jobs(
        http, resourceVersion=str(old), resourceVersionMatch="Exact"
    )

    assert status == 410
    assert body["reason"] == "Expired"
    assert body["message"] == "The resourceVersion for the provided list is too old."


@pytest.mark.parametrize("match", ["Exact", "NotOlderThan", None])
async def test_future_list_version_gets_504(
    http: aiohttp.ClientSession, bare_cluster: FakeCluster, match: str | None
) -> None:
    current = bare_cluster.store.resource_version
    params = {"resourceVersion": str(current + 5)}
    if match is not None:
        params["resourceVersionMatch"] = match

    status, body = await list_jobs(http, **params)

    assert status == 504
    assert body["reason"] == "Timeout"
    assert body["message"] == (
        f"Timeout: Too large resource version: {current + 5}, current: {current}"
    )


async def test_not_older_than_lists_current(
    http: aiohttp.ClientSession, bare_cluster: FakeCluster
) -> None:
    store = bare_cluster.store
    store.create(PJ_TYPE, job("a"))
    old = store.resource_version
    store.create(PJ_TYPE, job("b"))

    status, body = await list_jobs(
        http, resourceVersion=str(old), resourceVersionMatch="NotOlderThan"
    )

    assert status == 200
    assert names(body) == ["a", "b"]
    assert body["metadata"]["resourceVersion"] == str(store.resource_version)


async def test_continue_pages_are_consistent(
    http: aiohttp.ClientSession, bare_cluster: FakeCluster
) -> None:
    store = bare_cluster.store
    for name in ("a", "b", "c", "d"):
        store.create(PJ_TYPE, job(name))
    status, first = await list_jobs(http, limit="2")
    assert status == 200
    assert names(first) == ["a", "b"]
    store.delete(PJ_TYPE, "default", "c")
    store.create(PJ_TYPE, job("e"))
    store.mutate(PJ_TYPE, "default", "d", lambda o: o.update(spec={"late": True}))

    status, second = await list_jobs(
        http, limit="2", **{"continue": first["metadata"]["continue"]}
    )

    assert status == 200
    assert names(second) == ["c", "d"]
    assert "spec" not in second["items"][1]
    assert second["metadata"]["resourceVersion"] == first["metadata"]["resourceVersion"]
    assert "continue" not in second["metadata"]


FORBIDDEN_WATCHES = [
    (
        {"sendInitialEvents": "true"},
        "resourceVersionMatch: Forbidden: sendInitialEvents requires setting "
        "resourceVersionMatch to NotOlderThan",
    ),
    (
        {"resourceVersionMatch": "NotOlderThan"},
        "resourceVersionMatch: Forbidden: resourceVersionMatch is forbidden for "
        "watch unless sendInitialEvents is provided",
    ),
]


@pytest.mark.parametrize(("params", "error"), FORBIDDEN_WATCHES)
async def test_watch_option_errors(
    http: aiohttp.ClientSession, params: dict[str, str], error: str
) -> None:
    status, body = await list_jobs(http, watch="true", **params)

    assert status == 422
    assert body["message"] == f'ListOptions.meta.k8s.io "" is invalid: {error}'


async def test_watch_without_initial_events(
    http: aiohttp.ClientSession, bare_cluster: FakeCluster
) -> None:
    store = bare_cluster.store
    store.create(PJ_TYPE, job("old"))
    params = {
        "watch": "true",
        "sendInitialEvents": "false",
        "resourceVersionMatch": "NotOlderThan",
    }
    async with http.get(PJ, params=params) as response:
        assert response.status == 200
        await asyncio.sleep(0.05)
        store.create(PJ_TYPE, job("new"))
        line = await asyncio.wait_for(response.content.readline(), 2)

    event = json.loads(line)
    assert event["type"] == "ADDED"
    assert event["object"]["metadata"]["name"] == "new"


async def test_paged_list_across_prefix_namespaces(
    http: aiohttp.ClientSession, bare_cluster: FakeCluster
) -> None:
    # "ml-platform" sorts before "ml" in etcd's key order because "-" is below
    # "/", and a continue token must resume in that same order.
    store = bare_cluster.store
    for namespace in ("ml", "ml-platform"):
        if store.get(RESOURCE_TYPES["namespaces"], None, namespace) is None:
            store.create(
                RESOURCE_TYPES["namespaces"], {"metadata": {"name": namespace}}
            )
        for name in ("a", "b"):
            store.create(PJ_TYPE, {"metadata": {"name": name, "namespace": namespace}})
    all_namespaces = "/apis/kubeflow.org/v1/pytorchjobs"
    found: list[tuple[str, str]] = []
    params = {"limit": "1"}

    for _ in range(10):
        async with http.get(all_namespaces, params=params) as response:
            assert response.status == 200
            body = await response.json()
        found += [
            (item["metadata"]["namespace"], item["metadata"]["name"])
            for item in body["items"]
        ]
        token = body["metadata"].get("continue")
        if not token:
            break
        params = {"limit": "1", "continue": token}

    assert found == [
        ("ml-platform", "a"),
        ("ml-platform", "b"),
        ("ml", "a"),
        ("ml", "b"),
    ]
