"""Download URIs that name other MLflow objects: ``runs:/`` and ``models:/``.

MLflow returns a version registered from ``runs:/<run id>/<path>`` with that
URI as its download URI, so the deployment follows it to the run's artifact
location. The real server shows that case; respx shows the ``models:/`` forms
and the missing objects, which the real server does not return.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import pytest
import pytest_asyncio
import respx
from _deployment_helpers import PVC_MAP, make_client, register_model, stored_isvcs

from maestro_ml_async import AsyncMaestroClient, Config
from maestro_ml_async._exceptions import DeploymentException
from maestro_ml_async.resources._deployment_source import (
    VersionSelector,
    resolve_model,
)
from maestro_ml_async.testing import FakeCluster

BASE = "http://127.0.0.1:9"
API = BASE + "/api/2.0/mlflow"


async def register_from_runs_uri(maestro: AsyncMaestroClient, name: str) -> str:
    """Register version 1 of `name` with a ``runs:/`` source; return the run's root."""
    mlflow = maestro._mlflow
    created = await mlflow.call(
        "POST", "experiments/create", json={"name": f"exp-{name}"}
    )
    run = await mlflow.call(
        "POST",
        "runs/create",
        json={"experiment_id": created["experiment_id"], "start_time": 0},
    )
    info = run["run"]["info"]
    await mlflow.call("POST", "registered-models/create", json={"name": name})
    await mlflow.call(
        "POST",
        "model-versions/create",
        json={
            "name": name,
            "source": f"runs:/{info['run_id']}/model",
            "run_id": info["run_id"],
        },
    )
    return str(info["artifact_uri"])


async def test_runs_uri_follows_run_artifacts(
    kclient: AsyncMaestroClient, unique: str, deployment_name: str
) -> None:
    name = f"runs-{unique}"
    root = await register_from_runs_uri(kclient, name)
    download = await kclient._mlflow.call(
        "GET",
        "model-versions/get-download-uri",
        params={"name": name, "version": "1"},
        registry=True,
    )
    assert download["artifact_uri"].startswith("runs:/")

    created = await kclient.deployment.deploy(deployment_name, name, model_version=1)

    rest = root.removeprefix("mlflow-artifacts:/")
    assert created.storage_uri == f"pvc://mlflow-artifacts/{rest}/model"
    annotations = created.raw["metadata"]["annotations"]
    assert annotations["maestro-ml.io/artifact-uri"] == f"{root}/model"


async def test_runs_uri_unmapped_names_location(
    cluster: FakeCluster,
    mlflow_server_url: str,
    unique: str,
    deployment_name: str,
) -> None:
    name = f"runs-unmapped-{unique}"
    async with make_client(cluster, mlflow_server_url, storage_uri_map={}) as maestro:
        root = await register_from_runs_uri(maestro, name)
        with pytest.raises(DeploymentException) as caught:
            await maestro.deployment.deploy(deployment_name, name, model_version=1)
        assert not maestro._cluster.loaded

    message = str(caught.value)
    assert f"{root}/model" in message
    assert "storage_uri_map" in message
    assert stored_isvcs(cluster) == []


# Forms the real server does not return, through respx ----------------------


@pytest.fixture
def router() -> Iterator[respx.MockRouter]:
    with respx.mock(base_url=API, assert_all_called=False) as mock:
        yield mock


@pytest_asyncio.fixture
async def offline(router: respx.MockRouter) -> AsyncIterator[AsyncMaestroClient]:
    config = Config(mlflow_uri=BASE, max_retries=0, retry_backoff_base=0.001)
    async with AsyncMaestroClient(config=config) as maestro:
        yield maestro


def serve_version(router: respx.MockRouter, name: str, download_uri: str) -> None:
    """Serve model-versions/get and get-download-uri for version 1 of `name`."""
    version = {"name": name, "version": "1", "status": "READY"}
    router.get("/model-versions/get", params={"name": name}).respond(
        json={"model_version": version}
    )
    router.get("/model-versions/get-download-uri", params={"name": name}).respond(
        json={"artifact_uri": download_uri}
    )


async def resolve(maestro: AsyncMaestroClient, name: str) -> str:
    model = await resolve_model(
        maestro._mlflow, name, VersionSelector(version="1"), PVC_MAP
    )
    return model.storage_uri


async def test_models_uri_of_version_is_followed(
    router: respx.MockRouter, offline: AsyncMaestroClient
) -> None:
    serve_version(router, "copy", "models:/origin/1")
    serve_version(router, "origin", "s3://bucket/origin/1")

    assert await resolve(offline, "copy") == "s3://bucket/origin/1"


async def test_models_uri_of_alias_is_followed(
    router: respx.MockRouter, offline: AsyncMaestroClient
) -> None:
    serve_version(router, "copy", "models:/origin@champion")
    serve_version(router, "origin", "gs://bucket/origin/1")
    router.get("/registered-models/alias").respond(
        json={"model_version": {"name": "origin", "version": "1"}}
    )

    assert await resolve(offline, "copy") == "gs://bucket/origin/1"


async def test_logged_model_uri_is_followed(
    router: respx.MockRouter, offline: AsyncMaestroClient
) -> None:
    serve_version(router, "lm", "models:/m-0123abcd")
    location = "mlflow-artifacts:/1/models/m-0123abcd/artifacts"
    router.get("/logged-models/m-0123abcd").respond(
        json={"model": {"info": {"model_id": "m-0123abcd", "artifact_uri": location}}}
    )

    storage = await resolve(offline, "lm")

    assert storage == "pvc://mlflow-artifacts/1/models/m-0123abcd/artifacts"


async def test_missing_run_is_deployment_error(
    router: respx.MockRouter, offline: AsyncMaestroClient
) -> None:
    serve_version(router, "gone", "runs:/deadbeef/model")
    router.get("/runs/get").respond(
        404,
        json={"error_code": "RESOURCE_DOES_NOT_EXIST", "message": "Run not found"},
    )

    with pytest.raises(DeploymentException) as caught:
        await resolve(offline, "gone")

    message = str(caught.value)
    assert "runs:/deadbeef/model" in message
    assert "not found" in message


async def test_uri_cycle_is_reported(
    router: respx.MockRouter, offline: AsyncMaestroClient
) -> None:
    serve_version(router, "loop", "models:/loop/1")

    with pytest.raises(DeploymentException) as caught:
        await resolve(offline, "loop")

    assert "after 4 steps" in str(caught.value)
    downloads = [
        call
        for call in router.calls
        if call.request.url.path.endswith("/get-download-uri")
    ]
    assert len(downloads) == 5


async def test_empty_download_uri_is_reported(
    router: respx.MockRouter, offline: AsyncMaestroClient
) -> None:
    # Protobuf JSON omits empty strings, so an empty location arrives as {}.
    version = {"name": "churn", "version": "1", "status": "READY"}
    router.get("/model-versions/get", params={"name": "churn"}).respond(
        json={"model_version": version}
    )
    router.get("/model-versions/get-download-uri", params={"name": "churn"}).respond(
        json={}
    )
    with pytest.raises(DeploymentException) as caught:
        await resolve(offline, "churn")
    message = str(caught.value)
    assert "no artifact location" in message
    assert "'churn' version 1" in message
    assert "local path" not in message


async def test_bucketless_source_creates_nothing(
    kclient: AsyncMaestroClient, cluster: FakeCluster, unique: str
) -> None:
    name = f"bucketless-{unique}"
    await register_model(kclient, name, ["s3:///models/v1", "gs:/bucket/v2"])
    expected = {
        1: "is missing the bucket (the form is s3://<bucket>/<path>)",
        2: "is missing the '//' after 'gs:'",
    }
    for version, missing in expected.items():
        with pytest.raises(DeploymentException) as caught:
            await kclient.deployment.deploy(
                f"svc-{unique}-{version}", name, model_version=version
            )
        assert missing in str(caught.value)
    assert stored_isvcs(cluster) == []
