"""Pods of an earlier job of the same name are not the new job's pods.

Deleting a job removes the job object at once, while its pods stay with
``deletionTimestamp`` until they terminate. They still carry the labels that
select the job's pods by name, so a job submitted again under that name must
tell its own pods apart by their ownerReference.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from _training_helpers import NAMESPACE, eventually

from maestro_ml_async import AsyncMaestroClient
from maestro_ml_async.resources._training_kinds import (
    BATCH_JOB,
    FRAMEWORKS,
    TRAIN_JOB,
    JobKind,
)
from maestro_ml_async.testing import RESOURCE_TYPES, FakeCluster
from maestro_ml_async.testing._scripts import (
    PodScript,
    hang,
    pull_error,
    succeed,
    unschedulable,
)
from maestro_ml_async.types.training import TrainingTimeoutException

PODS = RESOURCE_TYPES["pods"]
NAME = "rerun"
HOLD = "example.com/hold"

# (framework, pod of the first run to keep or None for any, workers of the
# second run). The Training Operator names pods <job>-<type>-<index>, so the
# kept pod is a worker that the second run, with one worker, does not create
# again. Either second run has two pods: a master and a worker, or two workers.
KINDS = [
    pytest.param("pytorch", f"{NAME}-worker-1", 1, id="pytorchjob"),
    pytest.param("sklearn", None, 2, id="batch-job"),
]


def stored_pods(cluster: FakeCluster) -> list[dict[str, Any]]:
    return cluster.store.list(PODS, NAMESPACE)[0]


def live_pod_names(cluster: FakeCluster) -> list[str]:
    """Return the names of the stored pods that are not being deleted."""
    return sorted(
        str(pod["metadata"]["name"])
        for pod in stored_pods(cluster)
        if not pod["metadata"].get("deletionTimestamp")
    )


def add_finalizer(pod: dict[str, Any]) -> None:
    pod["metadata"].setdefault("finalizers", []).append(HOLD)


async def leave_terminating_pod(
    cluster: FakeCluster,
    client: AsyncMaestroClient,
    framework: str,
    kept_pod: str | None,
) -> str:
    """Run a job of two workers, delete it and return the pod that a finalizer keeps.

    The caller scripts the job's pods beforehand and waits for the state it
    needs through the returned pod.
    """
    await client.training.submit_job(NAME, framework, "img", workers=2)
    await eventually(
        lambda: len(stored_pods(cluster)) >= 2, what="the first run's pods"
    )
    name = kept_pod or live_pod_names(cluster)[0]
    await eventually(
        lambda: cluster.store.get(PODS, NAMESPACE, name) is not None,
        what=f"pod {name}",
    )
    cluster.store.mutate(PODS, NAMESPACE, name, add_finalizer)
    return name


async def delete_first_run(
    cluster: FakeCluster, client: AsyncMaestroClient, old_pod: str
) -> None:
    await client.training.delete_job(NAME)
    pod = cluster.store.get(PODS, NAMESPACE, old_pod)
    assert pod is not None
    assert pod["metadata"].get("deletionTimestamp")
    assert live_pod_names(cluster) == []


def succeeded(cluster: FakeCluster, name: str) -> bool:
    pod = cluster.store.get(PODS, NAMESPACE, name)
    return pod is not None and pod["status"].get("phase") == "Succeeded"


def annotate(pod: dict[str, Any]) -> None:
    pod["metadata"].setdefault("annotations", {})["example.com/touched"] = "true"


@pytest.mark.parametrize(("framework", "kept_pod", "workers"), KINDS)
async def test_earlier_run_pods_and_logs_ignored(
    cluster: FakeCluster,
    client: AsyncMaestroClient,
    framework: str,
    kept_pod: str | None,
    workers: int,
) -> None:
    kind = FRAMEWORKS[framework]
    cluster.scripts.set(kind.plural, NAME, succeed(logs=["old run"]))
    old_pod = await leave_terminating_pod(cluster, client, framework, kept_pod)
    await eventually(lambda: succeeded(cluster, old_pod), what="the old pod to end")
    assert cluster.pod_logs.lines(NAMESPACE, old_pod, kind.container)
    await delete_first_run(cluster, client, old_pod)

    # The new run's pods wait at the gate while Running, so the log stream
    # below starts while the job runs and follows it through the pod watch.
    gated = PodScript(logs=((0.0, "new run"),), gate="new-run")
    cluster.scripts.set(kind.plural, NAME, gated)
    await client.training.submit_job(NAME, framework, "img", workers=workers)
    await eventually(lambda: len(live_pod_names(cluster)) == 2, what="new pods")
    new_pods = live_pod_names(cluster)

    followed: list[tuple[str, str]] = []

    async def follow() -> None:
        async for line in client.training.logs(NAME, follow=True):
            followed.append((line.pod, line.line))

    task = asyncio.ensure_future(follow())
    await asyncio.sleep(0.2)
    # A stream whose pod watch is open by now gets this change of the old pod
    # as MODIFIED. The checks below hold whether or not the watch was open.
    cluster.store.mutate(PODS, NAMESPACE, old_pod, annotate)
    cluster.scripts.open_gate("new-run")
    await asyncio.wait_for(task, timeout=30)
    assert sorted(followed) == [(pod, "new run") for pod in new_pods]

    job = await client.training.get_job(NAME)
    listed = sorted(name for names in job.pods.values() for name in names)
    assert listed == new_pods
    assert old_pod not in listed

    current = [(line.pod, line.line) async for line in job.logs(follow=False)]
    assert sorted(current) == [(pod, "new run") for pod in new_pods]
    # The old pod and its log were there all along.
    assert cluster.store.get(PODS, NAMESPACE, old_pod) is not None
    assert cluster.pod_logs.lines(NAMESPACE, old_pod, kind.container)


@pytest.mark.parametrize(("framework", "kept_pod", "workers"), KINDS)
async def test_timeout_reasons_skip_earlier_run(
    cluster: FakeCluster,
    client: AsyncMaestroClient,
    framework: str,
    kept_pod: str | None,
    workers: int,
) -> None:
    kind = FRAMEWORKS[framework]
    cluster.scripts.set(kind.plural, NAME, pull_error())
    old_pod = await leave_terminating_pod(cluster, client, framework, kept_pod)

    def pulling() -> bool:
        pod = cluster.store.get(PODS, NAMESPACE, old_pod) or {}
        statuses = (pod.get("status") or {}).get("containerStatuses") or []
        return any("waiting" in (s.get("state") or {}) for s in statuses)

    await eventually(pulling, what="the old pod to wait for its image")
    await delete_first_run(cluster, client, old_pod)

    cluster.scripts.set(kind.plural, NAME, unschedulable())
    await client.training.submit_job(NAME, framework, "img", workers=workers)

    def scheduling_failed() -> bool:
        pods = [
            pod
            for pod in stored_pods(cluster)
            if not pod["metadata"].get("deletionTimestamp")
        ]
        return len(pods) == 2 and all(
            (pod.get("status") or {}).get("phase") == "Pending"
            and (pod["status"].get("conditions") or [])
            for pod in pods
        )

    await eventually(scheduling_failed, what="the new pods to be unschedulable")
    with pytest.raises(TrainingTimeoutException) as caught:
        await client.training.wait_for_job(NAME, timeout=0.2)
    reasons = caught.value.pod_reasons
    assert sorted(reasons) == live_pod_names(cluster)
    assert old_pod not in reasons
    assert all(
        reason.startswith("Pending: Unschedulable") for reason in reasons.values()
    )


def pod_owned_by(*uids: str) -> dict[str, Any]:
    refs = [{"kind": "Job", "name": NAME, "uid": uid} for uid in uids]
    return {"metadata": {"name": "p", "ownerReferences": refs}}


OWNER_CASES: list[tuple[str, JobKind, dict[str, Any], str | None, bool]] = [
    ("owned", BATCH_JOB, pod_owned_by("u1"), "u1", True),
    ("second reference", FRAMEWORKS["pytorch"], pod_owned_by("u0", "u1"), "u1", True),
    ("other instance", BATCH_JOB, pod_owned_by("u0"), "u1", False),
    ("other operator instance", FRAMEWORKS["pytorch"], pod_owned_by("u0"), "u1", False),
    ("no references", BATCH_JOB, {"metadata": {"name": "p"}}, "u1", False),
    ("uid unknown", BATCH_JOB, pod_owned_by("u0"), None, True),
    ("trainjob by name", TRAIN_JOB, pod_owned_by("jobset-job"), "u1", True),
]


@pytest.mark.parametrize(
    ("kind", "pod", "uid", "expected"),
    [pytest.param(*case[1:], id=case[0]) for case in OWNER_CASES],
)
def test_owns_pod(
    kind: JobKind, pod: dict[str, Any], uid: str | None, expected: bool
) -> None:
    assert kind.owns_pod(pod, uid) is expected


async def test_hand_made_pod_with_labels_ignored(
    cluster: FakeCluster, client: AsyncMaestroClient
) -> None:
    cluster.scripts.set("jobs", NAME, hang(logs=["job line"]))
    cluster.scripts.set("pods", "stray", succeed(logs=["stray line"]))
    await client.training.submit_job(NAME, "sklearn", "img")
    await eventually(lambda: len(stored_pods(cluster)) == 1, what="the Job's pod")
    job_pod = stored_pods(cluster)[0]
    own = str(job_pod["metadata"]["name"])
    stray = {
        "metadata": {
            "name": "stray",
            "namespace": NAMESPACE,
            "labels": dict(job_pod["metadata"]["labels"]),
        },
        "spec": job_pod["spec"],
    }
    cluster.store.create(PODS, stray)
    for name in (own, "stray"):
        await eventually(
            lambda name=name: bool(cluster.pod_logs.lines(NAMESPACE, name, "trainer")),
            what=f"the log of {name}",
        )

    job = await client.training.get_job(NAME)
    assert job.pods == {"Worker": [own]}
    logs = [(line.pod, line.line) async for line in job.logs(follow=False)]
    assert logs == [(own, "job line")]
