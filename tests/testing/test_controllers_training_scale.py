"""The simulated Training Operator creates the pods of a large job in steps."""

from __future__ import annotations

import asyncio
import itertools
from typing import Any

from _controller_host import (
    ControllerHost,
    conditions,
    drain,
    running_controllers,
    wait_for,
)

from maestro_ml_async.testing._controllers.training import CREATE_BATCH
from maestro_ml_async.testing._resources import RESOURCE_TYPES

Obj = dict[str, Any]
PJ = RESOURCE_TYPES["pytorchjobs.kubeflow.org"]
PODS = RESOURCE_TYPES["pods"]
LABEL_TYPE = "training.kubeflow.org/replica-type"
LABEL_INDEX = "training.kubeflow.org/replica-index"


def large_job(name: str, workers: int) -> Obj:
    template = {"spec": {"containers": [{"name": "pytorch", "image": "trainer:1"}]}}
    return {
        "metadata": {"name": name, "namespace": "default"},
        "spec": {
            "pytorchReplicaSpecs": {
                "Master": {"replicas": 1, "template": template},
                "Worker": {"replicas": workers, "template": template},
            }
        },
    }


def pod_count(host: ControllerHost) -> int:
    return len(host.store.peek(PODS, "default"))


def worker_indexes(host: ControllerHost) -> list[int]:
    return sorted(
        int(pod["metadata"]["labels"][LABEL_INDEX])
        for pod in host.store.peek(PODS, "default")
        if pod["metadata"]["labels"][LABEL_TYPE] == "worker"
    )


async def count_per_step(host: ControllerHost, until: int) -> list[int]:
    """Return the pod count after each event-loop step until it reaches `until`."""
    counts = [pod_count(host)]
    for _ in range(10_000):
        await asyncio.sleep(0)
        counts.append(pod_count(host))
        if counts[-1] >= until:
            return counts
    raise AssertionError(f"only {counts[-1]} of {until} pods were created")


async def test_large_job_created_in_steps() -> None:
    workers = 2 * CREATE_BATCH + 50
    async with running_controllers() as host:
        host.store.create(PJ, large_job("big", workers))
        counts = await count_per_step(host, workers + 1)
    steps = [after - before for before, after in itertools.pairwise(counts)]
    assert max(steps) <= CREATE_BATCH
    assert len([step for step in steps if step > 0]) >= 3
    assert counts[-1] == workers + 1


async def test_large_job_gets_every_replica() -> None:
    workers = 2 * CREATE_BATCH + 7
    async with running_controllers() as host:
        host.store.create(PJ, large_job("every", workers))

        def succeeded() -> bool:
            job = host.store.get(PJ, "default", "every")
            return conditions(job).get("Succeeded") == "True"

        await wait_for(lambda: pod_count(host) == workers + 1, timeout=30)
        assert worker_indexes(host) == list(range(workers))
        await wait_for(succeeded, timeout=60)
        job = host.store.get(PJ, "default", "every")
    assert job is not None
    replica_statuses = job["status"]["replicaStatuses"]
    assert replica_statuses["Worker"].get("succeeded") == workers
    assert replica_statuses["Master"].get("succeeded") == 1


async def until_first_pods(host: ControllerHost) -> None:
    """Return in the first event-loop step that finds a pod."""
    for _ in range(10_000):
        if pod_count(host) > 0:
            return
        await asyncio.sleep(0)
    raise AssertionError("no pod was created")


def created_pods(queue: asyncio.Queue[Any]) -> int:
    return sum(1 for event in drain(queue) if event.type == "ADDED")


async def test_deleted_job_gets_no_more_pods() -> None:
    workers = 5 * CREATE_BATCH
    async with running_controllers() as host:
        queue = host.store.subscribe(PODS.key)
        host.store.create(PJ, large_job("gone", workers))
        await until_first_pods(host)
        host.store.delete(PJ, "default", "gone")
        for _ in range(20):
            await asyncio.sleep(0)
        created = created_pods(queue)
    assert 0 < created <= 2 * CREATE_BATCH


async def test_suspended_job_gets_no_more_pods() -> None:
    workers = 5 * CREATE_BATCH
    async with running_controllers() as host:
        queue = host.store.subscribe(PODS.key)
        host.store.create(PJ, large_job("paused", workers))
        await until_first_pods(host)

        def suspend(obj: Obj) -> None:
            obj["spec"]["runPolicy"] = {"suspend": True}

        host.store.mutate(PJ, "default", "paused", suspend)

        def suspended() -> bool:
            job = host.store.get(PJ, "default", "paused")
            return conditions(job).get("Suspended") == "True"

        await wait_for(suspended, timeout=30)
        for _ in range(20):
            await asyncio.sleep(0)
        remaining = pod_count(host)
        created = created_pods(queue)
    assert remaining == 0
    assert 0 < created <= 2 * CREATE_BATCH
