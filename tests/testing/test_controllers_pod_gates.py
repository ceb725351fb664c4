"""Script gates: pods that wait at a named point until the test opens the gate."""

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
# Ten ticks of the controller host: long enough for an ungated pod to finish.
HOLD = 0.1


def bare_pod(name: str, script: str | None = None) -> Obj:
    meta: Obj = {"name": name, "namespace": "default"}
    if script is not None:
        meta["annotations"] = {scripts.SCRIPT_ANNOTATION: script}
    return {
        "metadata": meta,
        "spec": {
            "restartPolicy": "Never",
            "containers": [{"name": "main", "image": "app:1"}],
        },
    }


def get_pod(host: ControllerHost, name: str) -> Obj:
    pod = host.store.get(PODS, "default", name)
    assert pod is not None
    return pod


def phase_is(host: ControllerHost, name: str, phase: str) -> bool:
    pod = host.store.get(PODS, "default", name)
    return pod is not None and (pod.get("status") or {}).get("phase") == phase


def log_texts(host: ControllerHost, name: str) -> list[str]:
    return [text for _, text in host.pod_logs.lines("default", name, "main")]


async def test_schedule_gate_holds_pod_unscheduled() -> None:
    async with running_controllers() as host:
        script = scripts.PodScript(
            logs=((0.0, "up"),), gate="bind", gate_stage="schedule"
        )
        host.scripts.set("pods", "held", script)
        host.store.create(PODS, bare_pod("held"))
        await asyncio.sleep(HOLD)
        pod = get_pod(host, "held")
        assert "nodeName" not in pod["spec"]
        assert (pod.get("status") or {}).get("phase", "Pending") == "Pending"
        assert condition(pod, "PodScheduled") is None
        assert log_texts(host, "held") == []
        host.scripts.open_gate("bind")
        await wait_for(lambda: phase_is(host, "held", "Succeeded"))
        pod = get_pod(host, "held")
        assert pod["spec"]["nodeName"] == "fake-node"
        assert log_texts(host, "held") == ["up"]


async def test_run_gate_holds_logs() -> None:
    async with running_controllers() as host:
        script = scripts.PodScript(logs=((0.0, "first"),), run_time=0, gate="go")
        host.scripts.set("pods", "held", script)
        host.store.create(PODS, bare_pod("held"))
        await wait_for(lambda: phase_is(host, "held", "Running"))
        await asyncio.sleep(HOLD)
        pod = get_pod(host, "held")
        assert pod["status"]["phase"] == "Running"
        assert "running" in pod["status"]["containerStatuses"][0]["state"]
        assert log_texts(host, "held") == []
        host.scripts.open_gate("go")
        await wait_for(lambda: phase_is(host, "held", "Succeeded"))
        assert log_texts(host, "held") == ["first"]


async def test_annotation_gate_with_camel_case_stage() -> None:
    async with running_controllers() as host:
        script = json.dumps({"gate": "ann", "gateStage": "schedule"})
        host.store.create(PODS, bare_pod("annotated", script=script))
        await asyncio.sleep(HOLD)
        assert "nodeName" not in get_pod(host, "annotated")["spec"]
        host.scripts.open_gate("ann")
        await wait_for(lambda: phase_is(host, "annotated", "Succeeded"))


async def test_one_gate_releases_every_waiting_pod() -> None:
    async with running_controllers() as host:
        host.scripts.set("pods", "p-*", scripts.PodScript(gate="shared"))
        for name in ("p-1", "p-2"):
            host.store.create(PODS, bare_pod(name))
        await wait_for(lambda: phase_is(host, "p-1", "Running"))
        await wait_for(lambda: phase_is(host, "p-2", "Running"))
        await asyncio.sleep(HOLD)
        assert phase_is(host, "p-1", "Running")
        assert phase_is(host, "p-2", "Running")
        host.scripts.open_gate("shared")
        await wait_for(lambda: phase_is(host, "p-1", "Succeeded"))
        await wait_for(lambda: phase_is(host, "p-2", "Succeeded"))


async def test_other_gate_does_not_release_pod() -> None:
    async with running_controllers() as host:
        host.scripts.set("pods", "held", scripts.PodScript(gate="mine"))
        host.store.create(PODS, bare_pod("held"))
        await wait_for(lambda: phase_is(host, "held", "Running"))
        host.scripts.open_gate("someone-else")
        await asyncio.sleep(HOLD)
        assert phase_is(host, "held", "Running")
        assert log_texts(host, "held") == []
        host.scripts.open_gate("mine")
        await wait_for(lambda: phase_is(host, "held", "Succeeded"))


async def test_unknown_gate_opens_early() -> None:
    # Opening a gate that no pod uses yet creates it open, so later pods pass.
    async with running_controllers() as host:
        host.scripts.open_gate("early")
        host.scripts.open_gate("early")
        assert host.scripts.gate("early").is_set()
        script = scripts.PodScript(gate="early", gate_stage="schedule")
        host.scripts.set("pods", "late", script)
        host.store.create(PODS, bare_pod("late"))
        await wait_for(lambda: phase_is(host, "late", "Succeeded"))


def test_gate_is_created_closed() -> None:
    registry = scripts.Scripts()
    gate = registry.gate("fresh")
    assert not gate.is_set()
    assert registry.gate("fresh") is gate
    registry.open_gate("fresh")
    assert gate.is_set()


@pytest.mark.parametrize("stage", ["start", "Run", ""])
def test_invalid_gate_stage_is_rejected(stage: str) -> None:
    with pytest.raises(ValueError, match="invalid gate_stage") as caught:
        scripts.PodScript(gate="g", gate_stage=stage)
    message = str(caught.value)
    assert repr(stage) in message
    assert "'schedule'" in message
    assert "'run'" in message


async def test_invalid_gate_stage_annotation_fails_pod() -> None:
    async with running_controllers() as host:
        script = json.dumps({"gate": "g", "gateStage": "later"})
        host.store.create(PODS, bare_pod("bad", script=script))
        await wait_for(lambda: phase_is(host, "bad", "Failed"))
        state = get_pod(host, "bad")["status"]["containerStatuses"][0]["state"]
        terminated = state["terminated"]
        assert terminated["exitCode"] == 2
        assert "invalid gate_stage 'later'" in terminated["message"]


def test_gate_fields_round_trip_through_annotation() -> None:
    script = scripts.PodScript(gate="g", gate_stage="schedule")
    annotations = {scripts.SCRIPT_ANNOTATION: scripts.pod_script_json(script)}
    loaded = scripts.Scripts().for_pod("pods", "x", annotations=annotations)
    assert loaded.gate == "g"
    assert loaded.gate_stage == "schedule"
