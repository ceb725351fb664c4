"""A hub that shares one `ResumableWatch` among the waiters of one resource."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Callable
from typing import TYPE_CHECKING, Any

from ._aio import wait_with_timeout
from ._kube_events import WatchEvent, is_newer

if TYPE_CHECKING:
    from ._kube_watch import ResumableWatch

__all__ = ["Subscription", "WatchHub"]

logger = logging.getLogger(__name__)


class Subscription:
    """Events of one hub for one object (or all objects), in order.

    Iterate it with ``async for``; an error of the shared watch is raised here.

    Attributes:
        name: The object's name, or None for every object.
        covered: Whether every change of the object after the subscriber's own
            last read reaches this subscription, deletions included, so the
            subscriber need not read the object again. `WatchHub.subscribe`
            sets it.
        seen_version: The resourceVersion the subscriber read, if it gave one.
    """

    def __init__(self, name: str | None) -> None:
        self.name = name
        self.covered = False
        self.seen_version: str | None = None
        # NOTE: unbounded, so a subscriber that stops reading keeps every event.
        self._queue: asyncio.Queue[WatchEvent | BaseException] = asyncio.Queue()

    def _put(self, item: WatchEvent | BaseException) -> None:
        self._queue.put_nowait(item)

    def __aiter__(self) -> Subscription:
        return self

    async def __anext__(self) -> WatchEvent:
        item = await self._queue.get()
        if isinstance(item, BaseException):
            raise item
        return item

    async def get(self, timeout: float | None = None) -> WatchEvent:
        """Wait for the next event; raise asyncio.TimeoutError after `timeout` s."""
        if timeout is None:
            return await self.__anext__()
        return await wait_with_timeout(self.__anext__(), timeout)


class WatchHub:
    """One shared `ResumableWatch` feeding any number of subscribers.

    The watch starts with the first subscriber and stops when the last one
    leaves. The hub caches the newest state of every object it has seen, and a
    new subscriber first receives the cached object (or, without a name, every
    cached object) as a synthetic ADDED event, then every later change.

    A subscriber that read its object before subscribing passes the version
    it read, and then learns of every later change without reading the object
    again. A newer state arrives as an event. A deletion that the hub has
    already processed arrives as a synthetic DELETED event, because the object
    is missing from a cache that is complete up to a version not older than
    the read.
    """

    def __init__(self, factory: Callable[[], ResumableWatch]) -> None:
        self._factory = factory
        self._by_name: dict[str | None, set[Subscription]] = {}
        self._cache: dict[str, dict[str, Any]] = {}
        self._task: asyncio.Task[None] | None = None
        self._watch: ResumableWatch | None = None
        self._awaiting_list: set[Subscription] = set()
        self.starts = 0

    @property
    def subscribers(self) -> int:
        """Number of current subscribers."""
        return sum(len(subs) for subs in self._by_name.values())

    @property
    def running(self) -> bool:
        """Whether the shared watch is running."""
        return self._task is not None and not self._task.done()

    @contextlib.asynccontextmanager
    async def subscribe(
        self, name: str | None = None, *, seen_version: str | None = None
    ) -> AsyncIterator[Subscription]:
        """Receive the events of object `name` (or of all objects) while inside.

        Args:
            name: The object's name, or None for every object.
            seen_version: The resourceVersion of `name` that the subscriber
                read before subscribing. With it, the hub also reports a
                deletion since that read, which a list shows only by leaving
                the object out, as a synthetic DELETED event, and the
                subscription is `covered`.
        """
        subscription = Subscription(name)
        if not self.running:
            self._cache.clear()
            self._awaiting_list.clear()
            self.starts += 1
            self._task = asyncio.get_running_loop().create_task(self._run())
        if name is not None and seen_version:
            subscription.seen_version = seen_version
            subscription.covered = True
            if self._caught_up():
                self._check_absent(subscription)
            else:
                self._awaiting_list.add(subscription)
        elif name is not None and self.has_current(name):
            subscription.covered = True
        if name is None:
            cached = list(self._cache.values())
        else:
            cached = [self._cache[name]] if name in self._cache else []
        for obj in cached:
            subscription._put(WatchEvent("ADDED", obj, synthetic=True))
        self._by_name.setdefault(name, set()).add(subscription)
        try:
            yield subscription
        finally:
            self._awaiting_list.discard(subscription)
            subs = self._by_name.get(name)
            if subs is not None:
                subs.discard(subscription)
                if not subs:
                    del self._by_name[name]
            if not self._by_name:
                await self._stop()

    def _caught_up(self) -> bool:
        watch = self._watch
        return self.running and watch is not None and watch.caught_up

    def has_current(self, name: str) -> bool:
        """Whether the hub has listed and caches `name`, so no change is lost.

        Every change of a cached object after the cached state reaches a new
        subscriber as an event, so its caller need not read the object again.
        """
        return self._caught_up() and name in self._cache

    def _check_absent(self, subscription: Subscription) -> None:
        # The hub has processed every event up to its watch's resourceVersion,
        # so an object read at a version not newer than that and missing from
        # the cache was deleted. An object read at a later version reaches the
        # hub as a watch event instead.
        name, seen = subscription.name, subscription.seen_version
        watch = self._watch
        if name is None or seen is None or watch is None or name in self._cache:
            return
        current = watch.resource_version
        if current is None or is_newer(seen, current):
            return
        logger.debug(
            "hub at resourceVersion %s lacks %s; reported deleted", current, name
        )
        gone = {"metadata": {"name": name, "resourceVersion": current}}
        subscription._put(WatchEvent("DELETED", gone, synthetic=True))

    def _report_absent(self) -> None:
        # Called by the watch once the events of its list have been dispatched.
        waiting, self._awaiting_list = self._awaiting_list, set()
        for subscription in waiting:
            self._check_absent(subscription)

    async def _run(self) -> None:
        watch = self._factory()
        watch.on_caught_up = self._report_absent
        self._watch = watch
        try:
            async for event in watch:
                self._dispatch(event)
        except Exception as exc:  # handed to every subscriber, which re-raises it
            logger.warning("shared watch failed: %s", exc)
            for subs in list(self._by_name.values()):
                for sub in subs:
                    sub._put(exc)
        finally:
            await watch.aclose()
            self._watch = None

    def _dispatch(self, event: WatchEvent) -> None:
        name = event.name
        logger.debug(
            "hub event %s %s at resourceVersion %s",
            event.type,
            name,
            event.resource_version,
        )
        if event.type == "DELETED":
            self._cache.pop(name, None)
        else:
            self._cache[name] = event.object
        for sub in self._by_name.get(name, ()):
            sub._put(event)
        for sub in self._by_name.get(None, ()):
            sub._put(event)

    async def _stop(self) -> None:
        task, self._task = self._task, None
        self._cache.clear()
        self._awaiting_list.clear()
        if task is None:
            return
        # Cancel until the task ends: a cancellation that arrives as an await
        # completes can be lost inside libraries, and one retry finds it.
        while not task.done():
            task.cancel()
            await asyncio.wait([task], timeout=1.0)

    async def aclose(self) -> None:
        """Stop the shared watch; current subscribers receive no more events."""
        await self._stop()
