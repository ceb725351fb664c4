"""Tests of the bounded fan-out primitive."""

from __future__ import annotations

import asyncio

import pytest

from maestro_ml_async import BulkOperationError, ValidationException, bulk_map


async def test_bulk_map_keeps_input_order() -> None:
    async def slow_echo(value: int) -> int:
        await asyncio.sleep(0.001 * (10 - value))
        return value * 2

    results = await bulk_map(slow_echo, range(10), max_concurrency=4)

    assert list(results) == [value * 2 for value in range(10)]
    assert results.ok


async def test_bulk_map_bounds_concurrency() -> None:
    in_flight = 0
    peak = 0

    async def tracked(_: int) -> None:
        nonlocal in_flight, peak
        in_flight += 1
        peak = max(peak, in_flight)
        await asyncio.sleep(0.002)
        in_flight -= 1

    await bulk_map(tracked, range(50), max_concurrency=5)

    assert peak == 5


async def test_bulk_map_stores_failures_per_item() -> None:
    async def fail_on_odd(value: int) -> int:
        if value % 2:
            raise ValueError(f"odd {value}")
        return value

    results = await bulk_map(fail_on_odd, range(6), max_concurrency=3)

    assert results.values == [0, 2, 4]
    assert [str(error) for error in results.errors] == ["odd 1", "odd 3", "odd 5"]
    assert isinstance(results[1], ValueError)
    assert not results.ok


async def test_bulk_map_raise_on_error_carries_every_result() -> None:
    async def fail_on_two(value: int) -> int:
        if value == 2:
            raise RuntimeError("boom")
        return value

    with pytest.raises(BulkOperationError) as caught:
        await bulk_map(fail_on_two, range(4), raise_on_error=True)

    assert caught.value.results[:2] == [0, 1]
    assert isinstance(caught.value.results[2], RuntimeError)
    assert caught.value.results[3] == 3
    assert len(caught.value.errors) == 1


async def test_bulk_map_reports_progress() -> None:
    seen: list[tuple[int, int]] = []

    async def identity(value: int) -> int:
        return value

    await bulk_map(identity, range(5), on_progress=lambda d, t: seen.append((d, t)))

    assert seen == [(1, 5), (2, 5), (3, 5), (4, 5), (5, 5)]


async def test_bulk_map_accepts_async_progress_callback() -> None:
    seen: list[int] = []

    async def record(done: int, total: int) -> None:
        seen.append(done)

    async def identity(value: int) -> int:
        return value

    await bulk_map(identity, range(3), on_progress=record)

    assert seen == [1, 2, 3]


async def test_bulk_map_cancel_leaves_no_task() -> None:
    started = asyncio.Event()
    finished = 0

    async def hang(_: int) -> None:
        nonlocal finished
        started.set()
        try:
            await asyncio.sleep(60)
        finally:
            finished += 1

    before = len(asyncio.all_tasks())
    task = asyncio.create_task(bulk_map(hang, range(20), max_concurrency=4))
    await started.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task

    assert finished == 4
    assert len(asyncio.all_tasks()) == before


async def test_bulk_map_empty_input() -> None:
    async def identity(value: int) -> int:
        return value

    results = await bulk_map(identity, [])

    assert list(results) == []
    assert results.ok


async def test_bulk_map_rejects_zero_concurrency() -> None:
    async def identity(value: int) -> int:
        return value

    with pytest.raises(ValidationException):
        await bulk_map(identity, [1], max_concurrency=0)


async def test_bulk_map_item_cancelled_error_is_a_result() -> None:
    async def cancelled_inside(value: int) -> int:
        if value % 2:
            # A future that something else cancelled raises CancelledError
            # here, although nobody cancelled bulk_map.
            future: asyncio.Future[int] = asyncio.get_running_loop().create_future()
            future.cancel()
            return await future
        return value

    results = await bulk_map(cancelled_inside, range(40), max_concurrency=4)

    assert len(results) == 40
    assert results.values == list(range(0, 40, 2))
    assert len(results.errors) == 20
    assert all(isinstance(error, asyncio.CancelledError) for error in results.errors)
    assert not results.ok


async def test_bulk_map_outer_scope_cancel_stops_workers() -> None:
    import anyio

    started: list[int] = []

    async def slow(value: int) -> None:
        started.append(value)
        await asyncio.sleep(10)

    with anyio.move_on_after(0.05):
        await bulk_map(slow, range(100), max_concurrency=5)

    assert started == [0, 1, 2, 3, 4]


async def test_bulk_map_progress_error_raised_once() -> None:
    calls: list[int] = []

    def broken(done: int, total: int) -> None:
        calls.append(done)
        raise RuntimeError("progress display failed")

    async def echo(value: int) -> int:
        await asyncio.sleep(0)
        return value

    with pytest.raises(RuntimeError, match="progress display failed"):
        await bulk_map(echo, range(50), max_concurrency=8, on_progress=broken)
    # Workers that finished in the same loop step may report too, but the
    # remaining items never start.
    assert 1 <= len(calls) <= 8
