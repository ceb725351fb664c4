"""The training job kinds, and how a job object becomes a `TrainingJob`.

Condition rules follow the Training Operator v1 (``pkg/util/status.go``): after a
true Failed nothing changes, Running and Restarting replace each other, and
Succeeded or Failed set Running to False; Running may never appear for a job
that finishes between two status updates. A ``batch/v1`` Job reports
SuccessCriteriaMet or FailureTarget (Kubernetes 1.31+) and then Complete or
Failed, and a Trainer v2 TrainJob reports Complete, Failed and Suspended.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

from .._timestamps import parse_rfc3339
from ..types.training import (
    JobCondition,
    JobStatus,
    ReplicaStatus,
    TrainingJob,
)

__all__ = [
    "FRAMEWORKS",
    "KINDS",
    "LABEL_FRAMEWORK",
    "LABEL_MANAGED_BY",
    "MANAGED_BY",
    "JobKind",
    "job_from_object",
    "kind_for_framework",
]

LABEL_MANAGED_BY = "maestro-ml.io/managed-by"
LABEL_FRAMEWORK = "maestro-ml.io/framework"
MANAGED_BY = "maestro-ml-async"


@dataclass(frozen=True)
class JobKind:
    """One resource that runs training jobs.

    Attributes:
        kind: The resource kind (PyTorchJob, Job, TrainJob).
        group: The API group ("batch" for Jobs).
        version: The API version.
        plural: The resource plural in URLs.
        container: The name of the training container in each replica.
        replica_field: The spec field that contains the replica specs, for the
            Training Operator kinds.
        master: The replica type that leads (Master, Chief, Launcher), or None
            when every replica is a Worker.
    """

    kind: str
    group: str
    version: str
    plural: str
    container: str
    replica_field: str | None = None
    master: str | None = None

    @property
    def api_version(self) -> str:
        """``<group>/<version>``."""
        return f"{self.group}/{self.version}"

    @property
    def operator(self) -> bool:
        """Whether the Training Operator (kubeflow.org/v1) runs this kind."""
        return self.group == "kubeflow.org"

    def pod_selector(self, name: str) -> str:
        """Return the label selector of the job's pods."""
        if self.operator:
            return f"training.kubeflow.org/job-name={name}"
        if self.kind == "TrainJob":
            return f"jobset.sigs.k8s.io/jobset-name={name}"
        # The Job controller sets the legacy ``job-name`` label in every
        # Kubernetes release, and ``batch.kubernetes.io/job-name`` only from 1.27.
        return f"job-name={name}"

    def owns_pod(self, pod: dict[str, Any], job_uid: str | None) -> bool:
        """Return whether a pod that `pod_selector` matched belongs to job `job_uid`.

        The selector matches by name, so after a job is deleted and submitted
        again its old pods match too while they terminate. The Training
        Operator and the Job controller set an ownerReference from each pod to
        its job, so a pod without one to `job_uid` belongs to another instance
        or was created by hand. Every pod matches while `job_uid` is None.
        """
        if job_uid is None:
            return True
        # NOTE: a TrainJob owns a JobSet, which owns Jobs, which own the pods,
        # so no pod refers to the TrainJob. Reaching it would take a read of the
        # JobSet and permission to read JobSets, so TrainJob pods are matched
        # by name only and the pods of a terminating earlier run still match.
        if self.kind == "TrainJob":
            return True
        meta = pod.get("metadata") or {}
        return any(
            isinstance(ref, dict) and ref.get("uid") == job_uid
            for ref in meta.get("ownerReferences") or []
        )


def _operator_kind(
    kind: str, plural: str, field: str, container: str, master: str | None
) -> JobKind:
    return JobKind(kind, "kubeflow.org", "v1", plural, container, field, master)


BATCH_JOB = JobKind("Job", "batch", "v1", "jobs", "trainer")
TRAIN_JOB = JobKind("TrainJob", "trainer.kubeflow.org", "v1alpha1", "trainjobs", "node")

FRAMEWORKS: dict[str, JobKind] = {
    "pytorch": _operator_kind(
        "PyTorchJob", "pytorchjobs", "pytorchReplicaSpecs", "pytorch", "Master"
    ),
    "tensorflow": _operator_kind(
        "TFJob", "tfjobs", "tfReplicaSpecs", "tensorflow", "Chief"
    ),
    "xgboost": _operator_kind(
        "XGBoostJob", "xgboostjobs", "xgbReplicaSpecs", "xgboost", "Master"
    ),
    "mpi": _operator_kind("MPIJob", "mpijobs", "mpiReplicaSpecs", "mpi", "Launcher"),
    "jax": _operator_kind("JAXJob", "jaxjobs", "jaxReplicaSpecs", "jax", None),
    "paddle": _operator_kind(
        "PaddleJob", "paddlejobs", "paddleReplicaSpecs", "paddle", "Master"
    ),
    "sklearn": BATCH_JOB,
    "custom": BATCH_JOB,
    "trainjob": TRAIN_JOB,
}
"""Framework name -> the kind that runs it."""

KINDS: dict[str, JobKind] = {kind.kind: kind for kind in FRAMEWORKS.values()}
"""Kind name -> kind, for every resource that `list_jobs` reads."""


def kind_for_framework(framework: str) -> JobKind:
    """Return the kind for a framework name (``trainjob:<runtime>`` included)."""
    return FRAMEWORKS[framework.split(":", 1)[0]]


def _time(value: Any) -> datetime | None:
    if not value:
        return None
    try:
        return parse_rfc3339(str(value))
    except ValueError:
        return None


def _conditions(status: dict[str, Any]) -> list[JobCondition]:
    result = []
    for raw in status.get("conditions") or []:
        if not isinstance(raw, dict) or "type" not in raw:
            continue
        result.append(
            JobCondition(
                type=str(raw["type"]),
                status=str(raw.get("status", "Unknown")),
                reason=raw.get("reason"),
                message=raw.get("message"),
                last_transition_time=_time(raw.get("lastTransitionTime")),
                last_update_time=_time(raw.get("lastUpdateTime")),
            )
        )
    return result


def _true_conditions(status: dict[str, Any]) -> set[str]:
    return {
        str(c.get("type"))
        for c in status.get("conditions") or []
        if isinstance(c, dict) and c.get("status") == "True"
    }


def _count(value: Any) -> int:
    try:
        return int(value or 0)
    except (TypeError, ValueError):
        return 0


def derive_status(kind: JobKind, obj: dict[str, Any]) -> JobStatus:
    """Return the `JobStatus` of a job object.

    Once a job has run, its status stays RUNNING or RESTARTING until a terminal
    or Suspended condition appears. So it does not fall back to CREATED while
    its pods have ended and the controller has yet to record the result. The
    mapping reads only the object, not earlier snapshots.
    """
    status = obj.get("status") or {}
    true = _true_conditions(status)
    if "Failed" in true:
        return JobStatus.FAILED
    if "Succeeded" in true or "Complete" in true:
        return JobStatus.SUCCEEDED
    latest = _latest_true(status, ("Suspended", "Restarting", "Running"))
    if latest == "Suspended":
        return JobStatus.SUSPENDED
    if kind.operator:
        return _operator_status(status, latest)
    if kind.kind == "Job":
        return _batch_status(status, true)
    return _trainjob_status(status)


def _latest_true(status: dict[str, Any], types: tuple[str, ...]) -> str | None:
    """Return the type of the newest true condition among `types`, or None.

    The Training Operator appends the condition it sets to the end of the list,
    so a later entry is newer. When every candidate has a lastTransitionTime,
    the latest time decides instead, with list order breaking ties.
    """
    candidates: list[tuple[datetime | None, int, str]] = []
    for index, raw in enumerate(status.get("conditions") or []):
        if not isinstance(raw, dict) or raw.get("status") != "True":
            continue
        if raw.get("type") not in types:
            continue
        when = _time(raw.get("lastTransitionTime"))
        if when is not None and when.tzinfo is None:
            when = when.replace(tzinfo=timezone.utc)
        candidates.append((when, index, str(raw["type"])))
    if not candidates:
        return None
    if all(when is not None for when, _, _ in candidates):
        return max(candidates, key=lambda c: (c[0], c[1]))[2]
    return max(candidates, key=lambda c: c[1])[2]


def _operator_status(status: dict[str, Any], latest: str | None) -> JobStatus:
    # Should Running and Restarting both be true, the newer one decides.
    if latest == "Restarting":
        return JobStatus.RESTARTING
    if latest == "Running":
        return JobStatus.RUNNING
    # The operator counts only pods in phase Running as active. So an active,
    # succeeded or failed replica means the job has run even while no Running
    # condition is true: a worker finished first, or the Restarting or Failed
    # condition for a failed pod has yet to be written.
    for counts in (status.get("replicaStatuses") or {}).values():
        if not isinstance(counts, dict):
            continue
        if any(_count(counts.get(f)) for f in ("active", "succeeded", "failed")):
            return JobStatus.RUNNING
    return JobStatus.CREATED


def _batch_status(status: dict[str, Any], true: set[str]) -> JobStatus:
    # Kubernetes 1.31+ sets SuccessCriteriaMet or FailureTarget first and adds
    # Complete or Failed only once every pod has terminated.
    if "SuccessCriteriaMet" in true or "FailureTarget" in true:
        return JobStatus.RUNNING
    # ``active`` counts pending pods too; ``ready`` (Kubernetes 1.24+) counts
    # running ones, so it is preferred when the API server reports it.
    running = status.get("ready", status.get("active"))
    if _count(running) > 0:
        return JobStatus.RUNNING
    # NOTE: a Job with restartPolicy OnFailure whose only container is in
    # CrashLoopBackOff has active 1 and ready 0 and still maps to CREATED,
    # because its Job status does not show the restarts. The SDK submits Never.
    # A pod that ended, counted or not yet counted, or one still terminating
    # means the job has run and now waits for a replacement pod or its result.
    uncounted = status.get("uncountedTerminatedPods") or {}
    ended = (
        _count(status.get("succeeded"))
        + _count(status.get("failed"))
        + _count(status.get("terminating"))
    )
    if isinstance(uncounted, dict):
        ended += len(uncounted.get("succeeded") or []) + len(
            uncounted.get("failed") or []
        )
    return JobStatus.RUNNING if ended > 0 else JobStatus.CREATED


def _trainjob_status(status: dict[str, Any]) -> JobStatus:
    # Each jobsStatus entry counts the child Jobs of one replicated job. A
    # succeeded or failed child means the TrainJob has run while the JobSet
    # has yet to report Complete or Failed.
    for entry in status.get("jobsStatus") or []:
        if not isinstance(entry, dict):
            continue
        for field in ("active", "ready", "succeeded", "failed"):
            if _count(entry.get(field)) > 0:
                return JobStatus.RUNNING
    return JobStatus.CREATED


def _replica_statuses(
    kind: JobKind, status: dict[str, Any]
) -> dict[str, ReplicaStatus]:
    if kind.operator:
        return {
            str(name): ReplicaStatus.model_validate(value or {})
            for name, value in (status.get("replicaStatuses") or {}).items()
        }
    if kind.kind == "Job":
        return {"Worker": ReplicaStatus.model_validate(status)}
    return {
        str(entry.get("name")): ReplicaStatus.model_validate(entry)
        for entry in status.get("jobsStatus") or []
        if isinstance(entry, dict)
    }


def job_from_object(obj: dict[str, Any], kind: JobKind | None = None) -> TrainingJob:
    """Build a `TrainingJob` from a job object of any supported kind."""
    if kind is None:
        kind = KINDS[str(obj.get("kind"))]
    meta = obj.get("metadata") or {}
    status = obj.get("status") or {}
    labels = dict(meta.get("labels") or {})
    return TrainingJob(
        name=str(meta.get("name")),
        namespace=str(meta.get("namespace")),
        kind=kind.kind,
        api_version=kind.api_version,
        framework=labels.get(LABEL_FRAMEWORK),
        status=derive_status(kind, obj),
        conditions=_conditions(status),
        start_time=_time(status.get("startTime")),
        completion_time=_time(status.get("completionTime")),
        created_at=_time(meta.get("creationTimestamp")),
        replica_statuses=_replica_statuses(kind, status),
        labels=labels,
        uid=meta.get("uid"),
        resource_version=meta.get("resourceVersion"),
        raw=obj,
    )


def replica_of_pod(kind: JobKind, pod: dict[str, Any]) -> tuple[str | None, int | None]:
    """Return the replica type and index of one of the job's pods."""
    labels = (pod.get("metadata") or {}).get("labels") or {}
    if kind.operator:
        raw_type = labels.get("training.kubeflow.org/replica-type")
        raw_index = labels.get("training.kubeflow.org/replica-index")
    elif kind.kind == "TrainJob":
        raw_type = labels.get("jobset.sigs.k8s.io/replicatedjob-name")
        raw_index = labels.get("batch.kubernetes.io/job-completion-index")
    else:
        raw_type = "Worker"
        raw_index = labels.get("batch.kubernetes.io/job-completion-index")
    replica_type = _canonical_type(kind, raw_type)
    try:
        index = int(raw_index) if raw_index is not None else None
    except ValueError:
        index = None
    return replica_type, index


def _canonical_type(kind: JobKind, raw: str | None) -> str | None:
    # The operator labels pods with the lower-cased replica type.
    if raw is None:
        return None
    for known in (kind.master, "Worker", "PS", "Evaluator", "Master", "Chief"):
        if known is not None and known.lower() == raw.lower():
            return known
    return raw
