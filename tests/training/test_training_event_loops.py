"""One client used from several event loops, as in successive ``asyncio.run``.

The client runs on a worker thread, so the fake cluster keeps serving from the
test's event loop.
"""

from __future__ import annotations

import asyncio
import threading

import pytest
from _training_helpers import make_client

from maestro_ml_async import AsyncMaestroClient, ClientClosedError
from maestro_ml_async.testing import FakeCluster
from maestro_ml_async.types.training import JobStatus


async def _submit_and_wait(client: AsyncMaestroClient, name: str) -> JobStatus:
    job = await client.training.submit_job(name, "sklearn", "img")
    finished = await job.wait(timeout=10)
    return finished.status


def _run_on_three_loops(client: AsyncMaestroClient) -> list[JobStatus]:
    statuses = [
        asyncio.run(_submit_and_wait(client, f"loop{number}")) for number in range(3)
    ]
    asyncio.run(client.aclose())
    return statuses


async def test_cluster_side_survives_new_loops(cluster: FakeCluster) -> None:
    client = make_client(cluster)
    statuses = await asyncio.to_thread(_run_on_three_loops, client)
    assert statuses == [JobStatus.SUCCEEDED] * 3
    assert client.closed


async def test_cluster_side_after_loop_ended_reads(cluster: FakeCluster) -> None:
    client = make_client(cluster)

    def run() -> list[str]:
        asyncio.run(client.training.submit_job("first", "sklearn", "img"))

        async def read_both() -> list[str]:
            first = await client.training.get_job("first")
            second = await client.training.submit_job("second", "custom", "img")
            return [first.name, second.name]

        names = asyncio.run(read_both())
        asyncio.run(client.aclose())
        return names

    assert await asyncio.to_thread(run) == ["first", "second"]


async def test_cluster_side_on_two_running_loops(cluster: FakeCluster) -> None:
    client = make_client(cluster)
    started = threading.Event()
    release = threading.Event()

    def hold_first_loop() -> None:
        async def main() -> None:
            await client.training.submit_job("held", "sklearn", "img")
            started.set()
            await asyncio.to_thread(release.wait)
            await client.aclose()

        asyncio.run(main())

    holder = asyncio.create_task(asyncio.to_thread(hold_first_loop))
    try:
        await asyncio.to_thread(started.wait, 10)
        with pytest.raises(ClientClosedError, match="another event loop"):
            await asyncio.to_thread(asyncio.run, client.training.get_job("held"))
    finally:
        release.set()
        await holder
