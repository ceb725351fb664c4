"""Asyncio helpers that behave the same on every supported Python version."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Awaitable
from typing import TypeVar

__all__ = ["wait_with_timeout"]

T = TypeVar("T")


async def wait_with_timeout(awaitable: Awaitable[T], seconds: float | None) -> T:
    """Await `awaitable` for at most `seconds`; raise asyncio.TimeoutError after.

    ``asyncio.wait_for`` before 3.12 loses a cancellation of the caller that
    arrives just as the awaited operation completes, which would leave a
    cancelled task running. So this uses ``asyncio.timeout`` on Python 3.11
    and newer, and an anyio cancel scope on 3.10, which re-raises every
    cancellation that it did not cause.
    """
    if sys.version_info >= (3, 11):
        async with asyncio.timeout(seconds):
            return await awaitable
    import anyio

    with anyio.move_on_after(seconds):
        return await awaitable
    # Only a scope whose deadline passed ends here without returning.
    raise asyncio.TimeoutError
