"""Fixtures of the deployment tests: a fake cluster with KServe and registry models.

Each test gets its own fake cluster (fast controller ticks) and a client bound
to it and to the session's real MLflow server. Model versions are registered
over MLflow's REST API with ``s3://`` sources, which need no artifacts.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass

import pytest
import pytest_asyncio

from maestro_ml_async import AsyncMaestroClient
from maestro_ml_async._config import build_config
from maestro_ml_async.testing import RESOURCE_TYPES, FakeCluster

NAMESPACE = "ml-platform"
ISVC = RESOURCE_TYPES["inferenceservices.serving.kserve.io"]
PVC_MAP = {"mlflow-artifacts:/": "pvc://mlflow-artifacts/"}


@pytest_asyncio.fixture
async def cluster() -> AsyncIterator[FakeCluster]:
    """A started fake cluster whose KServe controller acts within milliseconds."""
    async with FakeCluster(tick=0.01, bookmark_interval=0.2) as fake:
        yield fake


def make_client(
    cluster: FakeCluster, mlflow_url: str, **overrides: object
) -> AsyncMaestroClient:
    """Build a client bound to the fake cluster and the MLflow server."""
    settings: dict[str, object] = {
        "mlflow_uri": mlflow_url,
        "kube_config_path": cluster.kubeconfig_path,
        "kube_context": cluster.context,
        "namespace": NAMESPACE,
        "max_retries": 2,
        "retry_backoff_base": 0.01,
        "retry_backoff_max": 0.1,
        "storage_uri_map": PVC_MAP,
    }
    settings.update(overrides)
    return AsyncMaestroClient(config=build_config(settings))


@pytest_asyncio.fixture
async def kclient(
    cluster: FakeCluster, mlflow_server_url: str
) -> AsyncIterator[AsyncMaestroClient]:
    """A client on the fake cluster; its watches reconnect quickly."""
    async with make_client(cluster, mlflow_server_url) as maestro:
        kube = await maestro._cluster.get()
        kube.watch_settings.backoff_base = 0.01
        kube.watch_settings.backoff_max = 0.1
        kube.watch_settings.idle_timeout = 2.0
        yield maestro


@dataclass
class RegisteredModel:
    """A registered model with versions whose sources are ``s3://`` URIs."""

    name: str
    versions: list[str]
    sources: list[str]


async def register_model(
    maestro: AsyncMaestroClient,
    name: str,
    sources: list[str],
    *,
    aliases: dict[str, str] | None = None,
) -> RegisteredModel:
    """Create a registered model with one version per source, and aliases."""
    mlflow = maestro._mlflow
    await mlflow.call("POST", "registered-models/create", json={"name": name})
    versions = []
    for source in sources:
        body = await mlflow.call(
            "POST", "model-versions/create", json={"name": name, "source": source}
        )
        versions.append(str(body["model_version"]["version"]))
    for alias, version in (aliases or {}).items():
        await mlflow.call(
            "POST",
            "registered-models/alias",
            json={"name": name, "alias": alias, "version": version},
        )
    return RegisteredModel(name, versions, list(sources))


@pytest_asyncio.fixture
async def model(kclient: AsyncMaestroClient, unique: str) -> RegisteredModel:
    """A registered model with versions 1 and 2 and alias champion -> 1."""
    name = f"Fraud Model ä {unique}"
    sources = [f"s3://models/{unique}/v1", f"s3://models/{unique}/v2"]
    return await register_model(kclient, name, sources, aliases={"champion": "1"})


def stored_isvcs(cluster: FakeCluster) -> list[dict[str, object]]:
    """Return every InferenceService in the fake cluster's store."""
    items, _ = cluster.store.list(ISVC)
    return items


@pytest.fixture
def deployment_name(unique: str) -> str:
    """A fresh InferenceService name."""
    return f"svc-{unique}"


async def register_run_model(
    maestro: AsyncMaestroClient,
    name: str,
    *,
    artifact_location: str | None = None,
) -> str:
    """Register version 1 of `name` from a new run's artifacts; return its source.

    MLflow accepts a ``mlflow-artifacts:`` or local source only inside the
    artifact directory of the run given with it, so a run is created first.
    """
    mlflow = maestro._mlflow
    experiment: dict[str, object] = {"name": f"exp-{name}"}
    if artifact_location is not None:
        experiment["artifact_location"] = artifact_location
    created = await mlflow.call("POST", "experiments/create", json=experiment)
    run = await mlflow.call(
        "POST",
        "runs/create",
        json={"experiment_id": created["experiment_id"], "start_time": 0},
    )
    info = run["run"]["info"]
    source = f"{info['artifact_uri']}/model"
    await mlflow.call("POST", "registered-models/create", json={"name": name})
    await mlflow.call(
        "POST",
        "model-versions/create",
        json={"name": name, "source": source, "run_id": info["run_id"]},
    )
    return source
