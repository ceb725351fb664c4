"""The simulated Training Operator: pods, labels and the operator's condition rules."""

from __future__ import annotations

from typing import Any

import pytest
from _controller_host import (
    ControllerHost,
    condition,
    condition_history,
    conditions,
    drain,
    running_controllers,
    wait_for,
)

from maestro_ml_async.testing import _scripts as scripts
from maestro_ml_async.testing._controllers._job_conditions import (
    update_job_condition,
)
from maestro_ml_async.testing._controllers.training import KINDS
from maestro_ml_async.testing._resources import RESOURCE_TYPES

Obj = dict[str, Any]
PJ = RESOURCE_TYPES["pytorchjobs.kubeflow.org"]
PODS = RESOURCE_TYPES["pods"]


def pytorch_job(
    name: str,
    *,
    workers: int = 1,
    master: bool = True,
    policy: str = "OnFailure",
    run_policy: Obj | None = None,
    annotations: dict[str, str] | None = None,
) -> Obj:
    template = {"spec": {"containers": [{"name": "pytorch", "image": "trainer:1"}]}}
    specs: Obj = {
        "Worker": {"replicas": workers, "restartPolicy": policy, "template": template}
    }
    if master:
        specs["Master"] = {"replicas": 1, "restartPolicy": policy, "template": template}
    spec: Obj = {"pytorchReplicaSpecs": specs}
    if run_policy is not None:
        spec["runPolicy"] = run_policy
    meta: Obj = {"name": name, "namespace": "default"}
    if annotations:
        meta["annotations"] = annotations
    return {"metadata": meta, "spec": spec}


def get_job(host: ControllerHost, name: str) -> Obj | None:
    return host.store.get(PJ, "default", name)


async def wait_condition(host: ControllerHost, name: str, kind: str) -> Obj:
    def check() -> Obj | None:
        job = get_job(host, name)
        return job if conditions(job).get(kind) == "True" else None

    found: Obj = await wait_for(check)
    return found


async def test_update_condition_rules() -> None:
    status: Obj = {}
    update_job_condition(status, "Created", "True", "PyTorchJobCreated", "created")
    update_job_condition(status, "Running", "True", "PyTorchJobRunning", "running")
    update_job_condition(status, "Restarting", "True", "PyTorchJobRestarting", "r")
    assert [c["type"] for c in status["conditions"]] == ["Created", "Restarting"]
    update_job_condition(status, "Running", "True", "PyTorchJobRunning", "running")
    assert [c["type"] for c in status["conditions"]] == ["Created", "Running"]
    update_job_condition(status, "Failed", "True", "PyTorchJobFailed", "failed")
    assert conditions({"status": status}) == {
        "Created": "True",
        "Running": "False",
        "Failed": "True",
    }
    frozen = [dict(c) for c in status["conditions"]]
    update_job_condition(status, "Succeeded", "True", "PyTorchJobSucceeded", "done")
    update_job_condition(status, "Running", "True", "PyTorchJobRunning", "again")
    assert status["conditions"] == frozen


async def test_success_conditions_and_status() -> None:
    async with running_controllers() as host:
        host.store.create(PJ, pytorch_job("ok", workers=2))
        job = await wait_condition(host, "ok", "Succeeded")
        assert [c["type"] for c in job["status"]["conditions"]] == [
            "Created",
            "Running",
            "Succeeded",
        ]
        assert conditions(job) == {
            "Created": "True",
            "Running": "False",
            "Succeeded": "True",
        }
        created = condition(job, "Created")
        assert created is not None
        assert created["reason"] == "PyTorchJobCreated"
        assert created["message"] == "PyTorchJob ok is created."
        succeeded = condition(job, "Succeeded")
        assert succeeded is not None
        assert succeeded["reason"] == "PyTorchJobSucceeded"
        assert set(succeeded) >= {"lastUpdateTime", "lastTransitionTime", "message"}
        status = job["status"]
        assert status["replicaStatuses"]["Master"]["succeeded"] == 1
        assert status["replicaStatuses"]["Worker"]["succeeded"] == 2
        assert "active" not in status["replicaStatuses"]["Worker"]
        assert status["startTime"]
        assert status["completionTime"]


async def test_pod_names_labels_and_owner() -> None:
    async with running_controllers() as host:
        host.scripts.set("pytorchjobs", "lab*", scripts.hang())
        job = host.store.create(PJ, pytorch_job("labels", workers=2))
        await wait_for(lambda: len(host.pods()) == 3)
        pods = {p["metadata"]["name"]: p for p in host.pods()}
        assert sorted(pods) == ["labels-master-0", "labels-worker-0", "labels-worker-1"]
        master = pods["labels-master-0"]["metadata"]
        assert master["labels"] == {
            "training.kubeflow.org/job-name": "labels",
            "training.kubeflow.org/operator-name": "pytorchjob-controller",
            "training.kubeflow.org/replica-type": "master",
            "training.kubeflow.org/replica-index": "0",
            "training.kubeflow.org/job-role": "master",
        }
        worker = pods["labels-worker-1"]["metadata"]
        assert worker["labels"]["training.kubeflow.org/replica-index"] == "1"
        assert "training.kubeflow.org/job-role" not in worker["labels"]
        (owner,) = master["ownerReferences"]
        assert owner["uid"] == job["metadata"]["uid"]
        assert owner["kind"] == "PyTorchJob"
        assert owner["controller"] is True
        env = {
            e["name"]: e["value"]
            for e in pods["labels-worker-1"]["spec"]["containers"][0]["env"]
        }
        assert env["WORLD_SIZE"] == "3"
        assert env["RANK"] == "2"
        assert env["MASTER_ADDR"] == "labels-master-0"

        running = await wait_condition(host, "labels", "Running")
        assert running["status"]["replicaStatuses"]["Master"]["active"] == 1
        host.store.delete(PJ, "default", "labels")
        assert host.pods() == []


@pytest.mark.parametrize("plural", sorted(KINDS))
async def test_every_kind_succeeds(plural: str) -> None:
    rtype = RESOURCE_TYPES[f"{plural}.kubeflow.org"]
    info = KINDS[plural]
    container = {"name": info.container, "image": "img"}
    template = {"spec": {"containers": [container]}}
    specs: Obj = {"Worker": {"replicas": 2, "template": template}}
    if info.masters:
        specs[info.masters[0]] = {"replicas": 1, "template": template}
    body = {"metadata": {"name": "k"}, "spec": {info.replica_field: specs}}
    async with running_controllers() as host:
        host.store.create(rtype, body)

        def finished() -> Obj | None:
            job = host.store.get(rtype, "default", "k")
            return job if conditions(job).get("Succeeded") == "True" else None

        job = await wait_for(finished)
        assert condition(job, "Succeeded")["reason"] == f"{rtype.kind}Succeeded"  # type: ignore[index]
        names = sorted(p["metadata"]["name"] for p in host.pods())
        assert "k-worker-0" in names
        assert "k-worker-1" in names
        if info.masters:
            assert f"k-{info.masters[0].lower()}-0" in names
        roles = [
            p["metadata"]["name"]
            for p in host.pods()
            if p["metadata"]["labels"].get("training.kubeflow.org/job-role") == "master"
        ]
        assert len(roles) <= 1


async def test_fast_finish_never_shows_running() -> None:
    async with running_controllers() as host:
        host.scripts.set("pytorchjobs", "fast", scripts.succeed(run_time=0))
        queue = host.store.subscribe(PJ.key)
        host.store.create(PJ, pytorch_job("fast"))
        await wait_condition(host, "fast", "Succeeded")
        history = condition_history(drain(queue), "fast")
        assert all("Running" not in seen for seen in history)
        assert history[-1] == {"Created": "True", "Succeeded": "True"}


async def test_restart_in_place_then_success() -> None:
    async with running_controllers() as host:
        host.scripts.set(
            "pytorchjobs",
            "flaky",
            scripts.restart_then_succeed(2, exit_code=3, logs=["attempt"]),
            replica_type="master",
        )
        queue = host.store.subscribe(PJ.key)
        host.store.create(PJ, pytorch_job("flaky"))
        job = await wait_condition(host, "flaky", "Succeeded")
        history = condition_history(drain(queue), "flaky")
        assert any(seen.get("Restarting") == "True" for seen in history)
        assert conditions(job) == {
            "Created": "True",
            "Running": "False",
            "Succeeded": "True",
        }
        master = host.store.get(PODS, "default", "flaky-master-0")
        assert master is not None
        (status,) = master["status"]["containerStatuses"]
        assert status["restartCount"] == 2
        assert status["lastState"]["terminated"]["exitCode"] == 3
        assert status["state"]["terminated"]["exitCode"] == 0
        logs = host.pod_logs
        assert logs.has_previous("default", "flaky-master-0", "pytorch")
        previous = logs.lines("default", "flaky-master-0", "pytorch", previous=True)
        assert [text for _, text in previous] == ["attempt"]


async def test_never_policy_failure_is_final() -> None:
    async with running_controllers() as host:
        host.scripts.set(
            "pytorchjobs",
            "bad",
            scripts.fail(7, message="boom"),
            replica_type="Worker",
            replica_index=0,
        )
        host.store.create(PJ, pytorch_job("bad", workers=2, policy="Never"))
        job = await wait_condition(host, "bad", "Failed")
        failed = condition(job, "Failed")
        assert failed is not None
        assert failed["reason"] == "PyTorchJobFailed"
        assert (
            failed["message"]
            == "PyTorchJob bad is failed because 1 Worker replica(s) failed."
        )
        assert conditions(job).get("Succeeded") is None
        assert job["status"]["completionTime"]
        pod = host.store.get(PODS, "default", "bad-worker-0")
        assert pod is not None
        assert pod["status"]["phase"] == "Failed"
        terminated = pod["status"]["containerStatuses"][0]["state"]["terminated"]
        assert terminated["exitCode"] == 7
        assert terminated["message"] == "boom"

        # Master and the other worker still succeed, but nothing changes after Failed.
        await wait_for(
            lambda: all(
                p["status"]["phase"] in ("Succeeded", "Failed") for p in host.pods()
            )
        )
        after = get_job(host, "bad")
        assert after is not None
        assert after["status"]["conditions"] == job["status"]["conditions"]


async def test_backoff_limit_fails_job() -> None:
    async with running_controllers() as host:
        host.scripts.set("pytorchjobs", "limit", scripts.fail(1))
        body = pytorch_job("limit", master=False, run_policy={"backoffLimit": 2})
        host.store.create(PJ, body)
        job = await wait_condition(host, "limit", "Failed")
        failed = condition(job, "Failed")
        assert failed is not None
        assert failed["reason"] == "PyTorchJobFailed"
        assert "backoff limit" in failed["message"]
        pod = host.store.get(PODS, "default", "limit-worker-0")
        assert pod is not None
        assert pod["status"]["containerStatuses"][0]["restartCount"] >= 2


async def test_exit_code_policy_recreates_pod() -> None:
    async with running_controllers() as host:
        host.scripts.set(
            "pytorchjobs", "retry", scripts.restart_then_succeed(1, exit_code=137)
        )
        queue = host.store.subscribe(PODS.key)
        host.store.create(PJ, pytorch_job("retry", master=False, policy="ExitCode"))
        job = await wait_condition(host, "retry", "Succeeded")
        events = drain(queue)
        uids = {
            e.object["metadata"]["uid"]
            for e in events
            if e.object["metadata"]["name"] == "retry-worker-0"
        }
        assert len(uids) == 2
        assert job["status"]["replicaStatuses"]["Worker"]["succeeded"] == 1
        pod = host.store.get(PODS, "default", "retry-worker-0")
        assert pod is not None
        assert pod["spec"]["restartPolicy"] == "Never"


async def test_exit_code_policy_permanent_failure() -> None:
    async with running_controllers() as host:
        host.scripts.set("pytorchjobs", "perm", scripts.fail(2))
        host.store.create(PJ, pytorch_job("perm", master=False, policy="ExitCode"))
        job = await wait_condition(host, "perm", "Failed")
        assert condition(job, "Failed")["reason"] == "PyTorchJobFailed"  # type: ignore[index]


async def test_suspend_and_resume() -> None:
    async with running_controllers() as host:
        host.scripts.set("pytorchjobs", "sus", scripts.hang())
        body = pytorch_job("sus", run_policy={"suspend": True})
        host.store.create(PJ, body)
        job = await wait_condition(host, "sus", "Suspended")
        assert condition(job, "Suspended")["reason"] == "PyTorchJobSuspended"  # type: ignore[index]
        assert host.pods() == []

        def resume(obj: Obj) -> None:
            obj["spec"]["runPolicy"]["suspend"] = False

        host.store.mutate(PJ, "default", "sus", resume)
        running = await wait_condition(host, "sus", "Running")
        resumed = condition(running, "Suspended")
        assert resumed is not None
        assert resumed["status"] == "False"
        assert resumed["reason"] == "PyTorchJobResumed"
        assert len(host.pods()) == 2

        def suspend(obj: Obj) -> None:
            obj["spec"]["runPolicy"]["suspend"] = True

        host.store.mutate(PJ, "default", "sus", suspend)
        again = await wait_condition(host, "sus", "Suspended")
        assert conditions(again)["Running"] == "False"
        assert host.pods() == []


async def test_active_deadline_fails_job() -> None:
    async with running_controllers() as host:
        host.scripts.set("pytorchjobs", "slow", scripts.hang())
        body = pytorch_job(
            "slow", run_policy={"activeDeadlineSeconds": 1, "cleanPodPolicy": "All"}
        )
        host.store.create(PJ, body)
        job = await wait_condition(host, "slow", "Failed")
        failed = condition(job, "Failed")
        assert failed is not None
        assert "deadline" in failed["message"]
        assert conditions(job)["Running"] == "False"
        await wait_for(lambda: host.pods() == [])


async def test_clean_pod_policy_running() -> None:
    async with running_controllers() as host:
        host.scripts.set("pytorchjobs", "clean", scripts.hang(), replica_type="Worker")
        body = pytorch_job("clean", run_policy={"cleanPodPolicy": "Running"})
        host.store.create(PJ, body)
        await wait_condition(host, "clean", "Succeeded")
        remaining = await wait_for(
            lambda: [p["metadata"]["name"] for p in host.pods()] == ["clean-master-0"]
        )
        assert remaining


async def test_annotation_script_per_replica() -> None:
    script = '{"replicas": {"Worker/1": {"outcome": "fail", "exitCode": 9}}}'
    annotations = {scripts.SCRIPT_ANNOTATION: script}
    async with running_controllers() as host:
        body = pytorch_job("annot", workers=2, policy="Never", annotations=annotations)
        host.store.create(PJ, body)
        await wait_condition(host, "annot", "Failed")
        pod = host.store.get(PODS, "default", "annot-worker-1")
        assert pod is not None
        assert (
            pod["status"]["containerStatuses"][0]["state"]["terminated"]["exitCode"]
            == 9
        )
        other = host.store.get(PODS, "default", "annot-worker-0")
        assert other is not None
        assert other["status"]["phase"] == "Succeeded"


async def test_invalid_annotation_fails_pod() -> None:
    annotations = {scripts.SCRIPT_ANNOTATION: "{not json"}
    async with running_controllers() as host:
        body = pytorch_job(
            "broken", master=False, policy="Never", annotations=annotations
        )
        host.store.create(PJ, body)
        await wait_condition(host, "broken", "Failed")
        pod = host.store.get(PODS, "default", "broken-worker-0")
        assert pod is not None
        terminated = pod["status"]["containerStatuses"][0]["state"]["terminated"]
        assert (
            "invalid testing.maestro-ml.io/script annotation" in terminated["message"]
        )


async def test_tfjob_worker_zero_decides() -> None:
    rtype = RESOURCE_TYPES["tfjobs.kubeflow.org"]
    template = {"spec": {"containers": [{"name": "tensorflow", "image": "tf"}]}}
    body = {
        "metadata": {"name": "tf"},
        "spec": {"tfReplicaSpecs": {"Worker": {"replicas": 2, "template": template}}},
    }
    async with running_controllers() as host:
        host.scripts.set("tfjobs", "tf", scripts.hang(), replica_index=1)
        host.store.create(rtype, body)

        def succeeded() -> bool:
            return (
                conditions(host.store.get(rtype, "default", "tf")).get("Succeeded")
                == "True"
            )

        await wait_for(succeeded)
        worker1 = host.store.get(PODS, "default", "tf-worker-1")
        assert worker1 is not None
        assert worker1["status"]["phase"] == "Running"
