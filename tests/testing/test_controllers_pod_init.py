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


def bare_pod(name: str, *, init: bool = False, script: str | None = None) -> Obj:
    meta: Obj = {"name": name, "namespace": "default"}
    if script is not None:
        meta["annotations"] = {scripts.SCRIPT_ANNOTATION: script}
    spec: Obj = {
        "restartPolicy": "OnFailure",
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


async def test_init_failure_keeps_exit_code() -> None:
    async with running_controllers() as host:
        script = scripts.init_fail(3, message="master not reachable")
        host.scripts.set("pods", "boom", script)
        host.store.create(PODS, bare_pod("boom", init=True))
        await wait_for(lambda: "terminated" in first_init_state(host, "boom"))
        await asyncio.sleep(0.05)
        pod = get_pod(host, "boom")
        assert pod["status"]["phase"] == "Pending"
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
        host.store.create(PODS, bare_pod("plain"))
        await wait_for(lambda: "terminated" in first_init_state(host, "plain"))
        (status,) = init_statuses(host, "plain")
        assert status["name"] == "init"
        assert status["state"]["terminated"]["exitCode"] == 1


async def test_init_outcome_from_annotation() -> None:
    async with running_controllers() as host:
        script = json.dumps({"outcome": "init_fail", "exitCode": 7})
        host.store.create(PODS, bare_pod("ann", init=True, script=script))
        await wait_for(lambda: "terminated" in first_init_state(host, "ann"))
        assert first_init_state(host, "ann")["terminated"]["exitCode"] == 7


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
