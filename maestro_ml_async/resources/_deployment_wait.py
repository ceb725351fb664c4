"""Waiting for an InferenceService to become ready, on a shared watch."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from .._exceptions import DeploymentException, TimeoutException
from ..types.deployment import Deployment
from ._deployment_status import describe_not_ready, evaluate_readiness
from ._kserve import GROUP, PLURAL, VERSION

if TYPE_CHECKING:
    from .._transport._kube import ClusterTransport
    from .._transport._kube_watch import Subscription

__all__ = ["wait_until_ready"]

Bind = Callable[[Mapping[str, Any]], Deployment]


async def wait_until_ready(
    kube: ClusterTransport,
    namespace: str,
    name: str,
    bind: Bind,
    *,
    timeout: float | None,
    min_generation: int | None = None,
    not_revision: str | None = None,
) -> Deployment:
    """Follow a deployment until `evaluate_readiness` returns ready or failed.

    The namespace's shared watch hub delivers the changes, so any number of
    concurrent waits in one namespace share one watch connection.

    Raises:
        DeploymentException: The controller reported a failure, or the object
            was deleted while waiting.
        TimeoutException: Not ready within `timeout` seconds; the message says
            why, condition by condition.
    """
    from .._transport._kube import resource_path

    loop = asyncio.get_running_loop()
    deadline = None if timeout is None else loop.time() + timeout
    hub = kube.hub(GROUP, VERSION, PLURAL, namespace)
    path = resource_path(GROUP, VERSION, PLURAL, namespace, name)
    last: Deployment | None = None
    try:
        async with hub.subscribe(name) as events:
            # Subscribe first, then read, so no change between the two is lost.
            last = bind(await _bounded(kube.request("GET", path), deadline))
            while True:
                verdict = evaluate_readiness(
                    last, min_generation=min_generation, not_revision=not_revision
                )
                if verdict.state == "ready":
                    return last
                if verdict.state == "failed":
                    raise DeploymentException(
                        f"deployment {name!r} failed: " + "; ".join(verdict.details),
                        deployment_name=name,
                        reasons=verdict.reasons,
                    )
                last = await _bounded(_next_state(events, last, bind), deadline)
    except _DeadlineReached:
        raise TimeoutException(
            f"deployment {name!r} was not ready after {timeout} s: "
            + describe_not_ready(last, not_revision=not_revision)
        ) from None


class _DeadlineReached(Exception):
    """The wait's own deadline passed (unlike a timeout raised inside a call)."""


async def _bounded(awaitable: Any, deadline: float | None) -> Any:
    """Await `awaitable` until `deadline` (loop time); cancel it when it passes."""
    if deadline is None:
        return await awaitable
    remaining = max(deadline - asyncio.get_running_loop().time(), 0.0)
    task = asyncio.ensure_future(awaitable)
    try:
        done, _ = await asyncio.wait([task], timeout=remaining)
    finally:
        # Also on the caller's cancellation, so no task outlives the wait.
        if not task.done():
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
    if task in done:
        return task.result()
    raise _DeadlineReached


async def _next_state(
    events: Subscription, latest: Deployment, bind: Bind
) -> Deployment:
    """Return the next state newer than `latest` from a hub subscription."""
    from .._transport._kube_watch import is_newer

    while True:
        event = await events.get()
        if event.type == "DELETED":
            raise DeploymentException(
                f"deployment {latest.name!r} was deleted while waiting for it",
                deployment_name=latest.name,
                reasons=["Deleted"],
            )
        if is_newer(event.resource_version, latest.resource_version or "0"):
            return bind(event.object)
