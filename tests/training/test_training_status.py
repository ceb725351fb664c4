"""Status mapping of job objects: a job that has run never reads as CREATED again."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from _training_helpers import eventually

from maestro_ml_async import AsyncMaestroClient
from maestro_ml_async.resources._training_kinds import (
    BATCH_JOB,
    FRAMEWORKS,
    TRAIN_JOB,
    JobKind,
    derive_status,
)
from maestro_ml_async.testing import RESOURCE_TYPES, FakeCluster
from maestro_ml_async.testing._scripts import PodScript, hang, succeed
from maestro_ml_async.types.training import JobEvent, JobStatus

PYTORCH = FRAMEWORKS["pytorch"]


def condition(kind: str, value: str = "True") -> dict[str, str]:
    return {"type": kind, "status": value}


def job(**status: Any) -> dict[str, Any]:
    return {"metadata": {"name": "j", "namespace": "ns"}, "status": status}


def timed(kind: str, when: str) -> dict[str, str]:
    return {"type": kind, "status": "True", "lastTransitionTime": when}


CASES: list[tuple[str, JobKind, dict[str, Any], JobStatus]] = [
    (
        "operator restarting after running",
        PYTORCH,
        job(conditions=[condition("Running"), condition("Restarting")]),
        JobStatus.RESTARTING,
    ),
    (
        "operator running again after restarting",
        PYTORCH,
        job(conditions=[condition("Restarting"), condition("Running")]),
        JobStatus.RUNNING,
    ),
    (
        "operator newer time beats list order",
        PYTORCH,
        job(
            conditions=[
                timed("Running", "2026-01-01T10:05:00Z"),
                timed("Restarting", "2026-01-01T10:00:00Z"),
            ]
        ),
        JobStatus.RUNNING,
    ),
    (
        "operator resumed after suspend",
        PYTORCH,
        job(conditions=[condition("Suspended"), condition("Running")]),
        JobStatus.RUNNING,
    ),
    (
        "operator suspended after running",
        PYTORCH,
        job(conditions=[condition("Running"), condition("Suspended")]),
        JobStatus.SUSPENDED,
    ),
    (
        "operator failed beats later running",
        PYTORCH,
        job(conditions=[condition("Failed"), condition("Running")]),
        JobStatus.FAILED,
    ),
    (
        "operator failed replica before its condition",
        PYTORCH,
        job(
            conditions=[condition("Created")],
            replicaStatuses={"Master": {"failed": 1}, "Worker": {}},
        ),
        JobStatus.RUNNING,
    ),
    (
        "mpi launcher failed before its condition",
        FRAMEWORKS["mpi"],
        job(
            conditions=[condition("Created")],
            replicaStatuses={"Launcher": {"failed": 1}, "Worker": None},
        ),
        JobStatus.RUNNING,
    ),
    (
        "operator empty replica counts",
        PYTORCH,
        job(
            conditions=[condition("Created")],
            replicaStatuses={"Master": {}, "Worker": None},
        ),
        JobStatus.CREATED,
    ),
    ("batch new", BATCH_JOB, job(), JobStatus.CREATED),
    (
        "batch pending pod",
        BATCH_JOB,
        job(startTime="t", active=1, ready=0),
        JobStatus.CREATED,
    ),
    ("batch ready pod", BATCH_JOB, job(active=1, ready=1), JobStatus.RUNNING),
    ("batch without ready field", BATCH_JOB, job(active=1), JobStatus.RUNNING),
    (
        "batch success criteria met",
        BATCH_JOB,
        job(
            startTime="t",
            succeeded=1,
            ready=0,
            conditions=[condition("SuccessCriteriaMet")],
        ),
        JobStatus.RUNNING,
    ),
    (
        "batch failure target",
        BATCH_JOB,
        job(startTime="t", failed=4, conditions=[condition("FailureTarget")]),
        JobStatus.RUNNING,
    ),
    (
        "batch succeeded pod before any condition",
        BATCH_JOB,
        job(startTime="t", succeeded=1, ready=0),
        JobStatus.RUNNING,
    ),
    (
        "batch pod ended but not yet counted",
        BATCH_JOB,
        job(
            startTime="t",
            ready=0,
            uncountedTerminatedPods={"succeeded": ["uid-1"]},
        ),
        JobStatus.RUNNING,
    ),
    (
        "batch replacement pending after failure",
        BATCH_JOB,
        job(startTime="t", active=1, ready=0, failed=1),
        JobStatus.RUNNING,
    ),
    (
        "batch pod terminating",
        BATCH_JOB,
        job(startTime="t", ready=0, terminating=1),
        JobStatus.RUNNING,
    ),
    (
        "batch complete",
        BATCH_JOB,
        job(
            succeeded=1,
            conditions=[condition("SuccessCriteriaMet"), condition("Complete")],
        ),
        JobStatus.SUCCEEDED,
    ),
    (
        "batch failed",
        BATCH_JOB,
        job(conditions=[condition("FailureTarget"), condition("Failed")]),
        JobStatus.FAILED,
    ),
    (
        "batch suspended",
        BATCH_JOB,
        job(succeeded=1, conditions=[condition("Suspended")]),
        JobStatus.SUSPENDED,
    ),
    (
        "operator created",
        PYTORCH,
        job(conditions=[condition("Created")], replicaStatuses={"Master": {}}),
        JobStatus.CREATED,
    ),
    (
        "operator running false with active master",
        PYTORCH,
        job(
            conditions=[condition("Created"), condition("Running", "False")],
            replicaStatuses={"Master": {"active": 1}},
        ),
        JobStatus.RUNNING,
    ),
    (
        "operator workers done before master",
        PYTORCH,
        job(
            conditions=[condition("Created")],
            replicaStatuses={"Master": {}, "Worker": {"succeeded": 2}},
        ),
        JobStatus.RUNNING,
    ),
    (
        "operator resumed without pods",
        PYTORCH,
        job(
            conditions=[
                condition("Created"),
                condition("Running", "False"),
                condition("Suspended", "False"),
            ],
            replicaStatuses={"Master": {}},
        ),
        JobStatus.CREATED,
    ),
    (
        "operator restarting",
        PYTORCH,
        job(conditions=[condition("Created"), condition("Restarting")]),
        JobStatus.RESTARTING,
    ),
    ("trainjob new", TRAIN_JOB, job(), JobStatus.CREATED),
    (
        "trainjob active child",
        TRAIN_JOB,
        job(jobsStatus=[{"name": "node", "active": 1}]),
        JobStatus.RUNNING,
    ),
    (
        "trainjob child done before complete",
        TRAIN_JOB,
        job(jobsStatus=[{"name": "node", "active": 0, "succeeded": 1}]),
        JobStatus.RUNNING,
    ),
    (
        "trainjob complete",
        TRAIN_JOB,
        job(
            jobsStatus=[{"name": "node", "succeeded": 1}],
            conditions=[condition("Complete")],
        ),
        JobStatus.SUCCEEDED,
    ),
]


@pytest.mark.parametrize(
    ("kind", "obj", "expected"),
    [case[1:] for case in CASES],
    ids=[case[0] for case in CASES],
)
def test_status_of_object(
    kind: JobKind, obj: dict[str, Any], expected: JobStatus
) -> None:
    assert derive_status(kind, obj) is expected


def assert_no_fallback(states: list[JobStatus]) -> None:
    assert JobStatus.RUNNING in states, states
    first_running = states.index(JobStatus.RUNNING)
    assert JobStatus.CREATED not in states[first_running:], states
    assert states[-1] is JobStatus.SUCCEEDED, states


async def test_batch_watch_never_returns_to_created(
    cluster: FakeCluster, client: AsyncMaestroClient
) -> None:
    # The fake Job controller writes SuccessCriteriaMet (with active 0 and
    # ready 0) in one update and Complete in the next, as Kubernetes 1.31+ does.
    # The container stays Running until the watch has its first snapshot.
    script = PodScript(logs=((0.05, "working"),), gate="flap")
    cluster.scripts.set("jobs", "flap", script)
    job = await client.training.submit_job("flap", "custom", "img")
    states: list[JobStatus] = []

    async def collect_states() -> None:
        async for snapshot in job.watch():
            states.append(snapshot.status)

    watcher = asyncio.ensure_future(collect_states())
    await eventually(lambda: bool(states), timeout=10, what="a first snapshot")
    cluster.scripts.open_gate("flap")
    await watcher
    assert_no_fallback(states)


async def test_batch_watch_jobs_never_returns_to_created(
    cluster: FakeCluster, client: AsyncMaestroClient
) -> None:
    cluster.scripts.set("jobs", "flap-all", succeed(logs=[(0.05, "working")]))
    states: list[JobStatus] = []
    seen_start = asyncio.Event()

    async def follow() -> None:
        stream = client.training.watch_jobs()
        async for event in stream:
            assert isinstance(event, JobEvent)
            seen_start.set()
            if event.job.name != "flap-all":
                continue
            states.append(event.job.status)
            if event.job.finished:
                break

    follower = asyncio.ensure_future(follow())
    await client.training.submit_job("flap-all", "sklearn", "img")
    await asyncio.wait_for(follower, timeout=10)
    assert_no_fallback(states)


async def test_batch_pods_found_by_legacy_label(
    cluster: FakeCluster, client: AsyncMaestroClient
) -> None:
    # Kubernetes before 1.27 labels a Job's pods with ``job-name`` only.
    pods_type = RESOURCE_TYPES["pods"]
    cluster.scripts.set("jobs", "legacy", hang(logs=["epoch 1"]))
    await client.training.submit_job("legacy", "sklearn", "img")

    def pod_names() -> list[str]:
        items = cluster.store.list(pods_type, "ml-platform")[0]
        return [str(pod["metadata"]["name"]) for pod in items]

    await eventually(lambda: len(pod_names()) == 1, what="the Job's pod")
    name = pod_names()[0]

    def running() -> bool:
        pod = cluster.store.get(pods_type, "ml-platform", name)
        return pod is not None and pod["status"].get("phase") == "Running"

    await eventually(running, what="the pod to run")

    def drop_new_labels(pod: dict[str, Any]) -> None:
        labels = pod["metadata"]["labels"]
        labels.pop("batch.kubernetes.io/job-name")
        labels.pop("batch.kubernetes.io/controller-uid")

    cluster.store.mutate(pods_type, "ml-platform", name, drop_new_labels)
    job = await client.training.get_job("legacy")
    assert job.pods == {"Worker": [name]}
    logs = [line async for line in job.logs(follow=False)]
    assert [(line.pod, line.line) for line in logs] == [(name, "epoch 1")]
