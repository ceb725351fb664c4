"""The simulated controllers seen through the fake API server by kubernetes-asyncio."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

import pytest_asyncio
from kubernetes_asyncio import client, config

from maestro_ml_async.testing import FakeCluster
from maestro_ml_async.testing import _scripts as scripts

Obj = dict[str, Any]


@pytest_asyncio.fixture
async def api(fake_cluster: FakeCluster) -> AsyncIterator[client.ApiClient]:
    configuration = client.Configuration()
    await config.load_kube_config(
        config_file=fake_cluster.kubeconfig_path,
        context=fake_cluster.context,
        client_configuration=configuration,
    )
    async with client.ApiClient(configuration) as api_client:
        yield api_client


def job_body(name: str) -> Obj:
    template = {"spec": {"containers": [{"name": "pytorch", "image": "trainer:1"}]}}
    return {
        "apiVersion": "kubeflow.org/v1",
        "kind": "PyTorchJob",
        "metadata": {"name": name},
        "spec": {
            "pytorchReplicaSpecs": {
                "Master": {
                    "replicas": 1,
                    "restartPolicy": "OnFailure",
                    "template": template,
                },
                "Worker": {
                    "replicas": 1,
                    "restartPolicy": "OnFailure",
                    "template": template,
                },
            }
        },
    }


async def wait_conditions(custom: client.CustomObjectsApi, name: str, kind: str) -> Obj:
    for _ in range(400):
        job: Obj = await custom.get_namespaced_custom_object(
            "kubeflow.org", "v1", "default", "pytorchjobs", name
        )
        found = {
            c["type"]: c["status"] for c in job.get("status", {}).get("conditions", [])
        }
        if found.get(kind) == "True":
            return job
        await asyncio.sleep(0.01)
    raise AssertionError(f"{name} never reached {kind}")


async def test_pytorchjob_through_http(
    fake_cluster: FakeCluster, api: client.ApiClient
) -> None:
    fake_cluster.scripts.set(
        "pytorchjobs",
        "http-job",
        scripts.succeed(logs=["epoch 1", "epoch 2"]),
        replica_type="Master",
    )
    custom = client.CustomObjectsApi(api)
    core = client.CoreV1Api(api)
    await custom.create_namespaced_custom_object(
        "kubeflow.org", "v1", "default", "pytorchjobs", job_body("http-job")
    )
    job = await wait_conditions(custom, "http-job", "Succeeded")
    assert job["status"]["replicaStatuses"]["Master"]["succeeded"] == 1

    selector = (
        "training.kubeflow.org/job-name=http-job,training.kubeflow.org/job-role=master"
    )
    pods = await core.list_namespaced_pod("default", label_selector=selector)
    assert [p.metadata.name for p in pods.items] == ["http-job-master-0"]
    assert pods.items[0].status.phase == "Succeeded"
    log = await core.read_namespaced_pod_log("http-job-master-0", "default")
    assert log.splitlines() == ["epoch 1", "epoch 2"]

    events = await core.list_namespaced_event(
        "default", field_selector="involvedObject.name=http-job-master-0"
    )
    assert "Scheduled" in {e.reason for e in events.items}

    await custom.delete_namespaced_custom_object(
        "kubeflow.org", "v1", "default", "pytorchjobs", "http-job"
    )
    remaining = await core.list_namespaced_pod(
        "default", label_selector="training.kubeflow.org/job-name=http-job"
    )
    assert remaining.items == []


async def test_annotation_script_over_http(
    fake_cluster: FakeCluster, api: client.ApiClient
) -> None:
    custom = client.CustomObjectsApi(api)
    body = job_body("annotated")
    body["metadata"]["annotations"] = {
        scripts.SCRIPT_ANNOTATION: json.dumps(
            {"replicas": {"Master": {"outcome": "fail", "exitCode": 4}}}
        )
    }
    for spec in body["spec"]["pytorchReplicaSpecs"].values():
        spec["restartPolicy"] = "Never"
    await custom.create_namespaced_custom_object(
        "kubeflow.org", "v1", "default", "pytorchjobs", body
    )
    job = await wait_conditions(custom, "annotated", "Failed")
    failed = next(c for c in job["status"]["conditions"] if c["type"] == "Failed")
    assert failed["reason"] == "PyTorchJobFailed"
    core = client.CoreV1Api(api)
    pod = await core.read_namespaced_pod("annotated-master-0", "default")
    assert pod.status.container_statuses[0].state.terminated.exit_code == 4
