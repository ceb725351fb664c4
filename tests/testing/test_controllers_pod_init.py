"""Pods that never start: unschedulable ones and init containers that fail."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest
from _controller_host import ControllerHost, condition, running_controllers, wait_for

from maestro_ml_async.testing import _scripts as scripts
from maestro_ml_async.testing._resources import RESOURCE_TYPES

Obj = dict[str, Any]
PODS = RESOURCE_TYPES["pods"]


def bare_pod(
    name: str,
    *,
    init: bool = False,
    script: str | None = None,
    policy: str = "OnFailure",
) -> Obj:
    meta: Obj = {"name": name, "namespace": "default"}
    if script is not None:
        meta["annotations"] = {scripts.SCRIPT_ANNOTATION: script}
    spec: Obj = {
        "restartPolicy": policy,
        "containers": [{"name": "main", "image": "app:1"}],
    }
    if init:
        spec["initContainers"] = [
            {"name": "wait-for-master", "image": "alpine:3.19"},
            {"name": "fetch-data", "image": "alpine:3.19"},
        ]
    return {"metadata": meta, "spec": spec}


def get_pod(host: ControllerHost, name: str) -> Obj:
    pod = host.store.get(PODS, "default", name)
    assert pod is not None
    return pod


def init_statuses(host: ControllerHost, name: str) -> list[Obj]:
    found: list[Obj] = get_pod(host, name)["status"].get("initContainerStatuses", [])
    return found


def first_init_state(host: ControllerHost, name: str) -> Obj:
    statuses = init_statuses(host, name)
    return statuses[0]["state"] if statuses else {}


@pytest.mark.parametrize("reason", ["ImagePullBackOff", "ErrImagePull"])
async def test_init_pull_error_keeps_pod_initializing(reason: str) -> None:
    async with running_controllers() as host:
        host.scripts.set("pods", "pull", scripts.init_pull_error(reason))
        host.store.create(PODS, bare_pod("pull", init=True))

        def waiting_reason() -> bool:
            waiting = first_init_state(host, "pull").get("waiting") or {}
            return waiting.get("reason") == reason

        await wait_for(waiting_reason)
        await asyncio.sleep(0.05)
        pod = get_pod(host, "pull")
        status = pod["status"]
        assert status["phase"] == "Pending"
        first, second = status["initContainerStatuses"]
        assert first["name"] == "wait-for-master"
        assert first["state"]["waiting"]["reason"] == reason
        assert "alpine:3.19" in first["state"]["waiting"]["message"]
        assert second["state"] == {"waiting": {"reason": "PodInitializing"}}
        main = status["containerStatuses"][0]
        assert main["state"] == {"waiting": {"reason": "PodInitializing"}}
        initialized = condition(pod, "Initialized")
        assert initialized is not None
        assert initialized["status"] == "False"
        assert initialized["reason"] == "ContainersNotInitialized"
        assert "[wait-for-master fetch-data]" in initialized["message"]
        scheduled = condition(pod, "PodScheduled")
        assert scheduled is not None
        assert scheduled["status"] == "True"
        assert host.pod_logs.lines("default", "pull", "main") == []
        paths = {
            e["involvedObject"].get("fieldPath")
            for e in host.events_for("pull")
            if e["type"] == "Warning"
        }
        assert paths == {"spec.initContainers{wait-for-master}"}


async def test_init_failure_fails_pod_under_never() -> None:
    async with running_controllers() as host:
        script = scripts.init_fail(3, message="master not reachable")
        host.scripts.set("pods", "boom", script)
        host.store.create(PODS, bare_pod("boom", init=True, policy="Never"))
        await wait_for(lambda: get_pod(host, "boom")["status"]["phase"] == "Failed")
        await asyncio.sleep(0.05)
        pod = get_pod(host, "boom")
        assert pod["status"]["phase"] == "Failed"
        first, second = pod["status"]["initContainerStatuses"]
        assert first["restartCount"] == 0
        assert "lastState" not in first
        assert second["state"] == {"waiting": {"reason": "PodInitializing"}}
        initialized = condition(pod, "Initialized")
        assert initialized is not None
        assert initialized["status"] == "False"
        terminated = first_init_state(host, "boom")["terminated"]
        assert terminated["exitCode"] == 3
        assert terminated["reason"] == "Error"
        assert terminated["message"] == "master not reachable"
        assert terminated["startedAt"] <= terminated["finishedAt"]
        main = pod["status"]["containerStatuses"][0]
        assert main["state"]["waiting"]["reason"] == "PodInitializing"


async def test_init_fallback_container() -> None:
    async with running_controllers() as host:
        host.scripts.set("pods", "plain", scripts.init_fail())
        host.store.create(PODS, bare_pod("plain", policy="Never"))
        await wait_for(lambda: "terminated" in first_init_state(host, "plain"))
        (status,) = init_statuses(host, "plain")
        assert status["name"] == "init"
        assert status["state"]["terminated"]["exitCode"] == 1


async def test_init_outcome_from_annotation() -> None:
    async with running_controllers() as host:
        script = json.dumps({"outcome": "init_fail", "exitCode": 7})
        pod = bare_pod("ann", init=True, script=script, policy="Never")
        host.store.create(PODS, pod)
        await wait_for(lambda: "terminated" in first_init_state(host, "ann"))
        assert first_init_state(host, "ann")["terminated"]["exitCode"] == 7


@pytest.mark.parametrize("policy", ["OnFailure", "Always"])
async def test_init_failure_crash_loops(policy: str) -> None:
    async with running_controllers() as host:
        host.scripts.set("pods", "loop", scripts.init_fail(5, message="no master"))
        host.store.create(PODS, bare_pod("loop", init=True, policy=policy))

        def restarted_twice() -> bool:
            statuses = init_statuses(host, "loop")
            return bool(statuses) and statuses[0]["restartCount"] >= 2

        await wait_for(restarted_twice)
        pod = get_pod(host, "loop")
        assert pod["status"]["phase"] == "Pending"
        first, second = pod["status"]["initContainerStatuses"]
        assert second["state"] == {"waiting": {"reason": "PodInitializing"}}
        last = first["lastState"]["terminated"]
        assert last["exitCode"] == 5
        assert last["message"] == "no master"
        main = pod["status"]["containerStatuses"][0]
        assert main["state"] == {"waiting": {"reason": "PodInitializing"}}

        def crash_looping() -> bool:
            waiting = first_init_state(host, "loop").get("waiting") or {}
            return waiting.get("reason") == "CrashLoopBackOff"

        await wait_for(crash_looping)
        waiting = first_init_state(host, "loop")["waiting"]
        assert "container=wait-for-master" in waiting["message"]
        assert waiting["message"].startswith("back-off ")
        backoffs = [e for e in host.events_for("loop") if e["reason"] == "BackOff"]
        assert len(backoffs) >= 2
        assert backoffs[0]["type"] == "Warning"
        path = backoffs[0]["involvedObject"]["fieldPath"]
        assert path == "spec.initContainers{wait-for-master}"


async def test_init_back_off_message_doubles() -> None:
    async with running_controllers() as host:
        host.scripts.set("pods", "double", scripts.init_fail())
        host.store.create(PODS, bare_pod("double", init=True))
        seen: set[str] = set()

        def two_back_offs() -> bool:
            waiting = first_init_state(host, "double").get("waiting") or {}
            message = str(waiting.get("message") or "")
            if waiting.get("reason") == "CrashLoopBackOff":
                seen.add(message.split(" restarting")[0])
            return {"back-off 10s", "back-off 20s"} <= seen

        await wait_for(two_back_offs)
        assert "back-off 10s" in seen
        assert "back-off 20s" in seen


async def test_unschedulable_pod_stays_unbound() -> None:
    async with running_controllers() as host:
        host.scripts.set("pods", "gpu", scripts.unschedulable())
        host.store.create(PODS, bare_pod("gpu"))
        await wait_for(lambda: condition(get_pod(host, "gpu"), "PodScheduled"))
        await asyncio.sleep(0.05)
        pod = get_pod(host, "gpu")
        assert "nodeName" not in pod["spec"]
        status = pod["status"]
        assert status["phase"] == "Pending"
        assert "containerStatuses" not in status
        assert "startTime" not in status
        scheduled = condition(pod, "PodScheduled")
        assert scheduled is not None
        assert scheduled["status"] == "False"
        assert scheduled["reason"] == "Unschedulable"
        assert scheduled["message"] == scripts.NO_GPU_MESSAGE
        (event,) = host.events_for("gpu")
        assert event["reason"] == "FailedScheduling"
        assert event["type"] == "Warning"
        assert event["message"] == scripts.NO_GPU_MESSAGE


async def test_unschedulable_message_from_annotation() -> None:
    message = "0/5 nodes are available: 5 node(s) didn't match Pod's node affinity."
    async with running_controllers() as host:
        script = json.dumps({"outcome": "unschedulable", "message": message})
        host.store.create(PODS, bare_pod("affinity", script=script))
        await wait_for(lambda: condition(get_pod(host, "affinity"), "PodScheduled"))
        scheduled = condition(get_pod(host, "affinity"), "PodScheduled")
        assert scheduled is not None
        assert scheduled["message"] == message


def test_factories_build_expected_scripts() -> None:
    assert scripts.init_pull_error("ErrImagePull").pull_error == "ErrImagePull"
    failed = scripts.init_fail(4, reason="OOMKilled")
    assert (failed.outcome, failed.exit_code, failed.reason) == (
        "init_fail",
        4,
        "OOMKilled",
    )
    assert scripts.unschedulable("full").message == "full"
    with pytest.raises(ValueError, match="invalid pull_error"):
        scripts.init_pull_error("Timeout")
