"""Shared machinery of the simulated controllers: reconcile loop, pods, events."""

from __future__ import annotations

import asyncio
import copy
import logging
import secrets
from collections.abc import Iterable, Mapping
from datetime import datetime, timezone
from typing import Any, Protocol

from .._podlogs import PodLogs
from .._resources import RESOURCE_TYPES, ResourceType
from .._scripts import SCRIPT_ANNOTATION, SCRIPT_ID_ANNOTATION, PodScript, Scripts
from .._store import Store, StoreError, WatchEvent, format_timestamp

logger = logging.getLogger(__name__)

Obj = dict[str, Any]
PODS = RESOURCE_TYPES["pods"]
EVENTS = RESOURCE_TYPES["events"]
RESYNC = "RESYNC"
"""Event type that controllers put into their own queue to reconcile later."""


class Host(Protocol):
    """What the controllers need from the fake cluster."""

    @property
    def store(self) -> Store: ...

    @property
    def pod_logs(self) -> PodLogs: ...

    @property
    def scripts(self) -> Scripts: ...

    @property
    def tick(self) -> float: ...

    @property
    def local_runner(self) -> bool: ...

    @property
    def pvc_roots(self) -> Mapping[str, str] | None: ...


def now() -> str:
    """Return the current time as metadata timestamps print it (seconds, ``Z``)."""
    return format_timestamp(datetime.now(timezone.utc))


def random_suffix(length: int = 5) -> str:
    """Return random lowercase letters and digits, as generateName appends."""
    alphabet = "bcdfghjklmnpqrstvwxz2456789"
    return "".join(secrets.choice(alphabet) for _ in range(length))


def owner_reference(rtype: ResourceType, owner: Obj) -> Obj:
    """Return a controller ownerReference to ``owner``, so deleting it deletes pods."""
    meta = owner["metadata"]
    return {
        "apiVersion": rtype.api_version,
        "kind": rtype.kind,
        "name": meta["name"],
        "uid": meta["uid"],
        "controller": True,
        "blockOwnerDeletion": True,
    }


def controller_uid(obj: Obj) -> str | None:
    """Return the uid of the object's controller owner, if it has one."""
    for ref in obj["metadata"].get("ownerReferences") or []:
        if ref.get("controller"):
            return str(ref.get("uid"))
    return None


def controller_name(obj: Obj, kind: str) -> str | None:
    """Return the name of the object's controller owner when it has ``kind``."""
    for ref in obj["metadata"].get("ownerReferences") or []:
        if ref.get("controller") and ref.get("kind") == kind:
            return str(ref.get("name"))
    return None


def owned_pods(store: Store, namespace: str, owner_uid: str) -> list[Obj]:
    """Return the stored pods (read-only) whose controller is ``owner_uid``."""
    return [
        pod for pod in store.peek(PODS, namespace) if controller_uid(pod) == owner_uid
    ]


def pod_phase(pod: Obj) -> str:
    """Return ``status.phase`` of a pod, ``Pending`` when unset."""
    return str((pod.get("status") or {}).get("phase") or "Pending")


def restart_count(pod: Obj) -> int:
    """Return the sum of the container restart counts of a pod."""
    statuses = (pod.get("status") or {}).get("containerStatuses") or []
    return sum(int(status.get("restartCount") or 0) for status in statuses)


def is_crash_looping(pod: Obj) -> bool:
    """Return whether a container of the pod waits to be restarted after a failure."""
    statuses = (pod.get("status") or {}).get("containerStatuses") or []
    for status in statuses:
        waiting = (status.get("state") or {}).get("waiting") or {}
        if waiting.get("reason") == "CrashLoopBackOff":
            return True
    return False


def pod_is_ready(pod: Obj) -> bool:
    """Return whether the pod's Ready condition is True."""
    for condition in (pod.get("status") or {}).get("conditions") or []:
        if condition.get("type") == "Ready":
            return bool(condition.get("status") == "True")
    return False


def exit_code_of(pod: Obj) -> int | None:
    """Return the first non-zero exit code of a terminated pod's containers."""
    statuses = (pod.get("status") or {}).get("containerStatuses") or []
    codes = []
    for status in statuses:
        terminated = (status.get("state") or {}).get("terminated")
        if terminated is not None:
            codes.append(int(terminated.get("exitCode") or 0))
    failing = [code for code in codes if code != 0]
    if failing:
        return failing[0]
    return codes[0] if codes else None


def record_event(
    store: Store,
    rtype: ResourceType,
    obj: Obj,
    reason: str,
    message: str,
    *,
    event_type: str = "Normal",
    component: str = "kubelet",
    field_path: str | None = None,
) -> None:
    """Create a core/v1 Event about ``obj``, as ``kubectl describe`` shows them."""
    meta = obj["metadata"]
    stamp = now()
    involved: Obj = {
        "apiVersion": rtype.api_version,
        "kind": rtype.kind,
        "name": meta["name"],
        "namespace": meta.get("namespace"),
        "uid": meta.get("uid"),
        "resourceVersion": meta.get("resourceVersion"),
    }
    if field_path:
        involved["fieldPath"] = field_path
    event = {
        "metadata": {
            "name": f"{meta['name']}.{secrets.token_hex(8)}",
            "namespace": meta.get("namespace") or "default",
        },
        "involvedObject": involved,
        "reason": reason,
        "message": message,
        "type": event_type,
        "source": {"component": component, "host": "fake-node"},
        "firstTimestamp": stamp,
        "lastTimestamp": stamp,
        "count": 1,
        "reportingComponent": component,
        "reportingInstance": "fake-node" if component == "kubelet" else "",
    }
    try:
        store.create(EVENTS, event)
    except StoreError as exc:
        logger.debug("event %s for %s not recorded: %s", reason, meta["name"], exc)


def failing_script(message: str) -> PodScript:
    """Return the script used when an object's script annotation is invalid."""
    return PodScript(outcome="fail", exit_code=2, reason="Error", message=message)


def resolve_pod_script(
    host: Host,
    plural: str,
    owner: Obj,
    *,
    replica_type: str | None = None,
    replica_index: int | None = None,
    attempts: int = 0,
) -> PodScript:
    """Return the script of one replica of ``owner``, reduced by failed attempts.

    An invalid script annotation makes the pod fail with the parse error as its
    termination message, so the mistake shows up in the test that made it.
    """
    meta = owner["metadata"]
    try:
        script = host.scripts.for_pod(
            plural,
            meta["name"],
            replica_type=replica_type,
            replica_index=replica_index,
            annotations=meta.get("annotations"),
        )
    except (ValueError, TypeError) as exc:
        logger.warning("invalid script for %s %s: %s", plural, meta["name"], exc)
        return failing_script(str(exc))
    return script.after_attempts(attempts)


def build_pod(
    *,
    name: str,
    namespace: str,
    template: Obj,
    labels: Mapping[str, str],
    owner: Obj,
    owner_rtype: ResourceType,
    script: PodScript,
    scripts: Scripts,
    restart_policy: str | None = None,
    annotations: Mapping[str, str] | None = None,
) -> Obj:
    """Return a pod built from a pod template, owned by ``owner`` and scripted.

    The pod carries the id of ``script``, which is registered in ``scripts``.
    """
    template_meta = copy.deepcopy(template.get("metadata") or {})
    spec = copy.deepcopy(template.get("spec") or {})
    if restart_policy is not None:
        spec["restartPolicy"] = restart_policy
    pod_labels = dict(template_meta.get("labels") or {})
    pod_labels.update(labels)
    pod_annotations = dict(template_meta.get("annotations") or {})
    pod_annotations.update(annotations or {})
    # The resolved script replaces any script annotation of the template.
    pod_annotations.pop(SCRIPT_ANNOTATION, None)
    pod_annotations[SCRIPT_ID_ANNOTATION] = scripts.register(script)
    return {
        "metadata": {
            "name": name,
            "namespace": namespace,
            "labels": pod_labels,
            "annotations": pod_annotations,
            "ownerReferences": [owner_reference(owner_rtype, owner)],
        },
        "spec": spec,
    }


def create_pod(store: Store, pod: Obj) -> Obj | None:
    """Create a pod and return it, or ``None`` (logged) when the store rejects it."""
    try:
        return store.create(PODS, pod)
    except StoreError as exc:
        logger.warning("creating pod %s failed: %s", pod["metadata"]["name"], exc)
        return None


def delete_pod(store: Store, pod: Obj) -> None:
    """Delete a pod if it still exists."""
    meta = pod["metadata"]
    store.delete(PODS, meta.get("namespace"), meta["name"])


class Reconciler:
    """Level-triggered controller: events mark objects dirty, then each is synced.

    Subclasses set ``primary`` (the type they own), ``watched`` (extra types whose
    events can concern a primary object) and implement ``reconcile``. Events that
    arrive together are coalesced, so one burst of pod changes syncs a job once.
    ``reconcile`` must write only when something changed, because its own writes
    come back as events.
    """

    primary: ResourceType
    watched: tuple[str, ...] = ("pods",)

    def __init__(self, host: Host) -> None:
        self.host = host
        self.store = host.store
        self._queue: asyncio.Queue[WatchEvent] | None = None

    def keys_for(self, event: WatchEvent) -> Iterable[tuple[str, str]]:
        """Return the (namespace, name) of the primary objects an event concerns."""
        meta = event.object["metadata"]
        if event.rtype_key == self.primary.key:
            return [(str(meta.get("namespace") or ""), str(meta["name"]))]
        owner = controller_name(event.object, self.primary.kind)
        if owner is None:
            return []
        return [(str(meta.get("namespace") or ""), owner)]

    def reconcile(self, namespace: str, name: str) -> None:
        """Bring one primary object's status and children in line with its spec."""
        raise NotImplementedError

    def delay(self, value: float | None) -> float:
        """Return a script delay in seconds, one tick when unset."""
        return self.host.tick if value is None else max(0.0, float(value))

    def enqueue_after(self, namespace: str, name: str, delay: float) -> None:
        """Reconcile ``namespace``/``name`` again after ``delay`` seconds."""
        queue = self._queue
        if queue is None:
            return
        marker = WatchEvent(
            RESYNC,
            {"metadata": {"namespace": namespace, "name": name}},
            0,
            self.primary.key,
        )
        asyncio.get_running_loop().call_later(delay, queue.put_nowait, marker)

    async def run(self) -> None:
        """Sync every primary object, then follow store events until cancelled."""
        queue = self.store.subscribe()
        self._queue = queue
        wanted = {self.primary.key, *self.watched}
        try:
            dirty: dict[tuple[str, str], None] = {}
            for obj in self.store.peek(self.primary):
                meta = obj["metadata"]
                dirty[(str(meta.get("namespace") or ""), str(meta["name"]))] = None
            while True:
                self._sync(dirty)
                dirty = {}
                event = await queue.get()
                while True:
                    if event.rtype_key in wanted:
                        dirty.update(dict.fromkeys(self.keys_for(event)))
                    if queue.empty():
                        break
                    event = queue.get_nowait()
        finally:
            self.store.unsubscribe(queue)
            self._queue = None

    def _sync(self, dirty: Mapping[tuple[str, str], None]) -> None:
        for namespace, name in dirty:
            try:
                self.reconcile(namespace, name)
            except Exception:
                logger.exception(
                    "reconciling %s %s/%s failed", self.primary.kind, namespace, name
                )
