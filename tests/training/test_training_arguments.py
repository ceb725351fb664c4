"""Argument checks of submit_job and wait_for_job beyond the basic table."""

from __future__ import annotations

import pytest

from maestro_ml_async import AsyncMaestroClient, ValidationException
from maestro_ml_async.testing import FakeCluster
from maestro_ml_async.types.training import JobStatus


@pytest.mark.parametrize("until", ["bogus", 3, None])
async def test_wait_rejects_unknown_until(
    cluster: FakeCluster, client: AsyncMaestroClient, until: object
) -> None:
    await client.training.submit_job("waiter", "sklearn", "img")
    with pytest.raises(ValidationException) as caught:
        await client.training.wait_for_job("waiter", until=until)  # type: ignore[arg-type]
    message = str(caught.value)
    assert "until must be one of" in message
    for status in JobStatus:
        assert status.value in message


async def test_wait_accepts_until_in_any_case(client: AsyncMaestroClient) -> None:
    await client.training.submit_job("shouty", "sklearn", "img")
    job = await client.training.wait_for_job("shouty", timeout=10, until="SUCCEEDED")
    assert job.status is JobStatus.SUCCEEDED


@pytest.mark.parametrize(
    ("framework", "kind", "label"),
    [
        ("PyTorch", "PyTorchJob", "pytorch"),
        ("TensorFlow", "TFJob", "tensorflow"),
        ("SKLEARN", "Job", "sklearn"),
        ("TrainJob:torch-distributed", "TrainJob", "trainjob"),
    ],
)
async def test_framework_in_any_case(
    client: AsyncMaestroClient, framework: str, kind: str, label: str
) -> None:
    name = f"case-{label}"
    job = await client.training.submit_job(name, framework, "img")
    assert job.kind == kind
    assert job.raw["metadata"]["labels"]["maestro-ml.io/framework"] == label


async def test_framework_runtime_keeps_name_rules(client: AsyncMaestroClient) -> None:
    with pytest.raises(ValidationException, match="training runtime"):
        await client.training.submit_job("rt", "TrainJob:Torch", "img")
