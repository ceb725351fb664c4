"""A wait reports image pull errors of the job's pods while it waits."""

from __future__ import annotations

import logging
from collections import Counter

import pytest

from maestro_ml_async import AsyncMaestroClient, TrainingException
from maestro_ml_async.resources import _training_wait
from maestro_ml_async.testing import FakeCluster, hang, init_pull_error, pull_error
from maestro_ml_async.types.training import TrainingTimeoutException

LOGGER = "maestro_ml_async.resources.training"


@pytest.fixture(autouse=True)
def frequent_pod_checks(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_training_wait, "POD_CHECK_INTERVAL", 0.05)


def pull_warnings(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [
        record
        for record in caplog.records
        if record.name == LOGGER and record.levelno == logging.WARNING
    ]


@pytest.mark.parametrize(
    ("reason", "message"),
    [
        ("InvalidImageName", "invalid reference format"),
        ("ErrImageNeverPull", "is not present with pull policy of Never"),
    ],
)
async def test_never_pulled_image_fails_wait(
    cluster: FakeCluster,
    client: AsyncMaestroClient,
    caplog: pytest.LogCaptureFixture,
    reason: str,
    message: str,
) -> None:
    cluster.scripts.set("pytorchjobs", "no-pull", pull_error(reason))
    await client.training.submit_job("no-pull", "pytorch", "img:1", workers=1)
    with caplog.at_level(logging.WARNING, logger=LOGGER):
        with pytest.raises(TrainingException) as caught:
            await client.training.wait_for_job("no-pull", timeout=60)
    error = caught.value
    assert not isinstance(error, TrainingTimeoutException)
    assert error.reason == reason
    assert error.job_name == "no-pull"
    text = str(error)
    assert "cannot start" in text
    assert "no-pull-master-0" in text or "no-pull-worker-0" in text
    assert reason in text
    assert message in text
    warnings = pull_warnings(caplog)
    assert warnings
    assert reason in warnings[0].getMessage()
    assert message in warnings[0].getMessage()


async def test_init_container_never_pulled(
    cluster: FakeCluster, client: AsyncMaestroClient
) -> None:
    cluster.scripts.set("pytorchjobs", "init-never", hang())
    cluster.scripts.set(
        "pytorchjobs",
        "init-never",
        init_pull_error("ErrImageNeverPull"),
        replica_type="Worker",
    )
    await client.training.submit_job("init-never", "pytorch", "img:1", workers=1)
    with pytest.raises(TrainingException) as caught:
        await client.training.wait_for_job("init-never", timeout=60)
    assert not isinstance(caught.value, TrainingTimeoutException)
    assert caught.value.reason == "ErrImageNeverPull"
    assert "init-never-worker-0" in str(caught.value)


@pytest.mark.parametrize("reason", ["ImagePullBackOff", "ErrImagePull"])
async def test_retried_pull_warns_once(
    cluster: FakeCluster,
    client: AsyncMaestroClient,
    caplog: pytest.LogCaptureFixture,
    reason: str,
) -> None:
    cluster.scripts.set("pytorchjobs", "backoff", pull_error(reason))
    await client.training.submit_job("backoff", "pytorch", "img:1", workers=1)
    with caplog.at_level(logging.WARNING, logger=LOGGER):
        with pytest.raises(TrainingTimeoutException) as caught:
            await client.training.wait_for_job("backoff", timeout=1.5)
    assert caught.value.pod_reasons["backoff-master-0"].startswith(reason)
    warnings = pull_warnings(caplog)
    per_pod_reason = Counter(
        (pod, found)
        for record in warnings
        for pod in ("backoff-master-0", "backoff-worker-0")
        for found in ("ErrImagePull", "ImagePullBackOff")
        if pod in record.getMessage() and f"with {found}:" in record.getMessage()
    )
    assert len(per_pod_reason) == len(warnings)
    assert set(per_pod_reason.values()) == {1}
    assert ("backoff-master-0", reason) in per_pod_reason
    assert ("backoff-worker-0", reason) in per_pod_reason


async def test_pull_check_without_pods_is_quiet(
    cluster: FakeCluster,
    client: AsyncMaestroClient,
    caplog: pytest.LogCaptureFixture,
) -> None:
    cluster.scripts.set("pytorchjobs", "slow", hang())
    await client.training.submit_job("slow", "pytorch", "img:1", workers=1)
    with caplog.at_level(logging.WARNING, logger=LOGGER):
        with pytest.raises(TrainingTimeoutException):
            await client.training.wait_for_job("slow", timeout=0.5)
    assert pull_warnings(caplog) == []


async def test_pod_checks_back_off(
    cluster: FakeCluster, client: AsyncMaestroClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Checks at 0.05, 0.15, 0.35, 0.55, ... s: about 8 in 1.5 s, against 30
    # at a fixed 0.05 s interval.
    monkeypatch.setattr(_training_wait, "POD_CHECK_MAX_INTERVAL", 0.2)
    cluster.scripts.set("pytorchjobs", "steady", hang())
    await client.training.submit_job("steady", "pytorch", "img:1", workers=1)
    before = cluster.stats.requests_by_resource["list pods"]
    with pytest.raises(TrainingTimeoutException):
        await client.training.wait_for_job("steady", timeout=1.5)
    # The timeout error lists the pods once more.
    checks = cluster.stats.requests_by_resource["list pods"] - before - 1
    assert 2 <= checks <= 10
