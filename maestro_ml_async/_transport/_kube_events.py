"""Watch events, watch settings and resourceVersion helpers."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

__all__ = [
    "ObjectKey",
    "WatchCounters",
    "WatchEvent",
    "WatchSettings",
    "is_newer",
    "object_key",
    "resource_version_of",
    "uid_of",
]

ObjectKey = tuple[str, str]


@dataclass
class WatchSettings:
    """Timing of resumable watches; all durations in seconds."""

    idle_timeout: float = 150.0
    """Reconnect when no line (event or bookmark) arrived for this long."""
    server_timeout: float | None = 300.0
    """``timeoutSeconds`` asked of the server, scaled by a random 1-2 factor;
    None sends none, so the server's own limit applies."""
    backoff_base: float = 0.25
    """First reconnect delay after a connection that delivered nothing."""
    backoff_max: float = 15.0
    """Upper bound of one reconnect delay."""
    connect_timeout: float = 30.0
    """Timeout to open a watch connection and receive its headers."""
    max_failures: int = 12
    """Consecutive failed connections after which the watch raises."""
    page_size: int = 500
    """Objects per page when listing."""


@dataclass(frozen=True)
class WatchEvent:
    """One change of an object.

    Attributes:
        type: ADDED, MODIFIED or DELETED.
        object: The object after the change (before it, for DELETED).
        synthetic: True when the event was derived from a list (the first list,
            a relist after 410 Expired, or a hub's cache) instead of read from
            the watch stream.
    """

    type: str
    object: dict[str, Any]
    synthetic: bool = False

    @property
    def name(self) -> str:
        """The object's name."""
        return str((self.object.get("metadata") or {}).get("name", ""))

    @property
    def resource_version(self) -> str:
        """The object's resourceVersion."""
        return str((self.object.get("metadata") or {}).get("resourceVersion", ""))


def object_key(obj: dict[str, Any]) -> ObjectKey:
    """Return (namespace, name) of an object."""
    meta = obj.get("metadata") or {}
    return str(meta.get("namespace") or ""), str(meta.get("name") or "")


def is_newer(candidate: str, current: str) -> bool:
    """Whether resourceVersion `candidate` comes after `current`.

    Resource versions are opaque strings to clients; the API server uses
    integers (from etcd), so they are compared as integers when both parse, and
    otherwise any different value counts as newer.
    """
    try:
        return int(candidate) > int(current)
    except ValueError:
        return candidate != current


@dataclass
class WatchCounters:
    """What one watch did so far, for logs and tests."""

    connections: int = 0
    relists: int = 0
    dropped_duplicates: int = 0
    idle_reconnects: int = 0
    failures: int = field(default=0)


def resource_version_of(obj: dict[str, Any]) -> str:
    """Return an object's resourceVersion, or an empty string."""
    return str((obj.get("metadata") or {}).get("resourceVersion") or "")


def uid_of(obj: dict[str, Any]) -> str:
    """Return an object's uid, or an empty string."""
    return str((obj.get("metadata") or {}).get("uid") or "")
