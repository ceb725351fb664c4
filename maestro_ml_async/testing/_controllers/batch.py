"""Simulated Job controller for ``batch/v1`` Jobs.

It follows the Kubernetes 1.31+ Job controller: pods ``<job>-<suffix>`` (or
``<job>-<index>-<suffix>`` in Indexed mode) up to ``parallelism``, until
``completions`` pods succeed. Success first sets ``SuccessCriteriaMet`` and then
``Complete``. A failure (more failed pods or restarts than ``backoffLimit``, or
``activeDeadlineSeconds`` passed) first sets ``FailureTarget``, then deletes the
active pods and sets ``Failed``.
"""

from __future__ import annotations

import copy
import logging

from .._resources import RESOURCE_TYPES
from ._base import (
    Host,
    Obj,
    Reconciler,
    build_pod,
    create_pod,
    delete_pod,
    now,
    owned_pods,
    pod_is_ready,
    pod_phase,
    random_suffix,
    record_event,
    resolve_pod_script,
    restart_count,
)
from ._job_conditions import _seconds_since

logger = logging.getLogger(__name__)

INDEX_ANNOTATION = "batch.kubernetes.io/job-completion-index"
_MESSAGES = {
    "BackoffLimitExceeded": "Job has reached the specified backoff limit",
    "DeadlineExceeded": "Job was active longer than specified deadline",
    "CompletionsReached": "Reached expected number of succeeded pods",
}


def _find(status: Obj, kind: str) -> Obj | None:
    for condition in status.get("conditions") or []:
        if condition.get("type") == kind:
            return dict(condition)
    return None


def _is_true(status: Obj, kind: str) -> bool:
    condition = _find(status, kind)
    return condition is not None and condition.get("status") == "True"


def set_job_condition(
    status: Obj, kind: str, value: str, reason: str, message: str
) -> None:
    """Add or update a batch Job condition, keeping lastTransitionTime if unchanged."""
    stamp = now()
    conditions = status.setdefault("conditions", [])
    for condition in conditions:
        if condition.get("type") != kind:
            continue
        if condition.get("status") != value:
            condition["lastTransitionTime"] = stamp
        condition.update(
            status=value, reason=reason, message=message, lastProbeTime=stamp
        )
        return
    conditions.append(
        {
            "type": kind,
            "status": value,
            "lastProbeTime": stamp,
            "lastTransitionTime": stamp,
            "reason": reason,
            "message": message,
        }
    )


def format_indexes(indexes: set[int]) -> str:
    """Format completion indexes as the Job status does: ``1,3-5,7``."""
    parts: list[str] = []
    ordered = sorted(indexes)
    start = 0
    while start < len(ordered):
        end = start
        while end + 1 < len(ordered) and ordered[end + 1] == ordered[end] + 1:
            end += 1
        first, last = ordered[start], ordered[end]
        parts.append(str(first) if first == last else f"{first}-{last}")
        start = end + 1
    return ",".join(parts)


class BatchJobController(Reconciler):
    """Reconciles ``batch/v1`` Jobs."""

    primary = RESOURCE_TYPES["jobs.batch"]

    def __init__(self, host: Host) -> None:
        super().__init__(host)
        self._deadline_timers: set[str] = set()

    def reconcile(self, namespace: str, name: str) -> None:
        job = self.store.get(self.primary, namespace, name)
        if job is None or job["metadata"].get("deletionTimestamp"):
            return
        spec = job.get("spec") or {}
        status = copy.deepcopy(job.get("status") or {})
        old = copy.deepcopy(status)
        pods = owned_pods(self.store, namespace, job["metadata"]["uid"])
        active = [p for p in pods if pod_phase(p) in ("Pending", "Running")]

        if _is_true(status, "Complete") or _is_true(status, "Failed"):
            for pod in active:
                delete_pod(self.store, pod)
        elif spec.get("suspend"):
            self._suspend(status, active)
        else:
            self._run(job, status, pods)
        self._count(job, status)
        if status != old:

            def apply(obj: Obj) -> None:
                obj["status"] = status

            self.store.mutate(self.primary, namespace, name, apply, status_only=True)

    def _suspend(self, status: Obj, active: list[Obj]) -> None:
        for pod in active:
            delete_pod(self.store, pod)
        if not _is_true(status, "Suspended"):
            set_job_condition(
                status, "Suspended", "True", "JobSuspended", "Job suspended"
            )

    def _run(self, job: Obj, status: Obj, pods: list[Obj]) -> None:
        spec = job.get("spec") or {}
        meta = job["metadata"]
        if _is_true(status, "Suspended"):
            set_job_condition(status, "Suspended", "False", "JobResumed", "Job resumed")
            status["startTime"] = now()
            self._deadline_timers.discard(meta["uid"])
        status.setdefault("startTime", now())
        self._arm_deadline(job)

        target = _find(status, "FailureTarget")
        criteria = _find(status, "SuccessCriteriaMet")
        active = [p for p in pods if pod_phase(p) in ("Pending", "Running")]
        if target is not None or criteria is not None:
            self._terminate(job, status, active, target, criteria)
            return
        reason = self._failure_reason(job, status, pods)
        if reason is not None:
            set_job_condition(
                status, "FailureTarget", "True", reason, _MESSAGES[reason]
            )
            record_event(
                self.store,
                self.primary,
                job,
                reason,
                _MESSAGES[reason],
                event_type="Warning",
                component="job-controller",
            )
            for pod in active:
                delete_pod(self.store, pod)
            return
        succeeded = self._succeeded_indexes(job, pods)
        completions = spec.get("completions")
        done_count = (
            len(succeeded)
            if self._indexed(job)
            else sum(1 for p in pods if pod_phase(p) == "Succeeded")
        )
        if (completions is not None and done_count >= int(completions)) or (
            completions is None and done_count > 0 and not active
        ):
            message = _MESSAGES["CompletionsReached"]
            set_job_condition(
                status, "SuccessCriteriaMet", "True", "CompletionsReached", message
            )
            for pod in active:
                delete_pod(self.store, pod)
            return
        self._create_pods(job, pods, active, succeeded, done_count)

    def _terminate(
        self,
        job: Obj,
        status: Obj,
        active: list[Obj],
        target: Obj | None,
        criteria: Obj | None,
    ) -> None:
        for pod in active:
            delete_pod(self.store, pod)
        if target is not None:
            reason = str(target.get("reason"))
            set_job_condition(status, "Failed", "True", reason, str(target["message"]))
        elif criteria is not None:
            set_job_condition(
                status,
                "Complete",
                "True",
                "CompletionsReached",
                _MESSAGES["CompletionsReached"],
            )
            status["completionTime"] = now()
            record_event(
                self.store,
                self.primary,
                job,
                "Completed",
                "Job completed",
                component="job-controller",
            )

    def _failure_reason(self, job: Obj, status: Obj, pods: list[Obj]) -> str | None:
        spec = job.get("spec") or {}
        limit = int(spec.get("backoffLimit", 6))
        policy = (spec.get("template") or {}).get("spec", {}).get("restartPolicy")
        failed = sum(1 for p in pods if pod_phase(p) == "Failed")
        if policy == "OnFailure":
            failed += sum(
                restart_count(p) for p in pods if pod_phase(p) in ("Pending", "Running")
            )
        if failed > limit:
            return "BackoffLimitExceeded"
        deadline = spec.get("activeDeadlineSeconds")
        if deadline is not None and _seconds_since(status.get("startTime")) >= int(
            deadline
        ):
            return "DeadlineExceeded"
        return None

    def _arm_deadline(self, job: Obj) -> None:
        deadline = (job.get("spec") or {}).get("activeDeadlineSeconds")
        meta = job["metadata"]
        if deadline is None or meta["uid"] in self._deadline_timers:
            return
        self._deadline_timers.add(meta["uid"])
        # Status timestamps have seconds precision, so wake up just after it.
        self.enqueue_after(meta["namespace"], meta["name"], float(deadline) + 1.0)

    @staticmethod
    def _indexed(job: Obj) -> bool:
        return (job.get("spec") or {}).get("completionMode") == "Indexed"

    @staticmethod
    def _index_of(pod: Obj) -> int | None:
        value = (pod["metadata"].get("annotations") or {}).get(INDEX_ANNOTATION)
        return int(value) if value is not None else None

    def _succeeded_indexes(self, job: Obj, pods: list[Obj]) -> set[int]:
        if not self._indexed(job):
            return set()
        found = set()
        for pod in pods:
            index = self._index_of(pod)
            if index is not None and pod_phase(pod) == "Succeeded":
                found.add(index)
        return found

    def _create_pods(
        self,
        job: Obj,
        pods: list[Obj],
        active: list[Obj],
        succeeded: set[int],
        done_count: int,
    ) -> None:
        spec = job.get("spec") or {}
        parallelism = int(spec.get("parallelism", 1))
        completions = spec.get("completions")
        remaining = (int(completions) - done_count) if completions is not None else 1
        wanted = min(parallelism, max(remaining, 0)) - len(active)
        if wanted <= 0:
            return
        failed = [p for p in pods if pod_phase(p) == "Failed"]
        if self._indexed(job):
            busy = {self._index_of(p) for p in active} | succeeded
            free = [i for i in range(int(completions or 1)) if i not in busy]
            for index in free[:wanted]:
                attempts = sum(1 for p in failed if self._index_of(p) == index)
                self._create_pod(job, index, attempts)
        else:
            for _ in range(wanted):
                self._create_pod(job, None, len(failed))

    def _create_pod(self, job: Obj, index: int | None, attempts: int) -> None:
        meta = job["metadata"]
        template = (job.get("spec") or {}).get("template") or {}
        labels = {
            "batch.kubernetes.io/controller-uid": meta["uid"],
            "batch.kubernetes.io/job-name": meta["name"],
            "controller-uid": meta["uid"],
            "job-name": meta["name"],
        }
        annotations = {}
        prefix = meta["name"]
        if index is not None:
            labels[INDEX_ANNOTATION] = str(index)
            annotations[INDEX_ANNOTATION] = str(index)
            prefix = f"{meta['name']}-{index}"
        script = resolve_pod_script(
            self.host, "jobs", job, replica_index=index, attempts=attempts
        )
        pod = build_pod(
            name=f"{prefix}-{random_suffix()}",
            namespace=meta["namespace"],
            template=template,
            labels=labels,
            owner=job,
            owner_rtype=self.primary,
            script=script,
            scripts=self.host.scripts,
            annotations=annotations,
        )
        created = create_pod(self.store, pod)
        if created is not None:
            record_event(
                self.store,
                self.primary,
                job,
                "SuccessfulCreate",
                f"Created pod: {created['metadata']['name']}",
                component="job-controller",
            )

    def _count(self, job: Obj, status: Obj) -> None:
        meta = job["metadata"]
        pods = owned_pods(self.store, meta["namespace"], meta["uid"])
        active = [p for p in pods if pod_phase(p) in ("Pending", "Running")]
        counts = {
            "active": len(active),
            "succeeded": sum(1 for p in pods if pod_phase(p) == "Succeeded"),
            "failed": sum(1 for p in pods if pod_phase(p) == "Failed"),
        }
        for key, value in counts.items():
            if value:
                status[key] = value
            else:
                status.pop(key, None)
        status["ready"] = sum(1 for p in active if pod_is_ready(p))
        status["terminating"] = 0
        status["uncountedTerminatedPods"] = {}
        if self._indexed(job):
            indexes = self._succeeded_indexes(job, pods)
            if indexes:
                status["completedIndexes"] = format_indexes(indexes)
