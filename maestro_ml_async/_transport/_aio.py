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

    On Python 3.11 and newer this uses ``asyncio.timeout``. ``asyncio.wait_for``
    before 3.12 loses a cancellation of the caller that arrives just as the
    awaited operation completes, which would leave a cancelled task running.
    """
    if sys.version_info >= (3, 11):
        async with asyncio.timeout(seconds):
            return await awaitable
    # NOTE: on Python 3.10 the wait_for race above remains.
    return await asyncio.wait_for(awaitable, seconds)
