"""Bounded-concurrency fan-out with one result per input item."""

from __future__ import annotations

import inspect
import math
from collections.abc import Awaitable, Callable, Iterable
from typing import Any, Generic, TypeVar

import anyio
from anyio.abc import TaskGroup

from ._exceptions import BulkOperationError
from ._validation import check_collection, check_positive_int

__all__ = ["BulkResults", "ProgressCallback", "bulk_map"]

T = TypeVar("T")
R = TypeVar("R")

ProgressCallback = Callable[[int, int], Any]
"""Called as ``callback(done, total)`` after each item; may be sync or async."""


class BulkResults(list[R | BaseException], Generic[R]):
    """Results of `bulk_map` in input order: each a value or the exception raised."""

    @property
    def errors(self) -> list[BaseException]:
        """The exceptions, in input order."""
        return [item for item in self if isinstance(item, BaseException)]

    @property
    def values(self) -> list[R]:
        """The successful values, in input order."""
        return [item for item in self if not isinstance(item, BaseException)]

    @property
    def ok(self) -> bool:
        """Whether every item succeeded."""
        return not self.errors


async def bulk_map(
    func: Callable[[T], Awaitable[R]],
    items: Iterable[T],
    *,
    max_concurrency: int = 16,
    raise_on_error: bool = False,
    on_progress: ProgressCallback | None = None,
) -> BulkResults[R]:
    """Run ``func(item)`` for every item, at most `max_concurrency` at a time.

    A fixed set of workers pulls items in order, so a million items cost no more
    tasks than `max_concurrency`. An `Exception` raised by one item is stored as
    that item's result and the others go on. Cancelling the call cancels every
    worker and returns only after they have all ended. An exception raised by
    `on_progress` cancels the remaining work and is raised as it is.

    Args:
        func: The coroutine function applied to each item.
        items: The inputs; consumed once, in order.
        max_concurrency: Upper bound of calls in flight.
        raise_on_error: Raise `BulkOperationError`, which carries every result,
            when at least one item failed.
        on_progress: Called as ``on_progress(done, total)`` after each item.

    Returns:
        One entry per item, in input order.
    """
    max_concurrency = check_positive_int(max_concurrency, name="max_concurrency")
    inputs = check_collection(items, what="items")
    total = len(inputs)
    results: list[Any] = [None] * total
    next_index = 0
    done = 0
    callback_errors: list[Exception] = []
    cancelled = anyio.get_cancelled_exc_class()

    async def worker(group: TaskGroup) -> None:
        nonlocal next_index, done
        while next_index < total:
            index = next_index
            next_index += 1
            try:
                results[index] = await func(inputs[index])
            except cancelled as exc:
                # Only a cancellation of this call, or of a scope around it,
                # ends the worker: the effective deadline is then minus
                # infinity. A CancelledError that `func` raised by itself (say,
                # from a future that something else cancelled) is that item's
                # result, so no slot stays empty and the other items still run.
                if anyio.current_effective_deadline() == -math.inf:
                    raise
                results[index] = exc
            except Exception as exc:
                results[index] = exc
            done += 1
            if on_progress is None:
                continue
            try:
                outcome = on_progress(done, total)
                if inspect.isawaitable(outcome):
                    await outcome
            except Exception as exc:
                # A broken callback stops the call, and its error is raised
                # once rather than once per worker.
                callback_errors.append(exc)
                group.cancel_scope.cancel()
                return

    async with anyio.create_task_group() as group:
        for _ in range(min(max_concurrency, total)):
            group.start_soon(worker, group)
    if callback_errors:
        raise callback_errors[0]

    bulk: BulkResults[R] = BulkResults(results)
    if raise_on_error and not bulk.ok:
        raise BulkOperationError(bulk)
    return bulk
