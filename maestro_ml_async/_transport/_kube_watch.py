"""Resumable Kubernetes watches and a hub that shares one watch among waiters.

`ResumableWatch` follows the informer rules of client-go rather than the
``Watch`` helper of kubernetes-asyncio, which reconnects from an object's
resourceVersion, raises on 410 and ends silently on a clean close:

- it lists first (paged) and yields each object as ADDED, then watches from the
  list's resourceVersion with ``allowWatchBookmarks=true``;
- a clean close (the server's ``timeoutSeconds``) or a connection dropped in the
  middle of a chunk resumes from the last resourceVersion seen; a partial line
  is discarded, so the event is delivered once, after the reconnect;
- a 410 Expired (as HTTP status or as an ERROR event) lists again and yields the
  difference: ADDED or MODIFIED for objects that are new or changed and DELETED
  for objects that vanished meanwhile;
- no line at all within ``idle_timeout`` (bookmarks count) closes the socket and
  reconnects, so a silent connection cannot hang a waiter;
- connections that deliver nothing (an empty 200, refused connections, 5xx)
  back off exponentially with jitter, so the loop never spins;
- every event is compared with the last resourceVersion seen for that object,
  so a replayed event is dropped instead of delivered twice.
"""

from __future__ import annotations

import asyncio
import json
import logging
import random
import time
from collections import deque
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import aiohttp

from .._exceptions import KubernetesException
from ._aio import wait_with_timeout
from ._kube_errors import RETRY_STATUSES, error_from_status, retry_after
from ._kube_events import (
    ObjectKey,
    WatchCounters,
    WatchEvent,
    WatchSettings,
    is_newer,
    object_key,
    resource_version_of,
    uid_of,
)

if TYPE_CHECKING:
    from ._kube import ClusterTransport

__all__ = [
    "ResumableWatch",
    "Subscription",
    "WatchEvent",
    "WatchHub",
    "WatchSettings",
    "is_newer",
]

logger = logging.getLogger(__name__)


class ResumableWatch:
    """An async iterator of `WatchEvent` that survives what clusters do to watches.

    Use ``async with transport.watch(...) as watch: async for event in watch:``
    or call `aclose` when done; closing ends the HTTP response and its
    connection. The module docstring lists the resilience rules.
    """

    def __init__(
        self,
        transport: ClusterTransport,
        group: str,
        version: str,
        plural: str,
        *,
        namespace: str | None = None,
        label_selector: str | None = None,
        field_selector: str | None = None,
        resource_version: str | None = None,
        settings: WatchSettings | None = None,
    ) -> None:
        from ._kube import resource_path

        self._transport = transport
        self._group, self._version, self._plural = group, version, plural
        self._namespace = namespace
        self._label_selector = label_selector
        self._field_selector = field_selector
        self._path = resource_path(group, version, plural, namespace)
        self.settings = settings or WatchSettings()
        self.resource_version = resource_version
        self._complete = resource_version is None
        self._known: dict[ObjectKey, dict[str, Any]] = {}
        self._pending: deque[WatchEvent] = deque()
        self._response: aiohttp.ClientResponse | None = None
        self._lines_this_stream = 0
        self._failures = 0
        self._next_delay = 0.0
        self._refreshed_auth = False
        self._closed = False
        self.synced = False
        self.counters = WatchCounters()
        # Called each time every event of a completed list has been yielded.
        self.on_caught_up: Callable[[], None] | None = None
        self._announce_list = False

    @property
    def caught_up(self) -> bool:
        """Whether a list has completed and every event it produced was yielded.

        False again while a relist (after 410 Expired) is under way.
        """
        return self.synced and not self._pending and self.resource_version is not None

    def __aiter__(self) -> ResumableWatch:
        return self

    async def __aenter__(self) -> ResumableWatch:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Close the open response (and its connection); end the iteration."""
        self._closed = True
        self._drop_response()

    async def __anext__(self) -> WatchEvent:
        while True:
            if self._closed:
                raise StopAsyncIteration
            if self._pending:
                return self._pending.popleft()
            if self._announce_list:
                self._announce_list = False
                if self.on_caught_up is not None:
                    self.on_caught_up()
            if self.resource_version is None:
                await self._relist()
            elif self._response is None:
                await self._connect()
            else:
                event = await self._read_event()
                if event is not None:
                    return event

    # Listing -----------------------------------------------------------------

    async def _relist(self) -> None:
        await self._sleep_backoff()
        try:
            items, list_rv = await self._transport.list_all(
                self._group,
                self._version,
                self._plural,
                self._namespace,
                label_selector=self._label_selector,
                field_selector=self._field_selector,
                page_size=self.settings.page_size,
            )
        except KubernetesException as exc:
            if exc.status_code not in RETRY_STATUSES and exc.status_code not in (
                None,
                410,
            ):
                raise
            self._fail(f"list failed: {exc}")
            return
        self.counters.relists += 1
        self._apply_list(items)
        self.resource_version = list_rv
        self._complete = True
        self.synced = True
        self._announce_list = True
        logger.debug(
            "listed %d %s at resourceVersion %s", len(items), self._plural, list_rv
        )

    def _apply_list(self, items: list[dict[str, Any]]) -> None:
        fresh: dict[ObjectKey, dict[str, Any]] = {}
        for item in items:
            fresh[object_key(item)] = item
        for key, item in fresh.items():
            previous = self._known.get(key)
            if previous is None:
                self._pending.append(WatchEvent("ADDED", item, synthetic=True))
            elif uid_of(previous) != uid_of(item):
                self._pending.append(WatchEvent("DELETED", previous, synthetic=True))
                self._pending.append(WatchEvent("ADDED", item, synthetic=True))
            elif is_newer(resource_version_of(item), resource_version_of(previous)):
                self._pending.append(WatchEvent("MODIFIED", item, synthetic=True))
        for key, previous in self._known.items():
            if key not in fresh:
                self._pending.append(WatchEvent("DELETED", previous, synthetic=True))
        self._known = fresh

    # Connecting --------------------------------------------------------------

    async def _connect(self) -> None:
        await self._sleep_backoff()
        query: list[tuple[str, Any]] = [
            ("watch", "true"),
            ("resourceVersion", self.resource_version),
            ("allowWatchBookmarks", "true"),
        ]
        if self.settings.server_timeout is not None:
            query.append(("timeoutSeconds", self._server_timeout()))
        if self._label_selector:
            query.append(("labelSelector", self._label_selector))
        if self._field_selector:
            query.append(("fieldSelector", self._field_selector))
        timeout = aiohttp.ClientTimeout(
            total=None,
            connect=self.settings.connect_timeout,
            sock_connect=self.settings.connect_timeout,
        )
        try:
            response = await self._transport.open(
                "GET", self._path, query=query, timeout=timeout
            )
        except (aiohttp.ClientError, asyncio.TimeoutError) as exc:
            self._fail(f"connection failed: {type(exc).__name__} {exc}")
            return
        self.counters.connections += 1
        if response.status == 200:
            self._response = response
            self._lines_this_stream = 0
            self._opened_at = time.monotonic()
            return
        try:
            body = await response.read()
        except aiohttp.ClientError:
            body = b""
        finally:
            response.release()
        await self._handle_status(
            response.status, body, response.reason, response.headers
        )

    def _server_timeout(self) -> int:
        # A random factor spreads the reconnects of many clients, as client-go does.
        assert self.settings.server_timeout is not None
        return max(1, int(self.settings.server_timeout * random.uniform(1, 2)))

    async def _handle_status(
        self, status: int, body: Any, reason: str | None, headers: Any
    ) -> None:
        if status == 410:
            logger.info("watch of %s expired (410); listing again", self._plural)
            self.resource_version = None
            return
        if status == 401 and not self._refreshed_auth:
            self._refreshed_auth = True
            if await self._transport.refresh_credentials():
                return
        if status in RETRY_STATUSES:
            self._fail(f"HTTP {status}", retry_after(headers))
            return
        raise error_from_status(status, body, reason)

    def _fail(self, reason: str, server_delay: float | None = None) -> None:
        self._failures += 1
        self.counters.failures += 1
        if self._failures > self.settings.max_failures:
            raise KubernetesException(
                f"watch of {self._plural} failed {self._failures} times in a row; "
                f"last failure: {reason}"
            )
        cap = min(
            self.settings.backoff_max,
            self.settings.backoff_base * 2 ** (self._failures - 1),
        )
        # Equal jitter: at least half the exponential delay, so retries never spin.
        delay = cap / 2 + random.uniform(0, cap / 2)
        if server_delay is not None:
            delay = max(delay, min(server_delay, self.settings.backoff_max))
        self._next_delay = delay
        logger.info(
            "watch of %s: %s; retrying in %.2f s (failure %d)",
            self._plural,
            reason,
            delay,
            self._failures,
        )

    async def _sleep_backoff(self) -> None:
        delay, self._next_delay = self._next_delay, 0.0
        if delay > 0:
            await asyncio.sleep(delay)

    # Reading -----------------------------------------------------------------

    async def _read_event(self) -> WatchEvent | None:
        assert self._response is not None
        try:
            line = await wait_with_timeout(
                self._response.content.readline(), self.settings.idle_timeout
            )
        except asyncio.TimeoutError:
            self.counters.idle_reconnects += 1
            logger.info(
                "watch of %s silent for %.1f s; reconnecting",
                self._plural,
                self.settings.idle_timeout,
            )
            self._end_stream()
            return None
        except (aiohttp.ClientError, ValueError) as exc:
            logger.info("watch of %s dropped: %s", self._plural, type(exc).__name__)
            self._end_stream()
            return None
        if not line.endswith(b"\n"):
            if line:
                logger.info("watch of %s ended inside an event", self._plural)
            self._end_stream()
            return None
        return await self._handle_line(line)

    def _end_stream(self) -> None:
        productive = self._lines_this_stream > 0
        self._drop_response()
        if productive:
            self._failures = 0
        else:
            self._fail("the watch closed without sending anything")

    def _drop_response(self) -> None:
        response, self._response = self._response, None
        if response is not None:
            response.close()

    async def _handle_line(self, line: bytes) -> WatchEvent | None:
        try:
            data = json.loads(line)
        except ValueError:
            logger.warning("skipping a watch line of %s that is not JSON", self._plural)
            return None
        self._lines_this_stream += 1
        self._refreshed_auth = False
        kind = data.get("type")
        obj = data.get("object") or {}
        if kind == "BOOKMARK":
            rv = resource_version_of(obj)
            if rv:
                self.resource_version = rv
            return None
        if kind == "ERROR":
            self._drop_response()
            code = obj.get("code")
            await self._handle_status(
                int(code) if isinstance(code, int) else 500,
                obj,
                obj.get("reason"),
                None,
            )
            return None
        if kind not in ("ADDED", "MODIFIED", "DELETED"):
            logger.warning("skipping a watch event of unknown type %r", kind)
            return None
        return self._accept(kind, obj)

    def _accept(self, kind: str, obj: dict[str, Any]) -> WatchEvent | None:
        rv = resource_version_of(obj)
        key = object_key(obj)
        previous = self._known.get(key)
        # A replayed event must not move the resume point backwards.
        if rv and (not self.resource_version or is_newer(rv, self.resource_version)):
            self.resource_version = rv
        if kind == "DELETED":
            if previous is None and self._complete:
                self.counters.dropped_duplicates += 1
                return None
            self._known.pop(key, None)
            return WatchEvent(kind, obj)
        if (
            previous is not None
            and uid_of(previous) == uid_of(obj)
            and not is_newer(rv, resource_version_of(previous))
        ):
            self.counters.dropped_duplicates += 1
            return None
        self._known[key] = obj
        return WatchEvent(kind, obj)


# Re-exported: the hub lived here before it moved to its own module.
from ._kube_hub import Subscription, WatchHub  # noqa: E402
