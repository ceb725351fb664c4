"""Async-first SDK for an ML platform built on MLflow and Kubernetes.

``import maestro_ml_async`` stays cheap: each public name loads its module on
first use, and the cluster side (kubernetes-asyncio) loads only when a training
or deployment feature runs.
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
        RegistrationFailedException,
        RegistrationTimeoutException,
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
    from ._sync._adapters import (
        Pager,
    )
    from ._sync._client import (
        MaestroClient,
    )
    from .resources._webhook_delivery import (
        WebhookVerificationError,
        parse_webhook_delivery,
        sign_webhook_payload,
        verify_webhook_signature,
    )
    from .types.deployment import (
        Deployment,
        DeploymentCondition,
        DeploymentEvent,
        ModelFailure,
        RolloutState,
        TrafficTarget,
    )
    from .types.events import (
        RegistryEvent,
        RegistryEventType,
    )
    from .types.models import (
        Model,
        ModelArtifact,
        ModelMetrics,
        ModelSignature,
        ModelVersion,
    )
    from .types.tracking import (
        ArtifactInfo,
        Experiment,
        LoggedModel,
        LoggedModelStatus,
        Metric,
        Param,
        Run,
        RunData,
        RunInfo,
        RunMetricUpdate,
        RunStatus,
        RunStatusChange,
        RunTag,
        ViewType,
    )
    from .types.training import (
        JobCondition,
        JobEvent,
        JobStatus,
        LogLine,
        ReplicaStatus,
        TrainingJob,
        TrainingTimeoutException,
    )
    from .types.webhooks import (
        Webhook,
        WebhookAction,
        WebhookEntity,
        WebhookEvent,
        WebhookStatus,
        WebhookTestResult,
    )

# Public name -> module that defines it. Modules load on first attribute access
# (PEP 562), so ``import maestro_ml_async`` does not import httpx, pydantic or
# kubernetes-asyncio until they are needed.
_EXPORTS: dict[str, str] = {
    "AlreadyExistsException": "._exceptions",
    "ArtifactInfo": ".types.tracking",
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
    "Deployment": ".types.deployment",
    "DeploymentCondition": ".types.deployment",
    "DeploymentEvent": ".types.deployment",
    "DeploymentException": "._exceptions",
    "Experiment": ".types.tracking",
    "ExperimentNotFoundException": "._exceptions",
    "InvalidParameterException": "._exceptions",
    "JobCondition": ".types.training",
    "JobEvent": ".types.training",
    "JobStatus": ".types.training",
    "KubernetesAuthException": "._exceptions",
    "KubernetesConflictException": "._exceptions",
    "KubernetesException": "._exceptions",
    "KubernetesNotFoundException": "._exceptions",
    "LogLine": ".types.training",
    "LoggedModel": ".types.tracking",
    "LoggedModelStatus": ".types.tracking",
    "MLflowException": "._exceptions",
    "MaestroClient": "._sync._client",
    "MaestroMLException": "._exceptions",
    "Metric": ".types.tracking",
    "Model": ".types.models",
    "ModelArtifact": ".types.models",
    "ModelFailure": ".types.deployment",
    "ModelMetrics": ".types.models",
    "ModelNotFoundException": "._exceptions",
    "ModelSignature": ".types.models",
    "ModelVersion": ".types.models",
    "ModelVersionNotFoundException": "._exceptions",
    "NotFoundException": "._exceptions",
    "NotSupportedByServerException": "._exceptions",
    "Page": "._pagination",
    "Pager": "._sync._adapters",
    "Param": ".types.tracking",
    "RateLimitedException": "._exceptions",
    "RegistrationFailedException": "._exceptions",
    "RegistrationTimeoutException": "._exceptions",
    "RegistryEvent": ".types.events",
    "RegistryEventType": ".types.events",
    "ReplicaStatus": ".types.training",
    "RequestTimeoutException": "._exceptions",
    "RolloutState": ".types.deployment",
    "Run": ".types.tracking",
    "RunData": ".types.tracking",
    "RunInfo": ".types.tracking",
    "RunMetricUpdate": ".types.tracking",
    "RunNotFoundException": "._exceptions",
    "RunStatus": ".types.tracking",
    "RunStatusChange": ".types.tracking",
    "RunTag": ".types.tracking",
    "ServerUnavailableException": "._exceptions",
    "TimeoutException": "._exceptions",
    "TrafficTarget": ".types.deployment",
    "TrainingException": "._exceptions",
    "TrainingJob": ".types.training",
    "TrainingTimeoutException": ".types.training",
    "TransportException": "._exceptions",
    "ValidationException": "._exceptions",
    "ViewType": ".types.tracking",
    "Webhook": ".types.webhooks",
    "WebhookAction": ".types.webhooks",
    "WebhookEntity": ".types.webhooks",
    "WebhookEvent": ".types.webhooks",
    "WebhookStatus": ".types.webhooks",
    "WebhookTestResult": ".types.webhooks",
    "WebhookVerificationError": ".resources._webhook_delivery",
    "bulk_map": "._bulk",
    "parse_webhook_delivery": ".resources._webhook_delivery",
    "sign_webhook_payload": ".resources._webhook_delivery",
    "verify_webhook_signature": ".resources._webhook_delivery",
}

__all__ = [
    "AlreadyExistsException",
    "ArtifactInfo",
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
    "Deployment",
    "DeploymentCondition",
    "DeploymentEvent",
    "DeploymentException",
    "Experiment",
    "ExperimentNotFoundException",
    "InvalidParameterException",
    "JobCondition",
    "JobEvent",
    "JobStatus",
    "KubernetesAuthException",
    "KubernetesConflictException",
    "KubernetesException",
    "KubernetesNotFoundException",
    "LogLine",
    "LoggedModel",
    "LoggedModelStatus",
    "MLflowException",
    "MaestroClient",
    "MaestroMLException",
    "Metric",
    "Model",
    "ModelArtifact",
    "ModelFailure",
    "ModelMetrics",
    "ModelNotFoundException",
    "ModelSignature",
    "ModelVersion",
    "ModelVersionNotFoundException",
    "NotFoundException",
    "NotSupportedByServerException",
    "Page",
    "Pager",
    "Param",
    "RateLimitedException",
    "RegistrationFailedException",
    "RegistrationTimeoutException",
    "RegistryEvent",
    "RegistryEventType",
    "ReplicaStatus",
    "RequestTimeoutException",
    "RolloutState",
    "Run",
    "RunData",
    "RunInfo",
    "RunMetricUpdate",
    "RunNotFoundException",
    "RunStatus",
    "RunStatusChange",
    "RunTag",
    "ServerUnavailableException",
    "TimeoutException",
    "TrafficTarget",
    "TrainingException",
    "TrainingJob",
    "TrainingTimeoutException",
    "TransportException",
    "ValidationException",
    "ViewType",
    "Webhook",
    "WebhookAction",
    "WebhookEntity",
    "WebhookEvent",
    "WebhookStatus",
    "WebhookTestResult",
    "WebhookVerificationError",
    "__version__",
    "bulk_map",
    "parse_webhook_delivery",
    "sign_webhook_payload",
    "verify_webhook_signature",
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
