"""Training jobs on the cluster: submit, read, await, watch and stream logs.

kubernetes-asyncio is imported only through the lazily built cluster transport,
so importing this module stays cheap. Waits and watches of one kind in one
namespace share a single watch connection through the transport's hub.
"""

from __future__ import annotations

import asyncio
import logging
import math
from collections.abc import AsyncIterator, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .._config import Config
from .._exceptions import KubernetesNotFoundException, TrainingException
from .._transport._cluster_handle import ClusterHandle
from .._validation import check_choice, check_kubernetes_name, check_kubernetes_names
from ..types.training import (
    JobEvent,
    JobStatus,
    LogLine,
    TrainingJob,
    TrainingTimeoutException,
)
from . import _training_wait
from ._training_kinds import (
    KINDS,
    JobKind,
    job_from_object,
    replica_of_pod,
)
from ._training_logs import JobLogStreamer, read_current_logs
from ._training_submit import build_request, create_job_objects
from ._training_wait import (
    CANCELLED_ANNOTATION,
    check_timeout,
    image_pull_problems,
    is_stale,
    reached,
    selector_for,
    timeout_error,
)

if TYPE_CHECKING:
    from .._transport._kube import ClusterTransport

__all__ = ["AsyncTrainingResource"]

logger = logging.getLogger(__name__)

_MERGE_PATCH = "application/merge-patch+json"


# Every supported controller copies the job name into a pod label (job-name,
# training.kubeflow.org/job-name, jobset.sigs.k8s.io/jobset-name), and label
# values are at most 63 characters, so no job can have a longer name.
_MAX_JOB_NAME = 63


def _unique_kinds() -> list[JobKind]:
    return list(KINDS.values())


def _check_job_name(name: object) -> str:
    """Check the name of an existing job, so an empty one never reaches a URL.

    An empty name would turn a DELETE of one job into a DELETE of the whole
    collection, which removes every job of that kind in the namespace.
    """
    return check_kubernetes_name(name, what="job name", max_length=_MAX_JOB_NAME)


class AsyncTrainingResource:
    """Training jobs: Training Operator kinds, batch Jobs and Trainer v2 TrainJobs.

    Args:
        cluster: The lazy handle on the cluster transport.
        config: The client configuration (namespace, MLflow URI, timeouts).
    """

    def __init__(self, cluster: ClusterHandle, config: Config) -> None:
        self._cluster = cluster
        self._config = config
        self._kinds: dict[tuple[str, str], JobKind] = {}

    async def _transport(self) -> ClusterTransport:
        return await self._cluster.get()

    def _namespace(self, namespace: str | None) -> str:
        if namespace is None:
            return self._config.namespace
        return check_kubernetes_name(namespace, what="namespace", max_length=63)

    def _bind(self, job: TrainingJob) -> TrainingJob:
        job._resource = self
        self._kinds[(job.namespace, job.name)] = KINDS[job.kind]
        return job

    # Submitting --------------------------------------------------------------

    async def submit_job(
        self,
        name: str,
        framework: str,
        image: str,
        code_path: str | Path | None = None,
        command: Sequence[str] | None = None,
        args: Sequence[str] | None = None,
        gpus: int = 0,
        workers: int = 1,
        params: Mapping[str, Any] | None = None,
        env: Mapping[str, str] | None = None,
        resources: Mapping[str, Any] | None = None,
        labels: Mapping[str, str] | None = None,
        namespace: str | None = None,
    ) -> TrainingJob:
        """Create a training job and return it.

        Args:
            name: The job name, a Kubernetes name of at most 63 characters.
            framework: ``pytorch``, ``tensorflow``, ``xgboost``, ``mpi``, ``jax``
                or ``paddle`` (Training Operator kinds), ``sklearn`` or
                ``custom`` (a batch/v1 Job), or ``trainjob`` /
                ``trainjob:<runtime>`` (a Trainer v2 TrainJob on the
                ClusterTrainingRuntime ``<runtime>``, torch-distributed by
                default). The name is matched in any case (``PyTorch``).
            image: The container image.
            code_path: A local file or folder, shipped in a ConfigMap owned by
                the job and mounted read-only at /opt/maestro/code; any other
                value is a path inside the image, except that a path starting
                with ``./``, ``../`` or ``~`` must exist locally. Either is run with
                ``torchrun --nproc-per-node=<gpus>`` for PyTorch with more than
                one GPU, with ``python`` otherwise. A folder is shipped without
                hidden files and folders (``.env``, ``.git``, any name starting
                with ``.``) and without ``__pycache__``, because anyone who may
                read ConfigMaps in the namespace can read the code. Symlinks in
                it must stay inside the folder, and symlinked folders are left
                out.
            command: The container command; overrides the launcher.
            args: Arguments, placed before the ones made from `params`.
            gpus: ``nvidia.com/gpu`` limit of each replica.
            workers: Worker replicas besides the master (Master, Chief or
                Launcher); for JAX, TrainJobs and batch Jobs, the number of
                replicas (at least 1). Kubernetes allows at most 100,000
                for a batch Job (the parallelism limit of an Indexed Job).
            params: Hyperparameters, passed as ``--key=value`` arguments and
                ``PARAM_<KEY>`` variables. Values are converted with ``str``
                (booleans to ``true``/``false``), and None is rejected, as are
                keys with ``=`` or whitespace and keys that map to the same
                variable (``lr`` and ``LR``).
            env: Extra environment variables with string values; they win over
                the ones the SDK sets (MLFLOW_TRACKING_URI,
                MLFLOW_EXPERIMENT_NAME, ...).
            resources: A container ``resources`` mapping (requests/limits), or
                a flat mapping used for both requests and limits. Quantities
                are numbers or Kubernetes quantity strings (``500m``,
                ``1.5Gi``) and are checked before anything is sent.
            labels: Extra labels on the job and its pods.
            namespace: The namespace; the configured one by default.

        Raises:
            ValidationException: An argument is invalid (name, framework,
                image, negative counts, an invalid quantity, a non-string env
                value, a missing local code_path, code above 1 MiB, a symlink
                in the code folder that leaves it); nothing was sent.
            KubernetesConflictException: A training job of that name exists,
                of any kind (names must be unique across kinds, because the
                other methods find a job by name), or its code ConfigMap does.
            KubernetesException: The API server rejected the job.
        """
        request = build_request(
            self._config,
            name=name,
            framework=framework,
            image=image,
            code_path=code_path,
            command=command,
            args=args,
            gpus=gpus,
            workers=workers,
            params=params,
            env=env,
            resources=resources,
            labels=labels,
            namespace=self._namespace(namespace),
        )
        transport = await self._transport()
        created = await create_job_objects(transport, request)
        job = self._bind(job_from_object(created, request.kind))
        logger.info("submitted %s %s/%s", request.kind.kind, job.namespace, job.name)
        return job

    # Reading -----------------------------------------------------------------

    async def _find(self, name: str, namespace: str) -> tuple[JobKind, dict[str, Any]]:
        transport = await self._transport()
        known = self._kinds.get((namespace, name))
        if known is not None:
            try:
                obj = await transport.get_object(
                    known.group, known.version, known.plural, namespace, name
                )
                return known, obj
            except KubernetesNotFoundException:
                self._kinds.pop((namespace, name), None)
        kinds = _unique_kinds()
        results = await asyncio.gather(
            *(
                transport.get_object(k.group, k.version, k.plural, namespace, name)
                for k in kinds
            ),
            return_exceptions=True,
        )
        errors: list[BaseException] = []
        for kind, result in zip(kinds, results, strict=True):
            if isinstance(result, KubernetesNotFoundException):
                continue
            if isinstance(result, BaseException):
                # A kind the caller may not read (403) must not hide the others.
                errors.append(result)
                continue
            return kind, result
        if errors:
            raise errors[0]
        raise KubernetesNotFoundException(
            f"training job {name!r} not found in namespace {namespace!r}"
        )

    async def get_job(self, name: str, namespace: str | None = None) -> TrainingJob:
        """Read a job (of any supported kind) and the names of its pods.

        Only pods with an ownerReference to this job's uid are listed, so the
        terminating pods of a deleted job of the same name are left out. A
        TrainJob's pods are the exception, because they are selected by name
        only.

        Raises:
            ValidationException: The name or namespace is not a valid
                Kubernetes name; nothing was sent.
            KubernetesNotFoundException: No job of that name exists.
        """
        name = _check_job_name(name)
        ns = self._namespace(namespace)
        kind, obj = await self._find(name, ns)
        job = self._bind(job_from_object(obj, kind))
        return await self._with_pods(job, kind)

    async def _with_pods(self, job: TrainingJob, kind: JobKind) -> TrainingJob:
        pods = await self._list_pods(kind, job.name, job.namespace, job.uid)
        by_type: dict[str, list[str]] = {}
        for pod in pods:
            replica_type, _ = replica_of_pod(kind, pod)
            by_type.setdefault(replica_type or "Worker", []).append(
                str(pod["metadata"]["name"])
            )
        job.pods = {key: sorted(value) for key, value in by_type.items()}
        return job

    async def _list_pods(
        self, kind: JobKind, name: str, namespace: str, uid: str | None
    ) -> list[dict[str, Any]]:
        transport = await self._transport()
        items, _ = await transport.list_all(
            "", "v1", "pods", namespace, label_selector=kind.pod_selector(name)
        )
        return [pod for pod in items if kind.owns_pod(pod, uid)]

    async def list_jobs(
        self, label_selector: str | None = None, namespace: str | None = None
    ) -> AsyncIterator[TrainingJob]:
        """Yield every training job, kind by kind, reading pages of 500.

        Batch Jobs are included only when they carry the SDK's
        ``maestro-ml.io/managed-by`` label; kinds whose resource is not
        installed on the cluster are skipped.
        """
        ns = self._namespace(namespace)
        transport = await self._transport()
        for kind in _unique_kinds():
            selector = selector_for(kind, label_selector)
            try:
                async for obj in transport.iter_list(
                    kind.group, kind.version, kind.plural, ns, label_selector=selector
                ):
                    obj.setdefault("kind", kind.kind)
                    yield self._bind(job_from_object(obj, kind))
            except KubernetesNotFoundException:
                logger.debug("%s is not served by this cluster; skipped", kind.plural)

    # Deleting and cancelling -------------------------------------------------

    async def delete_job(self, name: str, namespace: str | None = None) -> None:
        """Delete a job with its pods and its code ConfigMap.

        Raises:
            ValidationException: The name or namespace is not a valid
                Kubernetes name; nothing was sent.
            KubernetesNotFoundException: No job of that name exists.
        """
        from .._transport._kube import resource_path

        name = _check_job_name(name)
        ns = self._namespace(namespace)
        kind, _ = await self._find(name, ns)
        transport = await self._transport()
        path = resource_path(kind.group, kind.version, kind.plural, ns, name)
        # Background propagation: batch/v1 Jobs would orphan their pods otherwise.
        await transport.request(
            "DELETE", path, body={"propagationPolicy": "Background"}
        )
        self._kinds.pop((ns, name), None)
        logger.info("deleted %s %s/%s", kind.kind, ns, name)

    async def cancel_job(self, name: str, namespace: str | None = None) -> None:
        """Stop a job by suspending it, which ends its pods but keeps the record.

        A cancelled job reports status ``suspended``; a wait for any other
        status then raises TrainingException. Use `delete_job` to remove it.

        Raises:
            ValidationException: The name or namespace is not a valid
                Kubernetes name; nothing was sent.
            KubernetesNotFoundException: No job of that name exists.
        """
        from .._transport._kube import resource_path

        name = _check_job_name(name)
        ns = self._namespace(namespace)
        kind, _ = await self._find(name, ns)
        transport = await self._transport()
        if kind.operator:
            spec: dict[str, Any] = {"runPolicy": {"suspend": True}}
        else:
            spec = {"suspend": True}
        body = {
            "metadata": {"annotations": {CANCELLED_ANNOTATION: "true"}},
            "spec": spec,
        }
        path = resource_path(kind.group, kind.version, kind.plural, ns, name)
        await transport.request("PATCH", path, body=body, content_type=_MERGE_PATCH)
        logger.info("cancelled %s %s/%s", kind.kind, ns, name)

    # Waiting -----------------------------------------------------------------

    async def wait_for_job(
        self,
        name: str,
        timeout: float | None = None,
        *,
        until: JobStatus | str = JobStatus.SUCCEEDED,
        namespace: str | None = None,
    ) -> TrainingJob:
        """Wait until a job reaches `until`, driven by the shared watch.

        The current state is checked first, so a job that already finished
        returns (or raises) at once without opening a watch. Otherwise the wait
        subscribes to the shared watch with the version it read, and the watch
        reports every later change and deletion. A job without a
        resourceVersion is read once more after subscribing instead.
        ``until="running"`` is also met by a job that already succeeded, and
        ``until="created"`` by any job.

        The job's pods are checked for image pull errors 10 seconds into the
        wait, then at intervals that double up to 5 minutes. Each pod and
        reason is logged once as a WARNING, with the kubelet's message. A
        reason that the kubelet never retries (InvalidImageName,
        ErrImageNeverPull) ends the wait at that check.

        Args:
            name: The job name.
            timeout: Seconds to wait; the configuration's
                ``training_job_timeout`` by default.
            until: The status to wait for, a `JobStatus` or its value in any
                case (``"running"``, ``"SUCCEEDED"``).
            namespace: The namespace; the configured one by default.

        Raises:
            ValidationException: The name or namespace is not a valid
                Kubernetes name, `until` is not a JobStatus value, or
                `timeout` is negative, NaN or not a number.
            TrainingException: The job failed (with the operator's reason and
                message), was deleted or cancelled, can no longer reach
                `until` (for example it succeeded while `until` is failed), or
                a pod cannot start because of InvalidImageName or
                ErrImageNeverPull (the exception's `reason`).
            TrainingTimeoutException: The time ran out; it carries the last
                status and the waiting reasons of the job's pods.
        """
        name = _check_job_name(name)
        target = check_choice(JobStatus, until, what="until")
        checked = check_timeout(timeout, "timeout")
        ns = self._namespace(namespace)
        limit = self._config.training_job_timeout if checked is None else checked
        kind, current = await self._find(name, ns)
        job = self._bind(job_from_object(current, kind))
        if reached(job, target):
            return await self._with_pods(job, kind)
        transport = await self._transport()
        loop = asyncio.get_running_loop()
        deadline = loop.time() + limit
        hub = transport.hub(kind.group, kind.version, kind.plural, ns)
        seen = job.resource_version
        interval = _training_wait.POD_CHECK_INTERVAL
        next_check = loop.time() + interval
        warned: set[tuple[str, str]] = set()
        async with hub.subscribe(name, seen_version=seen) as events:
            if not events.covered:
                job = self._bind(job_from_object(await self._read(kind, job), kind))
            while not reached(job, target):
                now = loop.time()
                remaining = deadline - now
                check_due = next_check - now < remaining
                try:
                    if remaining <= 0:
                        raise asyncio.TimeoutError
                    wait = max(next_check - now, 0.0) if check_due else remaining
                    event = await events.get(timeout=wait)
                except asyncio.TimeoutError:
                    if not check_due:
                        raise await self._timeout_error(
                            job, kind, limit, target
                        ) from None
                    await self._check_image_pulls(job, kind, warned)
                    interval = min(interval * 2, _training_wait.POD_CHECK_MAX_INTERVAL)
                    next_check = loop.time() + interval
                    continue
                if event.type == "DELETED":
                    raise TrainingException(
                        f"training job {name!r} was deleted while waiting for it",
                        job_name=name,
                        reason="Deleted",
                    )
                if is_stale(event.object, job):
                    continue
                job = self._bind(job_from_object(event.object, kind))
        return await self._with_pods(job, kind)

    async def _check_image_pulls(
        self, job: TrainingJob, kind: JobKind, warned: set[tuple[str, str]]
    ) -> None:
        """Log each new image pull problem of the job's pods once; raise if fatal.

        Raises:
            TrainingException: A pod waits with a reason that the kubelet
                never retries.
        """
        try:
            pods = await self._list_pods(kind, job.name, job.namespace, job.uid)
        except Exception as exc:  # the wait goes on without this check
            logger.info("cannot list the pods of %s: %s", job.name, exc)
            return
        for problem in image_pull_problems(pods):
            if (problem.pod, problem.reason) not in warned:
                warned.add((problem.pod, problem.reason))
                logger.warning(
                    "training job %s/%s: container %s of pod %s is waiting with %s: %s",
                    job.namespace,
                    job.name,
                    problem.container,
                    problem.pod,
                    problem.reason,
                    problem.message or "no message",
                )
            if problem.fatal:
                raise problem.fatal_error(job.name)

    async def _read(self, kind: JobKind, job: TrainingJob) -> dict[str, Any]:
        # Called after subscribing when the hub cannot cover the job.
        transport = await self._transport()
        return await transport.get_object(
            kind.group, kind.version, kind.plural, job.namespace, job.name
        )

    async def wait_for_jobs(
        self,
        names: Sequence[str],
        timeout: float | None = None,
        *,
        namespace: str | None = None,
        return_exceptions: bool = False,
    ) -> list[TrainingJob | BaseException]:
        """Wait for several jobs at once; waits of one kind share one watch.

        Args:
            names: The job names, a list or another collection. A single
                string is rejected, because it would be read as one-letter
                names.
            timeout: Seconds to wait for each job, as in `wait_for_job`.
            namespace: The namespace; the configured one by default.
            return_exceptions: Put each job's exception in the result list
                instead of raising the first one.

        Raises:
            ValidationException: `names` is a string or not a collection, a
                name or the namespace is not a valid Kubernetes name, or
                `timeout` is invalid. Nothing was sent.

        Returns:
            The finished jobs in the order of `names`; with `return_exceptions`,
            a job's exception takes its place instead of being raised.
        """
        checked = check_kubernetes_names(
            names, what="job names", max_length=_MAX_JOB_NAME
        )
        check_timeout(timeout, "timeout")
        self._namespace(namespace)
        results = await asyncio.gather(
            *(self.wait_for_job(n, timeout, namespace=namespace) for n in checked),
            return_exceptions=return_exceptions,
        )
        return list(results)

    async def _timeout_error(
        self, job: TrainingJob, kind: JobKind, limit: float, target: JobStatus
    ) -> TrainingTimeoutException:
        try:
            pods = await self._list_pods(kind, job.name, job.namespace, job.uid)
        except Exception as exc:  # the timeout is the error to report
            logger.info("cannot list the pods of %s: %s", job.name, exc)
            pods = []
        return timeout_error(job, pods, limit, target)

    # Watching ----------------------------------------------------------------

    async def watch(
        self, name: str, namespace: str | None = None
    ) -> AsyncIterator[TrainingJob]:
        """Yield the job now and after each change of its status, until it finishes.

        Raises:
            ValidationException: The name or namespace is not a valid
                Kubernetes name; nothing was sent.
            TrainingException: The job was deleted.
        """
        name = _check_job_name(name)
        ns = self._namespace(namespace)
        kind, obj = await self._find(name, ns)
        job = self._bind(job_from_object(obj, kind))
        transport = await self._transport()
        hub = transport.hub(kind.group, kind.version, kind.plural, ns)
        seen = job.resource_version
        async with hub.subscribe(name, seen_version=seen) as events:
            if not events.covered:
                obj = await self._read(kind, job)
                job = self._bind(job_from_object(obj, kind))
            last_status = obj.get("status")
            yield job
            while not job.finished:
                event = await events.get()
                if event.type == "DELETED":
                    raise TrainingException(
                        f"training job {name!r} was deleted",
                        job_name=name,
                        reason="Deleted",
                    )
                if is_stale(event.object, job):
                    continue
                job = self._bind(job_from_object(event.object, kind))
                if event.object.get("status") == last_status:
                    continue
                last_status = event.object.get("status")
                yield job

    async def watch_jobs(
        self, label_selector: str | None = None, namespace: str | None = None
    ) -> AsyncIterator[JobEvent]:
        """Yield the changes of every training job, one watch stream per kind.

        The stream first yields each existing job as ADDED and then follows
        changes without end; break out of the loop to stop it.
        """
        ns = self._namespace(namespace)
        transport = await self._transport()
        queue: asyncio.Queue[JobEvent | BaseException] = asyncio.Queue()

        async def pump(kind: JobKind) -> None:
            watch = transport.watch(
                kind.group,
                kind.version,
                kind.plural,
                namespace=ns,
                label_selector=selector_for(kind, label_selector),
            )
            try:
                async with watch:
                    async for event in watch:
                        job = self._bind(job_from_object(event.object, kind))
                        queue.put_nowait(JobEvent(type=event.type, job=job))
            except KubernetesNotFoundException:
                logger.debug("%s is not served by this cluster; skipped", kind.plural)
            except Exception as exc:
                queue.put_nowait(exc)

        tasks = [asyncio.ensure_future(pump(kind)) for kind in _unique_kinds()]
        try:
            while True:
                item = await queue.get()
                if isinstance(item, BaseException):
                    raise item
                yield item
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

    # Logs --------------------------------------------------------------------

    async def logs(
        self,
        name: str,
        follow: bool = True,
        *,
        pod_timeout: float = 300.0,
        namespace: str | None = None,
    ) -> AsyncIterator[LogLine]:
        """Yield the log lines of every replica of a job.

        With `follow`, the stream waits up to `pod_timeout` seconds for a first
        container to start, follows every container (including pods created
        later and restarted containers) and ends when the job has finished and
        its logs are read. Without it, the lines there are now are returned,
        the previous instance of each restarted container first. Pods of an
        earlier job of the same name are skipped as in `get_job`.

        Raises:
            ValidationException: The name or namespace is not a valid
                Kubernetes name, or `pod_timeout` is negative, NaN or not a
                number.
            TrainingTimeoutException: No container started within
                `pod_timeout`; it carries the pods' waiting reasons.
        """
        name = _check_job_name(name)
        pod_limit = check_timeout(pod_timeout, "pod_timeout")
        ns = self._namespace(namespace)
        kind, obj = await self._find(name, ns)
        uid = (obj.get("metadata") or {}).get("uid")
        transport = await self._transport()
        if not follow:
            for line in await read_current_logs(transport, kind, name, ns, uid):
                yield line
            return
        streamer = JobLogStreamer(
            transport,
            kind,
            name,
            ns,
            math.inf if pod_limit is None else pod_limit,
            uid=uid,
        )
        async for line in streamer.stream():
            yield line
