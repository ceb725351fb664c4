"""Scripts that the controllers pass to their pods by id, not inside the pod.

A controller-built pod carries only a short id in its script annotation. So a
scripted log line of several MiB stays out of the pod object and its watch
events, and within the 256 KiB that the API server allows for all annotations.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest
import pytest_asyncio
from kubernetes_asyncio import client, config, watch

from maestro_ml_async.testing import FakeCluster
from maestro_ml_async.testing import _scripts as scripts

Obj = dict[str, Any]
LONG_LINE = "x" * (5 * 1024 * 1024)


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


def batch_job(name: str) -> Obj:
    container = {"name": "main", "image": "app:1"}
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": name},
        "spec": {
            "backoffLimit": 0,
            "template": {"spec": {"restartPolicy": "Never", "containers": [container]}},
        },
    }


async def watch_until_succeeded(core: client.CoreV1Api, selector: str) -> Obj:
    """Watch pods until one is Succeeded and return its raw watch object."""
    stream = watch.Watch()
    try:
        async for event in stream.stream(
            core.list_namespaced_pod,
            "default",
            label_selector=selector,
            timeout_seconds=10,
            _preload_content=False,
        ):
            raw: Obj = event["raw_object"]
            if raw.get("status", {}).get("phase") == "Succeeded":
                return raw
    finally:
        stream.stop()
    raise AssertionError(f"no pod matching {selector} succeeded")


async def test_long_log_line_through_log_and_watch(
    fake_cluster: FakeCluster, api: client.ApiClient
) -> None:
    fake_cluster.scripts.set("jobs", "long-line", scripts.succeed(logs=[LONG_LINE]))
    core = client.CoreV1Api(api)
    watching = asyncio.ensure_future(watch_until_succeeded(core, "job-name=long-line"))
    await asyncio.sleep(0.05)
    await client.BatchV1Api(api).create_namespaced_job(
        "default", batch_job("long-line")
    )

    pod = await asyncio.wait_for(watching, 20)
    annotations = pod["metadata"]["annotations"]
    script_id = annotations[scripts.SCRIPT_ID_ANNOTATION]
    assert len(script_id) < 64
    assert scripts.SCRIPT_ANNOTATION not in annotations
    assert fake_cluster.scripts.by_id(script_id).logs == ((0.0, LONG_LINE),)

    name = pod["metadata"]["name"]
    log = await core.read_namespaced_pod_log(name, "default")
    assert log == LONG_LINE + "\n"


async def test_annotation_script_written_by_hand(
    fake_cluster: FakeCluster, api: client.ApiClient
) -> None:
    core = client.CoreV1Api(api)
    body = {
        "metadata": {
            "name": "by-hand",
            "annotations": {
                scripts.SCRIPT_ANNOTATION: '{"logs": ["one", "two"], "runTime": 0}'
            },
        },
        "spec": {
            "restartPolicy": "Never",
            "containers": [{"name": "main", "image": "app:1"}],
        },
    }
    await core.create_namespaced_pod("default", body)
    for _ in range(400):
        pod = await core.read_namespaced_pod("by-hand", "default")
        if pod.status.phase == "Succeeded":
            break
        await asyncio.sleep(0.01)
    assert pod.status.phase == "Succeeded"
    log = await core.read_namespaced_pod_log("by-hand", "default")
    assert log.splitlines() == ["one", "two"]


def test_same_script_gets_same_id() -> None:
    registry = scripts.Scripts()
    first = registry.register(scripts.succeed(logs=["a"]))
    again = registry.register(scripts.succeed(logs=["a"]))
    other = registry.register(scripts.succeed(logs=["b"]))
    assert first == again
    assert other != first
    assert registry.by_id(other).logs == ((0.0, "b"),)


def test_script_id_wins_over_script_annotation() -> None:
    registry = scripts.Scripts()
    script_id = registry.register(scripts.fail(exit_code=7))
    annotations = {
        scripts.SCRIPT_ID_ANNOTATION: script_id,
        scripts.SCRIPT_ANNOTATION: '{"outcome": "hang"}',
    }
    found = registry.for_pod("pods", "p", annotations=annotations)
    assert found.outcome == "fail"
    assert found.exit_code == 7


def test_unknown_script_id_is_invalid() -> None:
    registry = scripts.Scripts()
    annotations = {scripts.SCRIPT_ID_ANNOTATION: "pod-script-99"}
    with pytest.raises(ValueError, match="pod-script-99"):
        registry.for_pod("pods", "p", annotations=annotations)
