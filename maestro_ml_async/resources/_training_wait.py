"""Decisions of waits and watches: when a job is done, stale, or stuck."""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from .._exceptions import TrainingException, ValidationException
from ..types.training import JobStatus, TrainingJob, TrainingTimeoutException
from ._training_kinds import LABEL_MANAGED_BY, MANAGED_BY, JobKind
from ._training_logs import pod_wait_reason

__all__ = [
    "CANCELLED_ANNOTATION",
    "POD_CHECK_INTERVAL",
    "PullProblem",
    "check_timeout",
    "image_pull_problems",
    "is_stale",
    "reached",
    "selector_for",
    "timeout_error",
]

CANCELLED_ANNOTATION = "maestro-ml.io/cancelled"
"""Annotation that `cancel_job` sets, so a wait can tell cancelled from queued."""

POD_CHECK_INTERVAL = 10.0
"""Seconds before the first check of a waited job's pods for image pull errors.

Each later check comes twice as long after the one before, up to
`POD_CHECK_MAX_INTERVAL`, so a thousand long waits do not become a thousand
pod pollers.
"""

POD_CHECK_MAX_INTERVAL = 300.0
"""Maximum time in seconds between two pod checks of one wait."""

# Waiting reasons of a container whose image the kubelet retries to pull, with
# a growing back-off, so the pod may still start (a registry that comes back,
# an image pushed later).
_RETRIED_PULL_REASONS = frozenset(
    {"ErrImagePull", "ImagePullBackOff", "ErrImageInspect", "RegistryUnavailable"}
)
# Waiting reasons for which the kubelet (pkg/kubelet/images/image_manager.go)
# does not try a pull at all: the image reference cannot be parsed, or the
# pull policy is Never and the image is not on the node. No job controller
# changes the image of a pod it made, so the pod can start only after a change
# by hand (an image loaded onto the node), and a wait fails at once.
_FATAL_PULL_REASONS = {
    "InvalidImageName": "fix the image reference and submit the job again",
    "ErrImageNeverPull": (
        "load the image onto the node, or submit the job with an image that "
        "can be pulled"
    ),
}


@dataclass(frozen=True)
class PullProblem:
    """A container of a job's pod that waits because of its image."""

    pod: str
    container: str
    reason: str
    message: str

    @property
    def fatal(self) -> bool:
        """Whether the kubelet never tries to pull, so the pod cannot start."""
        return self.reason in _FATAL_PULL_REASONS

    def fatal_error(self, job_name: str) -> TrainingException:
        """Build the error of a wait on a job with this problem."""
        return TrainingException(
            f"training job {job_name!r} cannot start: container "
            f"{self.container!r} of pod {self.pod} is waiting with "
            f"{self.reason}: {self.message or 'no message'}; "
            f"{_FATAL_PULL_REASONS[self.reason]}",
            job_name=job_name,
            reason=self.reason,
        )


def image_pull_problems(pods: Iterable[dict[str, Any]]) -> list[PullProblem]:
    """Return the init and main containers of `pods` that wait for their image."""
    problems = []
    known = _RETRIED_PULL_REASONS | _FATAL_PULL_REASONS.keys()
    for pod in pods:
        status = pod.get("status") or {}
        name = str((pod.get("metadata") or {}).get("name"))
        containers = (status.get("initContainerStatuses") or []) + (
            status.get("containerStatuses") or []
        )
        for container in containers:
            waiting = ((container or {}).get("state") or {}).get("waiting") or {}
            reason = waiting.get("reason")
            if reason in known:
                problems.append(
                    PullProblem(
                        pod=name,
                        container=str(container.get("name")),
                        reason=str(reason),
                        message=str(waiting.get("message") or ""),
                    )
                )
    return problems


def check_timeout(value: object, what: str) -> float | None:
    """Return a timeout in seconds: None, or a number that is not negative.

    ``0`` checks the current state only, and ``math.inf`` waits without limit.

    Raises:
        ValidationException: `value` is not a number, is NaN or is negative.
    """
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValidationException(
            f"{what} must be a number of seconds or None, got {value!r}"
        )
    if math.isnan(value) or value < 0:
        raise ValidationException(f"{what} must not be negative or NaN, got {value}")
    return float(value)


def timeout_error(
    job: TrainingJob,
    pods: Iterable[dict[str, Any]],
    limit: float,
    target: JobStatus,
) -> TrainingTimeoutException:
    """Build the timeout error of a wait, with the waiting reasons of the pods."""
    reasons: dict[str, str] = {}
    for pod in pods:
        reason = pod_wait_reason(pod)
        if reason is not None:
            reasons[str(pod["metadata"]["name"])] = reason
    detail = "; ".join(f"{p}: {r}" for p, r in sorted(reasons.items()))
    return TrainingTimeoutException(
        f"training job {job.name!r} did not reach {target.value} within "
        f"{limit:g} s; last status {job.status.value}"
        + (f"; waiting pods: {detail}" if detail else ""),
        job_name=job.name,
        last_status=job.status,
        job=job,
        pod_reasons=reasons,
    )


def selector_for(kind: JobKind, label_selector: str | None) -> str | None:
    """Return the label selector to list `kind` with: batch Jobs only if ours."""
    if kind.kind != "Job":
        return label_selector
    managed = f"{LABEL_MANAGED_BY}={MANAGED_BY}"
    return f"{label_selector},{managed}" if label_selector else managed


def is_stale(obj: dict[str, Any], job: TrainingJob) -> bool:
    """Whether `obj` is the same object as `job` and not newer than it."""
    from .._transport._kube_watch import is_newer

    meta = obj.get("metadata") or {}
    if meta.get("uid") != job.uid:
        return False
    rv = str(meta.get("resourceVersion") or "")
    return bool(job.resource_version) and not is_newer(rv, str(job.resource_version))


def reached(job: TrainingJob, target: JobStatus) -> bool:
    """Return True when `job` meets `target`; raise when it never will."""
    status = job.status
    if target is JobStatus.CREATED or status is target:
        return True
    if target is JobStatus.RUNNING and status in (
        JobStatus.SUCCEEDED,
        JobStatus.RESTARTING,
    ):
        return True
    if status is JobStatus.FAILED:
        failure = job.failure
        reason = failure.reason if failure else None
        message = failure.message if failure else None
        raise TrainingException(
            f"training job {job.name!r} failed: {reason or 'Failed'}: "
            f"{message or 'no message'}",
            job_name=job.name,
            reason=reason,
        )
    if status is JobStatus.SUCCEEDED:
        raise TrainingException(
            f"training job {job.name!r} succeeded, so it can no longer become "
            f"{target.value}",
            job_name=job.name,
            reason="Unreachable",
        )
    cancelled = (job.raw.get("metadata") or {}).get("annotations") or {}
    if status is JobStatus.SUSPENDED and cancelled.get(CANCELLED_ANNOTATION) == "true":
        raise TrainingException(
            f"training job {job.name!r} was cancelled",
            job_name=job.name,
            reason="Cancelled",
        )
    return False
