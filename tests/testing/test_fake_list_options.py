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


async def test_selector_page_keeps_token_for_unmatched_rest(
    http: aiohttp.ClientSession, bare_cluster: FakeCluster
) -> None:
    # etcd fills a page and then reads another key, so it returns a token even
    # though no later object matches. The next page is then empty and final.
    store = bare_cluster.store
    store.create(PJ_TYPE, job("a", team="x"))
    store.create(PJ_TYPE, job("b"))

    status, first = await list_jobs(http, limit="1", labelSelector="team=x")

    assert status == 200
    assert names(first) == ["a"]
    token = first["metadata"]["continue"]
    assert "remainingItemCount" not in first["metadata"]
    status, second = await list_jobs(
        http, limit="1", labelSelector="team=x", **{"continue": token}
    )
    assert status == 200
    assert names(second) == []
    assert "continue" not in second["metadata"]


async def test_selector_page_scans_past_unmatched(
    http: aiohttp.ClientSession, bare_cluster: FakeCluster
) -> None:
    store = bare_cluster.store
    for name in ("a", "b", "c"):
        store.create(PJ_TYPE, job(name))
    store.create(PJ_TYPE, job("d", team="x"))

    status, body = await list_jobs(http, limit="1", labelSelector="team=x")

    assert status == 200
    assert names(body) == ["d"]
    assert "continue" not in body["metadata"], "d is the last key"


async def test_continue_with_resource_version_gets_400(
    http: aiohttp.ClientSession, bare_cluster: FakeCluster
) -> None:
    store = bare_cluster.store
    for name in ("a", "b"):
        store.create(PJ_TYPE, job(name))
    _, first = await list_jobs(http, limit="1")
    token = first["metadata"]["continue"]
    version = first["metadata"]["resourceVersion"]

    status, body = await list_jobs(
        http, limit="1", resourceVersion=version, **{"continue": token}
    )
    zero_status, zero_body = await list_jobs(
        http, limit="1", resourceVersion="0", **{"continue": token}
    )

    assert status == 400
    assert body["reason"] == "BadRequest"
    assert body["message"] == (
        "specifying resource version is not allowed when using continue"
    )
    assert zero_status == 200, "resourceVersion=0 is allowed next to a token"
    assert names(zero_body) == ["b"]


async def test_malformed_continue_gets_400(http: aiohttp.ClientSession) -> None:
    status, body = await list_jobs(http, limit="1", **{"continue": "not-a-token"})

    assert status == 400
    assert body["reason"] == "BadRequest"
    assert body["message"].startswith(
        "invalid continue token: continue key is not valid"
    )


async def test_legacy_version_with_limit_is_exact(
    http: aiohttp.ClientSession, bare_cluster: FakeCluster
) -> None:
    # Without resourceVersionMatch, a non-zero resourceVersion means "not
    # older than" on a full list but "exactly" on a list with a limit.
    store = bare_cluster.store
    store.create(PJ_TYPE, job("a"))
    then = store.resource_version
    store.create(PJ_TYPE, job("b"))

    status, paged = await list_jobs(http, limit="5", resourceVersion=str(then))
    _, full = await list_jobs(http, resourceVersion=str(then))

    assert status == 200
    assert names(paged) == ["a"]
    assert paged["metadata"]["resourceVersion"] == str(then)
    assert names(full) == ["a", "b"]
    assert full["metadata"]["resourceVersion"] == str(store.resource_version)


async def test_expired_continue_offers_inconsistent_token(
    http: aiohttp.ClientSession, bare_cluster: FakeCluster
) -> None:
    store = bare_cluster.store
    for name in ("a", "b", "c"):
        store.create(PJ_TYPE, job(name))
    _, first = await list_jobs(http, limit="1")
    store.delete(PJ_TYPE, "default", "b")
    store.create(PJ_TYPE, job("d"))
    bare_cluster.expire_continue_tokens()

    status, expired = await list_jobs(
        http, limit="1", **{"continue": first["metadata"]["continue"]}
    )

    assert status == 410
    assert expired["reason"] == "Expired"
    assert expired["message"].startswith(
        "The provided continue parameter is too old to display a consistent list "
        "result. You can start a new list without the continue parameter, or use "
        "the continue token in this response"
    )
    token = expired["metadata"]["continue"]
    status, rest = await list_jobs(http, limit="5", **{"continue": token})
    assert status == 200
    assert names(rest) == ["c", "d"], "the token resumes at the current state"
    assert rest["metadata"]["resourceVersion"] == str(store.resource_version)
