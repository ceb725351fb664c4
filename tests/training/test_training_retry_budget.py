"""The retry budget (`retry_max_elapsed`) of the cluster transport."""

from __future__ import annotations

import time

import pytest
from _training_helpers import make_client

from maestro_ml_async import KubernetesException
from maestro_ml_async.testing import FakeCluster


@pytest.mark.parametrize("verb", ["create", "get"])
async def test_long_retry_after_ends_retries(cluster: FakeCluster, verb: str) -> None:
    fault = cluster.faults.throttle(
        retry_after=3600, times=None, verb=verb, plural="pytorchjobs"
    )
    async with make_client(cluster, retry_max_elapsed=5.0) as client:
        started = time.monotonic()
        with pytest.raises(KubernetesException) as caught:
            if verb == "create":
                await client.training.submit_job("slow", "pytorch", "img")
            else:
                await client.training.get_job("slow")
        elapsed = time.monotonic() - started
    assert caught.value.status_code == 429
    assert "Retry-After of 3600 s" in caught.value.message
    assert "retry_max_elapsed" in caught.value.message
    assert fault.hits == 1
    assert elapsed < 2.0


async def test_retry_after_within_budget_is_honoured(cluster: FakeCluster) -> None:
    fault = cluster.faults.throttle(retry_after=1, times=1, verb="create")
    async with make_client(cluster, retry_max_elapsed=5.0) as client:
        started = time.monotonic()
        job = await client.training.submit_job("patient", "pytorch", "img")
        elapsed = time.monotonic() - started
    assert job.name == "patient"
    assert fault.hits == 1
    assert elapsed >= 1.0


async def test_retries_stop_when_budget_is_spent(cluster: FakeCluster) -> None:
    fault = cluster.faults.fail(503, times=None, verb="get", plural="pytorchjobs")
    settings = {
        "max_retries": 20,
        "retry_backoff_base": 0.2,
        "retry_backoff_max": 0.2,
        "retry_max_elapsed": 0.5,
    }
    async with make_client(cluster, **settings) as client:
        started = time.monotonic()
        with pytest.raises(KubernetesException) as caught:
            await client.training.get_job("gone")
        elapsed = time.monotonic() - started
    assert caught.value.status_code == 503
    assert elapsed < 1.5
    assert 1 < fault.hits < 20
