"""Async-first SDK for an ML platform built on MLflow and Kubernetes.

``import maestro_ml_async`` stays cheap: the cluster side (kubernetes-asyncio)
loads the first time a training or deployment feature is used.
"""

from ._bulk import BulkResults, bulk_map
from ._client import AsyncMaestroClient
from ._config import Config
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
from ._pagination import AsyncPager, Page
from ._version import __version__

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
