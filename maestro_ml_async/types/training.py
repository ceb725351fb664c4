"""Data models of training jobs: `TrainingJob`, its conditions, replicas and logs.

A `TrainingJob` is read from one of three resource shapes: the Training Operator's
``kubeflow.org/v1`` kinds (PyTorchJob, TFJob, ...), a ``batch/v1`` Job, or a
Trainer v2 ``TrainJob``. Its `status` is derived from the conditions the same way
for all of them, so callers never parse conditions themselves.
"""

from __future__ import annotations

import enum
from collections.abc import AsyncIterator, Mapping
from datetime import datetime
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr

from .._exceptions import TimeoutException

if TYPE_CHECKING:
    from ..resources.training import AsyncTrainingResource

__all__ = [
    "JobCondition",
    "JobEvent",
    "JobStatus",
    "LogLine",
    "ReplicaStatus",
    "TrainingJob",
    "TrainingTimeoutException",
]


class JobStatus(str, enum.Enum):
    """Lifecycle status of a training job."""

    CREATED = "created"
    RUNNING = "running"
    RESTARTING = "restarting"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    SUSPENDED = "suspended"

    @property
    def finished(self) -> bool:
        """Whether the job succeeded or failed; nothing changes after that."""
        return self in (JobStatus.SUCCEEDED, JobStatus.FAILED)


class JobCondition(BaseModel):
    """One condition of a job (Created, Running, Succeeded, Complete, Failed, ...)."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    type: str
    status: str = Field(description='"True", "False" or "Unknown".')
    reason: str | None = None
    message: str | None = None
    last_transition_time: datetime | None = None
    last_update_time: datetime | None = None

    @property
    def is_true(self) -> bool:
        """Whether the condition's status is ``"True"``."""
        return self.status == "True"


class ReplicaStatus(BaseModel):
    """Pod counts of one replica type (Master, Worker, ...)."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    active: int = 0
    succeeded: int = 0
    failed: int = 0


class LogLine(BaseModel):
    """One line of a container's log, labelled with where it came from."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    pod: str
    container: str
    replica_type: str | None = Field(
        default=None, description="Master, Worker, ... or None for batch Jobs."
    )
    replica_index: int | None = None
    line: str = Field(description="The text, without the trailing newline.")
    timestamp: datetime | None = Field(
        default=None, description="When the container wrote the line (UTC)."
    )
    previous: bool = Field(
        default=False,
        description="Whether the line comes from an earlier instance of a "
        "restarted container.",
    )

    def __str__(self) -> str:
        return f"[{self.pod}/{self.container}] {self.line}"


class TrainingJob(BaseModel):
    """A training job on the cluster, as last read.

    The async methods (`wait`, `refresh`, `cancel`, `logs`, `watch`) talk to the
    cluster through the `AsyncTrainingResource` that returned the job; the data
    fields are a snapshot and do not change by themselves.
    """

    model_config = ConfigDict(extra="ignore", arbitrary_types_allowed=True)

    name: str
    namespace: str
    kind: str = Field(description="PyTorchJob, TFJob, ..., Job or TrainJob.")
    api_version: str
    framework: str | None = Field(
        default=None, description="The framework given at submission, if known."
    )
    status: JobStatus = JobStatus.CREATED
    conditions: list[JobCondition] = Field(default_factory=list)
    start_time: datetime | None = None
    completion_time: datetime | None = None
    created_at: datetime | None = None
    replica_statuses: dict[str, ReplicaStatus] = Field(default_factory=dict)
    pods: dict[str, list[str]] = Field(
        default_factory=dict,
        description="Pod names by replica type, filled by get_job, refresh and "
        "wait (not by list_jobs or watches).",
    )
    labels: dict[str, str] = Field(default_factory=dict)
    uid: str | None = None
    resource_version: str | None = None
    raw: dict[str, Any] = Field(default_factory=dict, repr=False)

    _resource: AsyncTrainingResource | None = PrivateAttr(default=None)

    @property
    def finished(self) -> bool:
        """Whether the job succeeded or failed."""
        return self.status.finished

    @property
    def failure(self) -> JobCondition | None:
        """The true Failed condition, if the job failed."""
        return self.condition("Failed")

    def condition(self, kind: str) -> JobCondition | None:
        """Return the condition of type `kind` when its status is True."""
        for condition in self.conditions:
            if condition.type == kind and condition.is_true:
                return condition
        return None

    def _bound(self) -> AsyncTrainingResource:
        if self._resource is None:
            raise RuntimeError(
                "this TrainingJob is not bound to a client; get it from "
                "client.training.get_job() to call its methods"
            )
        return self._resource

    async def wait(
        self, timeout: float | None = None, *, until: JobStatus | str = "succeeded"
    ) -> TrainingJob:
        """Wait until the job reaches `until` (by default: succeeds).

        See `AsyncTrainingResource.wait_for_job`.
        """
        return await self._bound().wait_for_job(
            self.name, timeout, until=until, namespace=self.namespace
        )

    async def refresh(self) -> TrainingJob:
        """Read the job and its pods again and return the new snapshot."""
        return await self._bound().get_job(self.name, namespace=self.namespace)

    async def cancel(self) -> None:
        """Stop the job (see `AsyncTrainingResource.cancel_job`)."""
        await self._bound().cancel_job(self.name, namespace=self.namespace)

    def logs(
        self, follow: bool = True, *, pod_timeout: float = 300.0
    ) -> AsyncIterator[LogLine]:
        """Stream the log lines of every replica (see `AsyncTrainingResource.logs`)."""
        return self._bound().logs(
            self.name, follow=follow, pod_timeout=pod_timeout, namespace=self.namespace
        )

    def watch(self) -> AsyncIterator[TrainingJob]:
        """Yield each change of the job's status until it finishes."""
        return self._bound().watch(self.name, namespace=self.namespace)


class JobEvent(BaseModel):
    """A change of one job, from `AsyncTrainingResource.watch_jobs`."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    type: str = Field(description="ADDED, MODIFIED or DELETED.")
    job: TrainingJob


class TrainingTimeoutException(TimeoutException):
    """A wait for a training job ran out of time.

    Attributes:
        job_name: The job's name.
        last_status: The job's status when the wait gave up.
        job: The last snapshot of the job, if it could be read.
        pod_reasons: Why each pod that is not running waits, by pod name
            (ImagePullBackOff, ContainerCreating, Pending: Unschedulable, ...).
    """

    def __init__(
        self,
        message: str,
        *,
        job_name: str,
        last_status: JobStatus | None,
        job: TrainingJob | None = None,
        pod_reasons: Mapping[str, str] | None = None,
    ) -> None:
        self.job_name = job_name
        self.last_status = last_status
        self.job = job
        self.pod_reasons = dict(pod_reasons or {})
        super().__init__(message)
