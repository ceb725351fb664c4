"""Async-first SDK for an ML platform built on MLflow and Kubernetes.

``import maestro_ml_async`` stays cheap: the cluster side (kubernetes-asyncio)
loads the first time a training or deployment feature is used.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from ._version import __version__

if TYPE_CHECKING:
    from ._bulk import (
        BulkResults,
        bulk_map,
    )
    from ._client import (
        AsyncMaestroClient,
    )
    from ._config import (
        Config,
    )
    from ._exceptions import (
        AlreadyExistsException,
        AuthenticationException,
        AuthorizationException,
        BulkOperationError,
        ClientClosedError,
        ConfigurationException,
        ConflictException,
        DeploymentException,
        ExperimentNotFoundException,
        InvalidParameterException,
        KubernetesAuthException,
        KubernetesConflictException,
        KubernetesException,
        KubernetesNotFoundException,
        MaestroMLException,
        MLflowException,
        ModelNotFoundException,
        ModelVersionNotFoundException,
        NotFoundException,
        NotSupportedByServerException,
        RateLimitedException,
        RequestTimeoutException,
        RunNotFoundException,
        ServerUnavailableException,
        TimeoutException,
        TrainingException,
        TransportException,
        ValidationException,
    )
    from ._pagination import (
        AsyncPager,
        Page,
    )
    from ._sync._client import (
        MaestroClient,
    )

# Public name -> module that defines it. Modules load on first attribute access
# (PEP 562), so ``import maestro_ml_async`` costs almost nothing and never
# imports httpx, pydantic or kubernetes-asyncio until they are needed.
_EXPORTS: dict[str, str] = {
    "AlreadyExistsException": "._exceptions",
    "AsyncMaestroClient": "._client",
    "AsyncPager": "._pagination",
    "AuthenticationException": "._exceptions",
    "AuthorizationException": "._exceptions",
    "BulkOperationError": "._exceptions",
    "BulkResults": "._bulk",
    "ClientClosedError": "._exceptions",
    "Config": "._config",
    "ConfigurationException": "._exceptions",
    "ConflictException": "._exceptions",
    "DeploymentException": "._exceptions",
    "ExperimentNotFoundException": "._exceptions",
    "InvalidParameterException": "._exceptions",
    "KubernetesAuthException": "._exceptions",
    "KubernetesConflictException": "._exceptions",
    "KubernetesException": "._exceptions",
    "KubernetesNotFoundException": "._exceptions",
    "MLflowException": "._exceptions",
    "MaestroClient": "._sync._client",
    "MaestroMLException": "._exceptions",
    "ModelNotFoundException": "._exceptions",
    "ModelVersionNotFoundException": "._exceptions",
    "NotFoundException": "._exceptions",
    "NotSupportedByServerException": "._exceptions",
    "Page": "._pagination",
    "RateLimitedException": "._exceptions",
    "RequestTimeoutException": "._exceptions",
    "RunNotFoundException": "._exceptions",
    "ServerUnavailableException": "._exceptions",
    "TimeoutException": "._exceptions",
    "TrainingException": "._exceptions",
    "TransportException": "._exceptions",
    "ValidationException": "._exceptions",
    "bulk_map": "._bulk",
}

__all__ = [
    "AlreadyExistsException",
    "AsyncMaestroClient",
    "AsyncPager",
    "AuthenticationException",
    "AuthorizationException",
    "BulkOperationError",
    "BulkResults",
    "ClientClosedError",
    "Config",
    "ConfigurationException",
    "ConflictException",
    "DeploymentException",
    "ExperimentNotFoundException",
    "InvalidParameterException",
    "KubernetesAuthException",
    "KubernetesConflictException",
    "KubernetesException",
    "KubernetesNotFoundException",
    "MLflowException",
    "MaestroClient",
    "MaestroMLException",
    "ModelNotFoundException",
    "ModelVersionNotFoundException",
    "NotFoundException",
    "NotSupportedByServerException",
    "Page",
    "RateLimitedException",
    "RequestTimeoutException",
    "RunNotFoundException",
    "ServerUnavailableException",
    "TimeoutException",
    "TrainingException",
    "TransportException",
    "ValidationException",
    "__version__",
    "bulk_map",
]


def __getattr__(name: str) -> Any:
    module_name = _EXPORTS.get(name)
    if module_name is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(module_name, __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
