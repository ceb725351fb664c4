"""Fixtures of the training tests: a fake cluster and a client bound to it.

The training tests never talk to MLflow, so the client's MLflow URI points at a
port where nothing listens.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest_asyncio
from _training_helpers import make_client, shrink_watch_timings

from maestro_ml_async import AsyncMaestroClient
from maestro_ml_async.testing import FakeCluster


@pytest_asyncio.fixture
async def cluster() -> AsyncIterator[FakeCluster]:
    """A fake cluster with fast controllers and frequent bookmarks."""
    async with FakeCluster(tick=0.01, bookmark_interval=0.2) as fake:
        yield fake


@pytest_asyncio.fixture
async def client(cluster: FakeCluster) -> AsyncIterator[AsyncMaestroClient]:
    """An SDK client on the fake cluster with short watch timings."""
    async with make_client(cluster) as maestro:
        await shrink_watch_timings(maestro)
        yield maestro
