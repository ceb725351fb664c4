"""The platform the demo runs on: a configured one, or a local one it starts."""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from maestro_ml_async import Config

__all__ = ["ARTIFACT_CLAIM", "Platform", "mlflow_uri_configured", "open_platform"]

ARTIFACT_CLAIM = "mlflow-artifacts"
"""PersistentVolumeClaim name that stands for the local MLflow artifact folder."""

_URI_VARIABLES = ("MAESTRO_ML_MLFLOW_URI", "MLFLOW_TRACKING_URI")


def mlflow_uri_configured() -> bool:
    """Return whether the environment names an MLflow server to use."""
    return any(os.environ.get(name) for name in _URI_VARIABLES)


@dataclass
class Platform:
    """The platform the demo runs on, with the client configuration for it."""

    config: Config
    local: bool
    description: str


@asynccontextmanager
async def open_platform(
    root: Path, experiment_name: str, startup_timeout: float
) -> AsyncIterator[Platform]:
    """Yield the configured platform, or start a local one under `root`.

    The local platform is a real MLflow server (SQLite store and artifacts under
    ``root/mlflow``) and the fake Kubernetes cluster with its local runner. The
    cluster backs the claim `ARTIFACT_CLAIM` with the artifact folder, and the
    configuration maps ``mlflow-artifacts:/`` URIs onto that claim, so KServe's
    simulated controller serves registered versions from their files.
    """
    if mlflow_uri_configured():
        config = Config.from_env(experiment_name=experiment_name)
        yield Platform(config, False, f"MLflow at {config.mlflow_uri}")
        return

    from maestro_ml_async.testing import FakeCluster
    from maestro_ml_async.testing.mlflow_server import LocalMlflowServer

    server = LocalMlflowServer(root / "mlflow", startup_timeout=startup_timeout)
    artifacts = server.root / "artifacts"
    artifacts.mkdir(parents=True, exist_ok=True)
    cluster = FakeCluster(local_runner=True, pvc_roots={ARTIFACT_CLAIM: str(artifacts)})
    start = asyncio.create_task(asyncio.to_thread(server.start))
    try:
        async with cluster:
            await start
            settings: dict[str, Any] = {
                "mlflow_uri": server.url,
                "kube_config_path": cluster.kubeconfig_path,
                "kube_context": cluster.context,
                "namespace": "ml-platform",
                "experiment_name": experiment_name,
                "storage_uri_map": {"mlflow-artifacts:/": f"pvc://{ARTIFACT_CLAIM}/"},
            }
            description = (
                f"local MLflow at {server.url} (data in {server.root}) "
                f"and the fake cluster at {cluster.url}"
            )
            yield Platform(Config.from_env(**settings), True, description)
    finally:
        if not start.done():
            start.cancel()
        await asyncio.gather(start, return_exceptions=True)
        await asyncio.to_thread(server.stop)
