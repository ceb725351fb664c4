"""Submitting jobs: validation, manifests per framework, shipped code, listing."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from _training_helpers import NAMESPACE, eventually

from maestro_ml_async import (
    AsyncMaestroClient,
    KubernetesNotFoundException,
    ValidationException,
)
from maestro_ml_async.testing import RESOURCE_TYPES, FakeCluster
from maestro_ml_async.testing._scripts import hang
from maestro_ml_async.types.training import JobStatus

CONFIGMAPS = RESOURCE_TYPES["configmaps"]

INVALID = [
    ({"name": "Bad_Name"}, "not a valid Kubernetes name"),
    ({"name": "x" * 64}, "maximum is 63"),
    ({"name": ""}, "non-empty"),
    ({"framework": "caffe"}, "unknown framework"),
    ({"framework": "pytorch:rt"}, "only trainjob"),
    ({"image": ""}, "image"),
    ({"image": "has space"}, "image"),
    ({"gpus": -1}, "gpus must not be negative"),
    ({"workers": -2}, "workers must not be negative"),
    ({"workers": 1.5}, "workers must be an integer"),
    ({"workers": 2**31}, "workers must be at most 2,147,483,647"),
    (
        {"framework": "sklearn", "workers": 100_001},
        "workers must be at most 100,000 for a batch Job",
    ),
    (
        {"framework": "custom", "workers": 10**9},
        "workers must be at most 100,000 for a batch Job",
    ),
    ({"framework": "trainjob", "workers": 2**40}, "at most 2,147,483,647"),
    ({"gpus": True}, "gpus must be an integer"),
    ({"command": "python train.py"}, "command must be a list"),
    ({"env": {"1BAD": "x"}}, "not a valid variable name"),
    ({"labels": {"team": "a b"}}, "label value"),
    ({"params": {"": 1}}, "non-empty strings"),
    ({"namespace": "Bad"}, "namespace"),
]


@pytest.mark.parametrize(("change", "message"), INVALID)
async def test_invalid_submit_sends_nothing(
    cluster: FakeCluster,
    client: AsyncMaestroClient,
    change: dict[str, Any],
    message: str,
) -> None:
    arguments: dict[str, Any] = {"name": "ok", "framework": "pytorch", "image": "img"}
    arguments.update(change)
    writes_before = cluster.stats.requests_by_verb["create"]
    with pytest.raises(ValidationException, match=message):
        await client.training.submit_job(**arguments)
    assert cluster.stats.requests_by_verb["create"] == writes_before


FRAMEWORK_SHAPES = [
    ("pytorch", "PyTorchJob", "pytorchReplicaSpecs", "pytorch", "Master"),
    ("tensorflow", "TFJob", "tfReplicaSpecs", "tensorflow", "Chief"),
    ("xgboost", "XGBoostJob", "xgbReplicaSpecs", "xgboost", "Master"),
    ("mpi", "MPIJob", "mpiReplicaSpecs", "mpi", "Launcher"),
    ("paddle", "PaddleJob", "paddleReplicaSpecs", "paddle", "Master"),
    ("jax", "JAXJob", "jaxReplicaSpecs", "jax", None),
]


@pytest.mark.parametrize(
    ("framework", "kind", "field", "container", "master"), FRAMEWORK_SHAPES
)
async def test_operator_kinds_manifest(
    client: AsyncMaestroClient,
    framework: str,
    kind: str,
    field: str,
    container: str,
    master: str | None,
) -> None:
    job = await client.training.submit_job(
        f"k-{framework}", framework, "img:1", gpus=2, workers=2
    )
    assert job.kind == kind
    assert job.api_version == "kubeflow.org/v1"
    replicas = job.raw["spec"][field]
    expected_types = {"Worker"} if master is None else {master, "Worker"}
    assert set(replicas) == expected_types
    assert replicas["Worker"]["replicas"] == 2
    if master is not None:
        assert replicas[master]["replicas"] == 1
    for spec in replicas.values():
        (only,) = spec["template"]["spec"]["containers"]
        assert only["name"] == container
        assert only["resources"]["limits"]["nvidia.com/gpu"] == "2"
        labels = spec["template"]["metadata"]["labels"]
        assert labels["maestro-ml.io/framework"] == framework
    await client.training.delete_job(job.name)


async def test_batch_and_trainjob_manifests(client: AsyncMaestroClient) -> None:
    batch = await client.training.submit_job(
        "bj", "custom", "img", command=["run"], workers=3
    )
    assert batch.kind == "Job"
    spec = batch.raw["spec"]
    assert spec["completions"] == 3
    assert spec["parallelism"] == 3
    assert spec["completionMode"] == "Indexed"
    assert spec["template"]["spec"]["restartPolicy"] == "Never"
    train = await client.training.submit_job(
        "tj", "trainjob:torch-tune", "img", gpus=1, workers=2, params={"epochs": 3}
    )
    assert train.kind == "TrainJob"
    assert train.api_version == "trainer.kubeflow.org/v1alpha1"
    tspec = train.raw["spec"]
    assert tspec["runtimeRef"]["name"] == "torch-tune"
    assert tspec["trainer"]["numNodes"] == 2
    assert tspec["trainer"]["resourcesPerNode"]["limits"]["nvidia.com/gpu"] == "1"
    assert tspec["trainer"]["args"] == ["--epochs=3"]


async def test_params_env_and_launcher(client: AsyncMaestroClient) -> None:
    job = await client.training.submit_job(
        "launch",
        "pytorch",
        "img",
        code_path="/app/train.py",
        args=["--data=/d"],
        gpus=4,
        workers=1,
        params={"learning-rate": 0.01, "use_amp": True},
        env={"MLFLOW_EXPERIMENT_NAME": "mine", "EXTRA": "1"},
        resources={"cpu": "2", "memory": "4Gi"},
    )
    container = job.raw["spec"]["pytorchReplicaSpecs"]["Master"]["template"]["spec"][
        "containers"
    ][0]
    assert container["command"] == [
        "torchrun",
        "--nproc-per-node=4",
        "/app/train.py",
    ]
    assert container["args"] == ["--data=/d", "--learning-rate=0.01", "--use_amp=true"]
    env = {e["name"]: e["value"] for e in container["env"]}
    assert env["PARAM_LEARNING_RATE"] == "0.01"
    assert env["PARAM_USE_AMP"] == "true"
    assert env["MLFLOW_EXPERIMENT_NAME"] == "mine"
    assert env["MLFLOW_TRACKING_URI"] == "http://127.0.0.1:9"
    assert env["EXTRA"] == "1"
    assert container["resources"]["requests"] == {"cpu": "2", "memory": "4Gi"}
    assert container["resources"]["limits"]["nvidia.com/gpu"] == "4"
    single = await client.training.submit_job(
        "launch1", "pytorch", "img", code_path="/app/train.py", gpus=1
    )
    spec = single.raw["spec"]["pytorchReplicaSpecs"]["Master"]["template"]["spec"]
    assert spec["containers"][0]["command"] == ["python", "/app/train.py"]
    assert "volumes" not in spec


async def test_code_folder_ships_in_owned_configmap(
    cluster: FakeCluster, client: AsyncMaestroClient, tmp_path: Path
) -> None:
    code = tmp_path / "code"
    (code / "pkg").mkdir(parents=True)
    (code / "train.py").write_text("print('hi')\n")
    (code / "pkg" / "model.py").write_text("X = 1\n")
    (code / "weights.bin").write_bytes(b"\x00\xff\x10")
    cluster.scripts.set("pytorchjobs", "shipped", hang())
    job = await client.training.submit_job(
        "shipped", "pytorch", "img", code_path=code, workers=1
    )
    configmap = cluster.store.get(CONFIGMAPS, NAMESPACE, "shipped-code")
    assert configmap is not None
    assert configmap["data"]["train.py"] == "print('hi')\n"
    assert configmap["data"]["pkg__model.py"] == "X = 1\n"
    assert configmap["binaryData"]["weights.bin"] == "AP8Q"
    (owner,) = configmap["metadata"]["ownerReferences"]
    assert owner["uid"] == job.uid
    assert owner["kind"] == "PyTorchJob"
    for replica in job.raw["spec"]["pytorchReplicaSpecs"].values():
        spec = replica["template"]["spec"]
        (volume,) = spec["volumes"]
        assert volume["configMap"]["name"] == "shipped-code"
        paths = {item["key"]: item["path"] for item in volume["configMap"]["items"]}
        assert paths["pkg__model.py"] == "pkg/model.py"
        (mount,) = spec["containers"][0]["volumeMounts"]
        assert mount["readOnly"] is True
        assert spec["containers"][0]["command"] == [
            "python",
            "/opt/maestro/code/train.py",
        ]
    await client.training.delete_job("shipped")
    await eventually(
        lambda: cluster.store.get(CONFIGMAPS, NAMESPACE, "shipped-code") is None,
        what="ConfigMap deleted with its job",
    )
    with pytest.raises(KubernetesNotFoundException):
        await client.training.get_job("shipped")


async def test_code_above_limit_is_rejected(
    cluster: FakeCluster, client: AsyncMaestroClient, tmp_path: Path
) -> None:
    big = tmp_path / "big"
    big.mkdir()
    (big / "train.py").write_text("x = 1\n")
    (big / "data.txt").write_text("a" * (1024 * 1024))
    creates = cluster.stats.requests_by_verb["create"]
    with pytest.raises(ValidationException, match="size limit of a ConfigMap"):
        await client.training.submit_job("big", "pytorch", "img", code_path=big)
    assert cluster.stats.requests_by_verb["create"] == creates


async def test_code_folder_without_entry_needs_command(
    client: AsyncMaestroClient, tmp_path: Path
) -> None:
    (tmp_path / "lib.py").write_text("pass\n")
    with pytest.raises(ValidationException, match="without train\\.py"):
        await client.training.submit_job("noentry", "custom", "img", code_path=tmp_path)


async def test_failed_job_create_removes_configmap(
    cluster: FakeCluster, client: AsyncMaestroClient, tmp_path: Path
) -> None:
    script = tmp_path / "train.py"
    script.write_text("pass\n")
    cluster.faults.fail(500, times=None, verb="create", plural="pytorchjobs")
    with pytest.raises(Exception, match="500"):
        await client.training.submit_job("orphan", "pytorch", "img", code_path=script)
    assert cluster.store.get(CONFIGMAPS, NAMESPACE, "orphan-code") is None


async def test_list_jobs_pages_across_kinds(
    cluster: FakeCluster, client: AsyncMaestroClient
) -> None:
    for index in range(7):
        await client.training.submit_job(
            f"pt-{index}", "pytorch", "img", labels={"team": "a"}
        )
    await client.training.submit_job("tf-0", "tensorflow", "img", labels={"team": "b"})
    await client.training.submit_job("sk-0", "sklearn", "img", labels={"team": "a"})
    transport = await client._cluster.get()
    cluster.store.create(
        RESOURCE_TYPES["jobs.batch"],
        {
            "metadata": {"name": "foreign", "namespace": NAMESPACE},
            "spec": {
                "template": {"spec": {"containers": [{"name": "c", "image": "i"}]}}
            },
        },
    )
    names = [job.name async for job in client.training.list_jobs()]
    assert sorted(names) == sorted([f"pt-{i}" for i in range(7)] + ["tf-0", "sk-0"])
    team_a = [job.name async for job in client.training.list_jobs("team=a")]
    assert sorted(team_a) == sorted([f"pt-{i}" for i in range(7)] + ["sk-0"])
    assert transport is not None


async def test_list_jobs_uses_limit_and_continue(
    cluster: FakeCluster, client: AsyncMaestroClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    import maestro_ml_async._transport._kube as kube

    monkeypatch.setattr(kube, "_LIST_PAGE_SIZE", 2)
    for index in range(5):
        await client.training.submit_job(f"page-{index}", "pytorch", "img")
    lists_before = cluster.stats.requests_by_resource["list pytorchjobs"]
    names = [job.name async for job in client.training.list_jobs()]
    assert names == [f"page-{i}" for i in range(5)]
    assert cluster.stats.requests_by_resource["list pytorchjobs"] - lists_before == 3


async def test_cancel_suspends_and_wait_says_so(
    cluster: FakeCluster, client: AsyncMaestroClient
) -> None:
    from maestro_ml_async import TrainingException

    cluster.scripts.set("pytorchjobs", "stopme", hang())
    job = await client.training.submit_job("stopme", "pytorch", "img", workers=1)
    await job.wait(until="running", timeout=5)
    await job.cancel()
    suspended = await job.wait(until="suspended", timeout=5)
    assert suspended.status is JobStatus.SUSPENDED
    with pytest.raises(TrainingException, match="cancelled") as caught:
        await job.wait(timeout=5)
    assert caught.value.reason == "Cancelled"
