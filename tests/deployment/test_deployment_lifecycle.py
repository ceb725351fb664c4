"""Deploy, scale, canary, promote, roll back and delete on the fake KServe."""

from __future__ import annotations

import pytest
from _deployment_helpers import NAMESPACE, RegisteredModel, stored_isvcs

from maestro_ml_async import AsyncMaestroClient
from maestro_ml_async._exceptions import KubernetesNotFoundException
from maestro_ml_async.testing import RESOURCE_TYPES, FakeCluster

WAIT = 10.0
PODS = RESOURCE_TYPES["pods"]


def revision_pods(cluster: FakeCluster, revision: str) -> list[dict[str, object]]:
    pods, _ = cluster.store.list(PODS, NAMESPACE)
    return [
        pod
        for pod in pods
        if pod["metadata"]["labels"].get("serving.knative.dev/revision") == revision
    ]


async def test_lifecycle_by_alias(
    kclient: AsyncMaestroClient,
    cluster: FakeCluster,
    model: RegisteredModel,
    deployment_name: str,
) -> None:
    api = kclient.deployment
    created = await api.deploy(
        deployment_name, model.name, alias="champion", strategy="canary"
    )
    assert created.model_name == model.name
    assert created.model_version == "1"
    # An MLflow model is a directory, so its s3:// URI ends with a slash.
    assert created.storage_uri == model.sources[0] + "/"
    assert not created.has_status

    ready = await created.wait_ready(timeout=WAIT)
    assert ready.up_to_date
    first = ready.latest_ready_revision
    assert first == f"{deployment_name}-predictor-00001"
    assert [(t.revision_name, t.percent) for t in ready.traffic] == [(first, 100)]
    assert ready.rollout_state == "stable"
    assert ready.url

    scaled = await api.update(deployment_name, replicas=3)
    assert scaled.min_replicas == 3
    assert scaled.max_replicas == 3
    scaled = await scaled.wait_ready(timeout=WAIT)
    serving = scaled.latest_ready_revision
    assert serving is not None
    assert len(revision_pods(cluster, serving)) == 3

    canary = await api.update(deployment_name, model_version=2)
    assert canary.rollout_state == "canary"
    assert canary.canary_traffic_percent == 10
    canary = await canary.wait_ready(timeout=WAIT)
    new = canary.latest_ready_revision
    assert new is not None and new != serving
    assert canary.model_version == "2"
    assert canary.previous_model_version == "1"
    assert canary.canary_revision == new
    assert canary.stable_revision == serving
    assert canary.traffic_percent(new) == 10
    assert canary.traffic_percent(serving) == 90

    promoted = await api.promote(deployment_name)
    assert promoted.rollout_state == "stable"
    promoted = await promoted.wait_ready(timeout=WAIT)
    assert [(t.revision_name, t.percent) for t in promoted.traffic] == [(new, 100)]
    assert promoted.canary_revision is None

    rolled_back = await api.rollback(deployment_name)
    assert rolled_back.model_version == "1"
    assert rolled_back.storage_uri == model.sources[0] + "/"
    assert rolled_back.previous_model_version == "2"
    rolled_back = await rolled_back.wait_ready(timeout=WAIT)
    restored = rolled_back.latest_ready_revision
    assert restored not in (new, serving)
    assert rolled_back.traffic_percent(restored or "") == 100

    await api.delete(deployment_name)
    assert stored_isvcs(cluster) == []
    with pytest.raises(KubernetesNotFoundException):
        await api.get_deployment(deployment_name)
    await api.delete(deployment_name, missing_ok=True)
