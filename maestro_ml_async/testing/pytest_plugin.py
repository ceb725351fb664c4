"""Pytest fixture for the fake cluster.

Enable it with ``pytest_plugins = ["maestro_ml_async.testing.pytest_plugin"]`` in
a ``conftest.py``. It needs pytest-asyncio.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest_asyncio

from ._cluster import FakeCluster


@pytest_asyncio.fixture
async def fake_cluster() -> AsyncIterator[FakeCluster]:
    """Yield a started ``FakeCluster`` (plain http, fast controller ticks).

    Each test gets its own server, store and controllers, stopped afterwards.
    """
    async with FakeCluster(tick=0.01, bookmark_interval=0.2) as cluster:
        yield cluster
