"""Sync counterparts of async objects: iterators, context managers and pagers.

The generated sync client (``_client.py``) builds its return values from these.
"""

from __future__ import annotations

import asyncio
import contextvars
import functools
import inspect
from collections.abc import (
    AsyncIterator,
    Awaitable,
    Callable,
    Generator,
    Iterator,
    Mapping,
    Sequence,
)
from contextlib import AbstractAsyncContextManager, AbstractContextManager
from types import TracebackType
from typing import TYPE_CHECKING, Any, Generic, TypeVar, overload

from .._pagination import Page
from ._runtime import SyncRunner

if TYPE_CHECKING:
    from .._pagination import AsyncPager

__all__ = [
    "Pager",
    "SyncContextManager",
    "SyncWrapper",
    "convert_nested",
    "iterate",
    "iterate_converted",
    "run_in_worker_thread",
    "sync_repr",
    "unwrap",
]

T = TypeVar("T")
R = TypeVar("R")
W = TypeVar("W")
A = TypeVar("A")


def iterate(runner: SyncRunner, iterator: AsyncIterator[T]) -> Generator[T, None, None]:
    """Yield the items of an async iterator, fetched on the runner's loop.

    Every step runs in one task on the loop. Closing the generator (by
    `close()`, by leaving a ``for`` loop over a temporary, or by garbage
    collection) calls the async iterator's ``aclose()`` there, which runs its
    ``finally`` blocks and closes the streams it holds.
    """
    driver = runner.driver()
    finished = False
    try:
        while True:
            try:
                item = driver.step(iterator.__anext__)
            except StopAsyncIteration:
                finished = True
                return
            yield item
    finally:
        aclose = getattr(iterator, "aclose", None)
        driver.finish(None if finished or aclose is None else aclose)


def iterate_converted(
    runner: SyncRunner, iterator: AsyncIterator[A], convert: Callable[[A], T]
) -> Generator[T, None, None]:
    """Like `iterate`, passing every item through `convert`."""
    items = iterate(runner, iterator)
    try:
        for item in items:
            yield convert(item)
    finally:
        items.close()


class SyncContextManager(AbstractContextManager[T]):
    """A sync context manager that enters and exits an async one on the loop.

    ``__aenter__`` and ``__aexit__`` run in the same task, because async context
    managers may hold task-bound state (anyio cancel scopes, task groups).
    """

    def __init__(self, runner: SyncRunner, manager: AbstractAsyncContextManager[T]):
        self._runner = runner
        self._manager = manager
        self._driver = runner.driver()

    def __enter__(self) -> T:
        try:
            return self._driver.step(self._manager.__aenter__)
        except BaseException:
            self._driver.finish()
            raise

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> bool | None:
        exit_step = functools.partial(self._manager.__aexit__, exc_type, exc, traceback)
        try:
            return self._driver.step(exit_step)
        finally:
            self._driver.finish()


class Pager(Sequence[T]):
    """All results of a search or list, fetched page by page on demand.

    The sync twin of `AsyncPager`. Iterating it streams items, fetching each
    page when the previous one is used up, and fetches again on every new
    iteration. `page` fetches one page with its token, and `to_list` fetches
    every item. ``len()``, indexing, slicing and truth tests fetch every item
    on first use and keep that list, so later uses send no requests.
    """

    @overload
    def __init__(self, runner: SyncRunner, pager: AsyncPager[T]) -> None: ...

    @overload
    def __init__(
        self, runner: SyncRunner, pager: AsyncPager[A], convert: Callable[[A], T]
    ) -> None: ...

    def __init__(
        self,
        runner: SyncRunner,
        pager: AsyncPager[Any],
        convert: Callable[[Any], T] | None = None,
    ) -> None:
        self._runner = runner
        self._pager = pager
        self._convert = convert
        self._items: list[T] | None = None

    def __iter__(self) -> Iterator[T]:
        if self._items is not None:
            return iter(self._items)
        items = self._pager.__aiter__()
        if self._convert is None:
            return iterate(self._runner, items)
        return iterate_converted(self._runner, items, self._convert)

    def _fetch_all(self) -> list[T]:
        items = self._runner.call(self._pager.to_list)
        if self._convert is not None:
            items = [self._convert(item) for item in items]
        self._items = items
        return items

    def page(self, page_token: str | None = None) -> Page[T]:
        """Fetch a single page; pass the previous page's token to continue."""
        page = self._runner.call(self._pager.page, page_token)
        if self._convert is None:
            return page
        items = [self._convert(item) for item in page.items]
        return Page(items, page.next_page_token, page.raw)

    def to_list(self) -> list[T]:
        """Fetch every page and return all items."""
        return list(self._fetch_all())

    def _materialize(self) -> list[T]:
        items = self._items
        if items is None:
            items = self._fetch_all()
        return items

    def __len__(self) -> int:
        return len(self._materialize())

    @overload
    def __getitem__(self, index: int) -> T: ...

    @overload
    def __getitem__(self, index: slice) -> list[T]: ...

    def __getitem__(self, index: int | slice) -> T | list[T]:
        return self._materialize()[index]

    def __bool__(self) -> bool:
        return bool(self._materialize())

    def __repr__(self) -> str:
        if self._items is None:
            return "Pager(<not fetched>)"
        return f"Pager({self._items!r})"


class SyncWrapper(Generic[W]):
    """Base of the generated sync classes: the async object and the runner."""

    def __init__(self, runner: SyncRunner, wrapped: W) -> None:
        self._runner = runner
        self._async = wrapped

    def __repr__(self) -> str:
        return sync_repr(self._async, type(self).__name__)


def unwrap(value: Any) -> Any:
    """Return the async object behind a generated sync object, else `value`."""
    if isinstance(value, SyncWrapper):
        return value._async
    if isinstance(value, list):
        return [unwrap(item) for item in value]
    if isinstance(value, tuple):
        return tuple(unwrap(item) for item in value)
    return value


def convert_nested(
    runner: SyncRunner,
    value: Any,
    classes: Mapping[tuple[str, str], type[SyncWrapper[Any]]],
) -> Any:
    """Wrap the async objects inside lists, tuples and dict values of `value`.

    `classes` maps ``(module, qualname)`` of each async class to its sync class.
    Other values, and the fields of other objects, are returned unchanged.
    """
    for klass in type(value).__mro__:
        sync_class = classes.get((klass.__module__, klass.__qualname__))
        if sync_class is not None:
            return sync_class(runner, value)
    if isinstance(value, list):
        return [convert_nested(runner, item, classes) for item in value]
    if isinstance(value, tuple):
        return tuple(convert_nested(runner, item, classes) for item in value)
    if isinstance(value, dict):
        return {
            key: convert_nested(runner, item, classes) for key, item in value.items()
        }
    return value


def sync_repr(wrapped: object, sync_name: str) -> str:
    """Return ``repr(wrapped)`` with the async class name replaced by `sync_name`."""
    text = repr(wrapped)
    cls = type(wrapped)
    if text.startswith(cls.__name__):
        return sync_name + text[len(cls.__name__) :]
    for name in (f"{cls.__module__}.{cls.__qualname__}", cls.__name__):
        if text.startswith("<" + name):
            return "<" + sync_name + text[len(name) + 1 :]
    return text


def run_in_worker_thread(
    runner: SyncRunner, func: Callable[..., R]
) -> Callable[..., Awaitable[R]]:
    """Adapt a sync callable to the coroutine function that an async API expects.

    The call runs in the runner's worker threads, so `func` may itself use the
    sync client (which blocks until the loop returns its result) without blocking
    the loop.

    Raises:
        TypeError: `func` is a coroutine function, at once. A call whose result
            is a coroutine (a lambda that calls a coroutine function) raises
            it too, after the coroutine is closed unawaited.
    """
    if _is_coroutine_function(func):
        raise TypeError(
            f"{_callable_name(func)} is a coroutine function, but the sync "
            "client runs a plain function in a worker thread; pass a sync "
            "function, or use AsyncMaestroClient for coroutine functions"
        )

    async def call_in_thread(*args: Any) -> R:
        context = contextvars.copy_context()
        bound = functools.partial(context.run, func, *args)
        result = await asyncio.get_running_loop().run_in_executor(
            runner.executor(), bound
        )
        if inspect.iscoroutine(result):
            result.close()
            raise TypeError(
                f"{_callable_name(func)} returned a coroutine, which the sync "
                "client does not await; pass a sync function, or use "
                "AsyncMaestroClient for coroutine functions"
            )
        return result

    return call_in_thread


def _is_coroutine_function(func: Callable[..., object]) -> bool:
    # inspect.iscoroutinefunction unwraps functools.partial, but it returns
    # False for an object whose __call__ method is async.
    if inspect.iscoroutinefunction(func):
        return True
    call = getattr(func, "__call__", None)  # noqa: B004 - the method, not callable()
    return inspect.iscoroutinefunction(call)


def _callable_name(func: object) -> str:
    name = getattr(func, "__qualname__", None)
    return repr(name) if isinstance(name, str) else repr(func)
