"""Simulated Kubeflow Trainer v2 controller for ``trainer.kubeflow.org/v1alpha1``.

A real TrainJob becomes a JobSet whose replicated jobs create the pods. The fake
skips the JobSet and Job objects and creates the pods directly, with the labels
a JobSet gives them, so pod selectors of the Trainer SDK work:

* ``dataset-initializer`` and ``model-initializer`` steps when
  ``spec.initializer`` names them, run first;
* ``node`` with ``spec.trainer.numNodes`` pods (default 1), named
  ``<trainjob>-node-0-<index>-<suffix>``.

Conditions are ``metav1.Condition`` values: ``Suspended``, then ``Complete``
(reason ``AllJobsCompleted``) or ``Failed`` (reason ``FailedJobs`` or
``DeadlineExceeded``), with the messages that JobSet and Trainer write.
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
    resolve_pod_script,
)
from ._job_conditions import _seconds_since

logger = logging.getLogger(__name__)

LABEL_JOBSET = "jobset.sigs.k8s.io/jobset-name"
LABEL_STEP = "jobset.sigs.k8s.io/replicatedjob-name"
LABEL_JOB_INDEX = "jobset.sigs.k8s.io/job-index"
LABEL_COMPLETION_INDEX = "batch.kubernetes.io/job-completion-index"
NODE_STEP = "node"
DEFAULT_IMAGE = "docker.io/library/python:3.11"
# NOTE: node pods restart in place up to this many times, as under the Kubernetes
# default Job backoffLimit. A real training runtime may set another limit.
_BACKOFF_LIMIT = 6
_COMPLETE_MESSAGE = "jobset completed successfully"
_FAILED_MESSAGE = "jobset failed due to one or more job failures"
_DEADLINE_MESSAGE = "TrainJob exceeded its active deadline"


def set_condition(
    status: Obj, kind: str, value: str, reason: str, message: str
) -> None:
    """Set a ``metav1.Condition``, keeping lastTransitionTime if its status is kept."""
    conditions = status.setdefault("conditions", [])
    for condition in conditions:
        if condition.get("type") != kind:
            continue
        if condition.get("status") != value:
            condition["lastTransitionTime"] = now()
        condition.update(status=value, reason=reason, message=message)
        return
    conditions.append(
        {
            "type": kind,
            "status": value,
            "reason": reason,
            "message": message,
            "lastTransitionTime": now(),
        }
    )


def _is_true(status: Obj, kind: str) -> bool:
    for condition in status.get("conditions") or []:
        if condition.get("type") == kind:
            return bool(condition.get("status") == "True")
    return False


class TrainJobController(Reconciler):
    """Reconciles TrainJobs."""

    primary = RESOURCE_TYPES["trainjobs.trainer.kubeflow.org"]

    def __init__(self, host: Host) -> None:
        super().__init__(host)
        self._deadline_timers: set[tuple[str, str]] = set()

    def reconcile(self, namespace: str, name: str) -> None:
        job = self.store.get(self.primary, namespace, name)
        if job is None or job["metadata"].get("deletionTimestamp"):
            return
        spec = job.get("spec") or {}
        status = copy.deepcopy(job.get("status") or {})
        old = copy.deepcopy(status)
        pods = owned_pods(self.store, namespace, job["metadata"]["uid"])
        finished = _is_true(status, "Complete") or _is_true(status, "Failed")

        if not finished and spec.get("suspend"):
            for pod in pods:
                delete_pod(self.store, pod)
            set_condition(
                status, "Suspended", "True", "Suspended", "TrainJob is suspended"
            )
        elif not finished:
            if _is_true(status, "Suspended"):
                set_condition(
                    status, "Suspended", "False", "Resumed", "TrainJob is resumed"
                )
                status["startTime"] = now()
            status.setdefault("startTime", now())
            self._run(job, status, pods)
        pods = owned_pods(self.store, namespace, job["metadata"]["uid"])
        status["jobsStatus"] = self._jobs_status(job, pods)
        if status != old:

            def apply(obj: Obj) -> None:
                obj["status"] = status

            self.store.mutate(self.primary, namespace, name, apply, status_only=True)

    def _steps(self, job: Obj) -> list[tuple[str, int]]:
        spec = job.get("spec") or {}
        initializer = spec.get("initializer") or {}
        steps = [
            (f"{kind}-initializer", 1)
            for kind in ("dataset", "model")
            if initializer.get(kind)
        ]
        nodes = int((spec.get("trainer") or {}).get("numNodes") or 1)
        steps.append((NODE_STEP, nodes))
        return steps

    def _run(self, job: Obj, status: Obj, pods: list[Obj]) -> None:
        meta = job["metadata"]
        deadline = (job.get("spec") or {}).get("activeDeadlineSeconds")
        if deadline is not None:
            if _seconds_since(status.get("startTime")) >= int(deadline):
                self._fail(status, pods, "DeadlineExceeded", _DEADLINE_MESSAGE)
                return
            timer = (meta["uid"], str(status.get("startTime")))
            if timer not in self._deadline_timers:
                self._deadline_timers.add(timer)
                # Status timestamps have seconds precision: wake up just after.
                self.enqueue_after(meta["namespace"], meta["name"], float(deadline) + 1)
        by_step: dict[str, dict[int, Obj]] = {}
        for pod in pods:
            labels = pod["metadata"].get("labels") or {}
            index = int(labels.get(LABEL_COMPLETION_INDEX, "0"))
            by_step.setdefault(labels.get(LABEL_STEP, ""), {})[index] = pod
        if any(pod_phase(p) == "Failed" for p in pods) or any(
            _restarts(p) > _BACKOFF_LIMIT for p in pods
        ):
            self._fail(status, pods, "FailedJobs", _FAILED_MESSAGE)
            return
        initializers_done = True
        for step, count in self._steps(job):
            if step == NODE_STEP and not initializers_done:
                break
            existing = by_step.get(step, {})
            for index in range(count):
                if index not in existing:
                    self._create_pod(job, step, index)
            done = len(existing) == count and all(
                pod_phase(p) == "Succeeded" for p in existing.values()
            )
            if step != NODE_STEP:
                initializers_done = initializers_done and done
            elif done:
                set_condition(
                    status, "Complete", "True", "AllJobsCompleted", _COMPLETE_MESSAGE
                )

    def _fail(self, status: Obj, pods: list[Obj], reason: str, message: str) -> None:
        for pod in pods:
            if pod_phase(pod) in ("Pending", "Running"):
                delete_pod(self.store, pod)
        set_condition(status, "Failed", "True", reason, message)

    def _create_pod(self, job: Obj, step: str, index: int) -> None:
        meta = job["metadata"]
        spec = job.get("spec") or {}
        trainer = spec.get("trainer") or {}
        container: Obj = {"name": step, "image": DEFAULT_IMAGE}
        if step == NODE_STEP:
            container["image"] = trainer.get("image") or DEFAULT_IMAGE
            for key in ("command", "args", "env", "resources"):
                if trainer.get(key) is not None:
                    container[key] = copy.deepcopy(trainer[key])
            if trainer.get("resourcesPerNode") is not None:
                container["resources"] = copy.deepcopy(trainer["resourcesPerNode"])
        else:
            source = (spec.get("initializer") or {}).get(step.split("-")[0]) or {}
            env = list(copy.deepcopy(source.get("env") or []))
            if source.get("storageUri"):
                env.append({"name": "STORAGE_URI", "value": source["storageUri"]})
            container["env"] = env
        job_name = f"{meta['name']}-{step}-0"
        labels = {
            LABEL_JOBSET: meta["name"],
            LABEL_STEP: step,
            LABEL_JOB_INDEX: "0",
            LABEL_COMPLETION_INDEX: str(index),
            "batch.kubernetes.io/job-name": job_name,
            "job-name": job_name,
        }
        script = resolve_pod_script(
            self.host, "trainjobs", job, replica_type=step, replica_index=index
        )
        template = {"spec": {"containers": [container]}}
        pod = build_pod(
            name=f"{job_name}-{index}-{random_suffix()}",
            namespace=meta["namespace"],
            template=template,
            labels=labels,
            owner=job,
            owner_rtype=self.primary,
            script=script,
            scripts=self.host.scripts,
            restart_policy="OnFailure",
            annotations={LABEL_COMPLETION_INDEX: str(index)},
        )
        create_pod(self.store, pod)

    def _jobs_status(self, job: Obj, pods: list[Obj]) -> list[Obj]:
        suspended = bool((job.get("spec") or {}).get("suspend"))
        result = []
        for step, count in self._steps(job):
            mine = [
                p
                for p in pods
                if (p["metadata"].get("labels") or {}).get(LABEL_STEP) == step
            ]
            phases = [pod_phase(p) for p in mine]
            succeeded = len(mine) == count and all(ph == "Succeeded" for ph in phases)
            failed = "Failed" in phases
            active = bool(mine) and not succeeded and not failed
            ready = active and all(pod_is_ready(p) for p in mine) and len(mine) == count
            result.append(
                {
                    "name": step,
                    "ready": int(ready),
                    "succeeded": int(succeeded),
                    "failed": int(failed),
                    "active": int(active),
                    "suspended": int(suspended),
                }
            )
        return result


def _restarts(pod: Obj) -> int:
    statuses = (pod.get("status") or {}).get("containerStatuses") or []
    return sum(int(s.get("restartCount") or 0) for s in statuses)
