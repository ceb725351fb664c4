"""Deployment names, namespaces and wait arguments are checked before sending."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest
import pytest_asyncio
from _deployment_helpers import make_client

from maestro_ml_async import AsyncMaestroClient, ValidationException
from maestro_ml_async.testing import FakeCluster

Call = Callable[[AsyncMaestroClient, Any, Any], Awaitable[object]]


@pytest_asyncio.fixture
async def unloaded(
    cluster: FakeCluster, mlflow_server_url: str
) -> AsyncIterator[AsyncMaestroClient]:
    """A client whose cluster transport has not been built yet."""
    async with make_client(cluster, mlflow_server_url) as maestro:
        yield maestro


async def _first(iterator: Any) -> object:
    return await iterator.__anext__()


CALLS: dict[str, Call] = {
    "deploy": lambda c, n, ns: c.deployment.deploy(
        n, "some-model", model_version=1, namespace=ns
    ),
    "get_deployment": lambda c, n, ns: c.deployment.get_deployment(n, namespace=ns),
    "update": lambda c, n, ns: c.deployment.update(n, replicas=2, namespace=ns),
    "update_version": lambda c, n, ns: c.deployment.update(
        n, model_version=2, namespace=ns
    ),
    "delete": lambda c, n, ns: c.deployment.delete(n, namespace=ns),
    "delete_missing_ok": lambda c, n, ns: c.deployment.delete(
        n, namespace=ns, missing_ok=True
    ),
    "promote": lambda c, n, ns: c.deployment.promote(n, namespace=ns),
    "rollback": lambda c, n, ns: c.deployment.rollback(n, namespace=ns),
    "wait_ready": lambda c, n, ns: c.deployment.wait_ready(n, timeout=1, namespace=ns),
    "watch": lambda c, n, ns: _first(c.deployment.watch(n, namespace=ns)),
}

BAD_NAMES: list[tuple[object, str]] = [
    ("", "deployment name must be a non-empty string, got ''"),
    (None, "deployment name must be a non-empty string, got NoneType"),
    (5, "deployment name must be a non-empty string, got int"),
    ("s" * 48, "is 48 characters; the maximum is 47"),
    ("s" * 200_000, "is 200000 characters; the maximum is 47"),
    ("Svc", "not a valid Kubernetes name"),
    ("svc\n", "not a valid Kubernetes name"),
]

BAD_NAMESPACES: list[tuple[object, str]] = [
    ("", "namespace must be a non-empty string, got ''"),
    (3, "namespace must be a non-empty string, got int"),
    ("n" * 64, "the maximum is 63"),
    ("Ml", "not a valid Kubernetes name"),
]


def assert_nothing_sent(maestro: AsyncMaestroClient, cluster: FakeCluster) -> None:
    assert not maestro._cluster.loaded
    assert cluster.stats.requests_total == 0


@pytest.mark.parametrize("method", sorted(CALLS))
@pytest.mark.parametrize(("name", "expected"), BAD_NAMES)
async def test_bad_name_sends_nothing(
    unloaded: AsyncMaestroClient,
    cluster: FakeCluster,
    method: str,
    name: object,
    expected: str,
) -> None:
    with pytest.raises(ValidationException) as caught:
        await CALLS[method](unloaded, name, None)
    assert expected in str(caught.value)
    assert len(str(caught.value)) < 300
    assert_nothing_sent(unloaded, cluster)


@pytest.mark.parametrize("method", sorted(CALLS))
@pytest.mark.parametrize(("namespace", "expected"), BAD_NAMESPACES)
async def test_bad_namespace_sends_nothing(
    unloaded: AsyncMaestroClient,
    cluster: FakeCluster,
    method: str,
    namespace: object,
    expected: str,
) -> None:
    with pytest.raises(ValidationException) as caught:
        await CALLS[method](unloaded, "svc", namespace)
    assert expected in str(caught.value)
    assert_nothing_sent(unloaded, cluster)


@pytest.mark.parametrize(
    ("arguments", "expected"),
    [
        ({"timeout": "x"}, "timeout must be a number of seconds or None"),
        ({"timeout": True}, "timeout must be a number of seconds or None"),
        ({"timeout": float("nan")}, "timeout must be positive, got nan"),
        ({"timeout": -1}, "timeout must be positive, got -1"),
        ({"min_generation": "2"}, "min_generation must be an integer"),
        ({"min_generation": 1.5}, "min_generation must be an integer"),
        ({"min_generation": -1}, "min_generation must not be negative"),
    ],
)
async def test_wait_ready_checks_arguments(
    unloaded: AsyncMaestroClient,
    cluster: FakeCluster,
    arguments: dict[str, Any],
    expected: str,
) -> None:
    with pytest.raises(ValidationException) as caught:
        await unloaded.deployment.wait_ready("svc", **arguments)
    assert expected in str(caught.value)
    assert_nothing_sent(unloaded, cluster)


@pytest.mark.parametrize(
    ("timeout", "expected"),
    [
        ("x", "timeout must be a number of seconds or None"),
        (float("nan"), "timeout must be positive, got nan"),
        (0, "timeout must be positive, got 0"),
    ],
)
async def test_update_checks_timeout(
    unloaded: AsyncMaestroClient, cluster: FakeCluster, timeout: object, expected: str
) -> None:
    with pytest.raises(ValidationException) as caught:
        await unloaded.deployment.update("svc", model_version=2, timeout=timeout)  # type: ignore[arg-type]
    assert expected in str(caught.value)
    assert_nothing_sent(unloaded, cluster)


@pytest.mark.parametrize(
    ("arguments", "expected"),
    [
        ({"max_results": "x"}, "max_results must be an integer, got 'x'"),
        ({"max_results": 1.5}, "max_results must be an integer"),
        ({"max_results": 0}, "max_results must be between 1 and"),
        ({"max_results": -3}, "max_results must be between 1 and"),
        ({"label_selector": 5}, "label_selector must be a string"),
        ({"label_selector": ["a=b"]}, "got list"),
        ({"page_size": "x"}, "page_size must be an integer"),
    ],
)
async def test_list_checks_arguments(
    unloaded: AsyncMaestroClient,
    cluster: FakeCluster,
    arguments: dict[str, Any],
    expected: str,
) -> None:
    with pytest.raises(ValidationException) as caught:
        unloaded.deployment.list_deployments(**arguments)
    assert expected in str(caught.value)
    assert_nothing_sent(unloaded, cluster)
