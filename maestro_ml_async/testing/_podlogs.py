"""Per-container log buffers of the fake cluster's pods.

The simulated controllers and the local runner append lines here, and the API server's
``pods/<name>/log`` endpoint reads them. Each container keeps its current instance
and, after a restart, the previous one, like the kubelet keeps the log of the last
terminated container for ``previous=true``.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import datetime, timezone

LogLine = tuple[datetime, str]


@dataclass
class _Instance:
    """One run of a container: its lines and whether it has terminated."""

    lines: list[LogLine] = field(default_factory=list)
    finished: bool = False
    changed: asyncio.Event = field(default_factory=asyncio.Event)

    def wake(self) -> None:
        """Wake every follower and arm a fresh event for the next change."""
        event = self.changed
        self.changed = asyncio.Event()
        event.set()


@dataclass
class _ContainerLog:
    current: _Instance = field(default_factory=_Instance)
    previous: _Instance | None = None


class PodLogs:
    """Log lines of every container of every pod, kept in memory.

    All methods must be called from the event loop that runs the fake cluster.
    """

    def __init__(self) -> None:
        self._logs: dict[tuple[str, str, str], _ContainerLog] = {}

    def _get(self, namespace: str, pod: str, container: str) -> _ContainerLog:
        key = (namespace, pod, container)
        log = self._logs.get(key)
        if log is None:
            log = _ContainerLog()
            self._logs[key] = log
        return log

    def append(
        self,
        namespace: str,
        pod: str,
        container: str,
        line: str,
        *,
        timestamp: datetime | None = None,
    ) -> None:
        """Append one line (without its trailing newline) to the current instance.

        A line appended after ``finish`` starts no new instance. It is stored and
        shown to readers that are not following.
        """
        instance = self._get(namespace, pod, container).current
        stamp = timestamp if timestamp is not None else datetime.now(timezone.utc)
        instance.lines.append((stamp, line.rstrip("\n")))
        instance.wake()

    def restart(self, namespace: str, pod: str, container: str) -> None:
        """Start a new container instance and keep the current one as previous."""
        log = self._get(namespace, pod, container)
        old = log.current
        old.finished = True
        old.wake()
        log.previous = old
        log.current = _Instance()

    def finish(self, namespace: str, pod: str, container: str) -> None:
        """Mark the current instance as terminated, which ends its follow streams."""
        instance = self._get(namespace, pod, container).current
        instance.finished = True
        instance.wake()

    def forget(self, namespace: str, pod: str) -> None:
        """Drop every container log of a deleted pod and end its follow streams."""
        for key in [k for k in self._logs if k[0] == namespace and k[1] == pod]:
            log = self._logs.pop(key)
            log.current.finished = True
            log.current.wake()

    def lines(
        self, namespace: str, pod: str, container: str, *, previous: bool = False
    ) -> list[LogLine]:
        """Return a copy of the lines of the current (or previous) instance.

        An unknown container, or a missing previous instance, gives an empty list.
        Use ``has_previous`` to tell the two cases apart.
        """
        log = self._logs.get((namespace, pod, container))
        if log is None:
            return []
        instance = log.previous if previous else log.current
        return list(instance.lines) if instance is not None else []

    def has_previous(self, namespace: str, pod: str, container: str) -> bool:
        """Return whether the container has a terminated previous instance."""
        log = self._logs.get((namespace, pod, container))
        return log is not None and log.previous is not None

    def is_finished(self, namespace: str, pod: str, container: str) -> bool:
        """Return whether the current instance of the container has terminated."""
        log = self._logs.get((namespace, pod, container))
        return log is not None and log.current.finished

    async def follow(
        self, namespace: str, pod: str, container: str, *, start_index: int = 0
    ) -> AsyncIterator[LogLine]:
        """Yield the current instance's lines from ``start_index`` on, then new ones.

        The iterator ends once the instance has terminated (``finish``, ``restart``
        or ``forget``) and every stored line has been yielded. It binds to the
        instance that is current when iteration starts, so a restart ends it
        instead of switching to the new instance, as ``kubectl logs -f`` does.
        """
        instance = self._get(namespace, pod, container).current
        index = max(start_index, 0)
        while True:
            while index < len(instance.lines):
                yield instance.lines[index]
                index += 1
            if instance.finished:
                return
            await instance.changed.wait()
