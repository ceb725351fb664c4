"""Two submits of different kinds with one name, racing each other."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from maestro_ml_async import (
    AsyncMaestroClient,
    KubernetesConflictException,
    KubernetesNotFoundException,
)
from maestro_ml_async._config import build_config
from maestro_ml_async.resources import _training_submit
from maestro_ml_async.testing import RESOURCE_TYPES, FakeCluster

NAMESPACE = "ml-platform"
PYTORCH = RESOURCE_TYPES["pytorchjobs.kubeflow.org"]
TFJOB = RESOURCE_TYPES["tfjobs.kubeflow.org"]


def jobs_named(cluster: FakeCluster, name: str) -> list[str]:
    found = []
    for rtype in (PYTORCH, TFJOB):
        if cluster.store.get(rtype, NAMESPACE, name) is not None:
            found.append(rtype.plural)
    return found


async def test_racing_submits_leave_one_job(
    cluster: FakeCluster,
    client: AsyncMaestroClient,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Both submits pass the read before either creates its job, which is the
    # window that a read-then-create check alone cannot close.
    real_check = _training_submit._check_name_free
    arrived: list[str] = []
    release = asyncio.Event()

    async def check_then_wait(transport: Any, request: Any) -> None:
        await real_check(transport, request)
        arrived.append(request.kind.kind)
        if len(arrived) == 2:
            release.set()
        await asyncio.wait_for(release.wait(), 10)

    monkeypatch.setattr(_training_submit, "_check_name_free", check_then_wait)
    results = await asyncio.gather(
        client.training.submit_job("twin", "pytorch", "img", workers=0),
        client.training.submit_job("twin", "tensorflow", "img", workers=0),
        return_exceptions=True,
    )
    conflicts = [r for r in results if isinstance(r, KubernetesConflictException)]
    others = [r for r in results if isinstance(r, BaseException)]
    assert len(conflicts) >= 1
    assert others == conflicts
    remaining = jobs_named(cluster, "twin")
    assert len(remaining) <= 1
    # A submit that returned has its job still in place.
    assert len(remaining) == len(results) - len(conflicts)


async def test_later_submit_removes_own_job(
    cluster: FakeCluster,
    client: AsyncMaestroClient,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # The TFJob exists, but the submit's first read missed it: the check
    # after the create finds it and deletes only the new PyTorchJob.
    await client.training.submit_job("taken", "tensorflow", "img", workers=0)

    async def missed_read(transport: Any, request: Any) -> None:
        return None

    monkeypatch.setattr(_training_submit, "_check_name_free", missed_read)
    with pytest.raises(KubernetesConflictException) as caught:
        await client.training.submit_job("taken", "pytorch", "img", workers=0)
    assert caught.value.reason == "AlreadyExists"
    assert "TFJob" in caught.value.message
    assert jobs_named(cluster, "taken") == ["tfjobs"]


async def test_later_submit_removes_own_configmap(
    cluster: FakeCluster,
    client: AsyncMaestroClient,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Any,
) -> None:
    await client.training.submit_job("shared", "tensorflow", "img", workers=0)
    script = tmp_path / "train.py"
    script.write_text("print('training')\n")

    async def missed_read(transport: Any, request: Any) -> None:
        return None

    monkeypatch.setattr(_training_submit, "_check_name_free", missed_read)
    with pytest.raises(KubernetesConflictException):
        await client.training.submit_job(
            "shared", "pytorch", "img", workers=0, code_path=str(script)
        )
    configmaps = RESOURCE_TYPES["configmaps"]
    stored, _ = cluster.store.list(configmaps)
    names = [obj["metadata"]["name"] for obj in stored]
    assert not any(name.startswith("shared") for name in names)
    assert jobs_named(cluster, "shared") == ["tfjobs"]


class StubTransport:
    """Returns one TFJob to the name check and records DELETE requests."""

    def __init__(self, other_created: str | None) -> None:
        self.other_created = other_created
        self.deleted: list[str] = []

    async def get_object(
        self, group: str, version: str, plural: str, namespace: str, name: str
    ) -> dict[str, Any]:
        if plural != "tfjobs":
            raise KubernetesNotFoundException(f"{plural} {name} not found")
        meta: dict[str, Any] = {"name": name, "namespace": namespace}
        if self.other_created is not None:
            meta["creationTimestamp"] = self.other_created
        return {"kind": "TFJob", "metadata": meta}

    async def request(self, method: str, path: str, **kwargs: Any) -> dict[str, Any]:
        assert method == "DELETE"
        self.deleted.append(path)
        return {}


MINE = "2026-12-04T01:02:03Z"


@pytest.mark.parametrize(
    ("other_created", "kept"),
    [
        ("2026-12-04T01:02:04Z", True),
        (MINE, False),
        ("2026-12-04T01:02:02Z", False),
        (None, False),
    ],
)
async def test_race_rule_by_creation_time(
    other_created: str | None, kept: bool
) -> None:
    # Only a job of another kind created strictly later lets the new job stay.
    request = _training_submit.build_request(
        build_config({"mlflow_uri": "http://127.0.0.1:9"}),
        name="racer",
        framework="pytorch",
        image="img",
        code_path=None,
        command=None,
        args=None,
        gpus=0,
        workers=0,
        params=None,
        env=None,
        resources=None,
        labels=None,
        namespace=NAMESPACE,
    )
    transport = StubTransport(other_created)
    created = {"metadata": {"name": "racer", "creationTimestamp": MINE}}
    settle = _training_submit._settle_name_race(
        transport,  # type: ignore[arg-type]
        request,
        created,
        None,
    )
    if kept:
        await settle
        assert transport.deleted == []
        return
    with pytest.raises(KubernetesConflictException):
        await settle
    assert len(transport.deleted) == 1
    assert transport.deleted[0].endswith("/pytorchjobs/racer")
