"""The whole life of training jobs on the fake cluster: submit, watch, logs, wait."""

from __future__ import annotations

import asyncio

from _training_helpers import NAMESPACE, eventually

from maestro_ml_async import AsyncMaestroClient
from maestro_ml_async.testing import FakeCluster
from maestro_ml_async.testing._scripts import PodScript
from maestro_ml_async.types.training import JobStatus


async def test_pytorch_job_master_and_three_workers(
    cluster: FakeCluster, client: AsyncMaestroClient
) -> None:
    lines = tuple((0.01, f"epoch {i}") for i in range(5))
    # The pods are scheduled only once the watch has the Created job.
    script = PodScript(logs=lines, gate="ptj", gate_stage="schedule")
    cluster.scripts.set("pytorchjobs", "ptj", script)
    job = await client.training.submit_job(
        "ptj", "pytorch", "pytorch/pytorch:2.4", workers=3, params={"lr": 0.1}
    )
    assert job.kind == "PyTorchJob"
    assert job.status is JobStatus.CREATED

    states: list[JobStatus] = []

    async def collect_states() -> None:
        async for snapshot in job.watch():
            states.append(snapshot.status)

    async def collect_logs() -> list[object]:
        return [line async for line in job.logs(follow=True, pod_timeout=5)]

    watcher = asyncio.ensure_future(collect_states())
    await eventually(lambda: bool(states), timeout=10, what="a first snapshot")
    cluster.scripts.open_gate("ptj")
    _, logs, final = await asyncio.gather(watcher, collect_logs(), job.wait(timeout=10))
    assert states[0] is JobStatus.CREATED
    assert JobStatus.RUNNING in states
    assert states[-1] is JobStatus.SUCCEEDED
    assert final.status is JobStatus.SUCCEEDED
    assert final.pods == {
        "Master": ["ptj-master-0"],
        "Worker": ["ptj-worker-0", "ptj-worker-1", "ptj-worker-2"],
    }
    by_pod: dict[str, list[str]] = {}
    for line in logs:
        by_pod.setdefault(line.pod, []).append(line.line)
    assert set(by_pod) == {
        "ptj-master-0",
        "ptj-worker-0",
        "ptj-worker-1",
        "ptj-worker-2",
    }
    for pod_lines in by_pod.values():
        assert pod_lines == [f"epoch {i}" for i in range(5)]
    master_lines = [line for line in logs if line.pod == "ptj-master-0"]
    assert master_lines[0].replica_type == "Master"
    assert master_lines[0].replica_index == 0
    assert master_lines[0].container == "pytorch"

    manifest = final.raw["spec"]["pytorchReplicaSpecs"]
    assert manifest["Master"]["replicas"] == 1
    assert manifest["Worker"]["replicas"] == 3
    container = manifest["Worker"]["template"]["spec"]["containers"][0]
    env = {e["name"]: e["value"] for e in container["env"]}
    assert env["PARAM_LR"] == "0.1"
    assert env["MLFLOW_EXPERIMENT_NAME"] == "ptj"
    assert container["args"] == ["--lr=0.1"]
    assert final.labels["maestro-ml.io/managed-by"] == "maestro-ml-async"
    assert final.labels["maestro-ml.io/framework"] == "pytorch"
    assert NAMESPACE == final.namespace


async def test_batch_job_lifecycle(
    cluster: FakeCluster, client: AsyncMaestroClient
) -> None:
    # The pod is scheduled only once the watch has the Created job.
    script = PodScript(
        logs=((0.01, "fit"), (0.01, "score 0.9")), gate="skl", gate_stage="schedule"
    )
    cluster.scripts.set("jobs", "skl", script)
    job = await client.training.submit_job(
        "skl", "sklearn", "python:3.11", command=["python", "-c", "pass"]
    )
    assert job.kind == "Job"
    states = []
    logs = []

    async def collect_states() -> None:
        async for snapshot in job.watch():
            states.append(snapshot.status)

    async def collect_logs() -> None:
        async for line in job.logs():
            logs.append(line.line)

    watcher = asyncio.ensure_future(collect_states())
    await eventually(lambda: bool(states), timeout=10, what="a first snapshot")
    cluster.scripts.open_gate("skl")
    _, _, final = await asyncio.gather(watcher, collect_logs(), job.wait(timeout=10))
    assert final.status is JobStatus.SUCCEEDED
    assert states[-1] is JobStatus.SUCCEEDED
    assert states[0] is JobStatus.CREATED
    assert JobStatus.RUNNING in states
    assert logs == ["fit", "score 0.9"]
