"""Paged lists whose continue token expires before the next page is read.

The API server keeps a list's snapshot for five to fifteen minutes and then
responds to the next page's request with 410 Expired. The fake expires every
token issued so far on `expire_continue_tokens`.
"""

from __future__ import annotations

from typing import Any

import pytest
from _training_helpers import NAMESPACE

import maestro_ml_async._transport._kube as kube
from maestro_ml_async import AsyncMaestroClient, KubernetesException
from maestro_ml_async._transport._kube import ClusterTransport
from maestro_ml_async.testing import RESOURCE_TYPES, FakeCluster

PYTORCHJOBS = ("kubeflow.org", "v1", "pytorchjobs")


def expire_after_each_page(
    cluster: FakeCluster, transport: ClusterTransport, monkeypatch: pytest.MonkeyPatch
) -> list[str | None]:
    """Expire the continue tokens after every page; return the tokens sent."""
    read_page = transport.list_page
    sent: list[str | None] = []

    async def list_page(*args: Any, **kwargs: Any) -> dict[str, Any]:
        sent.append(kwargs.get("continue_token"))
        page = await read_page(*args, **kwargs)
        cluster.expire_continue_tokens()
        return page

    monkeypatch.setattr(transport, "list_page", list_page)
    return sent


async def test_slow_list_jobs_survives_expiry(
    cluster: FakeCluster, client: AsyncMaestroClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(kube, "_LIST_PAGE_SIZE", 2)
    for index in range(5):
        await client.training.submit_job(f"page-{index}", "pytorch", "img")
    lists_before = cluster.stats.requests_by_resource["list pytorchjobs"]
    names = []
    async for job in client.training.list_jobs():
        names.append(job.name)
        if len(names) == 1:
            cluster.expire_continue_tokens()
            # Sorts before every listed job, so only a restarted list returns
            # it. Its write also moves the store past the expired versions,
            # as the writes of a real cluster do while a caller is slow.
            await client.training.submit_job("a-late", "pytorch", "img")
    assert len(names) == len(set(names)), names
    assert sorted(names) == ["a-late"] + [f"page-{i}" for i in range(5)]
    # The first page, the expired second page, then the restarted list's three.
    lists = cluster.stats.requests_by_resource["list pytorchjobs"] - lists_before
    assert lists == 2 + 3


async def test_list_expiring_without_progress_raises(
    cluster: FakeCluster, client: AsyncMaestroClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    for index in range(5):
        await client.training.submit_job(f"stuck-{index}", "pytorch", "img")
    transport = await client._cluster.get()
    sent = expire_after_each_page(cluster, transport, monkeypatch)
    names = []
    with pytest.raises(KubernetesException) as caught:
        async for obj in transport.iter_list(*PYTORCHJOBS, NAMESPACE, page_size=2):
            names.append(obj["metadata"]["name"])
    assert caught.value.status_code == 410
    assert names == ["stuck-0", "stuck-1"]
    # The first list, then one more list from the first page per restart.
    assert sent.count(None) == 1 + kube._LIST_RESTARTS


async def test_list_all_relists_in_one_request(
    cluster: FakeCluster, client: AsyncMaestroClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    for index in range(5):
        await client.training.submit_job(f"all-{index}", "pytorch", "img")
    transport = await client._cluster.get()
    sent = expire_after_each_page(cluster, transport, monkeypatch)
    read_page = transport.list_page
    page_versions: list[str] = []

    async def list_page(*args: Any, **kwargs: Any) -> dict[str, Any]:
        page = await read_page(*args, **kwargs)
        page_versions.append(str(page["metadata"]["resourceVersion"]))
        # A write after the first page moves the version the relist returns.
        cluster.store.create(
            RESOURCE_TYPES["configmaps"],
            {"metadata": {"generateName": "bump-", "namespace": NAMESPACE}},
        )
        return page

    monkeypatch.setattr(transport, "list_page", list_page)
    lists_before = cluster.stats.requests_by_resource["list pytorchjobs"]
    items, list_rv = await transport.list_all(*PYTORCHJOBS, NAMESPACE, page_size=2)
    names = [item["metadata"]["name"] for item in items]
    assert names == [f"all-{i}" for i in range(5)]
    # The controllers keep writing, so the store may have moved on since; the
    # version must be the one of the list read after the expiry.
    assert list_rv == page_versions[-1]
    assert int(page_versions[-1]) > int(page_versions[0])
    # First page, the expired second page, then one list without a limit.
    assert cluster.stats.requests_by_resource["list pytorchjobs"] - lists_before == 3
    assert sent[-1] is None
