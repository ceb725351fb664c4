"""Helpers shared by the deployment tests (a module of its own, because two
test folders have a conftest.py and only one of them can be imported by name)."""

from __future__ import annotations

from dataclasses import dataclass

from maestro_ml_async import AsyncMaestroClient
from maestro_ml_async._config import build_config
from maestro_ml_async.testing import RESOURCE_TYPES, FakeCluster

NAMESPACE = "ml-platform"
ISVC = RESOURCE_TYPES["inferenceservices.serving.kserve.io"]
PVC_MAP = {"mlflow-artifacts:/": "pvc://mlflow-artifacts/"}


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


def stored_isvcs(cluster: FakeCluster) -> list[dict[str, object]]:
    """Return every InferenceService in the fake cluster's store."""
    items, _ = cluster.store.list(ISVC)
    return items


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
