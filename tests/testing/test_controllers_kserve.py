"""The simulated KServe controller: revisions, traffic, observedGeneration, failures."""

from __future__ import annotations

import asyncio
from typing import Any

from _controller_host import (
    ControllerHost,
    condition,
    conditions,
    running_controllers,
    wait_for,
)

from maestro_ml_async.testing import _scripts as scripts
from maestro_ml_async.testing._controllers._isvc_status import compute_traffic
from maestro_ml_async.testing._resources import RESOURCE_TYPES

Obj = dict[str, Any]
ISVC = RESOURCE_TYPES["inferenceservices.serving.kserve.io"]


def isvc(name: str, uri: str = "s3://bucket/v1", **predictor: Any) -> Obj:
    model = {
        "modelFormat": {"name": "mlflow"},
        "protocolVersion": "v2",
        "storageUri": uri,
    }
    return {
        "metadata": {"name": name},
        "spec": {"predictor": {"model": model, **predictor}},
    }


def get(host: ControllerHost, name: str) -> Obj | None:
    return host.store.get(ISVC, "default", name)


async def wait_observed(host: ControllerHost, name: str, generation: int) -> Obj:
    def check() -> Obj | None:
        obj = get(host, name)
        observed = ((obj or {}).get("status") or {}).get("observedGeneration")
        return obj if observed == generation else None

    found: Obj = await wait_for(check)
    return found


def set_predictor(host: ControllerHost, name: str, **changes: Any) -> None:
    def apply(obj: Obj) -> None:
        predictor = obj["spec"]["predictor"]
        for key, value in changes.items():
            if key == "uri":
                predictor["model"]["storageUri"] = value
            elif value is None:
                predictor.pop(key, None)
            else:
                predictor[key] = value

    host.store.mutate(ISVC, "default", name, apply)


def traffic(obj: Obj) -> list[tuple[str, int]]:
    entries = obj["status"]["components"]["predictor"]["traffic"]
    return [(t["revisionName"], t["percent"]) for t in entries]


def test_compute_traffic_rules() -> None:
    first = compute_traffic("r1", None, None, 10)
    assert first.traffic == [
        {"revisionName": "r1", "percent": 100, "latestRevision": True}
    ]
    assert first.latest_rolledout == "r1"
    canary = compute_traffic("r2", "r1", None, 25, tag_routing=True)
    assert [(t["revisionName"], t["percent"], t["tag"]) for t in canary.traffic] == [
        ("r2", 25, "latest"),
        ("r1", 75, "prev"),
    ]
    assert canary.latest_rolledout == "r1"
    promoted = compute_traffic("r2", "r1", None, None)
    assert promoted.latest_rolledout == "r2"
    assert promoted.previous_rolledout == "r1"
    rollback = compute_traffic("r2", "r1", None, 0)
    assert [(t["revisionName"], t["percent"]) for t in rollback.traffic] == [
        ("r2", 0),
        ("r1", 100),
    ]
    assert compute_traffic(None, None, None, None).traffic == []


async def test_ready_status_shape() -> None:
    async with running_controllers() as host:
        host.store.create(ISVC, isvc("m"))
        obj = await wait_observed(host, "m", 1)
        assert set(conditions(obj).values()) == {"True"}
        assert {
            "PredictorReady",
            "IngressReady",
            "Ready",
            "PredictorRouteReady",
            "PredictorConfigurationReady",
            "RoutesReady",
        } <= set(conditions(obj))
        ready = condition(obj, "Ready")
        assert ready is not None
        assert set(ready) == {"type", "status", "lastTransitionTime"}
        status = obj["status"]
        assert status["url"] == "http://m-default.example.com"
        assert status["address"]["url"] == "http://m.default.svc.cluster.local"
        predictor = status["components"]["predictor"]
        assert predictor["latestReadyRevision"] == "m-predictor-00001"
        assert predictor["latestCreatedRevision"] == "m-predictor-00001"
        assert traffic(obj) == [("m-predictor-00001", 100)]
        assert status["modelStatus"]["transitionStatus"] == "UpToDate"
        assert status["modelStatus"]["states"]["activeModelState"] == "Loaded"
        (pod,) = host.pods()
        assert pod["metadata"]["name"].startswith("m-predictor-00001-deployment-")
        assert pod["metadata"]["labels"]["serving.kserve.io/inferenceservice"] == "m"
        await wait_for(lambda: host.pods()[0]["status"]["phase"] == "Running")
        host.store.delete(ISVC, "default", "m")
        assert host.pods() == []


async def test_canary_promote_and_rollback() -> None:
    async with running_controllers() as host:
        host.store.create(ISVC, isvc("c"))
        await wait_observed(host, "c", 1)

        set_predictor(host, "c", uri="s3://bucket/v2", canaryTrafficPercent=20)
        obj = await wait_observed(host, "c", 2)
        assert traffic(obj) == [("c-predictor-00002", 20), ("c-predictor-00001", 80)]
        predictor = obj["status"]["components"]["predictor"]
        assert predictor["latestRolledoutRevision"] == "c-predictor-00001"
        assert len(host.pods()) == 2

        set_predictor(host, "c", canaryTrafficPercent=0)
        obj = await wait_observed(host, "c", 3)
        assert traffic(obj) == [("c-predictor-00002", 0), ("c-predictor-00001", 100)]
        assert obj["status"]["components"]["predictor"]["latestCreatedRevision"] == (
            "c-predictor-00002"
        )

        set_predictor(host, "c", canaryTrafficPercent=None)
        obj = await wait_observed(host, "c", 4)
        assert traffic(obj) == [("c-predictor-00002", 100)]
        predictor = obj["status"]["components"]["predictor"]
        assert predictor["latestRolledoutRevision"] == "c-predictor-00002"
        assert predictor["previousRolledoutRevision"] == "c-predictor-00001"
        await wait_for(lambda: len(host.pods()) == 1)
        (pod,) = host.pods()
        assert pod["metadata"]["labels"]["serving.knative.dev/revision"] == (
            "c-predictor-00002"
        )


async def test_observed_generation_lags() -> None:
    async with running_controllers() as host:
        host.scripts.set("inferenceservices", "lag", scripts.ready(delay=0.3))
        host.store.create(ISVC, isvc("lag"))
        obj = await wait_observed(host, "lag", 1)
        set_predictor(host, "lag", uri="s3://bucket/v2")
        await asyncio.sleep(0.1)
        during = get(host, "lag")
        assert during is not None
        assert during["metadata"]["generation"] == 2
        assert during["status"]["observedGeneration"] == 1
        assert conditions(during)["Ready"] == "Unknown"
        assert traffic(during) == [("lag-predictor-00001", 100)]
        assert during["status"]["modelStatus"]["transitionStatus"] == "InProgress"
        obj = await wait_observed(host, "lag", 2)
        assert conditions(obj)["Ready"] == "True"


async def test_revision_failed_keeps_old_traffic() -> None:
    async with running_controllers() as host:
        host.store.create(ISVC, isvc("rf"))
        await wait_observed(host, "rf", 1)
        host.scripts.set(
            "inferenceservices", "rf", scripts.revision_failed("bad image")
        )
        set_predictor(host, "rf", uri="s3://bucket/v2")
        obj = await wait_observed(host, "rf", 2)
        ready = condition(obj, "Ready")
        assert ready is not None
        assert ready["status"] == "False"
        assert ready["reason"] == "RevisionFailed"
        assert "bad image" in ready["message"]
        assert traffic(obj) == [("rf-predictor-00001", 100)]
        predictor = obj["status"]["components"]["predictor"]
        assert predictor["latestCreatedRevision"] == "rf-predictor-00002"
        assert predictor["latestReadyRevision"] == "rf-predictor-00001"


async def test_model_load_failed_exit_code() -> None:
    async with running_controllers() as host:
        host.scripts.set(
            "inferenceservices", "ml", scripts.model_load_failed(exit_code=3)
        )
        host.store.create(ISVC, isvc("ml"))
        obj = await wait_observed(host, "ml", 1)
        for kind in ("Ready", "PredictorReady"):
            found = condition(obj, kind)
            assert found is not None
            assert found["status"] == "False"
            assert found["reason"] == "ModelLoadFailed"
        model_status = obj["status"]["modelStatus"]
        assert model_status["transitionStatus"] == "BlockedByFailedLoad"
        assert model_status["states"]["targetModelState"] == "FailedToLoad"
        assert model_status["lastFailureInfo"]["reason"] == "ModelLoadFailed"
        assert model_status["lastFailureInfo"]["exitCode"] == 3
        assert "url" not in obj["status"]

        def crash_looping() -> bool:
            pods = host.pods()
            statuses = pods[0]["status"].get("containerStatuses") if pods else None
            return bool(statuses) and statuses[0]["restartCount"] >= 1

        await wait_for(crash_looping)
        last = host.pods()[0]["status"]["containerStatuses"][0]["lastState"]
        assert last["terminated"]["exitCode"] == 3


async def test_stuck_never_observed() -> None:
    async with running_controllers() as host:
        annotations = {scripts.SCRIPT_ANNOTATION: '{"outcome": "stuck"}'}
        body = isvc("st")
        body["metadata"]["annotations"] = annotations
        host.store.create(ISVC, body)
        await wait_for(lambda: (get(host, "st") or {}).get("status"))
        await asyncio.sleep(0.1)
        obj = get(host, "st")
        assert obj is not None
        assert "observedGeneration" not in obj["status"]
        ready = condition(obj, "Ready")
        assert ready is not None
        assert ready["status"] == "Unknown"
        assert ready["reason"] == "RevisionMissing"
        assert obj["status"]["components"]["predictor"]["traffic"] == []


async def test_replicas_follow_min_max() -> None:
    async with running_controllers() as host:
        host.store.create(ISVC, isvc("sc", minReplicas=3, maxReplicas=5))
        await wait_observed(host, "sc", 1)
        assert len(host.pods()) == 3
        set_predictor(host, "sc", minReplicas=4, maxReplicas=2)
        await wait_observed(host, "sc", 2)
        await wait_for(lambda: len(host.pods()) == 2)
        set_predictor(host, "sc", minReplicas=0, maxReplicas=None)
        obj = await wait_observed(host, "sc", 3)
        await wait_for(lambda: host.pods() == [])
        assert conditions(obj)["Ready"] == "True"
