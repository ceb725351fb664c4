"""Tests of the per-container log buffers behind the fake pods/log endpoint."""

from __future__ import annotations

import asyncio
from datetime import datetime, timezone

from maestro_ml_async.testing._podlogs import PodLogs


async def _collect(logs: PodLogs, start: int = 0) -> list[str]:
    return [line async for _, line in logs.follow("ns", "p", "c", start_index=start)]


def test_append_and_lines() -> None:
    logs = PodLogs()
    stamp = datetime(2024, 1, 5, 22, 58, 20, tzinfo=timezone.utc)
    logs.append("ns", "p", "c", "one\n", timestamp=stamp)
    logs.append("ns", "p", "c", "two")
    lines = logs.lines("ns", "p", "c")
    assert [text for _, text in lines] == ["one", "two"]
    assert lines[0][0] == stamp
    assert lines[1][0].tzinfo is not None
    assert logs.lines("ns", "p", "other") == []


def test_restart_keeps_previous_instance() -> None:
    logs = PodLogs()
    assert not logs.has_previous("ns", "p", "c")
    logs.append("ns", "p", "c", "first run")
    logs.restart("ns", "p", "c")
    logs.append("ns", "p", "c", "second run")
    assert logs.has_previous("ns", "p", "c")
    assert [t for _, t in logs.lines("ns", "p", "c", previous=True)] == ["first run"]
    assert [t for _, t in logs.lines("ns", "p", "c")] == ["second run"]
    logs.restart("ns", "p", "c")
    assert [t for _, t in logs.lines("ns", "p", "c", previous=True)] == ["second run"]


async def test_follow_streams_until_finish() -> None:
    logs = PodLogs()
    logs.append("ns", "p", "c", "a")
    task = asyncio.create_task(_collect(logs))
    await asyncio.sleep(0)
    logs.append("ns", "p", "c", "b")
    await asyncio.sleep(0)
    logs.append("ns", "p", "c", "c")
    assert not task.done()
    logs.finish("ns", "p", "c")
    assert await asyncio.wait_for(task, 1) == ["a", "b", "c"]
    assert logs.is_finished("ns", "p", "c")


async def test_follow_start_index_skips_lines() -> None:
    logs = PodLogs()
    for text in ("a", "b", "c"):
        logs.append("ns", "p", "c", text)
    logs.finish("ns", "p", "c")
    assert await _collect(logs, start=2) == ["c"]
    assert await _collect(logs, start=10) == []


async def test_follow_ends_on_restart_and_forget() -> None:
    logs = PodLogs()
    first = asyncio.create_task(_collect(logs))
    await asyncio.sleep(0)
    logs.append("ns", "p", "c", "old")
    logs.restart("ns", "p", "c")
    logs.append("ns", "p", "c", "new")
    assert await asyncio.wait_for(first, 1) == ["old"]

    second = asyncio.create_task(_collect(logs))
    await asyncio.sleep(0)
    logs.forget("ns", "p")
    assert await asyncio.wait_for(second, 1) == ["new"]
    assert logs.lines("ns", "p", "c") == []
    assert not logs.has_previous("ns", "p", "c")


async def test_many_followers_see_same_lines() -> None:
    logs = PodLogs()
    tasks = [asyncio.create_task(_collect(logs)) for _ in range(5)]
    await asyncio.sleep(0)
    for i in range(20):
        logs.append("ns", "p", "c", str(i))
        if i % 3 == 0:
            await asyncio.sleep(0)
    logs.finish("ns", "p", "c")
    results = await asyncio.wait_for(asyncio.gather(*tasks), 1)
    for result in results:
        assert result == [str(i) for i in range(20)]
