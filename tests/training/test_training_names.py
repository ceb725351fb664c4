"""Job names and namespaces are checked before any request is sent."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from maestro_ml_async import (
    AsyncMaestroClient,
    KubernetesNotFoundException,
    ValidationException,
)
from maestro_ml_async.testing import FakeCluster

Call = Callable[[AsyncMaestroClient, Any, Any], Awaitable[object]]


async def _first(iterator: Any) -> object:
    return await iterator.__anext__()


CALLS: dict[str, Call] = {
    "get_job": lambda c, n, ns: c.training.get_job(n, namespace=ns),
    "delete_job": lambda c, n, ns: c.training.delete_job(n, namespace=ns),
    "cancel_job": lambda c, n, ns: c.training.cancel_job(n, namespace=ns),
    "wait_for_job": lambda c, n, ns: c.training.wait_for_job(
        n, timeout=1, namespace=ns
    ),
    "wait_for_jobs": lambda c, n, ns: c.training.wait_for_jobs(
        [n], timeout=1, namespace=ns
    ),
    "watch": lambda c, n, ns: _first(c.training.watch(n, namespace=ns)),
    "logs": lambda c, n, ns: _first(c.training.logs(n, namespace=ns)),
    "logs_no_follow": lambda c, n, ns: _first(
        c.training.logs(n, follow=False, namespace=ns)
    ),
}

BAD_NAMES: list[tuple[object, str]] = [
    ("", "job name must be a non-empty string, got ''"),
    (None, "job name must be a non-empty string, got NoneType"),
    (5, "job name must be a non-empty string, got int"),
    (b"train", "job name must be a non-empty string, got bytes"),
    ("a" * 64, "is 64 characters; the maximum is 63"),
    ("a" * 200_000, "is 200000 characters; the maximum is 63"),
    ("Train", "not a valid Kubernetes name"),
    ("train\n", "not a valid Kubernetes name"),
    ("a/b", "not a valid Kubernetes name"),
]

BAD_NAMESPACES: list[tuple[object, str]] = [
    ("", "namespace must be a non-empty string"),
    (7, "namespace must be a non-empty string, got int"),
    ("a" * 64, "the maximum is 63"),
    ("Ml", "not a valid Kubernetes name"),
]


@pytest.mark.parametrize("method", sorted(CALLS))
@pytest.mark.parametrize(("name", "expected"), BAD_NAMES)
async def test_bad_job_name_sends_nothing(
    cluster: FakeCluster,
    client: AsyncMaestroClient,
    method: str,
    name: object,
    expected: str,
) -> None:
    before = cluster.stats.requests_total
    with pytest.raises(ValidationException) as caught:
        await CALLS[method](client, name, None)
    assert expected in str(caught.value)
    assert cluster.stats.requests_total == before


@pytest.mark.parametrize("method", sorted(CALLS))
@pytest.mark.parametrize(("namespace", "expected"), BAD_NAMESPACES)
async def test_bad_namespace_sends_nothing(
    cluster: FakeCluster,
    client: AsyncMaestroClient,
    method: str,
    namespace: object,
    expected: str,
) -> None:
    before = cluster.stats.requests_total
    with pytest.raises(ValidationException) as caught:
        await CALLS[method](client, "train", namespace)
    assert expected in str(caught.value)
    assert cluster.stats.requests_total == before


async def test_long_name_message_is_cut(client: AsyncMaestroClient) -> None:
    with pytest.raises(ValidationException) as caught:
        await client.training.get_job("a" * 200_000)
    assert len(str(caught.value)) < 200


@pytest.mark.parametrize("name", ["", None])
async def test_delete_empty_name_keeps_jobs(
    client: AsyncMaestroClient, name: object
) -> None:
    await client.training.submit_job("keep-one", "pytorch", "img")
    await client.training.submit_job("keep-two", "sklearn", "img")
    with pytest.raises(ValidationException):
        await client.training.delete_job(name)  # type: ignore[arg-type]
    names = sorted([job.name async for job in client.training.list_jobs()])
    assert names == ["keep-one", "keep-two"]


async def test_cancel_empty_name_is_typed(client: AsyncMaestroClient) -> None:
    await client.training.submit_job("still-here", "pytorch", "img")
    with pytest.raises(ValidationException):
        await client.training.cancel_job("")
    job = await client.training.get_job("still-here")
    assert job.status.value != "suspended"


async def test_name_may_start_with_digit(client: AsyncMaestroClient) -> None:
    # Only submit_job requires a letter first. A batch Job made by other tools
    # may start with a digit, so reading one is a lookup, not a local error.
    with pytest.raises(KubernetesNotFoundException):
        await client.training.get_job("9lives")


@pytest.mark.parametrize(
    ("names", "expected"),
    [
        ("abc", "job names must be a list of names, got the str 'abc'"),
        (b"abc", "job names must be a list of names, got the bytes b'abc'"),
        ("a" * 200_000, "got the str 'aaaa"),
        (None, "job names must be a list of names, got NoneType"),
        (5, "job names must be a list of names, got int"),
        ({"abc": 1}, "job names must be a list of names, got dict"),
        (["good", ""], "job name must be a non-empty string, got ''"),
        (("good", None), "job name must be a non-empty string, got NoneType"),
        (["good", "a" * 64], "the maximum is 63"),
    ],
)
async def test_wait_for_jobs_rejects_names(
    cluster: FakeCluster, client: AsyncMaestroClient, names: object, expected: str
) -> None:
    before = cluster.stats.requests_total
    with pytest.raises(ValidationException) as caught:
        await client.training.wait_for_jobs(names, timeout=1)  # type: ignore[arg-type]
    assert expected in str(caught.value)
    assert len(str(caught.value)) < 300
    assert cluster.stats.requests_total == before


@pytest.mark.parametrize(
    ("arguments", "expected"),
    [
        ({"timeout": -1}, "timeout must not be negative"),
        ({"timeout": "x"}, "timeout must be a number"),
        ({"namespace": ""}, "namespace must be a non-empty string"),
    ],
)
async def test_wait_for_jobs_checks_arguments(
    cluster: FakeCluster,
    client: AsyncMaestroClient,
    arguments: dict[str, Any],
    expected: str,
) -> None:
    before = cluster.stats.requests_total
    with pytest.raises(ValidationException) as caught:
        await client.training.wait_for_jobs(["one", "two"], **arguments)
    assert expected in str(caught.value)
    assert cluster.stats.requests_total == before


async def test_wait_for_jobs_accepts_collections(
    client: AsyncMaestroClient,
) -> None:
    await client.training.submit_job("set-one", "sklearn", "img")
    await client.training.submit_job("set-two", "sklearn", "img")
    jobs = await client.training.wait_for_jobs(
        (name for name in ["set-one", "set-two"]), timeout=30
    )
    assert [job.name for job in jobs] == ["set-one", "set-two"]  # type: ignore[union-attr]
    empty = await client.training.wait_for_jobs([])
    assert empty == []
