"""Log lines longer than aiohttp's read buffer, read from the fake cluster.

aiohttp's ``readline`` raises ``LineTooLong`` above 4 MiB (the buffer that
kubernetes-asyncio sets), so a 5 MiB line shows whether the SDK reads past it.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from maestro_ml_async import AsyncMaestroClient
from maestro_ml_async.resources import _training_logs
from maestro_ml_async.testing import FakeCluster
from maestro_ml_async.testing._scripts import hang
from maestro_ml_async.types.training import LogLine, TrainingJob


async def collect(job: TrainingJob, **options: Any) -> list[LogLine]:
    return [line async for line in job.logs(**options)]


async def running_pod(client: AsyncMaestroClient, name: str) -> tuple[TrainingJob, str]:
    job = await client.training.submit_job(name, "custom", "img")
    await job.wait(until="running", timeout=5)
    job = await job.refresh()
    return job, job.pods["Worker"][0]


async def test_line_above_read_buffer_arrives_whole(
    cluster: FakeCluster, client: AsyncMaestroClient
) -> None:
    long_line = "x" * (5 * 1024 * 1024)
    cluster.scripts.set("jobs", "long", hang(logs=["start", long_line, "end"]))
    job, _ = await running_pod(client, "long")
    follow = asyncio.ensure_future(collect(job))

    current = await asyncio.wait_for(collect(job, follow=False), 20)
    assert [len(line.line) for line in current] == [5, len(long_line), 3]
    assert current[1].line == long_line
    assert current[1].timestamp is not None

    # The follower may still be reading the long line; deleting the job ends it.
    await asyncio.sleep(0.3)
    await client.training.delete_job("long")
    followed = await asyncio.wait_for(follow, 20)
    assert [len(line.line) for line in followed] == [5, len(long_line), 3]


async def test_overlong_line_arrives_in_pieces(
    cluster: FakeCluster, client: AsyncMaestroClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(_training_logs, "MAX_LINE_BYTES", 1000)
    cluster.scripts.set("jobs", "pieces", hang(logs=["start", "y" * 2500, "end"]))
    job, _ = await running_pod(client, "pieces")

    lines = await asyncio.wait_for(collect(job, follow=False), 20)
    texts = [line.line for line in lines]
    # The first piece carries the 31-byte timestamp prefix within the
    # 1000-byte limit, so 2532 bytes with the newline make three pieces.
    assert texts[0] == "start"
    assert "".join(texts[1:-1]) == "y" * 2500
    assert len(texts) == 5
    assert texts[-1] == "end"
    assert lines[1].timestamp is not None
    assert all(line.timestamp is None for line in lines[2:-1])
    await client.training.delete_job("pieces")
