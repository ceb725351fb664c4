"""Checks that run before the cluster is touched: versions, storage URIs, inputs."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import pytest_asyncio
from _deployment_helpers import (
    ISVC,
    NAMESPACE,
    RegisteredModel,
    make_client,
    register_run_model,
    stored_isvcs,
)

from maestro_ml_async import AsyncMaestroClient
from maestro_ml_async._exceptions import (
    DeploymentException,
    ModelVersionNotFoundException,
    ValidationException,
)
from maestro_ml_async.testing import FakeCluster


@pytest_asyncio.fixture
async def fresh(
    cluster: FakeCluster, mlflow_server_url: str
) -> AsyncIterator[AsyncMaestroClient]:
    """A client whose cluster transport has not been built yet."""
    async with make_client(cluster, mlflow_server_url) as maestro:
        yield maestro


@pytest_asyncio.fixture
async def fresh_unmapped(
    cluster: FakeCluster, mlflow_server_url: str
) -> AsyncIterator[AsyncMaestroClient]:
    """A client without a storage URI map."""
    async with make_client(cluster, mlflow_server_url, storage_uri_map={}) as maestro:
        yield maestro


def assert_cluster_untouched(maestro: AsyncMaestroClient, cluster: FakeCluster) -> None:
    assert not maestro._cluster.loaded
    assert stored_isvcs(cluster) == []
    assert cluster.stats.requests_by_verb.get("create", 0) == 0


@pytest.mark.parametrize(
    ("selector", "fragment"),
    [
        ({"model_version": 99}, "99"),
        ({"alias": "nobody"}, "nobody"),
        ({"stage": "Production"}, "Production"),
    ],
)
async def test_missing_version_skips_cluster(
    fresh: AsyncMaestroClient,
    cluster: FakeCluster,
    model: RegisteredModel,
    deployment_name: str,
    selector: dict[str, object],
    fragment: str,
) -> None:
    with pytest.raises(ModelVersionNotFoundException) as caught:
        await fresh.deployment.deploy(deployment_name, model.name, **selector)  # type: ignore[arg-type]
    assert fragment in str(caught.value)
    assert_cluster_untouched(fresh, cluster)


async def test_missing_model_skips_cluster(
    fresh: AsyncMaestroClient, cluster: FakeCluster, unique: str
) -> None:
    with pytest.raises(ModelVersionNotFoundException):
        await fresh.deployment.deploy(
            f"svc-{unique}", f"absent-{unique}", model_version=1
        )
    with pytest.raises(ModelVersionNotFoundException):
        await fresh.deployment.deploy(f"svc-{unique}", f"absent-{unique}", alias="a")
    assert_cluster_untouched(fresh, cluster)


async def test_stage_resolves_latest_in_stage(
    kclient: AsyncMaestroClient, model: RegisteredModel, deployment_name: str
) -> None:
    await kclient._mlflow.call(
        "POST",
        "model-versions/transition-stage",
        json={
            "name": model.name,
            "version": "2",
            "stage": "Staging",
            "archive_existing_versions": False,
        },
    )
    created = await kclient.deployment.deploy(
        deployment_name, model.name, stage="staging"
    )
    assert created.model_version == "2"
    assert created.storage_uri == model.sources[1] + "/"


async def test_unmapped_proxy_uri_creates_nothing(
    fresh_unmapped: AsyncMaestroClient,
    cluster: FakeCluster,
    unique: str,
    deployment_name: str,
) -> None:
    name = f"proxy-{unique}"
    source = await register_run_model(fresh_unmapped, name)
    assert source.startswith("mlflow-artifacts:")
    with pytest.raises(DeploymentException) as caught:
        await fresh_unmapped.deployment.deploy(deployment_name, name, model_version=1)
    message = str(caught.value)
    assert source in message
    assert "storage_uri_map" in message
    assert "MAESTRO_ML_STORAGE_URI_MAP" in message
    assert caught.value.deployment_name == deployment_name
    assert_cluster_untouched(fresh_unmapped, cluster)


async def test_local_path_creates_nothing(
    fresh: AsyncMaestroClient,
    cluster: FakeCluster,
    unique: str,
    deployment_name: str,
    tmp_path: Path,
) -> None:
    name = f"local-{unique}"
    source = await register_run_model(fresh, name, artifact_location=str(tmp_path))
    with pytest.raises(DeploymentException) as caught:
        await fresh.deployment.deploy(deployment_name, name, model_version=1)
    assert "local path" in str(caught.value)
    assert repr(source) in str(caught.value)
    assert_cluster_untouched(fresh, cluster)


async def test_proxy_uri_mapped_to_pvc(
    kclient: AsyncMaestroClient, unique: str, deployment_name: str
) -> None:
    name = f"mapped-{unique}"
    source = await register_run_model(kclient, name)
    created = await kclient.deployment.deploy(deployment_name, name, model_version=1)
    rest = source.removeprefix("mlflow-artifacts:/")
    assert created.storage_uri == f"pvc://mlflow-artifacts/{rest}"
    annotations = created.raw["metadata"]["annotations"]
    assert annotations["maestro-ml.io/artifact-uri"] == source


@pytest.mark.parametrize(
    ("arguments", "fragment"),
    [
        ({"name": "Bad_Name"}, "deployment name"),
        ({"name": "1svc"}, "start with a lowercase letter"),
        ({"name": "s" * 48}, "maximum is 47"),
        ({"model_version": 1, "alias": "champion"}, "exclusive"),
        ({"model_version": None}, "exactly one"),
        ({"model_version": "x"}, "positive integer"),
        ({"alias": "bad alias"}, "alias"),
        ({"stage": "Prod"}, "stage must be one of"),
        ({"replicas": -1}, "replicas must be at least 0"),
        ({"replicas": 3, "max_replicas": 2}, "max_replicas must be at least 3"),
        ({"strategy": "shadow"}, "strategy must be one of"),
        ({"canary_traffic_percent": 10}, "applies only to strategy='canary'"),
        ({"strategy": "canary", "canary_traffic_percent": 100}, "between 1 and 99"),
        ({"model_format": "pickle"}, "model_format must be one of"),
        ({"model_format": "pickle"}, "also pass runtime="),
        ({"model_format": ""}, "non-empty string"),
        ({"model_format": "bad format!", "runtime": "custom-rt"}, "is invalid"),
        ({"model_format": "x" * 64, "runtime": "custom-rt"}, "at most 63"),
        ({"protocol_version": "v3"}, "protocol_version must be one of"),
        ({"resources": {"cpu": []}}, "quantity of 'cpu'"),
        ({"resources": {"memory": "2GB"}}, "not a valid quantity"),
        ({"resources": {"limits": {"cpu": "1 core"}}}, "not a valid quantity"),
        ({"resources": {"cpu": "-500m"}}, "must not be negative"),
        ({"resources": {"cpu": float("nan")}}, "not a valid quantity"),
        ({"resources": {"limits": {"cpu": "1"}, "cpu": "1"}}, "mixes"),
        ({"runtime": "Not A Name"}, "runtime"),
        ({"namespace": "Bad NS"}, "namespace"),
    ],
)
async def test_invalid_arguments_rejected(
    fresh: AsyncMaestroClient,
    cluster: FakeCluster,
    unique: str,
    arguments: dict[str, object],
    fragment: str,
) -> None:
    call: dict[str, object] = {
        "name": f"svc-{unique}",
        "model_name": f"never-{unique}",
        "model_version": 1,
    }
    call.update(arguments)
    if "alias" in arguments and "model_version" not in arguments:
        call.pop("model_version")
    if "stage" in arguments:
        call.pop("model_version")
    with pytest.raises(ValidationException) as caught:
        await fresh.deployment.deploy(**call)  # type: ignore[arg-type]
    assert fragment in str(caught.value)
    assert_cluster_untouched(fresh, cluster)


async def test_update_validation_and_missing(
    kclient: AsyncMaestroClient, model: RegisteredModel, deployment_name: str
) -> None:
    api = kclient.deployment
    with pytest.raises(ValidationException):
        await api.update(deployment_name, model_version=1, alias="champion")
    with pytest.raises(ValidationException):
        await api.update(deployment_name, model_name=model.name)
    with pytest.raises(ValidationException):
        await api.update(deployment_name, strategy="canary", canary_traffic_percent=0)
    with pytest.raises(ValidationException):
        await api.wait_ready(deployment_name, timeout=0)
    with pytest.raises(ValidationException):
        api.list_deployments(page_size=0)
    from maestro_ml_async._exceptions import KubernetesNotFoundException

    with pytest.raises(KubernetesNotFoundException):
        await api.update(deployment_name, replicas=2)
    with pytest.raises(KubernetesNotFoundException):
        await api.promote(deployment_name)
    with pytest.raises(KubernetesNotFoundException):
        await api.wait_ready(deployment_name, timeout=1)


async def test_deploy_existing_name_rejected(
    kclient: AsyncMaestroClient, model: RegisteredModel, deployment_name: str
) -> None:
    api = kclient.deployment
    await api.deploy(deployment_name, model.name, alias="champion")
    with pytest.raises(DeploymentException) as caught:
        await api.deploy(deployment_name, model.name, model_version=2)
    assert "already exists" in str(caught.value)
    kept = await api.get_deployment(deployment_name)
    assert kept.model_version == "1"


async def test_rollback_without_history_rejected(
    kclient: AsyncMaestroClient, model: RegisteredModel, deployment_name: str
) -> None:
    await kclient.deployment.deploy(deployment_name, model.name, alias="champion")
    with pytest.raises(DeploymentException) as caught:
        await kclient.deployment.rollback(deployment_name)
    assert "no previous version" in str(caught.value)


async def test_serving_options_reach_spec(
    kclient: AsyncMaestroClient,
    cluster: FakeCluster,
    model: RegisteredModel,
    deployment_name: str,
) -> None:
    api = kclient.deployment
    await api.deploy(
        deployment_name,
        model.name,
        model_version=2,
        replicas=0,
        max_replicas=4,
        model_format="sklearn",
        protocol_version="v2",
        runtime="kserve-sklearnserver",
        resources={"requests": {"cpu": "500m"}, "limits": {"memory": "1Gi"}},
    )
    stored = stored_isvcs(cluster)[0]
    predictor = stored["spec"]["predictor"]
    assert predictor["minReplicas"] == 0
    assert predictor["maxReplicas"] == 4
    assert predictor["model"]["modelFormat"] == {"name": "sklearn"}
    assert predictor["model"]["protocolVersion"] == "v2"
    assert predictor["model"]["runtime"] == "kserve-sklearnserver"

    updated = await api.update(deployment_name, resources={"cpu": "1"}, max_replicas=6)
    model_spec = updated.raw["spec"]["predictor"]["model"]
    assert model_spec["resources"] == {
        "requests": {"cpu": "1"},
        "limits": {"cpu": "1"},
    }
    assert updated.max_replicas == 6
    assert updated.model_format == "sklearn"
    assert updated.runtime == "kserve-sklearnserver"


async def test_s3_mlflow_directory_gets_slash(
    kclient: AsyncMaestroClient,
    cluster: FakeCluster,
    model: RegisteredModel,
    unique: str,
) -> None:
    # S3 lists keys by string prefix, so without the slash KServe would also
    # download the sibling keys under .../v10 or .../v1-old.
    api = kclient.deployment
    mlflow_name, sklearn_name = f"mlf-{unique}", f"skl-{unique}"
    served = await api.deploy(mlflow_name, model.name, model_version=1)
    assert served.storage_uri == model.sources[0] + "/"
    annotations = served.raw["metadata"]["annotations"]
    assert annotations["maestro-ml.io/artifact-uri"] == model.sources[0]

    single_file = await api.deploy(
        sklearn_name, model.name, model_version=1, model_format="sklearn"
    )
    assert single_file.storage_uri == model.sources[0]

    rolled = await api.update(mlflow_name, model_version=2)
    assert rolled.storage_uri == model.sources[1] + "/"
    rolled_back = await (await api.rollback(mlflow_name)).wait_ready(timeout=10.0)
    assert rolled_back.storage_uri == model.sources[0] + "/"


async def test_slash_alone_is_no_rollout(
    kclient: AsyncMaestroClient,
    cluster: FakeCluster,
    model: RegisteredModel,
    deployment_name: str,
) -> None:
    # A deployment written without the slash already serves that version.
    api = kclient.deployment
    created = await api.deploy(deployment_name, model.name, model_version=1)
    cluster.store.mutate(
        ISVC,
        NAMESPACE,
        deployment_name,
        lambda obj: obj["spec"]["predictor"]["model"].update(
            storageUri=model.sources[0]
        ),
    )
    before = await api.get_deployment(deployment_name)
    assert before.storage_uri == model.sources[0]
    assert before.generation == (created.generation or 0) + 1
    again = await api.update(deployment_name, model_version=1)
    # The spec did not change, so no new generation and no new revision.
    assert again.generation == before.generation
    assert again.storage_uri == model.sources[0]


@pytest.mark.parametrize(
    ("given", "runtime", "expected"),
    [
        ("SKLearn", None, "sklearn"),
        ("PMML", None, "pmml"),
        ("paddle", None, "paddle"),
        ("MLflow", None, "mlflow"),
        ("vllm-chat", "custom-rt", "vllm-chat"),
        ("Custom.Format_1", "custom-rt", "Custom.Format_1"),
    ],
)
def test_model_format_normalised(
    given: str, runtime: str | None, expected: str
) -> None:
    from maestro_ml_async.resources._kserve import check_model_format, protocol_for

    checked = check_model_format(given, runtime=runtime)

    assert checked == expected
    if expected == "mlflow":
        assert protocol_for(checked, None) == "v2"


async def test_custom_format_reaches_spec(
    kclient: AsyncMaestroClient,
    cluster: FakeCluster,
    model: RegisteredModel,
    deployment_name: str,
) -> None:
    await kclient.deployment.deploy(
        deployment_name,
        model.name,
        model_version=2,
        model_format="vllm-chat",
        runtime="custom-rt",
    )
    first = stored_isvcs(cluster)[0]["spec"]["predictor"]["model"]
    assert first["modelFormat"] == {"name": "vllm-chat"}
    assert first["runtime"] == "custom-rt"
