"""Argument checks of the deployment API that run before any request."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from .._exceptions import ValidationException
from .._validation import check_kubernetes_name, check_max_results
from ._deployment_patch import ScaleChange
from ._kserve import (
    STRATEGIES,
    PredictorOptions,
    check_model_format,
    check_resources,
    protocol_for,
)

__all__ = [
    "DEFAULT_CANARY_PERCENT",
    "check_canary_percent",
    "check_deploy_options",
    "check_label_selector",
    "check_list_limit",
    "check_min_generation",
    "check_page_size",
    "check_replicas",
    "check_runtime",
    "check_strategy",
    "check_update",
    "check_wait_timeout",
]

MAX_PAGE_SIZE = 500
# The largest signed 32-bit integer, far above any namespace's InferenceService
# count. The registry listings use the same bound.
MAX_LIST_RESULTS = 2**31 - 1
DEFAULT_CANARY_PERCENT = 10
"""Share of traffic that a canary gets when no canary_traffic_percent is set."""


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
    return check_max_results(page_size, maximum=MAX_PAGE_SIZE, name="page_size")


def check_list_limit(max_results: object) -> int | None:
    """Check the `max_results` of a listing: None or a positive integer."""
    if max_results is None:
        return None
    return check_max_results(max_results, maximum=MAX_LIST_RESULTS)


def check_label_selector(label_selector: object) -> str | None:
    """Check a label selector: None or a string, which the API server parses."""
    if label_selector is None or isinstance(label_selector, str):
        return label_selector
    raise ValidationException(
        "label_selector must be a string such as 'team=fraud', "
        f"got {type(label_selector).__name__}"
    )


def check_wait_timeout(timeout: object) -> float | None:
    """Check the timeout of a wait: None (no limit) or positive seconds."""
    if timeout is None:
        return None
    if isinstance(timeout, bool) or not isinstance(timeout, (int, float)):
        raise ValidationException(
            f"timeout must be a number of seconds or None, got {type(timeout).__name__}"
        )
    if math.isnan(timeout) or timeout <= 0:
        raise ValidationException(f"timeout must be positive, got {timeout}")
    return float(timeout)


def check_min_generation(generation: object) -> int | None:
    """Check a `min_generation`: None or a non-negative integer."""
    if generation is None:
        return None
    if isinstance(generation, bool) or not isinstance(generation, int):
        raise ValidationException(
            "min_generation must be an integer or None, "
            f"got {type(generation).__name__}"
        )
    if generation < 0:
        raise ValidationException(
            f"min_generation must not be negative, got {generation}"
        )
    return generation


def check_update(
    *,
    rollout: bool,
    replicas: int | None,
    max_replicas: int | None,
    strategy: str | None,
    canary_traffic_percent: int | None,
    resources: Mapping[str, Any] | None,
    runtime: str | None,
) -> ScaleChange:
    """Check the arguments of an update and return the change they request.

    A canary share given with a version but without a strategy implies the
    canary strategy.
    """
    if strategy is not None:
        strategy = check_strategy(strategy)
    elif canary_traffic_percent is not None and rollout:
        strategy = "canary"
    if replicas is not None:
        check_replicas(replicas, "replicas", minimum=0)
    if max_replicas is not None:
        check_replicas(max_replicas, "max_replicas", minimum=max(replicas or 0, 1))
    return ScaleChange(
        replicas=replicas,
        max_replicas=max_replicas,
        resources=check_resources(resources),
        runtime=check_runtime(runtime),
        strategy=strategy,
        canary_traffic_percent=check_canary_percent(
            canary_traffic_percent, strategy or "canary"
        ),
    )


def check_deploy_options(
    *,
    replicas: int,
    max_replicas: int | None,
    strategy: str,
    canary_traffic_percent: int | None,
    resources: Mapping[str, Any] | None,
    runtime: str | None,
    model_format: str,
    protocol_version: str | None,
) -> PredictorOptions:
    """Check the serving arguments of a new deployment."""
    replicas = check_replicas(replicas, "replicas", minimum=0)
    if max_replicas is not None:
        check_replicas(max_replicas, "max_replicas", minimum=max(replicas, 1))
    strategy = check_strategy(strategy)
    percent = check_canary_percent(canary_traffic_percent, strategy)
    if strategy == "canary" and percent is None:
        percent = DEFAULT_CANARY_PERCENT
    runtime = check_runtime(runtime)
    model_format = check_model_format(model_format, runtime=runtime)
    protocol_for(model_format, protocol_version)
    return PredictorOptions(
        replicas=replicas,
        max_replicas=max_replicas,
        model_format=model_format,
        protocol_version=protocol_version,
        runtime=runtime,
        resources=check_resources(resources),
        strategy=strategy,
        canary_traffic_percent=percent,
    )
