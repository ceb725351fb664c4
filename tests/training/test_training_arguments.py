"""Argument checks of submit_job and wait_for_job beyond the basic table."""

from __future__ import annotations

from typing import Any

import pytest

from maestro_ml_async import (
    AsyncMaestroClient,
    KubernetesConflictException,
    ValidationException,
)
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


INVALID_VALUES = [
    ({"resources": {"cpu": "lots"}}, "not a valid quantity"),
    ({"resources": {"memory": "1 Gi"}}, "not a valid quantity"),
    ({"resources": {"memory": "1GB"}}, "not a valid quantity"),
    ({"resources": {"cpu": "-1"}}, "must not be negative"),
    ({"resources": {"cpu": True}}, "not a valid quantity"),
    ({"resources": {"cpu": None}}, "not a valid quantity"),
    ({"resources": {"limits": {"cpu": "2x"}}}, "not a valid quantity"),
    ({"resources": {"limits": "2"}}, "resources.limits must be a mapping"),
    ({"resources": {"requests": {"cpu": "1"}, "cpu": "1"}}, "requests and limits"),
    ({"resources": {"": "1"}}, "resource names"),
    ({"env": {"A": 1}}, "env value of 'A' must be a string"),
    ({"env": {"A": None}}, "env value of 'A' must be a string"),
    ({"params": {"n": None}}, "params value of 'n' is None"),
    (
        {"params": {"learning-rate": 1, "learning_rate": 2}},
        "'learning-rate' and 'learning_rate' both map to the variable "
        "PARAM_LEARNING_RATE",
    ),
    ({"params": {"lr": 1, "LR": 2}}, "'lr' and 'LR' both map"),
    ({"params": {"a=b": 1}}, "params key 'a=b' contains '='"),
    ({"params": {"batch size": 1}}, "params key 'batch size' contains"),
]


@pytest.mark.parametrize(("change", "message"), INVALID_VALUES)
async def test_invalid_values_send_nothing(
    cluster: FakeCluster,
    client: AsyncMaestroClient,
    change: dict[str, Any],
    message: str,
) -> None:
    arguments: dict[str, Any] = {"name": "ok", "framework": "pytorch", "image": "img"}
    arguments.update(change)
    creates = cluster.stats.requests_by_verb["create"]
    with pytest.raises(ValidationException, match=message):
        await client.training.submit_job(**arguments)
    assert cluster.stats.requests_by_verb["create"] == creates


async def test_valid_quantities_reach_the_spec(client: AsyncMaestroClient) -> None:
    resources = {
        "requests": {"cpu": "500m", "memory": "1.5Gi", "ephemeral-storage": "1e9"},
        "limits": {"cpu": 2, "memory": "2G", "example.com/fpga": 1},
    }
    job = await client.training.submit_job(
        "sized", "sklearn", "img", resources=resources, params={"lr": 0.1}
    )
    container = job.raw["spec"]["template"]["spec"]["containers"][0]
    assert container["resources"]["requests"] == resources["requests"]
    assert container["resources"]["limits"] == {
        "cpu": "2",
        "memory": "2G",
        "example.com/fpga": "1",
    }
    assert container["args"] == ["--lr=0.1"]


async def test_name_taken_by_other_kind_is_rejected(
    cluster: FakeCluster, client: AsyncMaestroClient
) -> None:
    await client.training.submit_job("okjob", "pytorch", "img")
    creates = cluster.stats.requests_by_verb["create"]
    with pytest.raises(KubernetesConflictException) as caught:
        await client.training.submit_job("okjob", "sklearn", "img")
    assert "PyTorchJob" in str(caught.value)
    assert caught.value.reason == "AlreadyExists"
    assert cluster.stats.requests_by_verb["create"] == creates
    names = [job.name async for job in client.training.list_jobs()]
    assert names.count("okjob") == 1


async def test_unreadable_kind_does_not_block_submit(
    cluster: FakeCluster, client: AsyncMaestroClient
) -> None:
    cluster.faults.fail(403, times=None, verb="get", plural="tfjobs")
    job = await client.training.submit_job("rbac", "pytorch", "img")
    assert job.kind == "PyTorchJob"


@pytest.mark.parametrize("framework", ["pytorch", "sklearn"])
async def test_job_name_must_start_with_letter(
    cluster: FakeCluster, client: AsyncMaestroClient, framework: str
) -> None:
    creates = cluster.stats.requests_by_verb["create"]

    with pytest.raises(ValidationException, match="start with a lowercase letter"):
        await client.training.submit_job("9lives", framework, "img")

    assert cluster.stats.requests_by_verb["create"] == creates


CHILD_NAME_CASES = [
    # (framework, workers, longest name length that the controller accepts)
    ("pytorch", 3, 63 - len("-master-0")),
    ("pytorch", 12, 63 - len("-worker-11")),
    ("tensorflow", 0, 63 - len("-chief-0")),
    ("mpi", 0, 63 - len("-launcher")),
    ("jax", 0, 63 - len("-worker-0")),
    ("trainjob", 4, 63 - len("-node-0-3")),
    ("sklearn", 12, 63 - len("-11")),
]


@pytest.mark.parametrize(("framework", "workers", "longest"), CHILD_NAME_CASES)
async def test_child_names_fit_dns_labels(
    cluster: FakeCluster,
    client: AsyncMaestroClient,
    framework: str,
    workers: int,
    longest: int,
) -> None:
    creates = cluster.stats.requests_by_verb["create"]
    too_long = "a" * (longest + 1)

    with pytest.raises(ValidationException) as caught:
        await client.training.submit_job(too_long, framework, "img", workers=workers)

    assert f"at most {longest} characters" in str(caught.value)
    assert cluster.stats.requests_by_verb["create"] == creates
    job = await client.training.submit_job(
        "a" * longest, framework, "img", workers=workers
    )
    assert len(job.name) == longest


async def test_single_batch_pod_keeps_full_name(client: AsyncMaestroClient) -> None:
    job = await client.training.submit_job("b" * 63, "sklearn", "img", workers=1)
    assert len(job.name) == 63


@pytest.mark.parametrize("timeout", [-1, float("nan"), "5", True])
async def test_wait_rejects_bad_timeout(
    client: AsyncMaestroClient, timeout: object
) -> None:
    await client.training.submit_job("timed", "sklearn", "img")

    with pytest.raises(ValidationException, match="timeout must"):
        await client.training.wait_for_job("timed", timeout=timeout)  # type: ignore[arg-type]


@pytest.mark.parametrize("pod_timeout", [-0.5, float("nan"), "10"])
async def test_logs_reject_bad_pod_timeout(
    client: AsyncMaestroClient, pod_timeout: object
) -> None:
    await client.training.submit_job("logged", "sklearn", "img")

    with pytest.raises(ValidationException, match="pod_timeout must"):
        async for _ in client.training.logs("logged", pod_timeout=pod_timeout):  # type: ignore[arg-type]
            pass


async def test_wait_with_zero_timeout_checks_once(client: AsyncMaestroClient) -> None:
    await client.training.submit_job("instant", "sklearn", "img")
    await client.training.wait_for_job("instant", timeout=10)

    job = await client.training.wait_for_job("instant", timeout=0)

    assert job.status is JobStatus.SUCCEEDED


BAD_TRAILING_NEWLINE = [
    ({"name": "nl\n"}, "not a valid Kubernetes name"),
    ({"resources": {"cpu": "500m\n"}}, "not a valid quantity"),
    ({"env": {"A\n": "1"}}, "not a valid variable name"),
    ({"labels": {"team\n": "a"}}, "not a valid label name"),
    ({"labels": {"team": "a\n"}}, "is invalid"),
]


@pytest.mark.parametrize(("change", "message"), BAD_TRAILING_NEWLINE)
async def test_trailing_newline_is_rejected(
    cluster: FakeCluster,
    client: AsyncMaestroClient,
    change: dict[str, Any],
    message: str,
) -> None:
    arguments: dict[str, Any] = {"name": "ok", "framework": "pytorch", "image": "img"}
    arguments.update(change)
    creates = cluster.stats.requests_by_verb["create"]

    with pytest.raises(ValidationException, match=message):
        await client.training.submit_job(**arguments)

    assert cluster.stats.requests_by_verb["create"] == creates
