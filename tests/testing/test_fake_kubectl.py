"""kubectl against the fake cluster over TLS: apply, get, watch, patch, logs, delete."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio

from maestro_ml_async.testing import RESOURCE_TYPES, FakeCluster

KUBECTL = shutil.which("kubectl")
pytestmark = pytest.mark.skipif(KUBECTL is None, reason="kubectl is not installed")

PYTORCH_JOB = """
apiVersion: kubeflow.org/v1
kind: PyTorchJob
metadata:
  name: demo
  namespace: default
  labels: {team: ml}
spec:
  pytorchReplicaSpecs:
    Master:
      replicas: 1
      restartPolicy: OnFailure
      template:
        spec:
          containers:
          - name: pytorch
            image: pytorch/pytorch
"""

INFERENCE_SERVICE = """
apiVersion: serving.kserve.io/v1beta1
kind: InferenceService
metadata:
  name: iris
  namespace: default
spec:
  predictor:
    model:
      modelFormat: {name: sklearn}
      storageUri: s3://bucket/iris
"""


@pytest_asyncio.fixture
async def tls_cluster(tmp_path: Path) -> AsyncIterator[FakeCluster]:
    async with FakeCluster(tls=True, tick=0.01) as cluster:
        yield cluster


async def kubectl(
    cluster: FakeCluster, *args: str, stdin: str | None = None, timeout: float = 20
) -> tuple[int, str, str]:
    assert KUBECTL is not None
    env = dict(os.environ, KUBECONFIG=cluster.kubeconfig_path)
    process = await asyncio.create_subprocess_exec(
        KUBECTL,
        "--context",
        cluster.context,
        *args,
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=env,
    )
    data = stdin.encode() if stdin is not None else None
    stdout, stderr = await asyncio.wait_for(process.communicate(data), timeout)
    assert process.returncode is not None
    return process.returncode, stdout.decode(), stderr.decode()


async def kubectl_json(cluster: FakeCluster, *args: str) -> Any:
    code, out, err = await kubectl(cluster, *args, "-o", "json")
    assert code == 0, err
    return json.loads(out)


async def wait_for(predicate: Any, timeout: float = 5.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not await predicate():
        assert asyncio.get_running_loop().time() < deadline, "condition not reached"
        await asyncio.sleep(0.05)


async def test_apply_get_patch_delete_pytorchjob(tls_cluster: FakeCluster) -> None:
    code, out, err = await kubectl(
        tls_cluster, "apply", "--validate=false", "-f", "-", stdin=PYTORCH_JOB
    )
    assert code == 0, err
    assert out.strip() == "pytorchjob.kubeflow.org/demo created"

    code, out, err = await kubectl(tls_cluster, "get", "pytorchjobs")
    assert code == 0, err
    header, row = out.splitlines()[:2]
    assert header.split() == ["NAME", "STATE", "AGE"]
    assert row.split()[0] == "demo"

    listed = await kubectl_json(tls_cluster, "get", "pytorchjobs", "-l", "team=ml")
    assert [item["metadata"]["name"] for item in listed["items"]] == ["demo"]
    none = await kubectl_json(tls_cluster, "get", "pytorchjobs", "-l", "team!=ml")
    assert none["items"] == []

    merge = '{"metadata":{"labels":{"stage":"one"}}}'
    code, _, err = await kubectl(
        tls_cluster, "patch", "pytorchjob", "demo", "--type", "merge", "-p", merge
    )
    assert code == 0, err
    ops = '[{"op":"replace","path":"/metadata/labels/stage","value":"two"}]'
    code, _, err = await kubectl(
        tls_cluster, "patch", "pytorchjob", "demo", "--type", "json", "-p", ops
    )
    assert code == 0, err
    got = await kubectl_json(tls_cluster, "get", "pytorchjob", "demo")
    assert got["metadata"]["labels"] == {"team": "ml", "stage": "two"}

    code, out, err = await kubectl(tls_cluster, "delete", "pytorchjob", "demo")
    assert code == 0, err
    assert 'pytorchjob.kubeflow.org "demo" deleted' in out
    code, _, err = await kubectl(tls_cluster, "get", "pytorchjob", "demo")
    assert code == 1
    assert 'pytorchjobs.kubeflow.org "demo" not found' in err


async def test_reapply_and_server_side_apply(tls_cluster: FakeCluster) -> None:
    code, _, err = await kubectl(
        tls_cluster, "apply", "--validate=false", "-f", "-", stdin=INFERENCE_SERVICE
    )
    assert code == 0, err
    changed = INFERENCE_SERVICE.replace("s3://bucket/iris", "s3://bucket/iris-v2")
    code, out, err = await kubectl(
        tls_cluster, "apply", "--validate=false", "-f", "-", stdin=changed
    )
    assert code == 0, err
    assert "configured" in out
    got = await kubectl_json(tls_cluster, "get", "inferenceservice", "iris")
    assert got["spec"]["predictor"]["model"]["storageUri"] == "s3://bucket/iris-v2"
    assert got["metadata"]["generation"] == 2
    code, out, err = await kubectl(
        tls_cluster,
        "apply",
        "--server-side",
        "--validate=false",
        "-f",
        "-",
        stdin=changed,
    )
    assert code == 0, err
    assert "serverside-applied" in out
    code, out, err = await kubectl(tls_cluster, "delete", "isvc", "iris")
    assert code == 0, err
    code, out, _ = await kubectl(tls_cluster, "get", "isvc")
    assert out == ""


async def test_watch_prints_changes(tls_cluster: FakeCluster) -> None:
    code, _, err = await kubectl(
        tls_cluster, "apply", "--validate=false", "-f", "-", stdin=PYTORCH_JOB
    )
    assert code == 0, err
    watcher = asyncio.create_task(
        kubectl(
            tls_cluster,
            "get",
            "pytorchjobs",
            "--watch-only",
            "--request-timeout=3s",
            timeout=15,
        )
    )
    await asyncio.sleep(1.0)
    code, _, err = await kubectl(tls_cluster, "label", "pytorchjob", "demo", "w=1")
    assert code == 0, err
    _, out, _ = await watcher
    rows = [line.split() for line in out.splitlines() if line.strip()]
    assert rows[0] == ["NAME", "STATE", "AGE"], out
    assert len(rows) >= 2, "kubectl printed no watch rows"
    assert all(row[0] == "demo" for row in rows[1:]), out


async def test_pod_logs(tls_cluster: FakeCluster) -> None:
    code, _, err = await kubectl(
        tls_cluster, "apply", "--validate=false", "-f", "-", stdin=PYTORCH_JOB
    )
    assert code == 0, err

    async def pod_done() -> bool:
        pods = await kubectl_json(
            tls_cluster, "get", "pods", "-l", "training.kubeflow.org/job-name=demo"
        )
        phases = [item["status"].get("phase") for item in pods["items"]]
        return phases == ["Succeeded"]

    await wait_for(pod_done)
    tls_cluster.pod_logs.append("default", "demo-master-0", "pytorch", "extra line")
    code, out, err = await kubectl(tls_cluster, "logs", "demo-master-0")
    assert code == 0, err
    assert out.splitlines()[-1] == "extra line"
    code, out, err = await kubectl(
        tls_cluster, "logs", "demo-master-0", "--timestamps", "--tail", "1"
    )
    assert code == 0, err
    stamp, _, text = out.strip().partition(" ")
    assert stamp.endswith("Z")
    assert text == "extra line"


async def test_apply_validates_without_flag(tls_cluster: FakeCluster) -> None:
    code, out, err = await kubectl(
        tls_cluster, "apply", "-f", "-", "-v=6", stdin=PYTORCH_JOB
    )
    assert code == 0, err
    assert "pytorchjob.kubeflow.org/demo created" in out
    # kubectl asked the server to validate, which it does only after reading
    # the group version's OpenAPI v3 document.
    assert "fieldValidation=Strict" in err
    assert "/openapi/v3/apis/kubeflow.org/v1" in err

    code, out, err = await kubectl(tls_cluster, "apply", "-f", "-", stdin=PYTORCH_JOB)
    assert code == 0, err
    assert "unchanged" in out
    changed = INFERENCE_SERVICE.replace("s3://bucket/iris", "s3://bucket/iris-2")
    for manifest in (INFERENCE_SERVICE, changed):
        code, out, err = await kubectl(tls_cluster, "apply", "-f", "-", stdin=manifest)
        assert code == 0, err
    served = await kubectl_json(tls_cluster, "get", "isvc", "iris", "-n", "default")
    assert served["spec"]["predictor"]["model"]["storageUri"] == "s3://bucket/iris-2"


async def test_typed_generator_gets_clear_error(tls_cluster: FakeCluster) -> None:
    code, _, err = await kubectl(
        tls_cluster, "create", "configmap", "literal", "--from-literal=a=b"
    )

    assert code != 0
    assert "does not decode protobuf" in err
    assert "kubectl create -f" in err
    assert tls_cluster.store.peek(RESOURCE_TYPES["configmaps"]) == []


async def test_server_side_apply_conflict(tls_cluster: FakeCluster) -> None:
    code, _, err = await kubectl(
        tls_cluster, "apply", "--server-side", "-f", "-", stdin=PYTORCH_JOB
    )
    assert code == 0, err
    merge = '{"metadata":{"labels":{"team":"ops"}}}'
    code, _, err = await kubectl(
        tls_cluster, "patch", "pytorchjob", "demo", "--type", "merge", "-p", merge
    )
    assert code == 0, err

    code, _, err = await kubectl(
        tls_cluster, "apply", "--server-side", "-f", "-", stdin=PYTORCH_JOB
    )

    assert code == 1
    assert (
        'Apply failed with 1 conflict: conflict with "kubectl-patch" using '
        "kubeflow.org/v1: .metadata.labels.team"
    ) in err
    code, _, err = await kubectl(
        tls_cluster,
        "apply",
        "--server-side",
        "--force-conflicts",
        "-f",
        "-",
        stdin=PYTORCH_JOB,
    )
    assert code == 0, err
    got = await kubectl_json(
        tls_cluster, "get", "pytorchjob", "demo", "--show-managed-fields"
    )
    assert got["metadata"]["labels"] == {"team": "ml"}
    owners = {
        (entry["manager"], entry["operation"])
        for entry in got["metadata"]["managedFields"]
        if "subresource" not in entry
    }
    assert owners == {("kubectl", "Apply")}


async def test_set_image_merges_containers(tls_cluster: FakeCluster) -> None:
    pod = """
apiVersion: v1
kind: Pod
metadata: {name: two, namespace: default}
spec:
  containers:
  - {name: main, image: busybox, command: [sleep, "60"]}
  - {name: side, image: envoy}
"""
    code, _, err = await kubectl(tls_cluster, "apply", "-f", "-", stdin=pod)
    assert code == 0, err

    code, _, err = await kubectl(
        tls_cluster, "set", "image", "pod/two", "main=busybox:2"
    )

    assert code == 0, err
    got = await kubectl_json(tls_cluster, "get", "pod", "two")
    assert got["spec"]["containers"] == [
        {"name": "main", "image": "busybox:2", "command": ["sleep", "60"]},
        {"name": "side", "image": "envoy"},
    ]


async def test_inference_service_lifecycle(tls_cluster: FakeCluster) -> None:
    labelled = INFERENCE_SERVICE.replace(
        "  namespace: default\n", "  namespace: default\n  labels: {team: ml}\n"
    )
    code, out, err = await kubectl(tls_cluster, "apply", "-f", "-", stdin=labelled)
    assert code == 0, err
    assert out.strip() == "inferenceservice.serving.kserve.io/iris created"
    code, out, err = await kubectl(
        tls_cluster,
        "wait",
        "--for=condition=Ready",
        "isvc/iris",
        "--timeout=20s",
    )
    assert code == 0, err
    assert "condition met" in out

    listed = await kubectl_json(tls_cluster, "get", "isvc", "-l", "team in (ml,ops)")
    assert [item["metadata"]["name"] for item in listed["items"]] == ["iris"]
    none = await kubectl_json(tls_cluster, "get", "isvc", "-l", "!team")
    assert none["items"] == []
    code, out, err = await kubectl(tls_cluster, "describe", "isvc", "iris")
    assert code == 0, err
    assert "Name:         iris" in out
    assert "Storage Uri:  s3://bucket/iris" in out

    watcher = asyncio.create_task(
        kubectl(
            tls_cluster,
            "get",
            "isvc",
            "iris",
            "--watch-only",
            "--output-watch-events",
            "-o",
            "json",
            "--request-timeout=3s",
            timeout=15,
        )
    )
    await asyncio.sleep(1.0)
    merge = '{"spec":{"predictor":{"minReplicas":2}}}'
    code, _, err = await kubectl(
        tls_cluster, "patch", "isvc", "iris", "--type", "merge", "-p", merge
    )
    assert code == 0, err
    _, out, _ = await watcher
    decoder = json.JSONDecoder()
    events, index = [], 0
    text = out.strip()
    while index < len(text):
        event, end = decoder.raw_decode(text, index)
        events.append(event)
        index = end
        while index < len(text) and text[index].isspace():
            index += 1
    assert events, "kubectl printed no watch events"
    assert {event["type"] for event in events} == {"MODIFIED"}
    last = events[-1]["object"]
    assert last["spec"]["predictor"]["minReplicas"] == 2

    code, out, err = await kubectl(tls_cluster, "delete", "isvc", "iris", "--wait")
    assert code == 0, err
    assert 'inferenceservice.serving.kserve.io "iris" deleted' in out
    code, _, err = await kubectl(tls_cluster, "get", "isvc", "iris")
    assert code == 1
    assert 'inferenceservices.serving.kserve.io "iris" not found' in err


async def test_get_reads_gzipped_list(tls_cluster: FakeCluster) -> None:
    # kubectl requests gzip, so a list above 128 KiB comes back compressed.
    manifest = json.dumps(
        {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": "big", "namespace": "default"},
            "data": {"v": "z" * 200_000},
        }
    )
    code, _, err = await kubectl(tls_cluster, "create", "-f", "-", stdin=manifest)
    assert code == 0, err

    listed = await kubectl_json(tls_cluster, "get", "configmaps")

    (item,) = [i for i in listed["items"] if i["metadata"]["name"] == "big"]
    assert item["data"]["v"] == "z" * 200_000
