"""Canary and blue-green rollouts, write races, and readiness on the fake KServe."""

from __future__ import annotations

import asyncio
import logging

import pytest
from _deployment_helpers import ISVC, NAMESPACE, RegisteredModel, make_client

from maestro_ml_async import AsyncMaestroClient
from maestro_ml_async._exceptions import (
    DeploymentException,
    KubernetesConflictException,
    TimeoutException,
    ValidationException,
)
from maestro_ml_async.resources._deployment_patch import MAX_CONFLICT_RETRIES
from maestro_ml_async.resources._deployment_status import (
    describe_not_ready,
    evaluate_readiness,
)
from maestro_ml_async.testing import FakeCluster
from maestro_ml_async.testing._scripts import (
    model_load_failed,
    ready,
    revision_failed,
    stuck,
)
from maestro_ml_async.types.deployment import Deployment

WAIT = 10.0


async def test_canary_rollback_pins_previous(
    kclient: AsyncMaestroClient, model: RegisteredModel, deployment_name: str
) -> None:
    api = kclient.deployment
    first = await api.deploy(deployment_name, model.name, model_version=1)
    first = await first.wait_ready(timeout=WAIT)
    stable = first.latest_ready_revision

    canary = await api.update(
        deployment_name, model_version=2, canary_traffic_percent=25
    )
    assert canary.strategy == "canary"
    canary = await canary.wait_ready(timeout=WAIT)
    latest = canary.latest_ready_revision
    assert canary.traffic_percent(latest or "") == 25
    assert canary.traffic_percent(stable or "") == 75

    pinned = await api.rollback(deployment_name)
    assert pinned.rollout_state == "rolled_back"
    assert pinned.canary_traffic_percent == 0
    pinned = await pinned.wait_ready(timeout=WAIT)
    assert pinned.traffic_percent(stable or "") == 100
    assert pinned.traffic_percent(latest or "") == 0

    again = await api.rollback(deployment_name)
    assert again.resource_version == pinned.resource_version

    promoted = await (await api.promote(deployment_name)).wait_ready(timeout=WAIT)
    assert promoted.traffic_percent(latest or "") == 100
    assert promoted.rollout_state == "stable"


async def test_canary_share_moves_live(
    kclient: AsyncMaestroClient, model: RegisteredModel, deployment_name: str
) -> None:
    api = kclient.deployment
    await (await api.deploy(deployment_name, model.name, model_version=1)).wait_ready(
        timeout=WAIT
    )
    started = await api.update(
        deployment_name, model_version=2, strategy="canary", canary_traffic_percent=30
    )
    started = await started.wait_ready(timeout=WAIT)
    latest = started.latest_ready_revision or ""
    assert started.traffic_percent(latest) == 30

    widened = await api.update(deployment_name, canary_traffic_percent=50)
    assert widened.canary_traffic_percent == 50
    assert widened.rollout_state == "canary"
    assert widened.model_version == "2"
    widened = await widened.wait_ready(timeout=WAIT)
    assert widened.traffic_percent(latest) == 50
    assert widened.latest_ready_revision == latest

    for invalid in (0, 100, -5):
        with pytest.raises(ValidationException, match="between 1 and 99"):
            await api.update(deployment_name, canary_traffic_percent=invalid)

    # Outside a canary the share is only stored for the next rollout.
    stable = await api.promote(deployment_name)
    after = await api.update(deployment_name, canary_traffic_percent=20)
    assert after.canary_traffic_percent is None
    assert after.generation == stable.generation
    next_canary = await api.update(deployment_name, model_version=1)
    assert next_canary.canary_traffic_percent == 20


async def test_promote_after_rollback_warns(
    kclient: AsyncMaestroClient,
    model: RegisteredModel,
    deployment_name: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    api = kclient.deployment
    await (await api.deploy(deployment_name, model.name, model_version=1)).wait_ready(
        timeout=WAIT
    )
    await api.update(deployment_name, model_version=2, strategy="canary")
    caplog.set_level(logging.INFO, logger="maestro_ml_async.resources.deployment")
    await api.promote(deployment_name)
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]

    await api.update(deployment_name, model_version=1)
    await api.rollback(deployment_name)
    caplog.clear()
    promoted = await api.promote(deployment_name)
    assert promoted.rollout_state == "stable"
    assert promoted.model_version == "1"
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1
    message = warnings[0].getMessage()
    assert f"promoted ml-platform/{deployment_name} to version 1" in message
    assert "rollback" in message


async def test_blue_green_switches_when_ready(
    kclient: AsyncMaestroClient,
    cluster: FakeCluster,
    model: RegisteredModel,
    deployment_name: str,
) -> None:
    api = kclient.deployment
    await (
        await api.deploy(
            deployment_name, model.name, model_version=1, strategy="blue_green"
        )
    ).wait_ready(timeout=WAIT)
    cluster.scripts.set("inferenceservices", deployment_name, ready(delay=0.2))
    observed: list[list[tuple[str | None, int]]] = []

    async def record() -> None:
        async for event in api.watch(deployment_name):
            split = [(t.revision_name, t.percent) for t in event.deployment.traffic]
            observed.append(split)

    recorder = asyncio.create_task(record())
    switched = await api.update(deployment_name, model_version=2, timeout=WAIT)
    switched = await switched.wait_ready(timeout=WAIT)
    recorder.cancel()
    await asyncio.gather(recorder, return_exceptions=True)

    new = f"{deployment_name}-predictor-00002"
    assert switched.model_version == "2"
    assert switched.rollout_state == "stable"
    assert [(t.revision_name, t.percent) for t in switched.traffic] == [(new, 100)]
    # The new revision never had a share between 0 and 100: it went 0 -> 100.
    shares = {dict(split).get(new) for split in observed}
    assert shares <= {None, 0, 100}
    assert 0 in shares


async def test_blue_green_failure_keeps_traffic(
    kclient: AsyncMaestroClient,
    cluster: FakeCluster,
    model: RegisteredModel,
    deployment_name: str,
) -> None:
    api = kclient.deployment
    first = await api.deploy(
        deployment_name, model.name, model_version=1, strategy="blue_green"
    )
    first = await first.wait_ready(timeout=WAIT)
    old = first.latest_ready_revision
    cluster.scripts.set(
        "inferenceservices", deployment_name, model_load_failed(exit_code=3)
    )

    with pytest.raises(DeploymentException) as caught:
        await api.update(deployment_name, model_version=2, timeout=WAIT)
    assert "ModelLoadFailed" in caught.value.reasons
    assert "exit code 3" in str(caught.value)
    assert old is not None and old in str(caught.value)
    assert caught.value.deployment_name == deployment_name

    after = await api.get_deployment(deployment_name)
    assert after.traffic_percent(old) == 100
    assert after.rollout_state == "rolled_back"
    assert after.latest_created_revision != old
    assert after.model_failure is not None
    assert after.model_failure.exit_code == 3

    # The same version makes no new revision, so a retry fails on the failed
    # one again, and the error names what to change first.
    cluster.scripts.set("inferenceservices", deployment_name, ready())
    with pytest.raises(DeploymentException) as retried:
        await api.update(deployment_name, model_version=2, timeout=WAIT)
    message = str(retried.value)
    assert "the same version fails on this revision again" in message
    assert "roll out another version or change resources or runtime" in message
    assert "delete() the deployment and deploy() it again" in message

    changed = await api.update(
        deployment_name, model_version=2, resources={"cpu": "2"}, timeout=WAIT
    )
    assert changed.rollout_state == "stable"
    changed = await changed.wait_ready(timeout=WAIT)
    assert changed.latest_ready_revision not in (old, after.latest_created_revision)


async def test_patch_conflict_is_retried(
    kclient: AsyncMaestroClient,
    cluster: FakeCluster,
    model: RegisteredModel,
    deployment_name: str,
) -> None:
    api = kclient.deployment
    await (await api.deploy(deployment_name, model.name, alias="champion")).wait_ready(
        timeout=WAIT
    )
    fault = cluster.faults.lose_write_race(
        times=2, verb="patch", plural="inferenceservices", name=deployment_name
    )
    scaled = await api.update(deployment_name, replicas=2)
    assert fault.hits == 2
    assert scaled.min_replicas == 2
    canary = await api.update(deployment_name, model_version=2, strategy="canary")
    assert canary.canary_traffic_percent == 10


async def test_patch_conflict_gives_up(
    kclient: AsyncMaestroClient,
    cluster: FakeCluster,
    model: RegisteredModel,
    deployment_name: str,
) -> None:
    api = kclient.deployment
    await api.deploy(deployment_name, model.name, alias="champion")
    fault = cluster.faults.lose_write_race(
        times=None, verb="patch", plural="inferenceservices"
    )
    with pytest.raises(KubernetesConflictException):
        await api.update(deployment_name, replicas=2)
    assert fault.hits == MAX_CONFLICT_RETRIES + 1
    cluster.faults.clear()
    unchanged = await api.get_deployment(deployment_name)
    assert unchanged.min_replicas == 1


async def test_real_status_race_lands(
    kclient: AsyncMaestroClient,
    cluster: FakeCluster,
    model: RegisteredModel,
    deployment_name: str,
) -> None:
    """A controller status write between our read and our patch causes a 409."""
    api = kclient.deployment
    await (await api.deploy(deployment_name, model.name, model_version=1)).wait_ready(
        timeout=WAIT
    )
    kube = await kclient._cluster.get()
    original = kube.request
    raced = 0

    async def racing_request(method: str, path: str, **kwargs: object) -> object:
        nonlocal raced
        if method == "PATCH" and raced < 2:
            raced += 1
            cluster.store.mutate(
                ISVC,
                NAMESPACE,
                deployment_name,
                lambda obj: obj["status"].update(raceMarker=raced),
                status_only=True,
            )
        return await original(method, path, **kwargs)

    kube.request = racing_request  # type: ignore[method-assign]
    try:
        rolled = await api.update(deployment_name, model_version=2, strategy="canary")
    finally:
        kube.request = original  # type: ignore[method-assign]
    assert raced == 2
    assert rolled.model_version == "2"
    assert rolled.raw["status"]["raceMarker"] == 2


async def test_wait_fails_fast_on_revision_failure(
    kclient: AsyncMaestroClient,
    cluster: FakeCluster,
    model: RegisteredModel,
    deployment_name: str,
) -> None:
    cluster.scripts.set(
        "inferenceservices", deployment_name, revision_failed("image not found")
    )
    created = await kclient.deployment.deploy(
        deployment_name, model.name, alias="champion"
    )
    loop = asyncio.get_running_loop()
    started = loop.time()
    with pytest.raises(DeploymentException) as caught:
        await created.wait_ready(timeout=WAIT)
    assert loop.time() - started < WAIT / 2
    assert caught.value.reasons == ["RevisionFailed"]
    assert "image not found" in str(caught.value)


async def test_wait_timeout_lists_conditions(
    kclient: AsyncMaestroClient,
    cluster: FakeCluster,
    model: RegisteredModel,
    deployment_name: str,
) -> None:
    cluster.scripts.set("inferenceservices", deployment_name, stuck())
    created = await kclient.deployment.deploy(
        deployment_name, model.name, alias="champion"
    )
    with pytest.raises(TimeoutException) as caught:
        await created.wait_ready(timeout=0.3)
    message = str(caught.value)
    assert "Ready=Unknown (RevisionMissing" in message
    assert "PredictorConfigurationReady=Unknown" in message
    assert "the status has no observedGeneration" in message


async def test_wait_pending_without_status(
    mlflow_server_url: str, model: RegisteredModel, deployment_name: str
) -> None:
    async with FakeCluster(controllers=False) as bare:
        async with make_client(bare, mlflow_server_url) as maestro:
            created = await maestro.deployment.deploy(
                deployment_name, model.name, alias="champion"
            )
            with pytest.raises(TimeoutException) as caught:
                await created.wait_ready(timeout=0.2)
    assert "has not written a status yet" in str(caught.value)


async def test_concurrent_waits_share_one_watch(
    kclient: AsyncMaestroClient,
    cluster: FakeCluster,
    model: RegisteredModel,
    unique: str,
) -> None:
    api = kclient.deployment
    names = [f"svc-{unique}-{index}" for index in range(8)]
    # Slow revisions make the waits depend on watch events, not on the first
    # list: the revisions must outlast the 8 deploys, which take seconds on a
    # loaded machine. The long idle deadline keeps reconnects out of the count.
    kube = await kclient._cluster.get()
    kube.watch_settings.idle_timeout = 60.0
    cluster.scripts.set("inferenceservices", f"svc-{unique}-*", ready(delay=6.0))
    created = await asyncio.gather(
        *(api.deploy(name, model.name, alias="champion") for name in names)
    )
    before = cluster.stats.watch_connections_total
    lists = cluster.stats.requests_by_verb.get("list", 0)
    waited = await asyncio.gather(
        *(item.wait_ready(timeout=WAIT + 10) for item in created for _ in range(3))
    )
    assert all(item.up_to_date for item in waited)
    assert cluster.stats.watch_connections_total - before == 1
    assert cluster.stats.requests_by_verb.get("list", 0) - lists == 1


async def test_cancelled_wait_leaves_nothing(
    kclient: AsyncMaestroClient,
    cluster: FakeCluster,
    model: RegisteredModel,
    deployment_name: str,
) -> None:
    cluster.scripts.set("inferenceservices", deployment_name, stuck())
    created = await kclient.deployment.deploy(
        deployment_name, model.name, alias="champion"
    )
    before = set(asyncio.all_tasks())
    waiter = asyncio.create_task(created.wait_ready(timeout=WAIT))
    await asyncio.sleep(0.2)
    kube = await kclient._cluster.get()
    hub = kube.hub("serving.kserve.io", "v1beta1", "inferenceservices", NAMESPACE)
    assert hub.subscribers == 1
    waiter.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiter
    assert hub.subscribers == 0
    assert not hub.running
    assert sdk_tasks(asyncio.all_tasks() - before) == []


def sdk_tasks(tasks: set[asyncio.Task[object]]) -> list[str]:
    """Return the pending tasks that run SDK code (not the fake server's)."""
    names = []
    for task in tasks:
        code = getattr(task.get_coro(), "cr_code", None)
        filename = code.co_filename if code is not None else ""
        if task.done() or "maestro_ml_async" not in filename:
            continue
        if "maestro_ml_async/testing" not in filename:
            names.append(code.co_qualname)
    return names


async def test_update_foreign_needs_model_name(
    kclient: AsyncMaestroClient,
    cluster: FakeCluster,
    model: RegisteredModel,
    deployment_name: str,
) -> None:
    cluster.store.create(
        ISVC,
        {
            "apiVersion": "serving.kserve.io/v1beta1",
            "kind": "InferenceService",
            "metadata": {"name": deployment_name, "namespace": NAMESPACE},
            "spec": {
                "predictor": {
                    "model": {
                        "modelFormat": {"name": "sklearn"},
                        "storageUri": "s3://x",
                    }
                }
            },
        },
    )
    api = kclient.deployment
    with pytest.raises(ValidationException):
        await api.update(deployment_name, model_version=2)
    rolled = await api.update(deployment_name, model_version=2, model_name=model.name)
    assert rolled.model_name == model.name
    assert rolled.storage_uri == model.sources[1]
    assert rolled.previous_model_version is None
    ready_again = await rolled.wait_ready(timeout=WAIT)
    assert ready_again.latest_ready_revision == f"{deployment_name}-predictor-00002"


async def test_recovered_model_is_ready(
    kclient: AsyncMaestroClient,
    cluster: FakeCluster,
    model: RegisteredModel,
    deployment_name: str,
) -> None:
    # KServe keeps lastFailureInfo after the model loads again, so only the
    # transition status and the failure's revision tell that it is over.
    api = kclient.deployment
    cluster.scripts.set(
        "inferenceservices", deployment_name, model_load_failed(exit_code=4)
    )
    first = await api.deploy(deployment_name, model.name, model_version=1)
    with pytest.raises(DeploymentException) as caught:
        await first.wait_ready(timeout=WAIT)
    assert "ModelLoadFailed" in caught.value.reasons
    failed = await api.get_deployment(deployment_name)
    failed_revision = failed.latest_created_revision
    assert failed_revision is not None

    cluster.scripts.set("inferenceservices", deployment_name, ready())
    updated = await api.update(deployment_name, model_version=2)
    recovered = await updated.wait_ready(timeout=WAIT)

    assert recovered.up_to_date
    assert recovered.transition_status == "UpToDate"
    assert recovered.latest_ready_revision != failed_revision
    assert recovered.model_failure is not None
    assert recovered.model_failure.exit_code == 4
    assert recovered.model_failure.model_revision_name == failed_revision
    again = await api.get_deployment(deployment_name)
    assert evaluate_readiness(again).state == "ready"
    assert again.model_failure is not None


async def test_blue_green_retry_after_timeout(
    kclient: AsyncMaestroClient,
    cluster: FakeCluster,
    model: RegisteredModel,
    deployment_name: str,
) -> None:
    # A retry of the same version finds its revision staged already, so the
    # spec does not change and no newer revision is created to wait for.
    api = kclient.deployment
    first = await api.deploy(
        deployment_name, model.name, model_version=1, strategy="blue_green"
    )
    first = await first.wait_ready(timeout=WAIT)
    old = first.latest_ready_revision
    assert old is not None
    cluster.scripts.set("inferenceservices", deployment_name, ready(delay=1.5))

    with pytest.raises(TimeoutException):
        await api.update(deployment_name, model_version=2, timeout=0.2)
    timed_out = await api.get_deployment(deployment_name)
    assert timed_out.rollout_state == "rolled_back"
    assert timed_out.traffic_percent(old) == 100
    staged = timed_out.latest_created_revision
    assert staged is not None and staged != old

    switched = await api.update(deployment_name, model_version=2, timeout=WAIT)
    assert switched.model_version == "2"
    assert switched.rollout_state == "stable"
    switched = await switched.wait_ready(timeout=WAIT)
    assert [(t.revision_name, t.percent) for t in switched.traffic] == [(staged, 100)]


async def test_blue_green_retry_after_cancel(
    kclient: AsyncMaestroClient,
    cluster: FakeCluster,
    model: RegisteredModel,
    deployment_name: str,
) -> None:
    api = kclient.deployment
    first = await api.deploy(
        deployment_name, model.name, model_version=1, strategy="blue_green"
    )
    old = (await first.wait_ready(timeout=WAIT)).latest_ready_revision
    assert old is not None
    # The delay outlasts the polling below, so the update is still waiting for
    # the new revision when it is cancelled.
    cluster.scripts.set("inferenceservices", deployment_name, ready(delay=3.0))

    rollout = asyncio.create_task(api.update(deployment_name, model_version=2))
    for _ in range(500):
        staged = await api.get_deployment(deployment_name)
        if staged.latest_created_revision not in (None, old):
            break
        await asyncio.sleep(0.02)
    rollout.cancel()
    with pytest.raises(asyncio.CancelledError):
        await rollout
    assert staged.rollout_state == "blue_green"
    assert staged.traffic_percent(old) == 100
    new = staged.latest_created_revision
    assert new not in (None, old)

    switched = await api.update(deployment_name, model_version=2, timeout=WAIT)
    assert switched.rollout_state == "stable"
    switched = await switched.wait_ready(timeout=WAIT)
    assert [(t.revision_name, t.percent) for t in switched.traffic] == [(new, 100)]


def test_timeout_names_missing_revision() -> None:
    staged = Deployment(
        name="svc",
        namespace="ns",
        generation=3,
        observed_generation=3,
        latest_created_revision="svc-predictor-00001",
        latest_ready_revision="svc-predictor-00001",
        raw={"status": {"observedGeneration": 3}},
    )
    message = describe_not_ready(staged, not_revision="svc-predictor-00001")
    assert "no revision newer than svc-predictor-00001 was created yet" in message
    assert "no revision newer" not in describe_not_ready(staged)
