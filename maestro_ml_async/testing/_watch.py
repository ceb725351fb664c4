"""Watch streams: chunked JSON lines of ADDED, MODIFIED, DELETED, BOOKMARK, ERROR.

A watch subscribes to the store before it reads the current objects or the
history, without awaiting in between, so no event can fall into a gap.
"""

from __future__ import annotations

import asyncio
import copy
import logging
import time
from typing import Any

from aiohttp import web

from . import _faults, _status
from ._context import STOP_EVENT, ServerContext
from ._handlers_read import request_selector
from ._http import (
    JSON_TYPE,
    Target,
    dumps,
    flag,
    int_param,
    partial_metadata,
    wants_metadata,
    wants_table,
)
from ._list_options import list_options, parse_resource_version
from ._resources import ResourceType
from ._selectors import Selector
from ._store import WatchEvent
from ._table import to_table

_log = logging.getLogger(__name__)

Obj = dict[str, Any]
INITIAL_EVENTS_END = "k8s.io/initial-events-end"


class _Filter:
    """The namespace and selectors of one watch."""

    def __init__(self, namespace: str | None, selector: Selector | None) -> None:
        self.namespace = namespace
        self.selector = selector

    def accepts(self, obj: Obj | None) -> bool:
        if obj is None:
            return False
        if self.namespace is not None:
            if obj["metadata"].get("namespace") != self.namespace:
                return False
        return self.selector is None or self.selector(obj)


def _visible(event: WatchEvent, view: _Filter) -> tuple[str, Obj, bool] | None:
    """Return what a filtered watch sends for an event, or ``None`` to skip it.

    Returns the event type, the object, and whether the object is the previous
    state. An object that stops matching the selectors is sent as DELETED with
    its previous state and the event's resourceVersion, like the API server's
    watch cache does.
    """
    now = view.accepts(event.object)
    if event.type == "DELETED":
        return ("DELETED", event.object, False) if now else None
    before = event.type == "MODIFIED" and view.accepts(event.previous)
    if now:
        return ("MODIFIED" if before else "ADDED", event.object, False)
    if before and event.previous is not None:
        previous = copy.deepcopy(event.previous)
        previous["metadata"]["resourceVersion"] = str(event.resource_version)
        return ("DELETED", previous, True)
    return None


class _Stream:
    """Writes the events of one watch response and applies its fault."""

    def __init__(
        self,
        ctx: ServerContext,
        request: web.Request,
        response: web.StreamResponse,
        rtype: ResourceType,
        fault: _faults.Fault | None,
    ) -> None:
        self.ctx = ctx
        self.request = request
        self.response = response
        self.rtype = rtype
        self.fault = fault
        self.table = wants_table(request)
        self.metadata_only = wants_metadata(request, "PartialObjectMetadata")
        self.sent = 0
        self.aborted = False

    def _line(self, event_type: str, obj: Obj, rv: int, use_previous: bool) -> bytes:
        if self.table:
            meta = {"resourceVersion": obj["metadata"].get("resourceVersion", "")}
            table = to_table(self.rtype, [obj], meta)
            if self.sent:
                table["columnDefinitions"] = []
            return dumps({"type": event_type, "object": table}) + b"\n"
        if self.metadata_only:
            event = {"type": event_type, "object": partial_metadata(obj)}
            return dumps(event) + b"\n"
        key = (rv, event_type, use_previous)
        return self.ctx.cached_line(key, {"type": event_type, "object": obj})

    async def send(self, event_type: str, obj: Obj, rv: int, previous: bool) -> bool:
        """Send one event; return ``False`` once a fault has ended the stream."""
        fault = self.fault
        if fault is not None and fault.kind == _faults.DROP_WATCH:
            if self.sent >= fault.after_events:
                await self._drop(self._line(event_type, obj, rv, previous))
                return False
        await self.response.write(self._line(event_type, obj, rv, previous))
        self.sent += 1
        return await self.check_expire(rv)

    async def check_expire(self, rv: int) -> bool:
        """Apply an ``expire_watch`` fault once its events are sent.

        Returns ``False`` when the fault has sent its ERROR event.
        """
        fault = self.fault
        if fault is None or fault.kind != _faults.EXPIRE_WATCH:
            return True
        if self.sent < fault.after_events:
            return True
        await self.send_expired(rv)
        return False

    async def _drop(self, line: bytes) -> None:
        await self.response.write(line[: max(1, len(line) // 2)])
        transport = self.request.transport
        if transport is not None:
            transport.abort()
        self.aborted = True
        _log.info("fault: dropped watch of %s mid-line", self.rtype.key)

    async def send_expired(self, requested: int) -> None:
        """Send the 410 ERROR event for a resourceVersion that is too old."""
        # The watch cache reports the requested version and the last dropped one.
        oldest = self.ctx.store.oldest_available(self.rtype)
        message = f"too old resource version: {requested} ({oldest})"
        event = {"type": "ERROR", "object": _status.expired(message)}
        await self.response.write(dumps(event) + b"\n")

    async def send_bookmark(self, *, initial_end: bool = False) -> None:
        meta: Obj = {"resourceVersion": str(self.ctx.store.resource_version)}
        if initial_end:
            meta["annotations"] = {INITIAL_EVENTS_END: "true"}
        obj: Obj = {"kind": self.rtype.kind, "apiVersion": self.rtype.api_version}
        obj["metadata"] = meta
        await self.response.write(dumps({"type": "BOOKMARK", "object": obj}) + b"\n")


def _new_response() -> web.StreamResponse:
    response = web.StreamResponse(status=200, headers={"Content-Type": JSON_TYPE})
    response.enable_chunked_encoding()
    return response


async def serve_watch(
    ctx: ServerContext,
    request: web.Request,
    target: Target,
    fault: _faults.Fault | None,
) -> web.StreamResponse:
    """Serve a watch stream until ``timeoutSeconds``, a fault or server stop."""
    rtype = target.rtype
    view = _Filter(target.namespace, request_selector(request, rtype))
    options = list_options(request, watch=True)
    start = parse_resource_version(options.resource_version)
    timeout = int_param(request, "timeoutSeconds")
    send_initial = options.send_initial_events is True
    # Without a resourceVersion, a watch starts with the current objects
    # unless the request sets sendInitialEvents=false explicitly.
    synthetic = send_initial or (start is None and options.send_initial_events is None)

    queue = ctx.store.subscribe(rtype.key)
    ctx.watch_queues.add(queue)
    ctx.stats.watch_connections_open += 1
    ctx.stats.watch_connections_total += 1
    try:
        if synthetic:
            current = [obj for obj in ctx.store.peek(rtype) if view.accepts(obj)]
            backlog = [WatchEvent("ADDED", obj, 0, rtype.key) for obj in current]
            history: list[WatchEvent] | None = backlog
        elif start is None:
            history = []
        else:
            history = ctx.store.history_since(rtype, start)
        response = _new_response()
        stream = _Stream(ctx, request, response, rtype, fault)
        try:
            await _stream_events(stream, queue, view, history, start, timeout)
        except ConnectionResetError as exc:
            # A client that closes its watch is normal. The transport closes
            # before aiohttp cancels this handler, so a write in between fails.
            _log.debug("watch of %s ended: client disconnected (%s)", rtype.key, exc)
        return response
    finally:
        ctx.store.unsubscribe(queue)
        ctx.watch_queues.discard(queue)
        ctx.stats.watch_connections_open -= 1


async def _stream_events(
    stream: _Stream,
    queue: asyncio.Queue[WatchEvent],
    view: _Filter,
    history: list[WatchEvent] | None,
    start: int | None,
    timeout: int | None,
) -> None:
    """Send the headers, then the replayed and the live events of one watch."""
    ctx, request, response = stream.ctx, stream.request, stream.response
    send_initial = flag(request, "sendInitialEvents")
    await response.prepare(request)
    if not await _apply_opening_fault(ctx, stream, stream.fault):
        return
    if not await stream.check_expire(start or ctx.store.resource_version):
        await response.write_eof()
        return
    if history is None:
        await stream.send_expired(start or 0)
        await response.write_eof()
        return
    current = ctx.store.resource_version
    if send_initial and start is not None and start > current:
        # The API server waits up to 3 s for its watch cache to reach the
        # version and then sends this error. The fake's store is always
        # current, so waiting could not help and the error is sent at once.
        status = _status.resource_version_too_large(start, current)
        await response.write(dumps({"type": "ERROR", "object": status}) + b"\n")
        await response.write_eof()
        return
    live = await _replay(stream, history, view, start is None or send_initial)
    if live and send_initial and flag(request, "allowWatchBookmarks"):
        await stream.send_bookmark(initial_end=True)
    if live:
        await _follow(ctx, request, stream, queue, view, timeout, floor=start or 0)
    if not stream.aborted:
        await response.write_eof()


async def _apply_opening_fault(
    ctx: ServerContext, stream: _Stream, fault: _faults.Fault | None
) -> bool:
    """Apply faults that act before any event; return whether to go on."""
    if fault is None:
        return True
    if fault.kind == _faults.EMPTY_WATCH:
        await stream.response.write_eof()
        return False
    if fault.kind == _faults.HANG_WATCH:
        await ctx.stopping.wait()
        return False
    return True


async def _replay(
    stream: _Stream, events: list[WatchEvent], view: _Filter, synthetic: bool
) -> bool:
    for event in events:
        if synthetic:
            rv = int(event.object["metadata"]["resourceVersion"])
            if not await stream.send("ADDED", event.object, rv, False):
                return False
            continue
        visible = _visible(event, view)
        if visible is None:
            continue
        event_type, obj, previous = visible
        if not await stream.send(event_type, obj, event.resource_version, previous):
            return False
    return True


async def _follow(
    ctx: ServerContext,
    request: web.Request,
    stream: _Stream,
    queue: asyncio.Queue[WatchEvent],
    view: _Filter,
    timeout: int | None,
    *,
    floor: int,
) -> None:
    """Send live events until the deadline, a fault, or the server stops.

    Like the API server, a plain watch from a resourceVersion newer than the
    store's stays open: events and bookmarks up to `floor` are not sent.
    """
    lifetime = float(timeout) if timeout and timeout > 0 else ctx.watch_max_seconds
    deadline = time.monotonic() + lifetime
    bookmarks = flag(request, "allowWatchBookmarks")
    next_bookmark = time.monotonic() + ctx.bookmark_interval
    while True:
        now = time.monotonic()
        if now >= deadline:
            return
        wait = deadline - now
        if bookmarks:
            wait = min(wait, max(next_bookmark - now, 0.0))
        try:
            event = await asyncio.wait_for(queue.get(), timeout=wait)
        except asyncio.TimeoutError:
            if bookmarks and time.monotonic() >= next_bookmark:
                if ctx.store.resource_version > floor:
                    await stream.send_bookmark()
                next_bookmark = time.monotonic() + ctx.bookmark_interval
            continue
        if event is STOP_EVENT:
            return
        if event.resource_version <= floor:
            continue
        visible = _visible(event, view)
        if visible is None:
            continue
        event_type, obj, previous = visible
        if not await stream.send(event_type, obj, event.resource_version, previous):
            return
