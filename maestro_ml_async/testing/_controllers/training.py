"""Simulated Kubeflow Training Operator for the ``kubeflow.org/v1`` job kinds.

It follows the rules of the training-operator v1 controllers (``pkg/util/status.go``
and ``pkg/controller.v1/common/job.go`` in kubeflow/trainer):

* ``Created`` first. ``Running`` when the master replica (Master, Chief or
  Launcher) has a Running pod or, for kinds without one, while workers run.
  ``Succeeded`` when the master succeeds, or every worker for kinds without one.
* ``Restarting`` and ``Running`` replace each other. ``Succeeded`` and ``Failed``
  set ``Running`` to False. After ``Failed`` no condition changes.
* A replica that failed beyond its restartPolicy (Never, or ExitCode with a
  non-retryable code) fails the job. So do backoffLimit and
  activeDeadlineSeconds, with reason ``<Kind>Failed`` and a message that names
  the limit.
"""

from __future__ import annotations

import asyncio
import copy
import logging
from collections import deque
from dataclasses import dataclass, field

from .._resources import RESOURCE_TYPES
from ._base import (
    Host,
    Obj,
    Reconciler,
    build_pod,
    create_pod,
    delete_pod,
    exit_code_of,
    is_crash_looping,
    now,
    owned_pods,
    pod_phase,
    record_event,
    resolve_pod_script,
    restart_count,
)
from ._job_conditions import (
    _seconds_since,
    condition_true,
    get_condition,
    is_finished,
    update_job_condition,
)

logger = logging.getLogger(__name__)

# Exit codes that the ExitCode restart policy retries (signals such as SIGKILL).
RETRYABLE_EXIT_CODES = frozenset({130, 137, 138, 143})

# Pods created in one step of the event loop. Each creation writes the pod and
# an event and starts a kubelet task, so creating tens of thousands at once
# would block the loop for seconds. A job of many replicas is created in
# steps instead, and the fake API server keeps responding in between.
CREATE_BATCH = 200


@dataclass
class _PendingPods:
    """Pods of one job that are still to be created, in creation order."""

    namespace: str
    name: str
    replicas: deque[tuple[str, int]] = field(default_factory=deque)


@dataclass(frozen=True)
class JobKind:
    """What differs between the training job kinds."""

    plural: str
    replica_field: str
    container: str
    masters: tuple[str, ...]
    # NOTE: the per-kind default restartPolicy is recalled, not read in source.
    default_restart: str
    worker_zero_is_master: bool


KINDS = {
    "pytorchjobs": JobKind(
        "pytorchjobs", "pytorchReplicaSpecs", "pytorch", ("Master",), "OnFailure", True
    ),
    "tfjobs": JobKind(
        "tfjobs", "tfReplicaSpecs", "tensorflow", ("Chief", "Master"), "Never", True
    ),
    "xgboostjobs": JobKind(
        "xgboostjobs", "xgbReplicaSpecs", "xgboost", ("Master",), "Never", False
    ),
    "mpijobs": JobKind(
        "mpijobs", "mpiReplicaSpecs", "mpi", ("Launcher",), "Never", False
    ),
    "paddlejobs": JobKind(
        "paddlejobs", "paddleReplicaSpecs", "paddle", ("Master",), "Never", True
    ),
    "jaxjobs": JobKind("jaxjobs", "jaxReplicaSpecs", "jax", (), "Never", True),
}

LABEL_JOB = "training.kubeflow.org/job-name"
LABEL_OPERATOR = "training.kubeflow.org/operator-name"
LABEL_TYPE = "training.kubeflow.org/replica-type"
LABEL_INDEX = "training.kubeflow.org/replica-index"
LABEL_ROLE = "training.kubeflow.org/job-role"


class TrainingJobController(Reconciler):
    """Reconciles the jobs of one ``kubeflow.org/v1`` kind."""

    def __init__(self, host: Host, plural: str) -> None:
        super().__init__(host)
        self.primary = RESOURCE_TYPES[f"{plural}.kubeflow.org"]
        self.info = KINDS[plural]
        self.kind = self.primary.kind
        # Pods deleted for a retry under restartPolicy ExitCode, per replica.
        self._attempts: dict[tuple[str, str, int], int] = {}
        # Loop time at which each job's pending deadline check fires.
        self._deadline_timers: dict[str, float] = {}
        # Pods still to be created, per job uid. The operator's Reconcile
        # returns early until the pods it created are observed
        # (SatisfiedExpectations), and this controller skips a job's reconcile
        # until its list is empty.
        self._pending: dict[str, _PendingPods] = {}

    def reconcile(self, namespace: str, name: str) -> None:
        job = self.store.get(self.primary, namespace, name)
        if job is None or job["metadata"].get("deletionTimestamp"):
            return
        if job["metadata"]["uid"] in self._pending:
            return
        spec = job.get("spec") or {}
        replicas: Obj = spec.get(self.info.replica_field) or {}
        run_policy: Obj = spec.get("runPolicy") or {}
        status = copy.deepcopy(job.get("status") or {})
        old = copy.deepcopy(status)
        status.setdefault("conditions", [])
        statuses = status.setdefault("replicaStatuses", {})
        for rtype in replicas:
            statuses.setdefault(rtype, {})
        if get_condition(status, "Created") is None:
            update_job_condition(
                status,
                "Created",
                "True",
                f"{self.kind}Created",
                f"{self.kind} {name} is created.",
            )
        pods = owned_pods(self.store, namespace, job["metadata"]["uid"])

        if is_finished(status):
            self._finish(job, run_policy, status, pods)
        elif run_policy.get("suspend"):
            self._suspend(name, status, pods)
        else:
            self._run(job, replicas, run_policy, status, pods)
        if status != old:
            self._write_status(namespace, name, status)

    def _write_status(self, namespace: str, name: str, status: Obj) -> None:
        def apply(obj: Obj) -> None:
            obj["status"] = status

        self.store.mutate(self.primary, namespace, name, apply, status_only=True)

    # Phases of one reconcile

    def _finish(self, job: Obj, run_policy: Obj, status: Obj, pods: list[Obj]) -> None:
        self._clean_pods(run_policy, pods)
        if condition_true(status, "Succeeded"):
            for counts in status["replicaStatuses"].values():
                active = counts.pop("active", 0)
                if active:
                    counts["succeeded"] = counts.get("succeeded", 0) + active
        ttl = run_policy.get("ttlSecondsAfterFinished")
        if ttl is None:
            return
        meta = job["metadata"]
        remaining = float(ttl) - _seconds_since(status.get("completionTime"))
        if remaining <= 0:
            self.store.delete(self.primary, meta["namespace"], meta["name"])
        else:
            self.enqueue_after(meta["namespace"], meta["name"], remaining)

    def _clean_pods(self, run_policy: Obj, pods: list[Obj]) -> None:
        # NOTE: the default cleanPodPolicy of every kind is taken to be None.
        policy = run_policy.get("cleanPodPolicy") or "None"
        for pod in pods:
            if policy == "All" or (
                policy == "Running" and pod_phase(pod) in ("Running", "Pending")
            ):
                delete_pod(self.store, pod)

    def _suspend(self, name: str, status: Obj, pods: list[Obj]) -> None:
        for pod in pods:
            delete_pod(self.store, pod)
        for counts in status["replicaStatuses"].values():
            counts.pop("active", None)
        message = f"{self.kind} {name} is suspended."
        reason = f"{self.kind}Suspended"
        if condition_true(status, "Running"):
            update_job_condition(status, "Running", "False", reason, message)
        if not condition_true(status, "Suspended"):
            update_job_condition(status, "Suspended", "True", reason, message)

    def _run(
        self,
        job: Obj,
        replicas: Obj,
        run_policy: Obj,
        status: Obj,
        pods: list[Obj],
    ) -> None:
        meta = job["metadata"]
        name = meta["name"]
        if condition_true(status, "Suspended"):
            update_job_condition(
                status,
                "Suspended",
                "False",
                f"{self.kind}Resumed",
                f"{self.kind} {name} is resumed.",
            )
            status["startTime"] = now()
            self._deadline_timers.pop(meta["uid"], None)

        failure = self._limit_failure(job, replicas, run_policy, status, pods)
        if failure is not None:
            status.setdefault("completionTime", now())
            update_job_condition(
                status, "Failed", "True", f"{self.kind}Failed", failure
            )
            self._event(job, "Failed", failure)
            self._clean_pods(run_policy, pods)
            return

        signals: dict[str, tuple[int, int]] = {}
        missing: list[tuple[str, int]] = []
        for rtype, rspec in replicas.items():
            signals[rtype] = self._reconcile_pods(
                job, rtype, rspec or {}, pods, status, missing
            )
        self._create_missing(job, missing)
        if "startTime" not in status:
            status["startTime"] = now()
        self._arm_deadline(job, run_policy, status["startTime"])
        self._update_conditions(job, replicas, status, signals)

    def _limit_failure(
        self, job: Obj, replicas: Obj, run_policy: Obj, status: Obj, pods: list[Obj]
    ) -> str | None:
        name = job["metadata"]["name"]
        limit = run_policy.get("backoffLimit")
        if limit is not None:
            restarts = sum(
                count
                for (uid, _, _), count in self._attempts.items()
                if uid == job["metadata"]["uid"]
            )
            for pod in pods:
                rtype = self._pod_replica_type(pod, replicas)
                policy = self._policy(replicas.get(rtype) or {})
                if policy in ("OnFailure", "Always") and pod_phase(pod) in (
                    "Running",
                    "Pending",
                ):
                    restarts += restart_count(pod)
            if (restarts > 0) if int(limit) == 0 else restarts >= int(limit):
                return (
                    f"Job {name} has failed because it has reached the specified "
                    "backoff limit"
                )
        deadline = run_policy.get("activeDeadlineSeconds")
        started = status.get("startTime")
        if (
            deadline is not None
            and started
            and _seconds_since(started) >= int(deadline)
        ):
            return (
                f"Job {name} has failed because it was active longer than specified "
                "deadline"
            )
        return None

    def _arm_deadline(self, job: Obj, run_policy: Obj, started: str) -> None:
        deadline = run_policy.get("activeDeadlineSeconds")
        meta = job["metadata"]
        loop_time = asyncio.get_running_loop().time()
        if deadline is None or self._deadline_timers.get(meta["uid"], 0) > loop_time:
            return
        # Status timestamps have seconds precision, so wake up just after it. A
        # check that fires early (wall clock adjusted) arms the next one.
        delay = max(float(deadline) - _seconds_since(started), 0.0) + 1.0
        self._deadline_timers[meta["uid"]] = loop_time + delay
        self.enqueue_after(meta["namespace"], meta["name"], delay)

    # Pods

    def _policy(self, rspec: Obj) -> str:
        return str(rspec.get("restartPolicy") or self.info.default_restart)

    def _pod_replica_type(self, pod: Obj, replicas: Obj) -> str:
        label = (pod["metadata"].get("labels") or {}).get(LABEL_TYPE, "")
        for rtype in replicas:
            if rtype.lower() == label:
                return str(rtype)
        return str(label)

    def _is_master_role(self, replicas: Obj, rtype: str, index: int) -> bool:
        if any(master in replicas for master in self.info.masters):
            return rtype in self.info.masters
        return self.info.worker_zero_is_master and rtype == "Worker" and index == 0

    def _reconcile_pods(
        self,
        job: Obj,
        rtype: str,
        rspec: Obj,
        pods: list[Obj],
        status: Obj,
        missing: list[tuple[str, int]],
    ) -> tuple[int, int]:
        """Retry or delete pods and return (permanent failures, crash loops).

        The replicas without a pod are appended to `missing` for creation.
        """
        wanted = int(rspec.get("replicas", 1))
        policy = self._policy(rspec)
        uid = job["metadata"]["uid"]
        by_index: dict[int, Obj] = {}
        for pod in pods:
            labels = pod["metadata"].get("labels") or {}
            if labels.get(LABEL_TYPE) != rtype.lower():
                continue
            index = int(labels.get(LABEL_INDEX, "-1"))
            if index >= wanted or index < 0 or index in by_index:
                delete_pod(self.store, pod)
            else:
                by_index[index] = pod

        counts = {"active": 0, "succeeded": 0, "failed": 0}
        permanent = 0
        crash_loops = 0
        for index in range(wanted):
            current = by_index.get(index)
            if current is None:
                missing.append((rtype, index))
                continue
            phase = pod_phase(current)
            if phase == "Running":
                counts["active"] += 1
                crash_loops += int(is_crash_looping(current))
            elif phase == "Succeeded":
                counts["succeeded"] += 1
            elif phase == "Failed":
                counts["failed"] += 1
                code = exit_code_of(current)
                if policy == "ExitCode" and code in RETRYABLE_EXIT_CODES:
                    key = (uid, rtype, index)
                    self._attempts[key] = self._attempts.get(key, 0) + 1
                    delete_pod(self.store, current)
                elif policy in ("Never", "ExitCode"):
                    permanent += 1
        replica_status: Obj = {k: v for k, v in counts.items() if v}
        replica_status["selector"] = ",".join(
            f"{k}={v}" for k, v in sorted(self._base_labels(job, rtype).items())
        )
        status["replicaStatuses"][rtype] = replica_status
        return permanent, crash_loops

    def _create_missing(self, job: Obj, missing: list[tuple[str, int]]) -> None:
        """Create the first `CREATE_BATCH` missing pods, and the rest in later steps."""
        replicas: Obj = (job.get("spec") or {}).get(self.info.replica_field) or {}
        for rtype, index in missing[:CREATE_BATCH]:
            self._create_pod(job, rtype, replicas[rtype] or {}, index)
        if len(missing) <= CREATE_BATCH:
            return
        meta = job["metadata"]
        self._pending[meta["uid"]] = _PendingPods(
            meta["namespace"], meta["name"], deque(missing[CREATE_BATCH:])
        )
        asyncio.get_running_loop().call_soon(self._create_pending, meta["uid"])

    def _create_pending(self, uid: str) -> None:
        """Create the next batch of a job's pending pods, then schedule the rest.

        The job is read again at each step, so a job that was deleted,
        replaced, suspended or finished meanwhile gets no more pods.
        """
        pending = self._pending.get(uid)
        if pending is None:
            return
        job = self.store.peek_one(self.primary, pending.namespace, pending.name)
        if job is None or not self._wants_pods(job, uid):
            del self._pending[uid]
            self.enqueue_after(pending.namespace, pending.name, 0.0)
            return
        replicas: Obj = (job.get("spec") or {}).get(self.info.replica_field) or {}
        for _ in range(min(CREATE_BATCH, len(pending.replicas))):
            rtype, index = pending.replicas.popleft()
            if rtype in replicas:
                self._create_pod(job, rtype, replicas[rtype] or {}, index)
        if pending.replicas:
            asyncio.get_running_loop().call_soon(self._create_pending, uid)
            return
        del self._pending[uid]
        self.enqueue_after(pending.namespace, pending.name, 0.0)

    def _wants_pods(self, job: Obj, uid: str) -> bool:
        """Return whether the controller runs and `job` is still `uid`, active."""
        meta = job["metadata"]
        run_policy = (job.get("spec") or {}).get("runPolicy") or {}
        return (
            self._queue is not None
            and meta["uid"] == uid
            and not meta.get("deletionTimestamp")
            and not run_policy.get("suspend")
            and not is_finished(job.get("status") or {})
        )

    def _base_labels(self, job: Obj, rtype: str) -> dict[str, str]:
        return {
            LABEL_JOB: job["metadata"]["name"],
            LABEL_OPERATOR: f"{self.kind.lower()}-controller",
            LABEL_TYPE: rtype.lower(),
        }

    def _create_pod(self, job: Obj, rtype: str, rspec: Obj, index: int) -> None:
        meta = job["metadata"]
        replicas: Obj = (job.get("spec") or {}).get(self.info.replica_field) or {}
        labels = self._base_labels(job, rtype)
        labels[LABEL_INDEX] = str(index)
        if self._is_master_role(replicas, rtype, index):
            labels[LABEL_ROLE] = "master"
        policy = self._policy(rspec)
        attempts = self._attempts.get((meta["uid"], rtype, index), 0)
        script = resolve_pod_script(
            self.host,
            self.info.plural,
            job,
            replica_type=rtype,
            replica_index=index,
            attempts=attempts,
        )
        template = copy.deepcopy(rspec.get("template") or {})
        self._inject_env(template, replicas, rtype, index, meta["name"])
        pod = build_pod(
            name=f"{meta['name']}-{rtype.lower()}-{index}",
            namespace=meta["namespace"],
            template=template,
            labels=labels,
            owner=job,
            owner_rtype=self.primary,
            script=script,
            scripts=self.host.scripts,
            restart_policy="Never" if policy == "ExitCode" else policy,
        )
        created = create_pod(self.store, pod)
        if created is not None:
            self._event(
                job,
                "SuccessfulCreatePod",
                f"Created pod: {created['metadata']['name']}",
            )

    def _inject_env(
        self, template: Obj, replicas: Obj, rtype: str, index: int, name: str
    ) -> None:
        if self.info.plural != "pytorchjobs":
            return
        has_master = "Master" in replicas
        world = sum(int((s or {}).get("replicas", 1)) for s in replicas.values())
        rank = index if rtype == "Master" or not has_master else index + 1
        master = f"{name}-master-0" if has_master else f"{name}-worker-0"
        values = {
            "MASTER_PORT": "23456",
            "MASTER_ADDR": master,
            "WORLD_SIZE": str(world),
            "RANK": str(rank),
            "PYTHONUNBUFFERED": "1",
        }
        for container in (template.get("spec") or {}).get("containers") or []:
            if container.get("name") != self.info.container:
                continue
            env = container.setdefault("env", [])
            present = {item.get("name") for item in env}
            env.extend(
                {"name": k, "value": v} for k, v in values.items() if k not in present
            )

    # Conditions

    def _update_conditions(
        self,
        job: Obj,
        replicas: Obj,
        status: Obj,
        signals: dict[str, tuple[int, int]],
    ) -> None:
        name = job["metadata"]["name"]
        has_master = any(master in replicas for master in self.info.masters)
        for rtype, rspec in replicas.items():
            counts = status["replicaStatuses"][rtype]
            wanted = int((rspec or {}).get("replicas", 1))
            succeeded = int(counts.get("succeeded", 0))
            running = int(counts.get("active", 0))
            failed = int(counts.get("failed", 0))
            if has_master and rtype in self.info.masters:
                if running > 0:
                    self._set(status, "Running", f"{self.kind} {name} is running.")
                if wanted - succeeded == 0:
                    self._succeed(job, status)
                    return
            elif not has_master and rtype == "Worker":
                if self._workers_done(job, wanted, succeeded):
                    self._succeed(job, status)
                    return
                if running > 0:
                    self._set(status, "Running", f"{self.kind} {name} is running.")
            permanent, crash_loops = signals[rtype]
            broken = failed > 0 and wanted > succeeded + running
            if broken and permanent == 0:
                self._set(
                    status,
                    "Restarting",
                    f"{self.kind} {name} is restarting "
                    f"because {failed} {rtype} replica(s) failed.",
                )
            elif broken:
                message = (
                    f"{self.kind} {name} is failed because {failed} {rtype} "
                    "replica(s) failed."
                )
                status.setdefault("completionTime", now())
                self._set(status, "Failed", message)
                self._event(job, "Failed", message)
            elif crash_loops > 0:
                # NOTE: the real operator sees no failed pod while the kubelet
                # restarts a container in place, but the fake reports Restarting.
                self._set(
                    status,
                    "Restarting",
                    f"{self.kind} {name} is restarting "
                    f"because {crash_loops} {rtype} replica(s) failed.",
                )

    def _workers_done(self, job: Obj, wanted: int, succeeded: int) -> bool:
        spec = job.get("spec") or {}
        if self.info.plural == "tfjobs" and spec.get("successPolicy") != "AllWorkers":
            pods = owned_pods(
                self.store, job["metadata"]["namespace"], job["metadata"]["uid"]
            )
            return any(
                (p["metadata"].get("labels") or {}).get(LABEL_TYPE) == "worker"
                and (p["metadata"].get("labels") or {}).get(LABEL_INDEX) == "0"
                and pod_phase(p) == "Succeeded"
                for p in pods
            )
        if spec.get("elasticPolicy") is not None and succeeded > 0:
            return True
        return wanted - succeeded == 0

    def _set(self, status: Obj, kind: str, message: str) -> None:
        update_job_condition(status, kind, "True", f"{self.kind}{kind}", message)

    def _succeed(self, job: Obj, status: Obj) -> None:
        if condition_true(status, "Succeeded"):
            return
        message = f"{self.kind} {job['metadata']['name']} is successfully completed."
        status.setdefault("completionTime", now())
        self._set(status, "Succeeded", message)
        self._event(job, "Succeeded", message)

    def _event(self, job: Obj, reason: str, message: str) -> None:
        full = reason if reason.startswith("Successful") else f"{self.kind}{reason}"
        kind_type = "Warning" if reason == "Failed" else "Normal"
        record_event(
            self.store,
            self.primary,
            job,
            full,
            message,
            event_type=kind_type,
            component=f"{self.kind.lower()}-controller",
        )


def training_controllers(host: Host) -> list[Reconciler]:
    """Return one controller per ``kubeflow.org/v1`` job kind."""
    return [TrainingJobController(host, plural) for plural in KINDS]
