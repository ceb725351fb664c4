"""The simulated kubelet: pod phases, container states, restarts, events, scripts."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest
from _controller_host import ControllerHost, drain, running_controllers, wait_for

from maestro_ml_async.testing import _scripts as scripts
from maestro_ml_async.testing._resources import RESOURCE_TYPES

Obj = dict[str, Any]
PODS = RESOURCE_TYPES["pods"]


def bare_pod(name: str, *, policy: str = "Never", script: str | None = None) -> Obj:
    meta: Obj = {"name": name, "namespace": "default"}
    if script is not None:
        meta["annotations"] = {scripts.SCRIPT_ANNOTATION: script}
    return {
        "metadata": meta,
        "spec": {
            "restartPolicy": policy,
            "containers": [{"name": "main", "image": "app:1"}],
        },
    }


def get_pod(host: ControllerHost, name: str) -> Obj:
    pod = host.store.get(PODS, "default", name)
    assert pod is not None
    return pod


def phase_is(host: ControllerHost, name: str, phase: str) -> bool:
    pod = host.store.get(PODS, "default", name)
    return pod is not None and pod["status"].get("phase") == phase


def state_of(pod: Obj) -> Obj:
    state: Obj = pod["status"]["containerStatuses"][0]["state"]
    return state


async def test_pod_lifecycle_success() -> None:
    async with running_controllers() as host:
        queue = host.store.subscribe(PODS.key)
        host.store.create(PODS, bare_pod("p"))
        await wait_for(lambda: phase_is(host, "p", "Succeeded"))
        pod = get_pod(host, "p")
        phases = [e.object["status"].get("phase") for e in drain(queue)]
        assert phases[0] == "Pending"
        assert "Running" in phases
        assert phases[-1] == "Succeeded"
        status = pod["status"]
        assert status["startTime"]
        assert status["podIP"].startswith("10.244.")
        assert pod["spec"]["nodeName"] == "fake-node"
        kinds = {c["type"]: c for c in status["conditions"]}
        assert set(kinds) == {"PodScheduled", "Initialized", "ContainersReady", "Ready"}
        assert kinds["PodScheduled"]["status"] == "True"
        assert kinds["Ready"]["status"] == "False"
        assert kinds["Ready"]["reason"] == "PodCompleted"
        terminated = state_of(pod)["terminated"]
        assert terminated["exitCode"] == 0
        assert terminated["reason"] == "Completed"
        assert terminated["startedAt"] <= terminated["finishedAt"]
        lines = [t for _, t in host.pod_logs.lines("default", "p", "main")]
        assert lines == ["starting", "step 1/2", "step 2/2", "done"]
        assert host.pod_logs.is_finished("default", "p", "main")
        reasons = {e["reason"] for e in host.events_for("p")}
        assert {"Scheduled", "Pulling", "Pulled", "Created", "Started"} <= reasons


async def test_waiting_then_running_states() -> None:
    async with running_controllers() as host:
        host.scripts.set(
            "pods", "slow", scripts.PodScript(outcome="hang", start_delay=0.2)
        )
        host.store.create(PODS, bare_pod("slow"))

        def creating() -> bool:
            pod = get_pod(host, "slow")
            statuses = pod["status"].get("containerStatuses") or []
            return bool(statuses) and "waiting" in statuses[0]["state"]

        await wait_for(creating)
        waiting = state_of(get_pod(host, "slow"))["waiting"]
        assert waiting["reason"] == "ContainerCreating"
        await wait_for(lambda: phase_is(host, "slow", "Running"))
        pod = get_pod(host, "slow")
        assert state_of(pod)["running"]["startedAt"]
        assert pod["status"]["containerStatuses"][0]["ready"] is True


@pytest.mark.parametrize("reason", ["ImagePullBackOff", "ErrImagePull"])
async def test_pull_error_stays_pending(reason: str) -> None:
    async with running_controllers() as host:
        host.scripts.set("pods", "pull", scripts.pull_error(reason))
        host.store.create(PODS, bare_pod("pull"))

        def waiting_reason() -> str | None:
            statuses = get_pod(host, "pull")["status"].get("containerStatuses") or []
            if not statuses:
                return None
            found: str | None = statuses[0]["state"].get("waiting", {}).get("reason")
            return found if found == reason else None

        await wait_for(waiting_reason)
        pod = get_pod(host, "pull")
        assert pod["status"]["phase"] == "Pending"
        assert "app:1" in state_of(pod)["waiting"]["message"]
        warnings = [e for e in host.events_for("pull") if e["type"] == "Warning"]
        assert any(e["reason"] == "Failed" for e in warnings)


@pytest.mark.parametrize(
    ("reason", "event", "message"),
    [
        (
            "InvalidImageName",
            "InspectFailed",
            'couldn\'t parse image name "app:1": invalid reference format',
        ),
        (
            "ErrImageNeverPull",
            "ErrImageNeverPull",
            'Container image "app:1" is not present with pull policy of Never',
        ),
    ],
)
async def test_no_pull_error_skips_pulling(
    reason: str, event: str, message: str
) -> None:
    async with running_controllers() as host:
        host.scripts.set("pods", "never", scripts.pull_error(reason))
        host.store.create(PODS, bare_pod("never"))

        def waiting_reason() -> str | None:
            statuses = get_pod(host, "never")["status"].get("containerStatuses") or []
            if not statuses:
                return None
            found: str | None = statuses[0]["state"].get("waiting", {}).get("reason")
            return found if found == reason else None

        await wait_for(waiting_reason)
        pod = get_pod(host, "never")
        events = host.events_for("never")
    assert pod["status"]["phase"] == "Pending"
    assert message in state_of(pod)["waiting"]["message"]
    reasons = [e["reason"] for e in events]
    assert "Pulling" not in reasons
    warnings = [e for e in events if e["type"] == "Warning"]
    assert [e["reason"] for e in warnings] == [event]
    assert message in warnings[0]["message"]


def test_unknown_pull_error_rejected() -> None:
    with pytest.raises(ValueError, match="invalid pull_error 'Bogus'"):
        scripts.pull_error("Bogus")


async def test_pending_forever() -> None:
    async with running_controllers() as host:
        host.scripts.set("pods", "stuck", scripts.hang(pending=True))
        host.store.create(PODS, bare_pod("stuck"))
        await wait_for(lambda: get_pod(host, "stuck")["status"].get("startTime"))
        await asyncio.sleep(0.1)
        pod = get_pod(host, "stuck")
        assert pod["status"]["phase"] == "Pending"
        assert state_of(pod)["waiting"]["reason"] == "ContainerCreating"


async def test_crash_loop_under_always() -> None:
    async with running_controllers() as host:
        host.scripts.set("pods", "crash", scripts.fail(4, logs=["oops"]))
        host.store.create(PODS, bare_pod("crash", policy="Always"))

        def restarted_twice() -> bool:
            statuses = get_pod(host, "crash")["status"].get("containerStatuses") or []
            return bool(statuses) and statuses[0]["restartCount"] >= 2

        await wait_for(restarted_twice)
        pod = get_pod(host, "crash")
        assert pod["status"]["phase"] == "Running"
        status = pod["status"]["containerStatuses"][0]
        assert status["lastState"]["terminated"]["exitCode"] == 4
        assert host.pod_logs.has_previous("default", "crash", "main")
        backoff = [e for e in host.events_for("crash") if e["reason"] == "BackOff"]
        assert backoff
        assert backoff[0]["involvedObject"]["fieldPath"] == "spec.containers{main}"


async def test_never_policy_fails_pod() -> None:
    async with running_controllers() as host:
        script = json.dumps({"outcome": "fail", "exitCode": 137, "reason": "OOMKilled"})
        host.store.create(PODS, bare_pod("oom", script=script))
        await wait_for(lambda: phase_is(host, "oom", "Failed"))
        terminated = state_of(get_pod(host, "oom"))["terminated"]
        assert terminated["exitCode"] == 137
        assert terminated["reason"] == "OOMKilled"


async def test_delete_pod_stops_it_and_logs() -> None:
    async with running_controllers() as host:
        host.scripts.set("pods", "gone", scripts.hang(logs=["up"]))
        host.store.create(PODS, bare_pod("gone"))
        await wait_for(lambda: host.pod_logs.lines("default", "gone", "main"))
        host.store.delete(PODS, "default", "gone")
        await wait_for(lambda: not host.pod_logs.lines("default", "gone", "main"))
        assert host.store.get(PODS, "default", "gone") is None


async def test_log_lines_with_delays() -> None:
    async with running_controllers() as host:
        script = scripts.succeed(logs=["a", (0.05, "b"), (0.05, "c")])
        host.scripts.set("pods", "logs", script)
        host.store.create(PODS, bare_pod("logs"))
        await wait_for(lambda: phase_is(host, "logs", "Succeeded"))
        lines = host.pod_logs.lines("default", "logs", "main")
        assert [t for _, t in lines] == ["a", "b", "c"]
        gap = (lines[2][0] - lines[0][0]).total_seconds()
        assert gap >= 0.09


def test_scripts_match_order_and_globs() -> None:
    registry = scripts.Scripts()
    registry.set("pytorchjobs", "train-*", scripts.fail(3))
    registry.set("pytorchjobs", "train-*", scripts.hang(), replica_type="worker")
    worker = registry.for_pod("pytorchjobs", "train-1", replica_type="Worker")
    master = registry.for_pod("pytorchjobs", "train-1", replica_type="Master")
    other = registry.for_pod("pytorchjobs", "eval-1", replica_type="Master")
    assert worker.outcome == "hang"
    assert master.outcome == "fail"
    assert master.exit_code == 3
    assert other == registry.default_pod
    registry.clear()
    assert registry.for_pod("pytorchjobs", "train-1") == registry.default_pod


def test_scripts_annotation_wins_and_round_trips() -> None:
    registry = scripts.Scripts()
    registry.set("*", "*", scripts.hang())
    original = scripts.PodScript(
        outcome="fail", exit_code=5, restarts=1, logs=((0.5, "x"),), run_time=0.0
    )
    annotations = {scripts.SCRIPT_ANNOTATION: scripts.pod_script_json(original)}
    parsed = registry.for_pod("pods", "p", annotations=annotations)
    assert parsed == original


def test_scripts_invalid_values_raise() -> None:
    registry = scripts.Scripts()
    bad = {scripts.SCRIPT_ANNOTATION: '{"outcome": "explode"}'}
    with pytest.raises(ValueError, match="invalid pod outcome"):
        registry.for_pod("pods", "p", annotations=bad)
    unknown = {scripts.SCRIPT_ANNOTATION: '{"colour": "red"}'}
    with pytest.raises(ValueError, match="unknown field"):
        registry.for_pod("pods", "p", annotations=unknown)
    with pytest.raises(ValueError, match="expected an object"):
        registry.for_pod("pods", "p", annotations={scripts.SCRIPT_ANNOTATION: "[1]"})


def test_after_attempts_consumes_restarts() -> None:
    script = scripts.restart_then_succeed(3)
    assert script.after_attempts(0).restarts == 3
    assert script.after_attempts(2).restarts == 1
    assert script.after_attempts(5).restarts == 0
