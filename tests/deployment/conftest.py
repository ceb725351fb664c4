"""Fixtures of the deployment tests: a fake cluster with KServe and registry models.

Each test gets its own fake cluster (fast controller ticks) and a client bound
to it and to the session's real MLflow server. Model versions are registered
over MLflow's REST API with ``s3://`` sources, which need no artifacts.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
import pytest_asyncio
from _deployment_helpers import RegisteredModel, make_client, register_model

from maestro_ml_async import AsyncMaestroClient
from maestro_ml_async.testing import FakeCluster


@pytest_asyncio.fixture
async def cluster() -> AsyncIterator[FakeCluster]:
    """A started fake cluster whose KServe controller acts within milliseconds."""
    async with FakeCluster(tick=0.01, bookmark_interval=0.2) as fake:
        yield fake


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


@pytest_asyncio.fixture
async def model(kclient: AsyncMaestroClient, unique: str) -> RegisteredModel:
    """A registered model with versions 1 and 2 and alias champion -> 1."""
    name = f"Fraud Model ä {unique}"
    sources = [f"s3://models/{unique}/v1", f"s3://models/{unique}/v2"]
    return await register_model(kclient, name, sources, aliases={"champion": "1"})


@pytest.fixture
def deployment_name(unique: str) -> str:
    """A fresh InferenceService name."""
    return f"svc-{unique}"
