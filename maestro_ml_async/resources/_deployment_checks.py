"""Argument checks of the deployment API that run before any request."""

from __future__ import annotations

from .._exceptions import ValidationException
from .._validation import check_kubernetes_name
from ._kserve import STRATEGIES

__all__ = [
    "check_canary_percent",
    "check_page_size",
    "check_replicas",
    "check_runtime",
    "check_strategy",
]

MAX_PAGE_SIZE = 500


def check_replicas(replicas: object, name: str, *, minimum: int) -> int:
    """Check a replica count against a lower bound."""
    if isinstance(replicas, bool) or not isinstance(replicas, int):
        raise ValidationException(f"{name} must be an integer, got {replicas!r}")
    if replicas < minimum:
        raise ValidationException(f"{name} must be at least {minimum}, got {replicas}")
    return replicas


def check_strategy(strategy: object) -> str:
    """Check a rollout strategy name."""
    if strategy not in STRATEGIES:
        raise ValidationException(
            f"strategy must be one of {', '.join(STRATEGIES)}, got {strategy!r}"
        )
    return str(strategy)


def check_canary_percent(percent: object, strategy: str) -> int | None:
    """Check a canary share: 1 to 99, and only for the canary strategy."""
    if percent is None:
        return None
    if strategy != "canary":
        raise ValidationException(
            "canary_traffic_percent applies only to strategy='canary', "
            f"not {strategy!r}"
        )
    if isinstance(percent, bool) or not isinstance(percent, int):
        raise ValidationException(
            f"canary_traffic_percent must be an integer, got {percent!r}"
        )
    if not 1 <= percent <= 99:
        raise ValidationException(
            f"canary_traffic_percent must be between 1 and 99, got {percent}"
        )
    return percent


def check_runtime(runtime: object) -> str | None:
    """Check a ServingRuntime name (a Kubernetes object name)."""
    if runtime is None:
        return None
    return check_kubernetes_name(runtime, what="runtime")


def check_page_size(page_size: object) -> int:
    """Check a list page size (the ``limit`` of one request)."""
    if isinstance(page_size, bool) or not isinstance(page_size, int):
        raise ValidationException(f"page_size must be an integer, got {page_size!r}")
    if not 1 <= page_size <= MAX_PAGE_SIZE:
        raise ValidationException(
            f"page_size must be between 1 and {MAX_PAGE_SIZE}, got {page_size}"
        )
    return page_size
