"""Shared fixtures: one real MLflow server per test session.

`.ci/run` starts the server and passes its URL in ``MAESTRO_TEST_MLFLOW_URI``
and its artifact folder in ``MAESTRO_TEST_MLFLOW_ARTIFACTS``. Without them, the
session starts its own server in a temporary folder.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from maestro_ml_async import AsyncMaestroClient
from maestro_ml_async.testing.mlflow_server import LocalMlflowServer

MLFLOW_ENV = "MAESTRO_TEST_MLFLOW_URI"
# The folder where that server stores artifacts (its --artifacts-destination).
ARTIFACTS_ENV = "MAESTRO_TEST_MLFLOW_ARTIFACTS"

# Settings from the developer's own environment must not leak into tests.
for _name in list(os.environ):
    if _name.startswith(("MAESTRO_ML_", "MLFLOW_TRACKING_", "MLFLOW_REGISTRY_")):
        del os.environ[_name]


@pytest.fixture(scope="session")
def mlflow_session() -> Iterator[tuple[str, Path | None]]:
    """URL of the session's real MLflow server, and its artifact folder if known."""
    url = os.environ.get(MLFLOW_ENV)
    if url:
        artifacts = os.environ.get(ARTIFACTS_ENV)
        yield url.rstrip("/"), Path(artifacts) if artifacts else None
        return
    with LocalMlflowServer() as server:
        yield server.url, server.root / "artifacts"


@pytest.fixture(scope="session")
def mlflow_server_url(mlflow_session: tuple[str, Path | None]) -> str:
    """URL of the session's real MLflow server (artifact serving on)."""
    return mlflow_session[0]


@pytest.fixture
async def client(mlflow_server_url: str) -> AsyncIterator[AsyncMaestroClient]:
    """An async client bound to the session's MLflow server."""
    async with AsyncMaestroClient(
        mlflow_uri=mlflow_server_url, max_retries=2
    ) as maestro:
        yield maestro


@pytest.fixture
def unique() -> str:
    """A short random suffix that keeps names apart on the shared server."""
    return uuid.uuid4().hex[:10]
