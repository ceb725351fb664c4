"""In-process harness for the simulated controllers: a store, logs and scripts.

The controller tests drive the controllers through the store directly, without
the HTTP server, so each timeline is checked without network timing.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

from maestro_ml_async.testing._controllers import start_controllers
from maestro_ml_async.testing._podlogs import PodLogs
from maestro_ml_async.testing._resources import RESOURCE_TYPES
from maestro_ml_async.testing._scripts import Scripts
from maestro_ml_async.testing._store import Store

Obj = dict[str, Any]
PODS = RESOURCE_TYPES["pods"]
EVENTS = RESOURCE_TYPES["events"]


@dataclass
class ControllerHost:
    """The attributes of FakeCluster that the controllers read."""

    store: Store = field(default_factory=Store)
    pod_logs: PodLogs = field(default_factory=PodLogs)
    scripts: Scripts = field(default_factory=Scripts)
    tick: float = 0.01
    local_runner: bool = False
    pvc_roots: Mapping[str, str] | None = None

    def pods(self, namespace: str = "default", **labels: str) -> list[Obj]:
        """Return the pods of ``namespace`` whose labels include ``labels``."""
        found, _ = self.store.list(PODS, namespace)
        return [
            pod
            for pod in found
            if all(
                (pod["metadata"].get("labels") or {}).get(k) == v
                for k, v in labels.items()
            )
        ]

    def events_for(self, name: str, namespace: str = "default") -> list[Obj]:
        """Return the events whose involvedObject is named ``name``."""
        found, _ = self.store.list(EVENTS, namespace)
        return [e for e in found if e["involvedObject"]["name"] == name]


@asynccontextmanager
async def running_controllers(**kwargs: Any) -> AsyncIterator[ControllerHost]:
    """Yield a host with namespaces ``default`` and ``ml`` and running controllers."""
    host = ControllerHost(**kwargs)
    for namespace in ("default", "ml"):
        namespace_obj = {"metadata": {"name": namespace}}
        host.store.create(RESOURCE_TYPES["namespaces"], namespace_obj)
    tasks = start_controllers(host)
    try:
        yield host
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


async def wait_for(
    check: Callable[[], Any], *, timeout: float = 5.0, interval: float = 0.005
) -> Any:
    """Poll ``check`` until it returns a truthy value and return that value."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout}s")
        await asyncio.sleep(interval)


def conditions(obj: Obj | None) -> dict[str, str]:
    """Return ``{type: status}`` of an object's conditions."""
    if obj is None:
        return {}
    items = (obj.get("status") or {}).get("conditions") or []
    return {c["type"]: c["status"] for c in items}


def condition(obj: Obj | None, kind: str) -> Obj | None:
    """Return one condition of an object, or None."""
    for item in ((obj or {}).get("status") or {}).get("conditions") or []:
        if item["type"] == kind:
            return dict(item)
    return None


def drain(queue: asyncio.Queue[Any]) -> list[Any]:
    """Return every event waiting in a store subscription queue."""
    events = []
    while not queue.empty():
        events.append(queue.get_nowait())
    return events


def condition_history(events: list[Any], name: str) -> list[dict[str, str]]:
    """Return the ``{type: status}`` conditions of each version of object ``name``."""
    return [
        conditions(event.object)
        for event in events
        if event.object["metadata"]["name"] == name
    ]
