"""The simulated batch/v1 Job controller and the TrainJob controller."""

from __future__ import annotations

from typing import Any

from _controller_host import (
    ControllerHost,
    condition,
    conditions,
    running_controllers,
    wait_for,
)

from maestro_ml_async.testing import _scripts as scripts
from maestro_ml_async.testing._controllers.batch import format_indexes
from maestro_ml_async.testing._resources import RESOURCE_TYPES

Obj = dict[str, Any]
JOBS = RESOURCE_TYPES["jobs.batch"]
TRAINJOBS = RESOURCE_TYPES["trainjobs.trainer.kubeflow.org"]


def batch_job(name: str, *, policy: str = "Never", **spec: Any) -> Obj:
    template = {
        "spec": {"restartPolicy": policy, "containers": [{"name": "c", "image": "i"}]}
    }
    return {"metadata": {"name": name}, "spec": {"template": template, **spec}}


async def wait_job(
    host: ControllerHost, name: str, kind: str, rtype: Any = JOBS
) -> Obj:
    def check() -> Obj | None:
        job = host.store.get(rtype, "default", name)
        return job if conditions(job).get(kind) == "True" else None

    found: Obj = await wait_for(check)
    return found


def test_format_indexes() -> None:
    assert format_indexes(set()) == ""
    assert format_indexes({0}) == "0"
    assert format_indexes({0, 1, 2, 4, 6, 7}) == "0-2,4,6-7"


async def test_batch_completions_and_parallelism() -> None:
    async with running_controllers() as host:
        job = host.store.create(JOBS, batch_job("b", completions=3, parallelism=2))
        done = await wait_job(host, "b", "Complete")
        assert [c["type"] for c in done["status"]["conditions"]] == [
            "SuccessCriteriaMet",
            "Complete",
        ]
        complete = condition(done, "Complete")
        assert complete is not None
        assert complete["reason"] == "CompletionsReached"
        assert done["status"]["succeeded"] == 3
        assert "active" not in done["status"]
        assert done["status"]["completionTime"]
        pods = host.pods()
        assert len(pods) == 3
        for pod in pods:
            labels = pod["metadata"]["labels"]
            assert labels["batch.kubernetes.io/job-name"] == "b"
            assert labels["job-name"] == "b"
            assert labels["controller-uid"] == job["metadata"]["uid"]
            assert pod["metadata"]["name"].startswith("b-")


async def test_batch_backoff_limit() -> None:
    async with running_controllers() as host:
        host.scripts.set("jobs", "fails", scripts.fail(2))
        host.store.create(JOBS, batch_job("fails", backoffLimit=1))
        failed = await wait_job(host, "fails", "Failed")
        assert [c["type"] for c in failed["status"]["conditions"]] == [
            "FailureTarget",
            "Failed",
        ]
        reason = condition(failed, "Failed")
        assert reason is not None
        assert reason["reason"] == "BackoffLimitExceeded"
        assert reason["message"] == "Job has reached the specified backoff limit"
        assert failed["status"]["failed"] == 2
        assert "completionTime" not in failed["status"]


async def test_batch_retry_then_success() -> None:
    async with running_controllers() as host:
        host.scripts.set("jobs", "retry", scripts.restart_then_succeed(2))
        host.store.create(JOBS, batch_job("retry"))
        done = await wait_job(host, "retry", "Complete")
        assert done["status"]["failed"] == 2
        assert done["status"]["succeeded"] == 1


async def test_batch_on_failure_restarts_in_place() -> None:
    async with running_controllers() as host:
        host.scripts.set("jobs", "inplace", scripts.restart_then_succeed(1))
        host.store.create(JOBS, batch_job("inplace", policy="OnFailure"))
        done = await wait_job(host, "inplace", "Complete")
        (pod,) = host.pods()
        assert pod["status"]["containerStatuses"][0]["restartCount"] == 1
        assert "failed" not in done["status"]


async def test_batch_indexed_names() -> None:
    async with running_controllers() as host:
        body = batch_job("ix", completions=3, parallelism=3, completionMode="Indexed")
        host.store.create(JOBS, body)
        done = await wait_job(host, "ix", "Complete")
        assert done["status"]["completedIndexes"] == "0-2"
        names = sorted(p["metadata"]["name"].rsplit("-", 1)[0] for p in host.pods())
        assert names == ["ix-0", "ix-1", "ix-2"]
        annotation = "batch.kubernetes.io/job-completion-index"
        indexes = sorted(p["metadata"]["annotations"][annotation] for p in host.pods())
        assert indexes == ["0", "1", "2"]


async def test_batch_suspend_and_resume() -> None:
    async with running_controllers() as host:
        host.scripts.set("jobs", "sus", scripts.hang())
        host.store.create(JOBS, batch_job("sus", suspend=True))
        job = await wait_job(host, "sus", "Suspended")
        assert condition(job, "Suspended")["reason"] == "JobSuspended"  # type: ignore[index]
        assert host.pods() == []

        def resume(obj: Obj) -> None:
            obj["spec"]["suspend"] = False

        host.store.mutate(JOBS, "default", "sus", resume)
        await wait_for(lambda: len(host.pods()) == 1)
        resumed = host.store.get(JOBS, "default", "sus")
        assert condition(resumed, "Suspended")["reason"] == "JobResumed"  # type: ignore[index]
        assert conditions(resumed)["Suspended"] == "False"


async def test_batch_deadline() -> None:
    async with running_controllers() as host:
        host.scripts.set("jobs", "late", scripts.hang())
        host.store.create(JOBS, batch_job("late", activeDeadlineSeconds=1))
        failed = await wait_job(host, "late", "Failed")
        assert condition(failed, "Failed")["reason"] == "DeadlineExceeded"  # type: ignore[index]
        assert host.pods() == []


def trainjob(name: str, **spec: Any) -> Obj:
    body = {"runtimeRef": {"name": "torch-distributed"}, **spec}
    return {"metadata": {"name": name}, "spec": body}


async def test_trainjob_pods_and_complete() -> None:
    async with running_controllers() as host:
        body = trainjob(
            "tj",
            trainer={
                "numNodes": 2,
                "image": "trainer:2",
                "command": ["python", "t.py"],
            },
            initializer={"model": {"storageUri": "hf://org/model"}},
        )
        host.store.create(TRAINJOBS, body)
        done = await wait_job(host, "tj", "Complete", TRAINJOBS)
        complete = condition(done, "Complete")
        assert complete is not None
        assert complete["reason"] == "AllJobsCompleted"
        assert complete["message"] == "jobset completed successfully"
        assert set(complete) == {
            "type",
            "status",
            "reason",
            "message",
            "lastTransitionTime",
        }
        steps = {s["name"]: s for s in done["status"]["jobsStatus"]}
        assert steps["node"]["succeeded"] == 1
        assert steps["model-initializer"]["succeeded"] == 1
        nodes = host.pods(**{"jobset.sigs.k8s.io/replicatedjob-name": "node"})
        assert len(nodes) == 2
        indexes = sorted(
            p["metadata"]["labels"]["batch.kubernetes.io/job-completion-index"]
            for p in nodes
        )
        assert indexes == ["0", "1"]
        for pod in nodes:
            assert pod["metadata"]["labels"]["jobset.sigs.k8s.io/jobset-name"] == "tj"
            assert pod["metadata"]["name"].startswith("tj-node-0-")
            container = pod["spec"]["containers"][0]
            assert container["name"] == "node"
            assert container["image"] == "trainer:2"
        init = host.pods(
            **{"jobset.sigs.k8s.io/replicatedjob-name": "model-initializer"}
        )
        assert len(init) == 1
        started = min(p["status"]["startTime"] for p in nodes)
        assert (
            init[0]["status"]["containerStatuses"][0]["state"]["terminated"][
                "finishedAt"
            ]
            <= started
        )


async def test_trainjob_failure() -> None:
    async with running_controllers() as host:
        host.scripts.set("trainjobs", "bad", scripts.fail(1), replica_type="node")
        host.store.create(TRAINJOBS, trainjob("bad"))

        # Node pods restart in place under OnFailure until the Job backoff limit.
        failed = await wait_job(host, "bad", "Failed", TRAINJOBS)
        reason = condition(failed, "Failed")
        assert reason is not None
        assert reason["reason"] == "FailedJobs"
        assert conditions(failed).get("Complete") is None


async def test_trainjob_suspend_and_resume() -> None:
    async with running_controllers() as host:
        host.scripts.set("trainjobs", "s", scripts.hang())
        host.store.create(TRAINJOBS, trainjob("s", suspend=True))
        job = await wait_job(host, "s", "Suspended", TRAINJOBS)
        assert condition(job, "Suspended")["message"] == "TrainJob is suspended"  # type: ignore[index]
        assert host.pods() == []
        assert job["status"]["jobsStatus"][0]["suspended"] == 1

        def resume(obj: Obj) -> None:
            obj["spec"]["suspend"] = False

        host.store.mutate(TRAINJOBS, "default", "s", resume)
        await wait_for(lambda: len(host.pods()) == 1)
        resumed = host.store.get(TRAINJOBS, "default", "s")
        assert condition(resumed, "Suspended")["reason"] == "Resumed"  # type: ignore[index]
