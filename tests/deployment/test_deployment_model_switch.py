"""Switching a deployment to another registered model, and rolling it back."""

from __future__ import annotations

from _deployment_helpers import ISVC, NAMESPACE, RegisteredModel, register_model

from maestro_ml_async import AsyncMaestroClient
from maestro_ml_async.resources._kserve import (
    ANNOTATION_MODEL_NAME,
    ANNOTATION_SOURCE_URI,
    LABEL_MODEL_NAME,
    LABEL_MODEL_NAME_HASH,
    LABEL_MODEL_VERSION,
    label_safe,
    model_name_hash,
)
from maestro_ml_async.testing import FakeCluster
from maestro_ml_async.types.deployment import Deployment

WAIT = 10.0


async def two_models(
    kclient: AsyncMaestroClient, unique: str
) -> tuple[RegisteredModel, RegisteredModel]:
    models = []
    for label in ("a", "b"):
        name = f"switch-{label}-{unique}"
        sources = [f"s3://bkt/{unique}/{label}/v{n}" for n in (1, 2, 3)]
        models.append(
            await register_model(kclient, name, sources, aliases={"champion": "1"})
        )
    return models[0], models[1]


def stored_metadata(cluster: FakeCluster, name: str) -> dict[str, dict[str, str]]:
    obj = cluster.store.get(ISVC, NAMESPACE, name)
    metadata = obj["metadata"]
    return {
        "labels": dict(metadata.get("labels") or {}),
        "annotations": dict(metadata.get("annotations") or {}),
    }


def assert_serves(
    cluster: FakeCluster,
    deployment: Deployment,
    model: RegisteredModel,
    version: int,
) -> None:
    source = model.sources[version - 1]
    assert deployment.model_name == model.name
    assert deployment.model_version == str(version)
    assert (deployment.storage_uri or "").rstrip("/") == source
    metadata = stored_metadata(cluster, deployment.name)
    labels, annotations = metadata["labels"], metadata["annotations"]
    assert labels[LABEL_MODEL_NAME] == label_safe(model.name)
    assert labels[LABEL_MODEL_NAME_HASH] == model_name_hash(model.name)
    assert labels[LABEL_MODEL_VERSION] == str(version)
    assert annotations[ANNOTATION_MODEL_NAME] == model.name
    assert annotations[ANNOTATION_SOURCE_URI] == source


async def listed(kclient: AsyncMaestroClient, model: RegisteredModel) -> list[str]:
    pager = kclient.deployment.list_deployments(model_name=model.name)
    return [item.name async for item in pager]


async def test_switch_model_moves_labels(
    kclient: AsyncMaestroClient,
    cluster: FakeCluster,
    unique: str,
    deployment_name: str,
) -> None:
    first, second = await two_models(kclient, unique)
    api = kclient.deployment
    await api.deploy(deployment_name, first.name, alias="champion", strategy="canary")

    canary = await api.update(deployment_name, model_name=second.name, model_version=2)
    assert canary.rollout_state == "canary"
    assert_serves(cluster, canary, second, 2)
    promoted = await api.promote(deployment_name)
    assert_serves(cluster, promoted, second, 2)

    assert await listed(kclient, second) == [deployment_name]
    assert await listed(kclient, first) == []


async def test_rollback_restores_other_model(
    kclient: AsyncMaestroClient,
    cluster: FakeCluster,
    unique: str,
    deployment_name: str,
) -> None:
    first, second = await two_models(kclient, unique)
    api = kclient.deployment
    await api.deploy(deployment_name, first.name, alias="champion", strategy="canary")
    await api.update(deployment_name, model_name=second.name, model_version=2)
    await api.promote(deployment_name)

    rolled = await api.rollback(deployment_name)
    assert_serves(cluster, rolled, first, 1)
    assert rolled.previous_model_version == "2"
    assert await listed(kclient, first) == [deployment_name]
    assert await listed(kclient, second) == []
    ready = await rolled.wait_ready(timeout=WAIT)
    assert ready.latest_ready_revision == f"{deployment_name}-predictor-00003"

    # The model replaced by the rollback is the recorded previous one, so a
    # second rollback returns to it.
    again = await api.rollback(deployment_name)
    assert_serves(cluster, again, second, 2)
    assert again.previous_model_version == "1"
    assert await listed(kclient, second) == [deployment_name]
