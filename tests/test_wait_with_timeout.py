"""The timeout helper that the cluster side awaits with, on every Python version."""

from __future__ import annotations

import asyncio

import pytest

from maestro_ml_async._transport._aio import wait_with_timeout


async def test_wait_returns_result() -> None:
    async def answer() -> int:
        await asyncio.sleep(0)
        return 7

    assert await wait_with_timeout(answer(), 5) == 7


async def test_wait_without_limit_returns_result() -> None:
    future: asyncio.Future[str] = asyncio.get_running_loop().create_future()
    asyncio.get_running_loop().call_later(0.01, future.set_result, "done")
    assert await wait_with_timeout(future, None) == "done"


async def test_wait_raises_timeout_error() -> None:
    future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
    with pytest.raises(asyncio.TimeoutError):
        await wait_with_timeout(future, 0.01)
    # The awaited future is cancelled, so nothing is left waiting on it.
    assert future.cancelled()


async def test_wait_passes_error_through() -> None:
    async def fail() -> None:
        raise LookupError("missing")

    with pytest.raises(LookupError, match="missing"):
        await wait_with_timeout(fail(), 5)


async def test_cancel_as_result_arrives_kept() -> None:
    # The awaited future completes and the waiting task is cancelled before
    # it runs again. The cancellation must win: a helper that returned the
    # result instead would leave a cancelled task running.
    future: asyncio.Future[int] = asyncio.get_running_loop().create_future()
    task = asyncio.ensure_future(wait_with_timeout(future, 5))
    await asyncio.sleep(0)
    future.set_result(1)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert task.cancelled()
