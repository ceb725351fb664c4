"""Why a job's pods are not running, as the timeout of a wait reports it.

The table cases are pod and job objects as the kubelet, the scheduler and the
Training Operator write them. The async cases submit jobs through the SDK to
the fake cluster, whose scripts produce the same pod shapes.
"""

from __future__ import annotations

from typing import Any

import pytest

from maestro_ml_async import AsyncMaestroClient
from maestro_ml_async.resources._training_kinds import (
    FRAMEWORKS,
    job_from_object,
)
from maestro_ml_async.resources._training_logs import pod_wait_reason
from maestro_ml_async.resources._training_wait import timeout_error
from maestro_ml_async.testing import (
    FakeCluster,
    hang,
    init_fail,
    init_pull_error,
    unschedulable,
)
from maestro_ml_async.types.training import JobStatus, TrainingTimeoutException

PYTORCH = FRAMEWORKS["pytorch"]
NO_GPU = "0/3 nodes are available: 3 Insufficient nvidia.com/gpu."


def pod(phase: str = "Pending", **status: Any) -> dict[str, Any]:
    return {
        "metadata": {"name": "train-worker-0"},
        "status": {"phase": phase, **status},
    }


def waiting(name: str, reason: str, message: str | None = None) -> dict[str, Any]:
    state: dict[str, Any] = {"reason": reason}
    if message is not None:
        state["message"] = message
    return {"name": name, "state": {"waiting": state}}


INIT_PULL = pod(
    initContainerStatuses=[
        waiting("init-pytorch", "ImagePullBackOff", 'Back-off pulling image "alpine"')
    ],
    containerStatuses=[waiting("pytorch", "PodInitializing")],
)

REASONS: list[tuple[str, dict[str, Any], str | None]] = [
    (
        "init container cannot pull",
        INIT_PULL,
        'Init:ImagePullBackOff: Back-off pulling image "alpine"',
    ),
    (
        "init container crash loop",
        pod(
            initContainerStatuses=[waiting("init-pytorch", "CrashLoopBackOff")],
            containerStatuses=[waiting("pytorch", "PodInitializing")],
        ),
        "Init:CrashLoopBackOff",
    ),
    (
        "init container crash loop after a failed run",
        pod(
            initContainerStatuses=[
                {
                    **waiting("init-pytorch", "CrashLoopBackOff", "back-off 20s"),
                    "lastState": {
                        "terminated": {
                            "exitCode": 2,
                            "reason": "Error",
                            "message": "master did not answer",
                        }
                    },
                }
            ],
            containerStatuses=[waiting("pytorch", "PodInitializing")],
        ),
        "Init:CrashLoopBackOff: back-off 20s; last run: Error (exit code 2): "
        "master did not answer",
    ),
    (
        "main container crash loop after an out-of-memory kill",
        pod(
            "Running",
            containerStatuses=[
                {
                    **waiting("pytorch", "CrashLoopBackOff"),
                    "lastState": {
                        "terminated": {"exitCode": 137, "reason": "OOMKilled"}
                    },
                }
            ],
        ),
        "CrashLoopBackOff; last run: OOMKilled (exit code 137)",
    ),
    (
        "init container failed",
        pod(
            initContainerStatuses=[
                {
                    "name": "init-pytorch",
                    "state": {"terminated": {"exitCode": 2, "reason": "Error"}},
                }
            ],
            containerStatuses=[waiting("pytorch", "PodInitializing")],
        ),
        "Init:Error (exit code 2)",
    ),
    (
        "init container still running",
        pod(
            initContainerStatuses=[{"name": "init-pytorch", "state": {"running": {}}}],
            containerStatuses=[waiting("pytorch", "PodInitializing")],
        ),
        "PodInitializing",
    ),
    (
        "init container done, main pulling",
        pod(
            initContainerStatuses=[
                {"name": "init", "state": {"terminated": {"exitCode": 0}}}
            ],
            containerStatuses=[waiting("pytorch", "ErrImagePull", "not found")],
        ),
        "ErrImagePull: not found",
    ),
    (
        "unschedulable keeps scheduler message",
        pod(
            conditions=[
                {
                    "type": "PodScheduled",
                    "status": "False",
                    "reason": "Unschedulable",
                    "message": NO_GPU,
                }
            ]
        ),
        f"Pending: Unschedulable: {NO_GPU}",
    ),
    (
        "unschedulable without message",
        pod(conditions=[{"type": "PodScheduled", "status": "False", "reason": "X"}]),
        "Pending: X",
    ),
    ("running pod", pod("Running"), None),
]


@pytest.mark.parametrize(
    ("obj", "expected"),
    [case[1:] for case in REASONS],
    ids=[case[0] for case in REASONS],
)
def test_pod_wait_reason(obj: dict[str, Any], expected: str | None) -> None:
    assert pod_wait_reason(obj) == expected


def test_timeout_names_init_container() -> None:
    obj = {
        "kind": "PyTorchJob",
        "metadata": {"name": "train", "namespace": "ns"},
        "status": {"conditions": [{"type": "Created", "status": "True"}]},
    }
    job = job_from_object(obj, PYTORCH)
    error = timeout_error(job, [INIT_PULL], 5.0, JobStatus.SUCCEEDED)
    assert error.pod_reasons == {
        "train-worker-0": 'Init:ImagePullBackOff: Back-off pulling image "alpine"'
    }
    assert "Init:ImagePullBackOff" in str(error)


async def wait_timeout(
    client: AsyncMaestroClient, name: str, workers: int = 1
) -> TrainingTimeoutException:
    job = await client.training.submit_job(name, "pytorch", "img", workers=workers)
    with pytest.raises(TrainingTimeoutException) as caught:
        await job.wait(timeout=0.5)
    await job.cancel()
    return caught.value


@pytest.mark.parametrize("reason", ["ImagePullBackOff", "ErrImagePull"])
async def test_fake_init_pull_error_in_timeout(
    cluster: FakeCluster, client: AsyncMaestroClient, reason: str
) -> None:
    cluster.scripts.set("pytorchjobs", "init-pull", hang())
    cluster.scripts.set(
        "pytorchjobs", "init-pull", init_pull_error(reason), replica_type="Worker"
    )
    error = await wait_timeout(client, "init-pull")
    assert error.job_name == "init-pull"
    worker = error.pod_reasons["init-pull-worker-0"]
    assert worker.startswith(f"Init:{reason}: ")
    assert "busybox" in worker
    assert "init-pull-master-0" not in error.pod_reasons
    assert f"init-pull-worker-0: Init:{reason}" in str(error)


async def test_fake_init_failure_in_timeout(
    cluster: FakeCluster, client: AsyncMaestroClient
) -> None:
    script = init_fail(2, message="master did not answer")
    cluster.scripts.set("pytorchjobs", "init-fail", script)
    error = await wait_timeout(client, "init-fail", workers=0)
    # The SDK's pods run under restartPolicy OnFailure, so the kubelet restarts
    # the failed init container and reports its back-off.
    reason = error.pod_reasons["init-fail-master-0"]
    assert reason.startswith("Init:CrashLoopBackOff: back-off ")
    assert "container=init pod=init-fail-master-0_" in reason
    assert reason.endswith("; last run: Error (exit code 2): master did not answer")
    assert list(error.pod_reasons) == ["init-fail-master-0"]
    assert "init-fail-master-0: Init:CrashLoopBackOff" in str(error)


async def test_fake_unschedulable_in_timeout(
    cluster: FakeCluster, client: AsyncMaestroClient
) -> None:
    cluster.scripts.set("pytorchjobs", "gpu", unschedulable())
    error = await wait_timeout(client, "gpu")
    expected = f"Pending: Unschedulable: {NO_GPU}"
    assert error.pod_reasons == {
        "gpu-master-0": expected,
        "gpu-worker-0": expected,
    }
    assert error.last_status is JobStatus.CREATED
    assert NO_GPU in str(error)
