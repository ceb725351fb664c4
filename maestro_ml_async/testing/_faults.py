"""Faults that tests switch on to make the fake API server misbehave on purpose.

Each fault has a scope (verb, resource, name, namespace, watch or not, path) and a
count of requests it affects. The server consults ``Faults.take`` once per request
and applies the first matching fault, which uses up one of its count.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

_log = logging.getLogger(__name__)

# Fault kinds.
STATUS = "status"  # answer with an HTTP error status and a Status body
CONFLICT = "conflict"  # answer a write with 409 Conflict, as if another writer won
DROP_WATCH = "drop_watch"  # write half an event line, then abort the connection
HANG_WATCH = "hang_watch"  # send the headers, then nothing until the client leaves
EMPTY_WATCH = "empty_watch"  # answer 200 with an empty body
EXPIRE_WATCH = "expire_watch"  # send a 410 Expired ERROR event, then close
DROP_LOG = "drop_log"  # cut a followed log in the middle of a line

_WATCH_KINDS = (DROP_WATCH, HANG_WATCH, EMPTY_WATCH, EXPIRE_WATCH)
_WRITE_VERBS = ("create", "update", "patch", "delete", "deletecollection")


@dataclass(frozen=True)
class RequestInfo:
    """What a request does, in the terms that fault scopes use.

    Attributes:
        verb: Kubernetes verb: ``get``, ``list``, ``watch``, ``create``,
            ``update``, ``patch``, ``delete``, ``deletecollection``, or ``""``
            for discovery and other non-resource paths.
        plural: Resource plural, ``""`` for non-resource paths.
        namespace: Namespace from the URL, or ``None``.
        name: Object name from the URL, or ``None``.
        subresource: ``status``, ``log`` or ``None``.
        path: The URL path.
        container: The ``container`` query parameter of a log request.
        follow: Whether a log request asks to follow the log.
    """

    verb: str
    plural: str
    namespace: str | None
    name: str | None
    subresource: str | None
    path: str
    container: str | None = None
    follow: bool = False

    @property
    def is_watch(self) -> bool:
        """Whether the request opens a watch stream."""
        return self.verb == "watch"


@dataclass
class Fault:
    """One armed fault.

    Attributes:
        kind: One of the fault kinds of this module, such as ``"status"``.
        times: Requests still affected; ``None`` keeps the fault until cleared.
        code: HTTP status for ``status`` faults.
        retry_after: ``Retry-After`` seconds for ``status`` faults (429, 503).
        message: Status message for ``status`` faults; a default fits the code.
        after_events: Watch events sent normally before a ``drop_watch`` or
            ``expire_watch`` fault acts.
        after_lines: Log lines sent normally before a ``drop_log`` fault acts.
        verb: Only requests with this verb (``"create"``, ``"watch"``, ...), or
            ``"write"`` for every write verb.
        plural: Only this resource plural (``"pytorchjobs"``).
        name: Only this object name.
        namespace: Only this namespace.
        watch: ``True`` for watch requests only, ``False`` for non-watch only.
        path: Only URL paths that contain this text.
        container: Only log requests for this container.
        hits: Requests the fault has affected so far.
    """

    kind: str
    times: int | None = 1
    code: int = 500
    retry_after: int | None = None
    message: str | None = None
    after_events: int = 0
    after_lines: int = 0
    verb: str | None = None
    plural: str | None = None
    name: str | None = None
    namespace: str | None = None
    watch: bool | None = None
    path: str | None = None
    container: str | None = None
    hits: int = 0

    def matches(self, info: RequestInfo) -> bool:
        """Return whether the fault's scope covers the request."""
        if self.kind in _WATCH_KINDS and not info.is_watch:
            return False
        if self.kind == CONFLICT and info.verb not in _WRITE_VERBS:
            return False
        if self.kind == DROP_LOG and not (info.subresource == "log" and info.follow):
            return False
        if self.verb == "write":
            if info.verb not in _WRITE_VERBS:
                return False
        elif self.verb is not None and self.verb != info.verb:
            return False
        if self.watch is not None and self.watch != info.is_watch:
            return False
        checks = (
            (self.plural, info.plural),
            (self.name, info.name),
            (self.namespace, info.namespace),
            (self.container, info.container),
        )
        if any(wanted is not None and wanted != actual for wanted, actual in checks):
            return False
        return self.path is None or self.path in info.path

    @property
    def exhausted(self) -> bool:
        """Whether the fault has affected all the requests it was armed for."""
        return self.times is not None and self.hits >= self.times


@dataclass
class Faults:
    """The faults armed on one fake cluster, reachable as ``cluster.faults``.

    Every ``arm`` helper returns the ``Fault``, whose ``hits`` tells a test how
    often it acted. Scope keywords (``verb``, ``plural``, ``name``,
    ``namespace``, ``watch``, ``path``) narrow the requests it affects, and
    ``times`` sets how many (``None`` for all until ``clear``).
    """

    armed: list[Fault] = field(default_factory=list)

    def arm(self, fault: Fault) -> Fault:
        """Arm a fault built by hand and return it."""
        self.armed.append(fault)
        _log.debug("armed fault %s", fault)
        return fault

    def fail(
        self,
        code: int = 500,
        *,
        times: int | None = 1,
        retry_after: int | None = None,
        message: str | None = None,
        **scope: Any,
    ) -> Fault:
        """Answer matching requests with ``code`` (500, 503, 429, ...) and a Status."""
        fault = Fault(
            STATUS, times, code=code, retry_after=retry_after, message=message, **scope
        )
        return self.arm(fault)

    def throttle(
        self, *, retry_after: int = 1, times: int | None = 1, **scope: Any
    ) -> Fault:
        """Answer matching requests with 429 Too Many Requests and ``Retry-After``."""
        return self.fail(429, times=times, retry_after=retry_after, **scope)

    def lose_write_race(self, *, times: int | None = 1, **scope: Any) -> Fault:
        """Answer the next matching writes with 409 Conflict, as after a race."""
        return self.arm(Fault(CONFLICT, times, **scope))

    def drop_watch(
        self, *, after_events: int = 0, times: int | None = 1, **scope: Any
    ) -> Fault:
        """Cut matching watches in the middle of an event line.

        The watch sends ``after_events`` events normally, writes the first half
        of the next event's line, then aborts the TCP connection.
        """
        return self.arm(Fault(DROP_WATCH, times, after_events=after_events, **scope))

    def hang_watch(self, *, times: int | None = 1, **scope: Any) -> Fault:
        """Make matching watches send their headers and then stay silent.

        The connection stays open, ignoring ``timeoutSeconds``, until the client
        closes it or the cluster stops.
        """
        return self.arm(Fault(HANG_WATCH, times, **scope))

    def empty_watch(self, *, times: int | None = 1, **scope: Any) -> Fault:
        """Answer matching watches with 200 and an empty body."""
        return self.arm(Fault(EMPTY_WATCH, times, **scope))

    def expire_watch(
        self, *, after_events: int = 0, times: int | None = 1, **scope: Any
    ) -> Fault:
        """Send a 410 Expired ERROR event on matching watches, then close them."""
        return self.arm(Fault(EXPIRE_WATCH, times, after_events=after_events, **scope))

    def drop_log(
        self,
        *,
        after_lines: int = 0,
        pod: str | None = None,
        container: str | None = None,
        times: int | None = 1,
        **scope: Any,
    ) -> Fault:
        """Cut matching followed logs (``follow=true``) in the middle of a line.

        The response sends ``after_lines`` lines normally, counting the stored
        lines it starts with, then writes the first half of the next line and
        aborts the TCP connection. ``pod`` and ``container`` narrow the fault to
        one pod and to requests whose ``container`` parameter names that
        container.
        """
        fault = Fault(
            DROP_LOG,
            times,
            after_lines=after_lines,
            name=pod,
            container=container,
            **scope,
        )
        return self.arm(fault)

    def clear(self) -> None:
        """Disarm every fault."""
        self.armed.clear()

    def take(self, info: RequestInfo) -> Fault | None:
        """Return the first armed fault that covers the request, counting a hit.

        A fault that has used up its count is disarmed.
        """
        for fault in self.armed:
            if fault.matches(info):
                fault.hits += 1
                if fault.exhausted:
                    self.armed.remove(fault)
                _log.info("fault %s applied to %s %s", fault.kind, info.verb, info.path)
                return fault
        return None
