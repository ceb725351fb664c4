"""Simulated KServe controller for ``serving.kserve.io/v1beta1`` InferenceServices.

It models Knative (serverless) mode: every change of ``spec.predictor`` other
than ``canaryTrafficPercent`` creates a revision ``<isvc>-predictor-0000N`` with
its own pods ``<revision>-deployment-<hash>-<suffix>``. The revision becomes
ready, fails (RevisionFailed, ModelLoadFailed) or stays not ready as its script
sets, and only ready revisions get traffic (see ``compute_traffic``).
``status.observedGeneration`` reaches a new generation only after its revision
is ready or failed, plus the script's ``observe_delay``.

With the local runner, a ``pvc://`` (mapped by ``pvc_roots``) or ``file://``
storageUri and modelFormat ``mlflow``, a real MLflow scoring server serves the
model and ``status.url`` points at it.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import hashlib
import json
import logging
from dataclasses import dataclass, field

from .._resources import RESOURCE_TYPES
from .._runner import ModelServer, ModelServerError, resolve_storage_uri
from .._scripts import PodScript, ServingScript
from ._base import (
    Host,
    Obj,
    Reconciler,
    build_pod,
    create_pod,
    delete_pod,
    owned_pods,
    random_suffix,
)
from ._isvc_status import compute_traffic, model_status, ready_conditions

logger = logging.getLogger(__name__)

LABEL_ISVC = "serving.kserve.io/inferenceservice"
LABEL_REVISION = "serving.knative.dev/revision"
TAG_ROUTING = "serving.kserve.io/enable-tag-routing"
_IMAGES = {
    "mlflow": "docker.io/seldonio/mlserver:1.6.0",
    "sklearn": "kserve/sklearnserver:latest",
    "xgboost": "kserve/xgbserver:latest",
    "lightgbm": "kserve/lgbserver:latest",
    "pytorch": "pytorch/torchserve-kfs:latest",
    "huggingface": "kserve/huggingfaceserver:latest",
}


@dataclass
class _Revision:
    name: str
    template: str
    script: ServingScript
    state: str = "pending"
    due: float = 0.0
    resolved_at: float | None = None
    reason: str | None = None
    message: str | None = None
    exit_code: int | None = None
    server: ModelServer | None = None
    start_task: asyncio.Task[None] | None = None


@dataclass
class _Service:
    uid: str
    revisions: list[_Revision] = field(default_factory=list)
    latest_rolledout: str | None = None
    previous_rolledout: str | None = None
    generation: int = 0
    generation_seen_at: float = 0.0


def _template_of(predictor: Obj) -> str:
    """Return the part of the predictor spec that defines a revision, as JSON."""
    template = {k: v for k, v in predictor.items() if k != "canaryTrafficPercent"}
    return json.dumps(template, sort_keys=True)


class InferenceServiceController(Reconciler):
    """Reconciles InferenceServices: revisions, pods, traffic and status."""

    primary = RESOURCE_TYPES["inferenceservices.serving.kserve.io"]

    def __init__(self, host: Host) -> None:
        super().__init__(host)
        self._services: dict[tuple[str, str], _Service] = {}
        self._stopping: set[asyncio.Task[None]] = set()

    async def run(self) -> None:
        try:
            await super().run()
        finally:
            for service in list(self._services.values()):
                await self._stop_servers(service.revisions)
            self._services.clear()
            await asyncio.gather(*self._stopping, return_exceptions=True)

    def reconcile(self, namespace: str, name: str) -> None:
        isvc = self.store.get(self.primary, namespace, name)
        key = (namespace, name)
        service = self._services.get(key)
        if isvc is None or isvc["metadata"].get("deletionTimestamp"):
            if service is not None:
                self._services.pop(key)
                self._spawn_stop(service.revisions)
            return
        meta = isvc["metadata"]
        if service is None or service.uid != meta["uid"]:
            if service is not None:
                self._spawn_stop(service.revisions)
            service = _Service(uid=meta["uid"])
            self._services[key] = service
        loop_time = asyncio.get_running_loop().time()
        if int(meta.get("generation") or 1) != service.generation:
            service.generation = int(meta.get("generation") or 1)
            service.generation_seen_at = loop_time
        predictor = (isvc.get("spec") or {}).get("predictor") or {}
        template = _template_of(predictor)
        if not service.revisions or service.revisions[-1].template != template:
            self._new_revision(isvc, service, template, loop_time)
        latest = service.revisions[-1]
        if latest.state == "pending" and latest.start_task is None:
            if latest.script.outcome != "stuck" and loop_time >= latest.due:
                self._resolve(latest, loop_time)
        self._write_status(isvc, service, predictor, loop_time)

    # Revisions

    def _new_revision(
        self, isvc: Obj, service: _Service, template: str, loop_time: float
    ) -> None:
        meta = isvc["metadata"]
        number = len(service.revisions) + 1
        try:
            script = self.host.scripts.for_serving(
                meta["name"], meta.get("annotations")
            )
        except (ValueError, TypeError) as exc:
            logger.warning("invalid script for isvc %s: %s", meta["name"], exc)
            script = ServingScript(outcome="revision_failed", message=str(exc))
        revision = _Revision(
            name=f"{meta['name']}-predictor-{number:05d}",
            template=template,
            script=script,
            due=loop_time + self.delay(script.ready_delay),
        )
        service.revisions.append(revision)
        model_dir = self._local_model_dir(isvc)
        if model_dir is not None and script.outcome == "ready":
            revision.start_task = asyncio.create_task(
                self._serve(isvc, revision, model_dir)
            )
        elif script.outcome != "stuck":
            self.enqueue_after(
                meta["namespace"], meta["name"], revision.due - loop_time
            )

    def _resolve(self, revision: _Revision, loop_time: float) -> None:
        script = revision.script
        revision.resolved_at = loop_time
        if script.outcome == "ready":
            revision.state = "ready"
            return
        revision.state = "failed"
        if script.outcome == "model_load_failed":
            revision.reason = "ModelLoadFailed"
            revision.exit_code = 1 if script.exit_code is None else script.exit_code
            revision.message = script.message or (
                f"container kserve-container in revision {revision.name} exited with "
                f"code {revision.exit_code} while loading the model"
            )
        else:
            revision.reason = "RevisionFailed"
            revision.message = script.message or (
                f"Container failed with: container kserve-container in revision "
                f"{revision.name} failed to start"
            )

    def _local_model_dir(self, isvc: Obj) -> tuple[str, str] | None:
        if not self.host.local_runner:
            return None
        predictor = (isvc.get("spec") or {}).get("predictor") or {}
        model = predictor.get("model") or {}
        uri = model.get("storageUri")
        if not uri:
            return None
        folder = resolve_storage_uri(str(uri), self.host.pvc_roots)
        if folder is None:
            return None
        model_format = str((model.get("modelFormat") or {}).get("name") or "")
        return str(folder), model_format

    async def _serve(
        self, isvc: Obj, revision: _Revision, model: tuple[str, str]
    ) -> None:
        from pathlib import Path

        meta = isvc["metadata"]
        namespace, name = meta["namespace"], meta["name"]

        def on_line(line: str) -> None:
            for pod in self._revision_pods(namespace, meta["uid"], revision.name)[:1]:
                self.host.pod_logs.append(
                    namespace, pod["metadata"]["name"], "kserve-container", line
                )

        loop = asyncio.get_running_loop()
        try:
            revision.server = await ModelServer.start(Path(model[0]), model[1], on_line)
            revision.state = "ready"
        except ModelServerError as exc:
            logger.warning("local model server for %s failed: %s", revision.name, exc)
            revision.state = "failed"
            revision.reason = "ModelLoadFailed"
            revision.message = str(exc)
            revision.exit_code = exc.exit_code
        revision.resolved_at = loop.time()
        revision.start_task = None
        self.enqueue_after(namespace, name, 0)

    def _spawn_stop(self, revisions: list[_Revision]) -> None:
        if any(r.server is not None or r.start_task is not None for r in revisions):
            task = asyncio.create_task(self._stop_servers(revisions))
            self._stopping.add(task)
            task.add_done_callback(self._stopping.discard)

    async def _stop_servers(self, revisions: list[_Revision]) -> None:
        for revision in revisions:
            task = revision.start_task
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
            if revision.server is not None:
                server, revision.server = revision.server, None
                await server.stop()

    # Pods

    def _revision_pods(self, namespace: str, uid: str, revision: str) -> list[Obj]:
        return [
            pod
            for pod in owned_pods(self.store, namespace, uid)
            if (pod["metadata"].get("labels") or {}).get(LABEL_REVISION) == revision
        ]

    def _scale(
        self, isvc: Obj, service: _Service, predictor: Obj, traffic: list[Obj]
    ) -> int:
        """Create or delete pods so every revision has its replica count."""
        meta = isvc["metadata"]
        minimum = int(predictor.get("minReplicas", 1))
        maximum = int(predictor.get("maxReplicas") or 0)
        serving = {t["revisionName"] for t in traffic if t["percent"] > 0}
        latest = service.revisions[-1]
        total = 0
        for revision in service.revisions:
            wanted = 0
            if revision.name in serving or revision is latest:
                wanted = minimum if revision.state == "ready" else max(minimum, 1)
            if maximum > 0:
                wanted = min(wanted, maximum)
            pods = self._revision_pods(meta["namespace"], meta["uid"], revision.name)
            for pod in pods[wanted:]:
                delete_pod(self.store, pod)
            for _ in range(wanted - len(pods)):
                self._create_pod(isvc, revision, predictor)
            if revision.name in serving:
                total += wanted
        return total

    def _create_pod(self, isvc: Obj, revision: _Revision, predictor: Obj) -> None:
        meta = isvc["metadata"]
        script = revision.script
        if script.outcome == "stuck":
            pod_script = PodScript(outcome="pending")
        elif script.outcome == "revision_failed":
            pod_script = PodScript(outcome="fail", exit_code=1, message=script.message)
        elif script.outcome == "model_load_failed":
            code = 1 if script.exit_code is None else script.exit_code
            pod_script = PodScript(
                outcome="fail", exit_code=code, message=script.message
            )
        else:
            pod_script = PodScript(
                outcome="hang", logs=((0.0, "model server started"),)
            )
        digest = hashlib.sha256(revision.name.encode()).hexdigest()[:10]
        labels = {
            LABEL_ISVC: meta["name"],
            LABEL_REVISION: revision.name,
            "serving.knative.dev/service": f"{meta['name']}-predictor",
            "serving.knative.dev/configuration": f"{meta['name']}-predictor",
            "component": "predictor",
            "app": revision.name,
        }
        pod = build_pod(
            name=f"{revision.name}-deployment-{digest}-{random_suffix()}",
            namespace=meta["namespace"],
            template={"spec": self._pod_spec(predictor)},
            labels=labels,
            owner=isvc,
            owner_rtype=self.primary,
            script=pod_script,
            scripts=self.host.scripts,
            restart_policy="Always",
        )
        create_pod(self.store, pod)

    @staticmethod
    def _pod_spec(predictor: Obj) -> Obj:
        if predictor.get("containers"):
            spec = {"containers": copy.deepcopy(predictor["containers"])}
        else:
            model = predictor.get("model") or {}
            model_format = str((model.get("modelFormat") or {}).get("name") or "")
            container: Obj = {
                "name": "kserve-container",
                "image": _IMAGES.get(
                    model_format, f"kserve/{model_format}server:latest"
                ),
            }
            for key in ("args", "env", "resources"):
                if model.get(key) is not None:
                    container[key] = copy.deepcopy(model[key])
            spec = {"containers": [container]}
        if predictor.get("serviceAccountName"):
            spec["serviceAccountName"] = predictor["serviceAccountName"]
        return spec

    # Status

    def _write_status(
        self, isvc: Obj, service: _Service, predictor: Obj, loop_time: float
    ) -> None:
        meta = isvc["metadata"]
        namespace, name = meta["namespace"], meta["name"]
        old = isvc.get("status") or {}
        latest = service.revisions[-1]
        ready = [r for r in service.revisions if r.state == "ready"]
        canary = predictor.get("canaryTrafficPercent")
        rollout = compute_traffic(
            ready[-1].name if ready else None,
            service.latest_rolledout,
            service.previous_rolledout,
            None if canary is None else int(canary),
            tag_routing=(meta.get("annotations") or {}).get(TAG_ROUTING) == "true",
        )
        service.latest_rolledout = rollout.latest_rolledout
        service.previous_rolledout = rollout.previous_rolledout
        copies = self._scale(isvc, service, predictor, rollout.traffic)
        serving = bool(rollout.traffic)

        status: Obj = copy.deepcopy(old)
        status["conditions"] = ready_conditions(
            old.get("conditions") or [],
            name=name,
            latest_state=latest.state,
            latest_revision=latest.name,
            serving=serving,
            failure_reason=latest.reason,
            failure_message=latest.message,
        )
        predictor_status: Obj = {"latestCreatedRevision": latest.name}
        if ready:
            predictor_status["latestReadyRevision"] = ready[-1].name
        if rollout.latest_rolledout:
            predictor_status["latestRolledoutRevision"] = rollout.latest_rolledout
        if rollout.previous_rolledout:
            predictor_status["previousRolledoutRevision"] = rollout.previous_rolledout
        predictor_status["traffic"] = rollout.traffic
        if serving:
            predictor_status["url"] = f"http://{name}-predictor-{namespace}.example.com"
            predictor_status["address"] = {
                "url": f"http://{name}-predictor.{namespace}.svc.cluster.local"
            }
            served = {t["revisionName"] for t in rollout.traffic if t["percent"] > 0}
            local = [r for r in ready if r.server is not None and r.name in served]
            status["url"] = (
                local[-1].server.url
                if local and local[-1].server
                else (f"http://{name}-{namespace}.example.com")
            )
            status["address"] = {"url": f"http://{name}.{namespace}.svc.cluster.local"}
        status["components"] = {"predictor": predictor_status}
        status["modelStatus"] = model_status(
            latest_state=latest.state,
            latest_revision=latest.name,
            serving=serving,
            exit_code=latest.exit_code,
            message=latest.message,
            reason=latest.reason,
            copies=copies,
            last_failure=(old.get("modelStatus") or {}).get("lastFailureInfo"),
        )
        # NOTE: the mode name of recent KServe releases ("Knative") is not used.
        status["deploymentMode"] = "Serverless"
        self._observe(status, service, latest, loop_time, namespace, name)
        if status != old:

            def apply(obj: Obj) -> None:
                obj["status"] = status

            self.store.mutate(self.primary, namespace, name, apply, status_only=True)

    def _observe(
        self,
        status: Obj,
        service: _Service,
        latest: _Revision,
        loop_time: float,
        namespace: str,
        name: str,
    ) -> None:
        if latest.state == "pending" or latest.resolved_at is None:
            return
        # A generation without a new revision (a traffic change) lags one tick.
        due = max(latest.resolved_at, service.generation_seen_at + self.host.tick)
        due += latest.script.observe_delay
        if loop_time >= due:
            status["observedGeneration"] = service.generation
        else:
            self.enqueue_after(namespace, name, due - loop_time)
