"""Fixtures of the fake cluster tests: servers without controllers and HTTP sessions."""

from __future__ import annotations

from collections.abc import AsyncIterator

import aiohttp
import pytest_asyncio

from maestro_ml_async.testing import FakeCluster
from maestro_ml_async.testing.pytest_plugin import fake_cluster

__all__ = ["bare_cluster", "fake_cluster", "http"]


@pytest_asyncio.fixture
async def bare_cluster() -> AsyncIterator[FakeCluster]:
    """A fake API server without controllers, so objects stay as written."""
    async with FakeCluster(
        controllers=False, bookmark_interval=0.1, history_size=50
    ) as cluster:
        yield cluster


@pytest_asyncio.fixture
async def http(bare_cluster: FakeCluster) -> AsyncIterator[aiohttp.ClientSession]:
    """An HTTP session against ``bare_cluster`` that sends its bearer token."""
    headers = {"Authorization": f"Bearer {bare_cluster.token}"}
    async with aiohttp.ClientSession(
        base_url=bare_cluster.url, headers=headers
    ) as session:
        yield session
