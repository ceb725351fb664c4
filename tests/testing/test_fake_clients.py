"""Clients written elsewhere against the fake: official kubernetes, kubernetes-asyncio.

The official client is synchronous, so it runs in a worker thread while the
fake cluster serves from the test's event loop.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

import kubernetes
import kubernetes.dynamic
import pytest
import pytest_asyncio
from kubernetes_asyncio import client, config, watch

from maestro_ml_async.testing import RESOURCE_TYPES, FakeCluster

Obj = dict[str, Any]
GROUP, VERSION = "kubeflow.org", "v1"
PJ_TYPE = RESOURCE_TYPES["pytorchjobs.kubeflow.org"]
ISVC = ("serving.kserve.io", "v1beta1", "inferenceservices")


def pytorch_job(name: str, **labels: str) -> Obj:
    return {
        "apiVersion": "kubeflow.org/v1",
        "kind": "PyTorchJob",
        "metadata": {"name": name, "labels": labels},
        "spec": {
            "pytorchReplicaSpecs": {
                "Master": {
                    "replicas": 1,
                    "restartPolicy": "Never",
                    "template": {
                        "spec": {"containers": [{"name": "pytorch", "image": "x"}]}
                    },
                }
            }
        },
    }


def inference_service(name: str) -> Obj:
    model = {"modelFormat": {"name": "sklearn"}, "storageUri": "s3://b/m"}
    return {
        "apiVersion": "serving.kserve.io/v1beta1",
        "kind": "InferenceService",
        "metadata": {"name": name},
        "spec": {"predictor": {"model": model}},
    }


def official_client(cluster: FakeCluster) -> kubernetes.client.ApiClient:
    return kubernetes.config.new_client_from_config(
        config_file=cluster.kubeconfig_path, context=cluster.context
    )


def official_crud(cluster: FakeCluster) -> dict[str, Any]:
    """Run create, get, list, patch, watch and delete with the official client."""
    api_client = official_client(cluster)
    custom = kubernetes.client.CustomObjectsApi(api_client)
    args = (GROUP, VERSION, "default", "pytorchjobs")
    results: dict[str, Any] = {}
    custom.create_namespaced_custom_object(*args, pytorch_job("a", team="ml"))
    custom.create_namespaced_custom_object(*args, pytorch_job("b", team="ops"))
    results["get"] = custom.get_namespaced_custom_object(*args, "a")
    listed = custom.list_namespaced_custom_object(*args, label_selector="team=ml")
    results["list"] = [item["metadata"]["name"] for item in listed["items"]]
    results["merge"] = custom.patch_namespaced_custom_object(
        *args, "a", {"metadata": {"labels": {"stage": "1"}}}
    )
    ops = [{"op": "add", "path": "/metadata/annotations", "value": {"k": "v"}}]
    # kubernetes 37 sends merge-patch unless _content_type is set, even for a list.
    results["json"] = custom.patch_namespaced_custom_object(
        *args, "a", ops, _content_type="application/json-patch+json"
    )
    stream = kubernetes.watch.Watch()
    seen = []
    for event in stream.stream(
        custom.list_namespaced_custom_object,
        *args,
        field_selector="metadata.name=b",
        timeout_seconds=1,
    ):
        seen.append((event["type"], event["object"]["metadata"]["name"]))
    results["watch"] = seen
    results["delete"] = custom.delete_namespaced_custom_object(*args, "b")
    try:
        custom.get_namespaced_custom_object(*args, "b")
    except kubernetes.client.ApiException as exc:
        results["after_delete"] = exc.status
    isvc_args = (ISVC[0], ISVC[1], "default", ISVC[2])
    custom.create_namespaced_custom_object(*isvc_args, inference_service("iris"))
    results["isvc"] = custom.get_namespaced_custom_object(*isvc_args, "iris")
    results["isvc_delete"] = custom.delete_namespaced_custom_object(*isvc_args, "iris")
    api_client.close()
    return results


async def test_official_client_crud(fake_cluster: FakeCluster) -> None:
    results = await asyncio.to_thread(official_crud, fake_cluster)
    assert results["get"]["metadata"]["labels"] == {"team": "ml"}
    assert results["list"] == ["a"]
    assert results["merge"]["metadata"]["labels"] == {"team": "ml", "stage": "1"}
    assert results["json"]["metadata"]["annotations"] == {"k": "v"}
    assert results["watch"][0] == ("ADDED", "b")
    assert results["delete"]["status"] == "Success"
    assert results["after_delete"] == 404
    assert results["isvc"]["kind"] == "InferenceService"
    assert results["isvc_delete"]["details"]["name"] == "iris"


def official_core(cluster: FakeCluster) -> dict[str, Any]:
    """Read pods, a pod's log and a 404 through the official CoreV1Api."""
    api_client = official_client(cluster)
    core = kubernetes.client.CoreV1Api(api_client)
    results: dict[str, Any] = {}
    pods = core.list_namespaced_pod(
        "default", label_selector="training.kubeflow.org/job-name=logs"
    )
    results["pods"] = [(pod.metadata.name, pod.status.phase) for pod in pods.items]
    results["log"] = core.read_namespaced_pod_log("logs-master-0", "default")
    results["tail"] = core.read_namespaced_pod_log(
        "logs-master-0", "default", tail_lines=1, timestamps=True
    )
    try:
        core.read_namespaced_pod("missing", "default")
    except kubernetes.client.ApiException as exc:
        results["missing"] = exc.status
    namespaces = core.list_namespace()
    results["namespaces"] = [ns.metadata.name for ns in namespaces.items]
    api_client.close()
    return results


async def test_official_client_pods_and_logs(fake_cluster: FakeCluster) -> None:
    fake_cluster.store.create(
        PJ_TYPE, dict(pytorch_job("logs"), metadata={"name": "logs"})
    )
    pods = RESOURCE_TYPES["pods"]
    for _ in range(200):
        pod = fake_cluster.store.get(pods, "default", "logs-master-0")
        if pod is not None and pod["status"].get("phase") == "Succeeded":
            break
        await asyncio.sleep(0.02)
    fake_cluster.pod_logs.append("default", "logs-master-0", "pytorch", "final")
    results = await asyncio.to_thread(official_core, fake_cluster)
    assert results["pods"] == [("logs-master-0", "Succeeded")]
    assert results["log"].endswith("final\n")
    stamp, _, text = results["tail"].strip().partition(" ")
    assert stamp.endswith("Z")
    assert text == "final"
    assert results["missing"] == 404
    assert {"default", "ml-platform", "kube-system"} <= set(results["namespaces"])


def official_apply(cluster: FakeCluster) -> dict[str, Any]:
    """Run server-side apply through the official client's dynamic client."""
    api_client = official_client(cluster)
    dynamic = kubernetes.dynamic.DynamicClient(api_client)
    jobs = dynamic.resources.get(api_version="kubeflow.org/v1", kind="PyTorchJob")
    results: dict[str, Any] = {}
    manifest = pytorch_job("applied", team="ml")
    manifest["metadata"]["namespace"] = "default"
    created = dynamic.server_side_apply(jobs, body=manifest, field_manager="sdk")
    results["created"] = created.to_dict()
    dynamic.patch(
        jobs,
        name="applied",
        namespace="default",
        body={"metadata": {"labels": {"team": "ops"}}},
        content_type="application/merge-patch+json",
        field_manager="hand-edit",
    )
    try:
        dynamic.server_side_apply(jobs, body=manifest, field_manager="sdk")
    except kubernetes.client.ApiException as exc:
        results["conflict"] = (exc.status, json.loads(exc.body))
    forced = dynamic.server_side_apply(
        jobs, body=manifest, field_manager="sdk", force_conflicts=True
    )
    results["forced"] = forced.to_dict()
    api_client.close()
    return results


async def test_official_client_server_side_apply(fake_cluster: FakeCluster) -> None:
    results = await asyncio.to_thread(official_apply, fake_cluster)

    managed = results["created"]["metadata"]["managedFields"]
    assert [(entry["manager"], entry["operation"]) for entry in managed] == [
        ("sdk", "Apply")
    ]
    status, body = results["conflict"]
    assert status == 409
    assert body["reason"] == "Conflict"
    assert body["details"]["causes"] == [
        {
            "reason": "FieldManagerConflict",
            "message": 'conflict with "hand-edit" using kubeflow.org/v1',
            "field": ".metadata.labels.team",
        }
    ]
    assert results["forced"]["metadata"]["labels"] == {"team": "ml"}
    owners = {
        entry["manager"] for entry in results["forced"]["metadata"]["managedFields"]
    }
    assert owners == {"sdk"}, "the forced apply took the only field of hand-edit"


def official_isvc(cluster: FakeCluster) -> dict[str, Any]:
    """Apply, list, patch, watch and delete an InferenceService (official client)."""
    api_client = official_client(cluster)
    dynamic = kubernetes.dynamic.DynamicClient(api_client)
    services = dynamic.resources.get(
        api_version="serving.kserve.io/v1beta1", kind="InferenceService"
    )
    custom = kubernetes.client.CustomObjectsApi(api_client)
    args = (ISVC[0], ISVC[1], "default", ISVC[2])
    manifest = inference_service("iris")
    manifest["metadata"].update(namespace="default", labels={"team": "ml"})
    results: dict[str, Any] = {}

    applied = dynamic.server_side_apply(services, body=manifest, field_manager="sdk")
    results["applied"] = applied.to_dict()

    listed = custom.list_namespaced_custom_object(*args, label_selector="team=ml")
    results["list"] = [item["metadata"]["name"] for item in listed["items"]]
    other = custom.list_namespaced_custom_object(*args, label_selector="team!=ml")
    results["other"] = other["items"]
    results["patched"] = custom.patch_namespaced_custom_object(
        *args, "iris", {"spec": {"predictor": {"canaryTrafficPercent": 10}}}
    )

    stream = kubernetes.watch.Watch()
    seen = []
    for event in stream.stream(
        custom.list_namespaced_custom_object,
        *args,
        field_selector="metadata.name=iris",
        timeout_seconds=1,
    ):
        seen.append(event["type"])
    results["watch"] = seen

    results["delete"] = custom.delete_namespaced_custom_object(*args, "iris")
    api_client.close()
    return results


async def test_official_client_inference_service(fake_cluster: FakeCluster) -> None:
    results = await asyncio.to_thread(official_isvc, fake_cluster)

    assert results["applied"]["metadata"]["generation"] == 1
    assert results["list"] == ["iris"]
    assert results["other"] == []
    predictor = results["patched"]["spec"]["predictor"]
    assert predictor["canaryTrafficPercent"] == 10
    assert predictor["model"]["storageUri"] == "s3://b/m"
    assert results["patched"]["metadata"]["generation"] == 2
    assert results["watch"][0] == "ADDED"
    assert results["delete"]["status"] == "Success"
    assert results["delete"]["details"]["kind"] == "inferenceservices"


@pytest_asyncio.fixture
async def async_custom(
    bare_cluster: FakeCluster,
) -> AsyncIterator[client.CustomObjectsApi]:
    configuration = client.Configuration()
    await config.load_kube_config(
        config_file=bare_cluster.kubeconfig_path,
        context=bare_cluster.context,
        client_configuration=configuration,
    )
    async with client.ApiClient(configuration) as api_client:
        yield client.CustomObjectsApi(api_client)


async def test_kubernetes_asyncio_crud_and_watch(
    async_custom: client.CustomObjectsApi, bare_cluster: FakeCluster
) -> None:
    args = (GROUP, VERSION, "default", "pytorchjobs")
    created = await async_custom.create_namespaced_custom_object(
        *args, pytorch_job("a", team="ml")
    )
    got = await async_custom.get_namespaced_custom_object(*args, "a")
    assert got["metadata"]["uid"] == created["metadata"]["uid"]
    listed = await async_custom.list_namespaced_custom_object(
        *args, label_selector="team in (ml)"
    )
    assert [item["metadata"]["name"] for item in listed["items"]] == ["a"]

    stream = watch.Watch()
    events: list[tuple[str, str]] = []

    async def collect() -> None:
        async with stream.stream(
            async_custom.list_namespaced_custom_object,
            *args,
            resource_version=listed["metadata"]["resourceVersion"],
            timeout_seconds=2,
        ) as items:
            async for event in items:
                events.append((event["type"], event["object"]["metadata"]["name"]))
                if len(events) == 2:
                    return

    reader = asyncio.create_task(collect())
    await asyncio.sleep(0.1)
    await async_custom.patch_namespaced_custom_object(
        *args,
        "a",
        {"spec": {"runPolicy": {"suspend": True}}},
        _content_type="application/merge-patch+json",
    )
    await async_custom.delete_namespaced_custom_object(*args, "a")
    await asyncio.wait_for(reader, 5)
    assert events == [("MODIFIED", "a"), ("DELETED", "a")]


async def test_kubernetes_asyncio_too_old_watch_raises_410(
    async_custom: client.CustomObjectsApi, bare_cluster: FakeCluster
) -> None:
    store = bare_cluster.store
    store.create(PJ_TYPE, {"metadata": {"name": "a", "namespace": "default"}})
    for index in range(60):  # more writes than the fixture's history_size of 50
        store.mutate(
            PJ_TYPE, "default", "a", lambda o, i=index: o.update(spec={"i": i})
        )
    stream = watch.Watch()
    with pytest.raises(client.ApiException) as caught:
        async with stream.stream(
            async_custom.list_namespaced_custom_object,
            GROUP,
            VERSION,
            "default",
            "pytorchjobs",
            resource_version="2",
            timeout_seconds=2,
        ) as items:
            async for _ in items:
                pass
    assert caught.value.status == 410
    assert "too old resource version" in str(caught.value)


async def test_kubernetes_asyncio_reads_gzipped_list(
    async_custom: client.CustomObjectsApi, bare_cluster: FakeCluster
) -> None:
    # aiohttp requests gzip, so a list above 128 KiB comes back compressed.
    args = (GROUP, VERSION, "default", "pytorchjobs")
    for index in range(3):
        job = pytorch_job(f"big-{index}")
        job["metadata"]["annotations"] = {"note": "y" * 60_000}
        await async_custom.create_namespaced_custom_object(*args, job)

    listed = await async_custom.list_namespaced_custom_object(*args)

    names = [item["metadata"]["name"] for item in listed["items"]]
    assert names == ["big-0", "big-1", "big-2"]
    notes = [item["metadata"]["annotations"]["note"] for item in listed["items"]]
    assert notes == ["y" * 60_000] * 3
