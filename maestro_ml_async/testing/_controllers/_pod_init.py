"""Steps of pods that never start: unschedulable ones and init failures.

The kubelet simulation in ``pods`` runs these for the scripts ``unschedulable``,
``init_pull_error`` and ``init_fail``. They write status in the shape that a
scheduler and a kubelet write it, so code that reads pod status gets the same
fields as on a cluster.
"""

from __future__ import annotations

import asyncio
import secrets
from typing import Any, Protocol

from .._scripts import NO_GPU_MESSAGE, PodScript
from ._base import Host, now

Obj = dict[str, Any]

INIT_OUTCOMES = ("init_pull_error", "init_fail")
FALLBACK_INIT_CONTAINER: Obj = {"name": "init", "image": "busybox:1.36"}
"""Init container simulated for an init script on a pod spec that declares none."""

MAX_BACKOFF_TICKS = 30
"""Upper bound of a simulated restart back-off, in cluster ticks."""
MAX_BACKOFF_SECONDS = 300
"""Upper bound of the back-off that the kubelet reports in CrashLoopBackOff."""


class PodTimeline(Protocol):
    """The parts of the kubelet's per-pod timeline that these steps drive."""

    host: Host
    name: str
    namespace: str
    uid: str
    policy: str
    phase: str
    script: PodScript
    init_containers: list[Obj]
    init_statuses: list[Obj]

    async def _sleep(self, value: float | None) -> None: ...

    def _write(self) -> None: ...

    def _condition(
        self,
        kind: str,
        value: str,
        reason: str | None = None,
        message: str | None = None,
    ) -> None: ...

    def _event(
        self,
        reason: str,
        message: str,
        container: Obj | None = None,
        *,
        warning: bool = False,
        component: str = "kubelet",
        init: bool = False,
    ) -> None: ...


def init_containers(spec: Obj, script: PodScript) -> list[Obj]:
    """Return the init containers the kubelet simulation reports for a pod.

    A pod spec without ``initContainers`` gets ``FALLBACK_INIT_CONTAINER`` when
    its script is an init outcome, so an SDK-built job can still show an init
    failure.
    """
    declared = list(spec.get("initContainers") or [])
    if declared or script.outcome not in INIT_OUTCOMES:
        return declared
    # NOTE: a real kubelet reports only init containers of the pod spec. The
    # fallback exists because the job builders of the SDK add none.
    return [dict(FALLBACK_INIT_CONTAINER)]


def waiting_init_status(container: Obj) -> Obj:
    """Return the status of an init container that has not started."""
    return {
        "name": container.get("name", "init"),
        "image": container.get("image", ""),
        "imageID": "",
        "ready": False,
        "started": False,
        "restartCount": 0,
        "state": {"waiting": {"reason": "PodInitializing"}},
    }


NO_PULL_ERRORS = ("InvalidImageName", "ErrImageNeverPull")
"""Waiting reasons for which the kubelet does not try to pull the image."""


def no_pull_event(state: Obj) -> tuple[str, str]:
    """Return the kubelet's event reason and message for a `NO_PULL_ERRORS` state."""
    waiting = state["waiting"]
    if waiting["reason"] == "InvalidImageName":
        return "InspectFailed", str(waiting["message"])
    return "ErrImageNeverPull", str(waiting["message"])


def pull_failure_state(image: str, reason: str) -> Obj:
    """Return the waiting state of a container whose image pull failed.

    The messages are the kubelet's (``pkg/kubelet/images/image_manager.go``).
    """
    if reason == "ImagePullBackOff":
        message = f'Back-off pulling image "{image}"'
    elif reason == "InvalidImageName":
        message = (
            f'Failed to apply default image tag "{image}": couldn\'t parse image '
            f'name "{image}": invalid reference format'
        )
    elif reason == "ErrImageNeverPull":
        message = f'Container image "{image}" is not present with pull policy of Never'
    else:
        message = (
            "rpc error: code = NotFound desc = failed to pull and unpack image "
            f'"{image}": not found'
        )
    return {"waiting": {"reason": reason, "message": message}}


def failed_init_state(script: PodScript, started: str, finished: str) -> Obj:
    """Return the terminated state of an init container that failed."""
    terminated: Obj = {
        "exitCode": 1 if script.exit_code is None else script.exit_code,
        "reason": script.reason or "Error",
        "startedAt": started,
        "finishedAt": finished,
        "containerID": f"containerd://{secrets.token_hex(32)}",
    }
    if script.message:
        terminated["message"] = script.message
    return {"terminated": terminated}


def incomplete_init_message(statuses: list[Obj]) -> str:
    """Return the Initialized condition message that names unfinished containers."""
    names = " ".join(str(s["name"]) for s in statuses)
    return f"containers with incomplete status: [{names}]"


async def stay_unschedulable(run: PodTimeline) -> None:
    """Mark the pod unschedulable, as the scheduler does, until cancelled."""
    message = run.script.message or NO_GPU_MESSAGE
    run._condition("PodScheduled", "False", "Unschedulable", message)
    run._write()
    run._event("FailedScheduling", message, warning=True, component="default-scheduler")
    await asyncio.Future()


async def fail_init(run: PodTimeline) -> None:
    """Stop the pod at its first init container, which cannot pull or fails.

    A pull error keeps the pod Pending until it is deleted. A failed init
    container makes the pod Failed under restartPolicy Never. Under OnFailure
    or Always the kubelet restarts it after a growing back-off, forever.
    """
    status = run.init_statuses[0]
    container = run.init_containers[0]
    image = container.get("image", "")
    no_pull = run.script.pull_error in NO_PULL_ERRORS
    if not (run.script.outcome == "init_pull_error" and no_pull):
        run._event("Pulling", f'Pulling image "{image}"', container, init=True)
    await run._sleep(run.script.start_delay)
    if run.script.outcome == "init_pull_error":
        await _stay_pull_failed(run, status, container)
    while True:
        started = now()
        status["state"] = {"running": {"startedAt": started}}
        status["started"] = True
        run._write()
        started_message = f"Started container {status['name']}"
        run._event("Started", started_message, container, init=True)
        await run._sleep(run.script.run_time)
        status["state"] = failed_init_state(run.script, started, now())
        status["started"] = False
        if run.policy == "Never":
            run.phase = "Failed"
            run._write()
            return
        await _back_off_init(run, status, container)


async def _stay_pull_failed(run: PodTimeline, status: Obj, container: Obj) -> None:
    image = container.get("image", "")
    if run.script.pull_error in NO_PULL_ERRORS:
        status["state"] = pull_failure_state(image, run.script.pull_error)
        run._write()
        event, message = no_pull_event(status["state"])
        run._event(event, message, container, warning=True, init=True)
        await asyncio.Future()
    status["state"] = pull_failure_state(image, "ErrImagePull")
    run._write()
    failed = f'Failed to pull image "{image}": not found'
    run._event("Failed", failed, container, warning=True, init=True)
    if run.script.pull_error == "ImagePullBackOff":
        await run._sleep(None)
        status["state"] = pull_failure_state(image, "ImagePullBackOff")
        run._write()
        backoff = f'Back-off pulling image "{image}"'
        run._event("BackOff", backoff, container, warning=True, init=True)
    await asyncio.Future()


async def _back_off_init(run: PodTimeline, status: Obj, container: Obj) -> None:
    """Move a failed init container to CrashLoopBackOff and wait out the back-off.

    The reported back-off doubles from 10 s up to 300 s, the kubelet back-off
    that the Kubernetes pod lifecycle documentation gives.
    The simulated wait doubles from one tick up to ``MAX_BACKOFF_TICKS``.
    """
    status["lastState"] = status.pop("state")
    status["restartCount"] += 1
    restarts = int(status["restartCount"])
    backoff = min(10 * 2 ** (restarts - 1), MAX_BACKOFF_SECONDS)
    pod = f"{run.name}_{run.namespace}({run.uid})"
    message = f"back-off {backoff}s restarting failed container={status['name']}"
    status["state"] = {
        "waiting": {"reason": "CrashLoopBackOff", "message": f"{message} pod={pod}"}
    }
    run._write()
    event = f"Back-off restarting failed container {status['name']} in pod {pod}"
    run._event("BackOff", event, container, warning=True, init=True)
    ticks = min(2 ** (restarts - 1), MAX_BACKOFF_TICKS)
    await run._sleep(run.host.tick * ticks)
