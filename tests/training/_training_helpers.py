"""Helpers shared by the training tests."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from maestro_ml_async import AsyncMaestroClient
from maestro_ml_async._config import build_config
from maestro_ml_async.testing import FakeCluster

NAMESPACE = "ml-platform"
UNUSED_MLFLOW = "http://127.0.0.1:9"


def make_client(fake: FakeCluster, **overrides: object) -> AsyncMaestroClient:
    """Return a client on the fake cluster (its MLflow URI is never used)."""
    settings: dict[str, object] = {
        "mlflow_uri": UNUSED_MLFLOW,
        "kube_config_path": fake.kubeconfig_path,
        "kube_context": fake.context,
        "namespace": NAMESPACE,
        "max_retries": 2,
        "retry_backoff_base": 0.01,
        "retry_backoff_max": 0.05,
    }
    settings.update(overrides)
    return AsyncMaestroClient(config=build_config(settings))


async def shrink_watch_timings(client: AsyncMaestroClient) -> None:
    """Make watches reconnect and back off within a test's time budget."""
    transport = await client._cluster.get()
    settings = transport.watch_settings
    settings.idle_timeout = 1.0
    settings.backoff_base = 0.02
    settings.backoff_max = 0.2


async def eventually(
    predicate: Callable[[], bool], timeout: float = 15.0, what: str = "condition"
) -> None:
    """Wait until `predicate()` is true, checking every 10 ms."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not predicate():
        if loop.time() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.01)
