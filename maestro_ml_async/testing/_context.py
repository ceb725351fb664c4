"""Shared state of the fake API server's request handlers."""

from __future__ import annotations

import asyncio
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from ._faults import Faults
from ._podlogs import PodLogs
from ._store import Store, WatchEvent

# Put into a watch's queue to end the stream when the server stops.
STOP_EVENT = WatchEvent("STOP", {}, 0, "")


@dataclass
class Stats:
    """Request counters of one fake cluster, for tests that check traffic.

    Attributes:
        requests_total: Every request, discovery and rejected ones included.
        requests_by_verb: Requests per Kubernetes verb (``get``, ``list``,
            ``watch``, ``create``, ...); non-resource paths count as ``""``.
        requests_by_resource: Requests per ``"<verb> <plural>"``.
        watch_connections_open: Watch streams open now.
        watch_connections_total: Watch streams opened since the start.
        log_streams_open: Followed ``pods/<name>/log`` responses open now.
        unauthorized_total: Requests rejected with 401.
    """

    requests_total: int = 0
    requests_by_verb: Counter[str] = field(default_factory=Counter)
    requests_by_resource: Counter[str] = field(default_factory=Counter)
    watch_connections_open: int = 0
    watch_connections_total: int = 0
    log_streams_open: int = 0
    unauthorized_total: int = 0


@dataclass
class ServerContext:
    """What the handlers share: the store, pod logs, faults, counters, settings.

    Attributes:
        store: The object store.
        pod_logs: Container logs served by ``pods/<name>/log``.
        faults: Armed faults.
        stats: Request counters.
        bookmark_interval: Seconds between BOOKMARK events on watches that
            allow them.
        watch_max_seconds: Lifetime of a watch without ``timeoutSeconds``.
        server_address: ``host:port`` announced by ``/api``.
        continue_floor: Continue tokens issued at a resourceVersion below this
            are expired (410).
    """

    store: Store
    pod_logs: PodLogs
    faults: Faults
    stats: Stats = field(default_factory=Stats)
    bookmark_interval: float = 60.0
    watch_max_seconds: float = 1800.0
    server_address: str = "127.0.0.1:0"
    continue_floor: int = 0
    stopping: asyncio.Event = field(default_factory=asyncio.Event)
    watch_queues: set[asyncio.Queue[WatchEvent]] = field(default_factory=set)
    line_cache: dict[tuple[int, str, bool], bytes] = field(default_factory=dict)

    def cached_line(self, key: tuple[int, str, bool], event: dict[str, Any]) -> bytes:
        """Return the serialized line of a watch event, shared between watchers.

        Every watcher of an event sends the same bytes, so serializing once
        keeps the cost of a write flat as watchers are added.
        """
        line = self.line_cache.get(key)
        if line is None:
            from ._http import dumps

            line = dumps(event) + b"\n"
            if len(self.line_cache) >= 4096:
                self.line_cache.clear()
            self.line_cache[key] = line
        return line

    def stop_watches(self) -> None:
        """End every open watch stream with a clean close."""
        self.stopping.set()
        for queue in self.watch_queues:
            queue.put_nowait(STOP_EVENT)
