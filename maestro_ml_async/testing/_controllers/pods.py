"""Simulated kubelet: moves every pod through Pending, Running and its end phase.

Each pod gets one task that follows the pod's script (or, with the local runner,
runs the containers' commands) and writes ``status`` the way a kubelet reports
it: phase, conditions, ``containerStatuses`` with waiting, running and terminated
states, restart counts and the previous instance in ``lastState``. Containers
restart in place under restartPolicy Always and OnFailure, with a back-off that
doubles from one tick. Log lines go to ``PodLogs``.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
from typing import Any

from .. import _runner
from .._scripts import PodScript
from .._store import StoreError
from ._base import (
    PODS,
    Host,
    Obj,
    failing_script,
    now,
    pod_phase,
    record_event,
)
from ._pod_init import (
    INIT_OUTCOMES,
    MAX_BACKOFF_TICKS,
    NO_PULL_ERRORS,
    fail_init,
    incomplete_init_message,
    init_containers,
    no_pull_event,
    pull_failure_state,
    stay_unschedulable,
    waiting_init_status,
)

logger = logging.getLogger(__name__)

_NODE = "fake-node"
_HOST_IP = "10.0.0.10"


class _PodGone(Exception):
    """The pod was deleted or replaced while its task ran."""


RunResult = tuple[int, str, str | None]


class Kubelet:
    """Runs one task per live pod and ends it when the pod is deleted."""

    def __init__(self, host: Host) -> None:
        self.host = host
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self._ip_counter = 0

    async def run(self) -> None:
        """Start tasks for existing and new pods until cancelled."""
        store = self.host.store
        queue = store.subscribe("pods")
        try:
            for pod in store.peek(PODS):
                self._start(pod)
            while True:
                event = await queue.get()
                meta = event.object["metadata"]
                if event.type == "ADDED":
                    self._start(event.object)
                elif event.type == "DELETED":
                    self._stop(meta["uid"])
                    self.host.pod_logs.forget(meta["namespace"], meta["name"])
                elif meta.get("deletionTimestamp"):
                    self._stop(meta["uid"])
        finally:
            store.unsubscribe(queue)
            tasks = list(self._tasks.values())
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

    def _start(self, pod: Obj) -> None:
        meta = pod["metadata"]
        if meta.get("deletionTimestamp") or pod_phase(pod) in ("Succeeded", "Failed"):
            return
        if meta["uid"] in self._tasks:
            return
        self._ip_counter += 1
        pod_ip = f"10.244.{self._ip_counter // 250}.{self._ip_counter % 250 + 2}"
        run = _PodRun(self.host, pod, pod_ip)
        task = asyncio.create_task(run.run(), name=f"kubelet {meta['name']}")
        self._tasks[meta["uid"]] = task
        task.add_done_callback(lambda _: self._tasks.pop(meta["uid"], None))

    def _stop(self, uid: str) -> None:
        task = self._tasks.pop(uid, None)
        if task is not None:
            task.cancel()


def _pod_script(host: Host, pod: Obj) -> PodScript:
    meta = pod["metadata"]
    try:
        return host.scripts.for_pod(
            "pods", meta["name"], annotations=meta.get("annotations")
        )
    except (ValueError, TypeError) as exc:
        logger.warning("invalid script for pod %s: %s", meta["name"], exc)
        return failing_script(str(exc))


class _PodRun:
    """The timeline of one pod, from scheduling to its final phase."""

    def __init__(self, host: Host, pod: Obj, pod_ip: str) -> None:
        self.host = host
        meta = pod["metadata"]
        self.namespace: str = meta["namespace"]
        self.name: str = meta["name"]
        self.uid: str = meta["uid"]
        self.pod = pod
        self.pod_ip = pod_ip
        self.spec: Obj = pod.get("spec") or {}
        self.containers: list[Obj] = list(self.spec.get("containers") or [])
        self.policy = str(self.spec.get("restartPolicy") or "Always")
        self.script = _pod_script(host, pod)
        self.phase = "Pending"
        self.start_time: str | None = None
        self.conditions: dict[str, Obj] = {}
        self.statuses: list[Obj] = [
            {
                "name": c.get("name", "main"),
                "image": c.get("image", ""),
                "imageID": "",
                "ready": False,
                "started": False,
                "restartCount": 0,
                "state": {"waiting": {"reason": "ContainerCreating"}},
            }
            for c in self.containers
        ]
        self.local = (
            host.local_runner
            and all(c.get("command") for c in self.containers)
            and bool(self.containers)
        )
        scripted_init = self.script.outcome in INIT_OUTCOMES and not self.local
        self.init_containers = (
            init_containers(self.spec, self.script) if scripted_init else []
        )
        self.init_statuses = [waiting_init_status(c) for c in self.init_containers]

    # Timeline

    async def run(self) -> None:
        try:
            await self._schedule()
            if self.init_statuses:
                await fail_init(self)
                return
            await self._create_containers()
            attempt = 0
            while True:
                results = await self._execute(attempt)
                if not self._should_restart(results):
                    self._finish(results)
                    return
                await self._restart(results)
                attempt += 1
        except _PodGone:
            return
        except asyncio.CancelledError:
            raise
        except Exception:
            logger.exception("pod %s/%s simulation failed", self.namespace, self.name)

    async def _sleep(self, value: float | None) -> None:
        delay = self.host.tick if value is None else max(0.0, value)
        if delay > 0:
            await asyncio.sleep(delay)

    async def _pass_gate(self, stage: str) -> None:
        script = self.script
        if script.gate is not None and script.gate_stage == stage:
            await self.host.scripts.gate(script.gate).wait()

    async def _schedule(self) -> None:
        await self._sleep(self.script.schedule_delay)
        await self._pass_gate("schedule")
        if self.script.outcome == "unschedulable" and not self.local:
            await stay_unschedulable(self)
        try:
            self.host.store.mutate(PODS, self.namespace, self.name, self._bind)
        except StoreError as exc:
            raise _PodGone from exc
        self._condition("PodScheduled", "True")
        self._event(
            "Scheduled",
            f"Successfully assigned {self.namespace}/{self.name} to {_NODE}",
            component="default-scheduler",
        )
        self.start_time = now()
        if self.init_statuses:
            message = incomplete_init_message(self.init_statuses)
            reason = "ContainersNotInitialized"
            self._condition("Initialized", "False", reason, message)
            for status in self.statuses:
                status["state"] = {"waiting": {"reason": "PodInitializing"}}
        else:
            self._condition("Initialized", "True")
        self._condition("ContainersReady", "False", "ContainersNotReady")
        self._condition("Ready", "False", "ContainersNotReady")
        self._write()

    def _bind(self, pod: Obj) -> None:
        if pod["metadata"]["uid"] != self.uid:
            raise _PodGone
        pod.setdefault("spec", {})["nodeName"] = _NODE

    async def _create_containers(self) -> None:
        script = self.script
        pull_error = script.outcome == "pull_error" and not self.local
        if pull_error and script.pull_error in NO_PULL_ERRORS:
            await self._no_pull_forever()
        for container in self.containers:
            image = container.get("image", "")
            self._event("Pulling", f'Pulling image "{image}"', container)
        if pull_error:
            await self._pull_error_forever()
        await self._sleep(script.start_delay)
        if script.outcome == "pending" and not self.local:
            await asyncio.Future()
        for container in self.containers:
            image = container.get("image", "")
            name = container.get("name", "main")
            self._event("Pulled", f'Successfully pulled image "{image}"', container)
            self._event("Created", f"Created container {name}", container)

    async def _no_pull_forever(self) -> None:
        """Wait with a reason for which the kubelet never tries to pull."""
        await self._sleep(self.script.start_delay)
        for status in self.statuses:
            status["state"] = pull_failure_state(
                status["image"], self.script.pull_error
            )
        self._write()
        for status, container in zip(self.statuses, self.containers, strict=True):
            reason, message = no_pull_event(status["state"])
            self._event(reason, message, container, warning=True)
        await asyncio.Future()

    async def _pull_error_forever(self) -> None:
        await self._sleep(self.script.start_delay)
        for status in self.statuses:
            image = status["image"]
            message = (
                f"rpc error: code = NotFound desc = failed to pull and unpack image "
                f'"{image}": not found'
            )
            status["state"] = {
                "waiting": {"reason": "ErrImagePull", "message": message}
            }
        self._write()
        for container in self.containers:
            image = container.get("image", "")
            self._event(
                "Failed",
                f'Failed to pull image "{image}": not found',
                container,
                warning=True,
            )
            self._event("Failed", "Error: ErrImagePull", container, warning=True)
        if self.script.pull_error == "ImagePullBackOff":
            await self._sleep(None)
            for status in self.statuses:
                message = f'Back-off pulling image "{status["image"]}"'
                status["state"] = {
                    "waiting": {"reason": "ImagePullBackOff", "message": message}
                }
            self._write()
            for container in self.containers:
                image = container.get("image", "")
                self._event(
                    "BackOff",
                    f'Back-off pulling image "{image}"',
                    container,
                    warning=True,
                )
        await asyncio.Future()

    async def _execute(self, attempt: int) -> list[RunResult]:
        if self.local:
            return await self._execute_local()
        return await self._execute_scripted(attempt)

    async def _execute_scripted(self, attempt: int) -> list[RunResult]:
        script = self.script
        failing = attempt < script.restarts
        instant = (
            script.run_time == 0
            and all(delay == 0 for delay, _ in script.logs)
            and script.outcome != "hang"
            and not (script.gate is not None and script.gate_stage == "run")
        )
        started = now()
        if not instant:
            self._set_running(started)
        await self._pass_gate("run")
        for delay, text in script.logs:
            await self._sleep(delay)
            self._log(self.statuses[0]["name"], text)
        if script.outcome == "hang" and not failing:
            await asyncio.Future()
        await self._sleep(script.run_time)
        if failing:
            result: RunResult = (script.restart_exit_code, "Error", None)
        elif script.outcome == "fail":
            code = 1 if script.exit_code is None else script.exit_code
            result = (code, script.reason or "Error", script.message)
        else:
            result = (0, "Completed", None)
        if instant:
            for status in self.statuses:
                status["_startedAt"] = started
        return [result for _ in self.statuses]

    async def _execute_local(self) -> list[RunResult]:
        self._set_running(now())

        async def run_one(index: int) -> RunResult:
            container = self.containers[index]
            name = self.statuses[index]["name"]
            code = await _runner.run_container(
                self.host,
                self.pod,
                container,
                lambda line: self._log(name, line),
            )
            return (code, "Completed" if code == 0 else "Error", None)

        return list(
            await asyncio.gather(*(run_one(i) for i in range(len(self.containers))))
        )

    def _should_restart(self, results: list[RunResult]) -> bool:
        if not results:
            return False
        if self.policy == "Always":
            return True
        failed = any(code != 0 for code, _, _ in results)
        return self.policy == "OnFailure" and failed

    async def _restart(self, results: list[RunResult]) -> None:
        self._terminate(results)
        for status, (code, _, _) in zip(self.statuses, results, strict=True):
            if self.policy == "OnFailure" and code == 0:
                continue
            status["lastState"] = status.pop("state")
            status["restartCount"] += 1
            backoff = 10 * 2 ** (status["restartCount"] - 1)
            status["state"] = {
                "waiting": {
                    "reason": "CrashLoopBackOff",
                    "message": (
                        f"back-off {backoff}s restarting "
                        f"failed container={status['name']} pod={self.name}_"
                        f"{self.namespace}({self.uid})"
                    ),
                }
            }
            self.host.pod_logs.restart(self.namespace, self.name, status["name"])
        self.phase = "Running"
        self._write()
        for container in self.containers:
            self._event(
                "BackOff",
                "Back-off restarting failed container "
                f"{container.get('name', 'main')} in pod {self.name}_"
                f"{self.namespace}({self.uid})",
                container,
                warning=True,
            )
        restarts = max(int(s["restartCount"]) for s in self.statuses)
        ticks = min(2 ** max(restarts - 1, 0), MAX_BACKOFF_TICKS)
        await self._sleep(self.host.tick * ticks)

    def _finish(self, results: list[RunResult]) -> None:
        self._terminate(results)
        failed = any(code != 0 for code, _, _ in results)
        self.phase = "Failed" if failed else "Succeeded"
        self._condition("ContainersReady", "False", "PodCompleted")
        self._condition("Ready", "False", "PodCompleted")
        for status in self.statuses:
            self.host.pod_logs.finish(self.namespace, self.name, status["name"])
        self._write()

    # Status model

    def _set_running(self, started: str) -> None:
        for status, container in zip(self.statuses, self.containers, strict=True):
            status["state"] = {"running": {"startedAt": started}}
            status["ready"] = True
            status["started"] = True
            status["containerID"] = f"containerd://{secrets.token_hex(32)}"
            status["imageID"] = f"{status['image']}@sha256:{secrets.token_hex(32)}"
            self._event("Started", f"Started container {status['name']}", container)
        self.phase = "Running"
        self._condition("ContainersReady", "True")
        self._condition("Ready", "True")
        self._write()

    def _terminate(self, results: list[RunResult]) -> None:
        finished = now()
        for status, (code, reason, message) in zip(self.statuses, results, strict=True):
            running = (status.get("state") or {}).get("running") or {}
            started = status.pop("_startedAt", None) or running.get("startedAt")
            terminated: Obj = {
                "exitCode": code,
                "reason": reason,
                "startedAt": started or finished,
                "finishedAt": finished,
                "containerID": status.get("containerID")
                or f"containerd://{secrets.token_hex(32)}",
            }
            if message:
                terminated["message"] = message
            status["state"] = {"terminated": terminated}
            status["ready"] = False
            status["started"] = False
        self._condition("ContainersReady", "False", "ContainersNotReady")
        self._condition("Ready", "False", "ContainersNotReady")

    def _condition(
        self,
        kind: str,
        value: str,
        reason: str | None = None,
        message: str | None = None,
    ) -> None:
        current = self.conditions.get(kind)
        if current is not None and current["status"] == value:
            stamp = current["lastTransitionTime"]
        else:
            stamp = now()
        condition: Obj = {
            "type": kind,
            "status": value,
            "lastProbeTime": None,
            "lastTransitionTime": stamp,
        }
        if reason:
            condition["reason"] = reason
        if message:
            condition["message"] = message
        self.conditions[kind] = condition

    def _status(self) -> Obj:
        order = ("Initialized", "Ready", "ContainersReady", "PodScheduled")
        status: dict[str, Any] = {
            "phase": self.phase,
            "conditions": [self.conditions[k] for k in order if k in self.conditions],
            "qosClass": "BestEffort",
        }
        if self.start_time is not None:
            status.update(hostIP=_HOST_IP, podIP=self.pod_ip, startTime=self.start_time)
            status["podIPs"] = [{"ip": self.pod_ip}]
            status["containerStatuses"] = [
                {k: v for k, v in s.items() if not k.startswith("_")}
                for s in self.statuses
            ]
            if self.init_statuses:
                status["initContainerStatuses"] = [dict(s) for s in self.init_statuses]
        return status

    def _write(self) -> None:
        status = self._status()

        def apply(pod: Obj) -> None:
            if pod["metadata"]["uid"] != self.uid:
                raise _PodGone
            pod["status"] = status

        try:
            self.host.store.mutate(
                PODS, self.namespace, self.name, apply, status_only=True
            )
        except StoreError as exc:
            raise _PodGone from exc

    # Side effects

    def _log(self, container: str, text: str) -> None:
        self.host.pod_logs.append(self.namespace, self.name, container, text)

    def _event(
        self,
        reason: str,
        message: str,
        container: Obj | None = None,
        *,
        warning: bool = False,
        component: str = "kubelet",
        init: bool = False,
    ) -> None:
        field_path = None
        if container is not None:
            section = "initContainers" if init else "containers"
            field_path = f"spec.{section}{{{container.get('name', 'main')}}}"
        record_event(
            self.host.store,
            PODS,
            self.pod,
            reason,
            message,
            event_type="Warning" if warning else "Normal",
            component=component,
            field_path=field_path,
        )
